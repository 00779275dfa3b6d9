package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/controlplane"
	"github.com/exospherehost/exo-alerts/e2e/harness"
	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/schemas"
	"github.com/exospherehost/exo-alerts/signature"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type post struct {
	header http.Header
	body   []byte
}

// The example engine, on the running system: its failed run is delivered
// exactly once, signed; the same events sent again (the engine's resend
// after a timeout) deliver nothing more; the run's retry (attempt 2, in
// binary mode) alerts once more.
func TestExampleProducerFailedRunDeliversOnce(t *testing.T) {
	t.Parallel()
	sys := harness.Start(t, harness.Options{})
	ctx := context.Background()
	key := controlplane.NewAPIKey()
	if _, err := controlplane.CreateAPIKey(ctx, sys.Pool, "acme", "producer-go", controlplane.RoleAdmin, key); err != nil {
		t.Fatal(err)
	}
	posts := make(chan post, 10)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		posts <- post{r.Header.Clone(), b}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(recv.Close)
	api := func(path string, body any) map[string]any {
		t.Helper()
		raw, _ := json.Marshal(body)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, sys.API+path, bytes.NewReader(raw))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("POST %s: %d %v", path, resp.StatusCode, out)
		}
		return out
	}
	wh := api("/v1/webhooks", map[string]any{"name": "ops", "target_url": recv.URL + "/hook"})
	secret := wh["secret"].(string)
	api("/v1/alert-rules", map[string]any{"name": "failed runs", "event_type": schemas.TypeRunFailed, "webhook_endpoint_id": wh["id"]})
	testenv.WaitMetric(t, sys.Registry, 20*time.Second, "the rule is live", func(v float64) bool { return v >= 1 }, "exo_processor_rules_active")

	send := func(args ...string) {
		t.Helper()
		var out strings.Builder
		args = append([]string{"-brokers", strings.Join(sys.Brokers, ","), "-topic", sys.Topics.Events, "-tenant", "acme", "-run", "run_42"}, args...)
		if err := run(ctx, args, &out); err != nil {
			t.Fatalf("producer-go %q: %v", args, err)
		}
		t.Log(out.String())
	}
	next := func(attempt int) {
		t.Helper()
		var p post
		select {
		case p = <-posts:
		case <-time.After(30 * time.Second):
			t.Fatalf("no delivery of attempt %d within 30s", attempt)
		}
		if err := signature.VerifyStandard(p.header, p.body, secret, time.Now(), 5*time.Minute); err != nil {
			t.Errorf("signature: %v", err)
		}
		var pl schemas.WebhookPayload
		if err := json.Unmarshal(p.body, &pl); err != nil {
			t.Fatal(err)
		}
		d := pl.Data
		if pl.Type != schemas.TypeRunFailed || d.TenantID != "acme" || d.Run.ID != "run_42" || d.Event.ID != fmt.Sprintf("run_42/%d/failed", attempt) ||
			d.Workflow.Name != "nightly-etl" || d.Error == nil || d.Error.Code != "NODE_ERRORED" || d.Labels["env"] != "prod" {
			t.Errorf("payload: %s", p.body)
		}
	}

	send()
	next(1)
	send()                           // resent: the same ids
	send("-attempt", "2", "-binary") // the run retried
	next(2)

	// Every event judged (2 sent three times), two matched: the resend was
	// two duplicates, and only two attempts were made.
	testenv.WaitMetric(t, sys.Registry, 20*time.Second, "all six events processed", func(v float64) bool { return v >= 6 }, "exo_processor_events_total")
	if m, d := testenv.Metric(t, sys.Registry, "exo_processor_events_total", "outcome", "matched"), testenv.Metric(t, sys.Registry, "exo_processor_events_total", "outcome", "duplicate"); m != 2 || d != 2 {
		t.Errorf("matched %v, duplicate %v; want 2 and 2", m, d)
	}
	testenv.WaitMetric(t, sys.Registry, 20*time.Second, "both attempts reported", func(v float64) bool { return v >= 2 }, "exo_dispatcher_attempts_total")
	if n := testenv.Metric(t, sys.Registry, "exo_dispatcher_attempts_total"); n != 2 {
		t.Errorf("%v delivery attempts, want 2", n)
	}
	select {
	case p := <-posts:
		t.Errorf("a third delivery: %s", p.body)
	default:
	}
	sys.Alive(t)
}
