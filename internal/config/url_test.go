package config_test

import (
	"strings"
	"testing"

	"github.com/exospherehost/exo-alerts/internal/config"
)

// EXO_PUBLIC_URL names the server of the OpenAPI document that generated
// clients call: a value that is no absolute http(s) URL must stop the
// control plane at start, naming the variable, rather than reach clients.
func TestPublicURLMustBeAbsoluteHTTP(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		value, want string
		ok          bool
	}{
		{value: "https://alerts.example.com/api", want: "https://alerts.example.com/api", ok: true},
		{value: "http://127.0.0.1:8080", want: "http://127.0.0.1:8080", ok: true},
		{value: "ftp://alerts.example.com"},
		{value: "alerts.example.com"},
		{value: "https://"},
		{value: "http://[::1"},
	} {
		env := &config.Env{Lookup: func(k string) (string, bool) {
			if k == "EXO_PUBLIC_URL" {
				return tc.value, true
			}
			return "", false
		}}
		got := env.URL("EXO_PUBLIC_URL", "http://127.0.0.1:8080")
		err := env.Err()
		if tc.ok && (err != nil || got != tc.want) {
			t.Errorf("EXO_PUBLIC_URL=%q: got %q, %v; want %q, no problem", tc.value, got, err, tc.want)
		}
		if !tc.ok && (err == nil || !strings.Contains(err.Error(), "EXO_PUBLIC_URL")) {
			t.Errorf("EXO_PUBLIC_URL=%q: problem %v, want one naming the variable", tc.value, err)
		}
	}
	unset := &config.Env{Lookup: func(string) (string, bool) { return "", false }}
	if got := unset.URL("EXO_PUBLIC_URL", "http://127.0.0.1:9000"); got != "http://127.0.0.1:9000" || unset.Err() != nil {
		t.Errorf("unset: %q, %v; want the default", got, unset.Err())
	}
}
