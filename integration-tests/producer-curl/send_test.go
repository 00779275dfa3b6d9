// Package producercurl_test runs send.sh, the curl example producer,
// against the running system (e2e/harness): every failed run it sends
// alerts exactly once, in each of the three modes of the CloudEvents HTTP
// binding, and a retry of the same run alerts nothing more.
package producercurl_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/controlplane"
	"github.com/exospherehost/exo-alerts/e2e/harness"
	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/schemas"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// runs counts the alerts a receiver got per run id.
type runs struct {
	mu  sync.Mutex
	got map[string]int
}

func (r *runs) snapshot() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.got))
	for k, v := range r.got {
		out[k] = v
	}
	return out
}

func (r *runs) count(run string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got[run]
}

func TestSendScript(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"bash", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("send.sh needs %s: %v", tool, err)
		}
	}
	sys := harness.Start(t, harness.Options{})
	ctx := context.Background()
	recv := &runs{got: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var p schemas.WebhookPayload
		if json.Unmarshal(body, &p) == nil {
			recv.mu.Lock()
			recv.got[p.Data.Run.ID]++
			recv.mu.Unlock()
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)

	admin, ingest := controlplane.NewAPIKey(), controlplane.NewAPIKey()
	for key, role := range map[string]string{admin: controlplane.RoleAdmin, ingest: controlplane.RoleIngest} {
		if _, err := controlplane.CreateAPIKey(ctx, sys.Pool, "acme", "curl", role, key); err != nil {
			t.Fatal(err)
		}
	}
	api := func(path, body string) map[string]any {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, sys.API+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+admin)
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
	wh := api("/v1/webhooks", `{"name":"ops","target_url":"`+srv.URL+`/hook"}`)
	api("/v1/alert-rules", `{"name":"failures","event_type":"workflow.run.failed","webhook_endpoint_id":"`+wh["id"].(string)+`"}`)
	testenv.WaitMetric(t, sys.Registry, 20*time.Second, "the rule is live", func(v float64) bool { return v >= 1 }, "exo_processor_rules_active")

	send := func(tenant string, args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "bash", append([]string{"send.sh"}, args...)...)
		cmd.Env = append(os.Environ(), "EXO_URL="+sys.API, "EXO_INGEST_KEY="+ingest, "EXO_TENANT="+tenant)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
	modes := []string{"binary", "structured", "batch"}
	for _, mode := range modes {
		if out, err := send("acme", mode, "run_"+mode); err != nil {
			t.Fatalf("send.sh %s: %v\n%s", mode, err, out)
		}
	}
	// A key of acme cannot send globex's run: the script fails with the reason.
	if out, err := send("globex", "structured", "run_globex"); err == nil || !strings.Contains(out, "HTTP 422") || !strings.Contains(out, "wrong_tenant") {
		t.Errorf("send.sh as another tenant: %v\n%s; want a failure with HTTP 422 and wrong_tenant", err, out)
	}

	deadline := time.Now().Add(30 * time.Second)
	for _, mode := range modes {
		for recv.count("run_"+mode) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("no alert within 30s for the run sent in %s mode (got %v)", mode, recv.snapshot())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// Sent again (a retry after a lost answer): the same event ids, no new alert.
	if out, err := send("acme", "batch", "run_batch"); err != nil {
		t.Fatalf("send.sh batch again: %v\n%s", err, out)
	}
	testenv.WaitMetric(t, sys.Registry, 30*time.Second, "see the resent events", func(v float64) bool { return v >= 2 }, "exo_processor_events_total", "outcome", "duplicate")
	if v := testenv.Metric(t, sys.Registry, "exo_dispatcher_attempts_total", "outcome", schemas.OutcomeDelivered); v != 3 {
		t.Errorf("%v deliveries; want 3, one per failed run", v)
	}
	recv.mu.Lock()
	defer recv.mu.Unlock()
	if len(recv.got) != 3 {
		t.Errorf("alerts for runs %v; want run_binary, run_structured and run_batch", recv.got)
	}
	for _, mode := range modes {
		if n := recv.got["run_"+mode]; n != 1 {
			t.Errorf("run sent in %s mode alerted %d times; want exactly once", mode, n)
		}
	}
}
