package signature

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// independentStandard verifies a Standard Webhooks signature straight from
// the spec (https://www.standardwebhooks.com), without this package's helpers.
func independentStandard(h http.Header, body []byte, secret string) bool {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(h.Get("webhook-id") + "." + h.Get("webhook-timestamp") + "." + string(body)))
	want := "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
	for _, s := range strings.Split(h.Get("webhook-signature"), " ") {
		if s == want {
			return true
		}
	}
	return false
}

func TestSignVerify(t *testing.T) {
	t.Parallel()
	secret, old := NewSecret(), NewSecret()
	body := []byte(`{"type":"workflow.run.failed"}`)
	now := time.Unix(1_764_324_000, 0)
	h := http.Header{}
	if err := Sign(h, []string{secret, old}, "alrt_1", now, body); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{secret, old} {
		if err := VerifyStandard(h, body, s, now, 5*time.Minute); err != nil {
			t.Errorf("VerifyStandard: %v", err)
		}
		if err := VerifyExosphere(h, body, s, now, 5*time.Minute); err != nil {
			t.Errorf("VerifyExosphere: %v", err)
		}
		if !independentStandard(h, body, s) {
			t.Errorf("independent Standard Webhooks check failed for %s", h.Get("webhook-signature"))
		}
	}
	other := NewSecret()
	if err := VerifyStandard(h, body, other, now, time.Minute); !errors.Is(err, ErrMismatch) {
		t.Errorf("foreign secret: %v", err)
	}
	if err := VerifyExosphere(h, []byte(`{"type":"tampered"}`), secret, now, time.Minute); !errors.Is(err, ErrMismatch) {
		t.Errorf("tampered body: %v", err)
	}
	if err := VerifyStandard(h, body, secret, now.Add(10*time.Minute), 5*time.Minute); !errors.Is(err, ErrTooOld) {
		t.Errorf("replayed late: %v", err)
	}
}

func TestKeyRejectsBadSecrets(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "secret", "whsec_", "whsec_!!!", "whsec_c2hvcnQ="} {
		if _, err := Key(s); !errors.Is(err, ErrBadSecret) {
			t.Errorf("Key(%q) = %v", s, err)
		}
	}
}

func FuzzVerifyExosphere(f *testing.F) {
	f.Add("t=1,v1=00", "{}")
	f.Add("t=,v1", "")
	f.Add(",,,=", "x")
	secret := NewSecret()
	f.Fuzz(func(t *testing.T, header, body string) {
		h := http.Header{}
		h.Set(HeaderExosphere, header)
		if err := VerifyExosphere(h, []byte(body), secret, time.Unix(1, 0), time.Hour); err == nil {
			t.Fatalf("a forged header verified: %q", header)
		}
	})
}
