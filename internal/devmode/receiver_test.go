package devmode_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/internal/devmode"
	"github.com/exospherehost/exo-alerts/internal/keyring"
	"github.com/exospherehost/exo-alerts/internal/store"
	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/schemas"
	"github.com/exospherehost/exo-alerts/signature"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// The demo receiver verifies a delivery with the secret of the endpoint
// whose target path it was sent to (read through the store, decrypted with
// the key ring), and tells a tampered body or a path no endpoint targets
// from a verified delivery — what the quickstart's step 4 shows a newcomer.
func TestDemoReceiverVerifiesWithTheEndpointSecret(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testenv.Pool(t)
	ring, err := keyring.Parse(keyring.Generate("k1"))
	if err != nil {
		t.Fatal(err)
	}
	db := store.New(pool, "")
	if err := db.EnsureTenant(ctx, "demo", "demo"); err != nil {
		t.Fatal(err)
	}
	secret := signature.NewSecret()
	if _, err := db.InTenant(ctx, "demo", false, func(tx *store.Tx) error {
		return tx.InsertEndpoint(ctx, &store.EndpointRow{
			ID: "whk_demo", TenantID: "demo", Name: "demo", Kind: schemas.EndpointKindWebhook,
			TargetURL: "http://127.0.0.1:8080/demo/receiver/ops", Secret: ring.Seal(secret, schemas.SecretAAD("demo", "whk_demo")),
			SecretHint: "…" + secret[len(secret)-4:], Headers: map[string]schemas.Sealed{}, IsActive: true, CreatedBy: "test",
		})
	}); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	devmode.NewReceiver(db, ring).Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	post := func(path string, body []byte, signed []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, bytes.NewReader(body))
		if err := signature.Sign(req.Header, []string{secret}, "msg_1", time.Now(), signed); err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("POST %s: %d", path, resp.StatusCode)
		}
	}
	body := []byte(`{"type":"workflow.run.failed"}`)
	post("/demo/receiver/ops", body, body)
	post("/demo/receiver/ops", []byte(`{"type":"tampered"}`), body)
	post("/demo/receiver/elsewhere", body, body)

	resp, err := http.Get(srv.URL + "/demo/receiver.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got []struct {
		Path         string `json:"path"`
		EndpointID   string `json:"endpoint_id"`
		Verification string `json:"verification"`
		Verified     bool   `json:"verified"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 { // newest first
		t.Fatalf("%d requests listed, want 3: %+v", len(got), got)
	}
	if g := got[2]; !g.Verified || g.EndpointID != "whk_demo" {
		t.Errorf("signed delivery: %+v, want verified with whk_demo", g)
	}
	if g := got[1]; g.Verified || g.Verification != "no endpoint secret verifies this request" {
		t.Errorf("tampered body: %+v, want not verified", g)
	}
	if g := got[0]; g.Verified || g.Verification != "no endpoint targets this path" {
		t.Errorf("unknown path: %+v, want not verified", g)
	}
}
