package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

// Alert ids never change: receivers deduplicate on them, across versions of
// the processor. These were computed by the first implementation (sha256
// of the parts joined by zero bytes, via sha256.New and hex.EncodeToString);
// the first can be checked with
// printf 'acme\0r1\0ev1' | sha256sum | cut -c1-32.
func TestAlertIDsArePinned(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 300) // longer than hashID's stack buffer
	for _, c := range []struct{ got, want string }{
		{AlertID("acme", "r1", "ev1"), "alrt_f665ee5cd101b41c31d31e7aa7d1ec0c"},
		{AlertID("", "", ""), "alrt_96a296d224f285c67bee93c30f8a3091"},
		{AlertID("tenant_ü", "rule/1", "évènement"), "alrt_faf6d36f82c8d48e6731d9e07ebeaf4d"},
		{AlertID(long, long, long), "alrt_7a3383a41108c608a7142c2a7c2f5664"},
		{DurationAlertID("acme", "r1", "run_1"), "alrt_5f962a53c324a5cec9ef7d01ec9ce598"},
		{DurationAttemptAlertID("acme", "r1", "run_1", 0), "alrt_5f962a53c324a5cec9ef7d01ec9ce598"},
		{DurationAttemptAlertID("acme", "r1", "run_1", 1), "alrt_5f962a53c324a5cec9ef7d01ec9ce598"},
		{DurationAttemptAlertID("acme", "r1", "run_1", 2), "alrt_e8b887c98df7c44c45ef767aa9bc364f"},
		{DurationAttemptAlertID("acme", "r1", "run_1", 12345), "alrt_5bdf84c7c7c474d79495ae7b3e7f48d8"},
		{DurationAttemptAlertID(long, "r1", long, 7), "alrt_3084aec6905d5d320c55ee5fd4668e57"},
	} {
		if c.got != c.want {
			t.Errorf("id %s, want %s", c.got, c.want)
		}
	}
}

// referenceID is the first implementation of the ids.
func referenceID(parts ...string) string {
	h := sha256.New()
	for i, p := range parts {
		if i > 0 {
			h.Write([]byte{0})
		}
		h.Write([]byte(p))
	}
	return "alrt_" + hex.EncodeToString(h.Sum(nil)[:16])
}

// The ids equal the first implementation's on random parts of every length
// around the stack buffer's.
func TestAlertIDsMatchReference(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	str := func() string {
		b := make([]byte, rng.IntN(200))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		return string(b)
	}
	for range 2000 {
		a, b, c, att := str(), str(), str(), rng.IntN(20)
		if got, want := AlertID(a, b, c), referenceID(a, b, c); got != want {
			t.Fatalf("AlertID(%q, %q, %q) = %s, want %s", a, b, c, got, want)
		}
		want := referenceID(a, b, c, "duration")
		if att > 1 {
			want = referenceID(a, b, c, "duration", strconv.Itoa(att))
		}
		if got := DurationAttemptAlertID(a, b, c, att); got != want {
			t.Fatalf("DurationAttemptAlertID(%q, %q, %q, %d) = %s, want %s", a, b, c, att, got, want)
		}
	}
}

// An id costs one allocation: the string returned.
func TestAlertIDAllocs(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { _ = AlertID("tenant_123", "rul_0123456789", "evt_0123456789abcdef") }); n > 1 {
		t.Errorf("AlertID: %v allocations, want 1", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = DurationAttemptAlertID("tenant_123", "rul_0123456789", "run_0123456789", 3) }); n > 1 {
		t.Errorf("DurationAttemptAlertID: %v allocations, want 1", n)
	}
}

// BenchmarkAlertID compares hashID with the first implementation, in the
// same run.
func BenchmarkAlertID(b *testing.B) {
	b.Run("hashID", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = AlertID("tenant_123", "rul_0123456789", "evt_0123456789abcdef")
		}
	})
	b.Run("sha256.New (before)", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = referenceID("tenant_123", "rul_0123456789", "evt_0123456789abcdef")
		}
	})
}
