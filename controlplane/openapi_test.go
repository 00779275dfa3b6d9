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
	"github.com/exospherehost/exo-alerts/schemas"
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

// The document's webhooks are every type of delivery a receiver can get
// (GET /v1/event-types lists them), each a POST of the webhook payload v1
// with the Standard Webhooks headers, and each example is a payload of its
// type that the payload's JSON Schema accepts.
func TestOpenAPIDocumentsEveryDelivery(t *testing.T) {
	ring, _ := keyring.Parse(keyring.Generate("k1"))
	s, err := controlplane.New(controlplane.Config{Pool: unusedPool(t), Brokers: []string{"127.0.0.1:1"}, Topics: kafka.NewTopics("exo."), Keyring: ring})
	if err != nil {
		t.Fatal(err)
	}
	oapi := s.API().OpenAPI()
	types := []string{schemas.TypeRunFailed, schemas.TypeRunSucceeded, schemas.TypeRunStarted, schemas.TypeRunDurationExceeded,
		schemas.TypeAlertFiring, schemas.TypeAlertResolved, schemas.TypeWebhookTest, schemas.TypeTenantNotice}
	if len(oapi.Webhooks) != len(types) {
		t.Errorf("%d webhooks documented, want %d", len(oapi.Webhooks), len(types))
	}
	for _, typ := range types {
		item := oapi.Webhooks[typ]
		if item == nil || item.Post == nil || item.Post.RequestBody == nil {
			t.Errorf("webhook %s: not documented as a POST with a body", typ)
			continue
		}
		headers := map[string]bool{}
		for _, p := range item.Post.Parameters {
			headers[p.Name] = p.In == "header" && p.Required && p.Description != ""
		}
		for _, h := range []string{"webhook-id", "webhook-timestamp", "webhook-signature"} {
			if !headers[h] {
				t.Errorf("webhook %s: header %s not documented as required", typ, h)
			}
		}
		ex, err := json.Marshal(item.Post.RequestBody.Content["application/json"].Example)
		if err != nil {
			t.Fatal(err)
		}
		var got struct{ Type string }
		if err := json.Unmarshal(ex, &got); err != nil || got.Type != typ {
			t.Errorf("webhook %s: example of type %q", typ, got.Type)
		}
		if err := schemas.Validate(schemas.KindWebhookPayload, ex); err != nil {
			t.Errorf("webhook %s: example is not a valid payload: %v\n%s", typ, err, ex)
		}
	}
}
