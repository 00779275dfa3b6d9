package controlplane_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"testing"

	"github.com/exospherehost/exo-alerts/controlplane"
	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/keyring"
	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/schemas"
)

// A sealed target URL is re-sealed with the rest: after re-encryption the
// new snapshot's URL opens with the new key alone.
func TestReencryptSealsTargetURL(t *testing.T) {
	t.Parallel()
	pool := testenv.Pool(t)
	k1, k2 := keyring.Generate("k1"), keyring.Generate("k2")
	old, err := keyring.Parse(k1)
	if err != nil {
		t.Fatal(err)
	}
	topics := kafka.NewTopics("t.")
	s, err := controlplane.New(controlplane.Config{Pool: pool, Brokers: []string{"127.0.0.1:1"}, Topics: topics, Keyring: old, Log: testenv.Log(t)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	key := controlplane.NewAPIKey()
	if _, err := controlplane.CreateAPIKey(context.Background(), pool, "acme", "test", controlplane.RoleAdmin, key); err != nil {
		t.Fatal(err)
	}
	b := &bundle{pool: pool, srv: srv, ring: old, adminKey: key}
	raw := "https://hooks.slack.com/services/T0AAAA/B0BBBB/abcdefghijklmnopqrstWXYZ"
	id := b.webhook(t, key, `{"name":"slack","kind":"slack","target_url":"`+raw+`"}`)["id"].(string)

	both, err := keyring.Parse(k2 + "," + k1)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := controlplane.Reencrypt(context.Background(), pool, both, topics); err != nil || n != 1 {
		t.Fatalf("Reencrypt = %d, %v; want 1 endpoint", n, err)
	}
	newOnly, err := keyring.Parse(k2)
	if err != nil {
		t.Fatal(err)
	}
	snap, _ := b.lastSnapshot(t, "webhook-endpoints", "acme/"+id)
	var rec schemas.EndpointRecord
	if err := json.Unmarshal(snap, &rec); err != nil || rec.TargetURLSealed == nil || rec.TargetURLSealed.KeyID != "k2" {
		t.Fatalf("snapshot after re-encryption: %s (%v)", snap, err)
	}
	if got, err := newOnly.Open(*rec.TargetURLSealed, "acme/"+id+"/target_url"); err != nil || got != raw {
		t.Errorf("target URL opens to %q, %v with the new key alone", got, err)
	}
}
