package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/schemas"
	"github.com/exospherehost/exo-alerts/signature"
)

// The example receiver accepts a delivery signed as the dispatcher signs
// it, once per webhook-id, and refuses an unsigned, wrongly signed or stale
// one.
func TestExampleReceiver(t *testing.T) {
	secret := signature.NewSecret()
	var handled []string
	srv := httptest.NewServer(newReceiver(secret, func(_ string, p schemas.WebhookPayload) { handled = append(handled, p.Data.AlertID) }))
	defer srv.Close()
	body, err := os.ReadFile("../../schemas/examples/webhook-payload-v1.json")
	if err != nil {
		t.Fatal(err)
	}
	post := func(secrets []string, id string, at time.Time) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/hook", bytes.NewReader(body))
		if len(secrets) > 0 {
			if err := signature.Sign(req.Header, secrets, id, at, body); err != nil {
				t.Fatal(err)
			}
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	now := time.Now()
	for _, c := range []struct {
		name    string
		secrets []string
		id      string
		at      time.Time
		want    int
	}{
		{"signed", []string{secret}, "alrt_1", now, http.StatusNoContent},
		{"the same alert again (a retry)", []string{secret}, "alrt_1", now, http.StatusOK},
		{"signed by the old and the new secret (rotation)", []string{signature.NewSecret(), secret}, "alrt_2", now, http.StatusNoContent},
		{"unsigned", nil, "alrt_3", now, http.StatusUnauthorized},
		{"another secret", []string{signature.NewSecret()}, "alrt_4", now, http.StatusUnauthorized},
		{"ten minutes old", []string{secret}, "alrt_5", now.Add(-10 * time.Minute), http.StatusUnauthorized},
	} {
		if got := post(c.secrets, c.id, c.at); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
	if len(handled) != 2 {
		t.Errorf("handled %d alerts, want 2 (alrt_1 once, alrt_2)", len(handled))
	}
}
