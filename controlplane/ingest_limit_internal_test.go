package controlplane

import (
	"testing"
	"time"
)

// The token bucket of a key refills at its rate up to its burst, refuses
// what it cannot cover with the wait until it could, and keys do not share.
func TestIngestLimiter(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	l := newIngestLimiter(10, 20, func() time.Time { return now })
	steps := []struct {
		advance  time.Duration
		key      string
		n        int
		ok       bool
		wantWait time.Duration
	}{
		{0, "a", 20, true, 0},                      // the full burst at once
		{0, "a", 1, false, 100 * time.Millisecond}, // empty: one token in 1/10 s
		{0, "b", 20, true, 0},                      // another key has its own bucket
		{500 * time.Millisecond, "a", 5, true, 0},  // half a second: 5 tokens
		{0, "a", 3, false, 300 * time.Millisecond}, // none left
		{10 * time.Second, "a", 20, true, 0},       // refilled up to the burst only
		{0, "a", 1, false, 100 * time.Millisecond}, // ... so empty again
		{0, "a", 21, false, -1},                    // more than the burst: never
	}
	for i, s := range steps {
		now = now.Add(s.advance)
		wait, ok := l.take(s.key, s.n)
		if ok != s.ok || wait != s.wantWait {
			t.Errorf("step %d: take(%s, %d) = %v, %v; want %v, %v", i, s.key, s.n, wait, ok, s.wantWait, s.ok)
		}
	}
	if wait, ok := newIngestLimiter(-1, 0, time.Now).take("a", 1_000_000); !ok || wait != 0 {
		t.Errorf("no limit: %v, %v", wait, ok)
	}
}
