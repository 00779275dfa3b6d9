package signature

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// referenceHeaders are the four signature headers of a delivery computed
// straight from the two schemes (doc.go), one fresh HMAC per signature.
func referenceHeaders(t *testing.T, secrets []string, msgID string, ts time.Time, body []byte) http.Header {
	t.Helper()
	ut := strconv.FormatInt(ts.Unix(), 10)
	exo, std := []string{"t=" + ut}, []string{}
	for _, s := range secrets {
		key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "whsec_"))
		if err != nil {
			t.Fatal(err)
		}
		m := hmac.New(sha256.New, key)
		m.Write([]byte(ut + "." + string(body)))
		exo = append(exo, "v1="+hex.EncodeToString(m.Sum(nil)))
		m = hmac.New(sha256.New, key)
		m.Write([]byte(msgID + "." + ut + "." + string(body)))
		std = append(std, "v1,"+base64.StdEncoding.EncodeToString(m.Sum(nil)))
	}
	h := http.Header{}
	h.Set("X-Exosphere-Signature", strings.Join(exo, ","))
	h.Set("webhook-id", msgID)
	h.Set("webhook-timestamp", ut)
	h.Set("webhook-signature", strings.Join(std, " "))
	return h
}

// Signing reuses each secret's HMAC state: the headers must be exactly those
// of a fresh HMAC per signature, call after call, for one secret and during
// a rotation, whatever was signed before with the same secrets.
func TestSignMatchesReference(t *testing.T) {
	t.Parallel()
	a, b := NewSecret(), NewSecret()
	ts := time.Unix(1_764_324_000, 0)
	for i, tc := range []struct {
		secrets []string
		id      string
		body    string
	}{
		{[]string{a}, "alrt_1", `{"type":"workflow.run.failed"}`},
		{[]string{a}, "alrt_2", ``},
		{[]string{a, b}, "alrt_3", strings.Repeat("x", 5000)},
		{[]string{b, a}, "alrt_4", `{"a":1}`},
		{[]string{a}, "alrt_1", `{"type":"workflow.run.failed"}`}, // again, from a used state
		{nil, "alrt_5", `{}`},
		{[]string{a}, "", `{}`}, // an empty id still signs ".<t>.<body>"
	} {
		h := http.Header{"Content-Type": {"application/json"}}
		if err := Sign(h, tc.secrets, tc.id, ts.Add(time.Duration(i)*time.Second), []byte(tc.body)); err != nil {
			t.Fatal(err)
		}
		want := referenceHeaders(t, tc.secrets, tc.id, ts.Add(time.Duration(i)*time.Second), []byte(tc.body))
		want.Set("Content-Type", "application/json")
		if fmt.Sprint(h) != fmt.Sprint(want) {
			t.Errorf("case %d:\n got %v\nwant %v", i, h, want)
		}
	}
}

// A bad secret among several fails the signing and sets no header, as
// before the states were kept.
func TestSignBadSecretSetsNothing(t *testing.T) {
	t.Parallel()
	h := http.Header{}
	if err := Sign(h, []string{NewSecret(), "whsec_!!!"}, "alrt_1", time.Now(), []byte("{}")); !errors.Is(err, ErrBadSecret) {
		t.Fatalf("Sign = %v, want ErrBadSecret", err)
	}
	if len(h) != 0 {
		t.Errorf("headers set after a failed signing: %v", h)
	}
}

// The dispatcher signs concurrently, often with the same secret: each
// signature must still be that of its own delivery (go test -race).
func TestSignConcurrent(t *testing.T) {
	t.Parallel()
	secrets := []string{NewSecret(), NewSecret()}
	ts := time.Unix(1_764_324_000, 0)
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				id, body := fmt.Sprintf("alrt_%d_%d", g, i), []byte(fmt.Sprintf(`{"n":%d}`, g*1000+i))
				h := http.Header{}
				if err := Sign(h, secrets[:1+i%2], id, ts, body); err != nil {
					errs <- err.Error()
					return
				}
				if fmt.Sprint(h) != fmt.Sprint(referenceHeaders(t, secrets[:1+i%2], id, ts, body)) {
					errs <- "wrong signature for " + id
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// More secrets than the cache keeps: signing still works with every one,
// including those signed with before the cache started over.
func TestSignManySecrets(t *testing.T) {
	t.Parallel()
	secrets := make([]string, maxSigners+10)
	for i := range secrets {
		secrets[i] = NewSecret()
	}
	ts, body := time.Unix(1_764_324_000, 0), []byte("{}")
	for _, pass := range []int{0, 1} {
		for i, s := range secrets {
			if i%97 != 0 && pass == 1 {
				continue
			}
			h := http.Header{}
			if err := Sign(h, []string{s}, "alrt_1", ts, body); err != nil {
				t.Fatal(err)
			}
			if err := VerifyStandard(h, body, s, ts, time.Minute); err != nil {
				t.Fatalf("pass %d secret %d: %v", pass, i, err)
			}
		}
	}
}

// Signing a delivery allocates at most 2 times (the string its four header
// values share, and their []string), with one secret or two; it allocated 40
// (one secret) and 71 (two) when each signature had its own HMAC. Under the
// race detector sync.Pool drops kept states at random: there the budget is
// only "fewer than before".
func TestSignAllocations(t *testing.T) {
	body := []byte(strings.Repeat(`{"type":"workflow.run.failed"}`, 40))
	ts := time.Unix(1_764_324_000, 0)
	for _, tc := range []struct {
		secrets       []string
		budget, raced float64
	}{
		{[]string{NewSecret()}, 2, 39},
		{[]string{NewSecret(), NewSecret()}, 2, 70},
	} {
		h := http.Header{}
		if err := Sign(h, tc.secrets, "alrt_1", ts, body); err != nil { // warm: decode the keys once
			t.Fatal(err)
		}
		allocs := testing.AllocsPerRun(200, func() {
			if err := Sign(h, tc.secrets, "alrt_1", ts, body); err != nil {
				t.Fatal(err)
			}
		})
		budget := tc.budget
		if raceEnabled {
			budget = tc.raced
		}
		if allocs > budget {
			t.Errorf("Sign with %d secret(s): %.1f allocations per delivery, budget %.0f", len(tc.secrets), allocs, budget)
		}
	}
}

// An empty delivery id signs ".<t>.<body>" in Standard Webhooks even with
// fresh buffers (not parallel: two GCs empty the pools, and nothing else
// runs meanwhile).
func TestSignEmptyIDFreshBuffers(t *testing.T) {
	secrets := []string{NewSecret()}
	ts, body := time.Unix(1_764_324_000, 0), []byte("{}")
	runtime.GC()
	runtime.GC()
	h := http.Header{}
	if err := Sign(h, secrets, "", ts, body); err != nil {
		t.Fatal(err)
	}
	if want := referenceHeaders(t, secrets, "", ts, body); fmt.Sprint(h) != fmt.Sprint(want) {
		t.Errorf("got %v\nwant %v", h, want)
	}
}
