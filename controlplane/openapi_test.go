package controlplane_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/exospherehost/exo-alerts/controlplane"
	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/keyring"
)

// The OpenAPI document the server serves is the one committed at
// docs/openapi.json. Regenerate it with `make openapi`.
func TestOpenAPIIsCommitted(t *testing.T) {
	ring, _ := keyring.Parse(keyring.Generate("k1"))
	// The spec does not depend on the database; a config with a nil pool is
	// refused, so hand it a pool that is never used.
	s, err := controlplane.New(controlplane.Config{Pool: unusedPool(t), Brokers: []string{"127.0.0.1:1"}, Topics: kafka.NewTopics("exo."), Keyring: ring})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	served, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !json.Valid(served) {
		t.Fatalf("GET /openapi.json: %d", resp.StatusCode)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, served, "", "  "); err != nil {
		t.Fatal(err)
	}
	pretty.WriteByte('\n')
	const path = "../docs/openapi.json"
	if os.Getenv("UPDATE_OPENAPI") == "1" {
		if err := os.WriteFile(path, pretty.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	committed, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run make openapi)", err)
	}
	if !bytes.Equal(committed, pretty.Bytes()) {
		t.Fatal("docs/openapi.json differs from the served spec: run `make openapi` and commit it")
	}
}
