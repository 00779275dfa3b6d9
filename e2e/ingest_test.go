package e2e_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/controlplane"
	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/internal/workload"
	"github.com/exospherehost/exo-alerts/schemas"
)

// ingest POSTs a batch to /v1/events with key and returns the status and
// the per-event answer.
func (s *system) ingest(t *testing.T, key, contentType, body string) (int, controlplane.IngestResult) {
	t.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, s.api+"/v1/events", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, _ := io.ReadAll(resp.Body)
	var out controlplane.IngestResult
	if resp.StatusCode < 300 || resp.StatusCode == http.StatusUnprocessableEntity {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("answer %d %s: %v", resp.StatusCode, raw, err)
		}
	}
	return resp.StatusCode, out
}

// A workflow engine sends a batch over HTTP with one bad event among good
// failures: the good ones alert exactly once each, the bad one is answered
// with its reason and path, and nothing of it reaches the processor. The
// engine's retry of the whole batch (after, say, a timeout) alerts nothing
// more: the processor deduplicates on the event id.
func TestIngestBatchAlertsGoodEventsOnce(t *testing.T) {
	t.Parallel()
	s := start(t)
	recv := newEventReceiver(t)
	wh := s.post(t, "acme", "/v1/webhooks", map[string]any{"name": "ops", "target_url": recv.srv.URL + "/hook"})
	s.post(t, "acme", "/v1/alert-rules", map[string]any{"name": "failures", "event_type": schemas.TypeRunFailed, "webhook_endpoint_id": wh["id"]})
	key := controlplane.NewAPIKey()
	if _, err := controlplane.CreateAPIKey(context.Background(), s.pool, "acme", "engine", controlplane.RoleIngest, key); err != nil {
		t.Fatal(err)
	}
	s.waitGauge(t, "exo_processor_rules_active", 1)

	var docs, good []string
	for i, run := range []string{"run_1", "run_2", "run_bad", "run_3"} {
		ev := workload.Event(workload.Spec{Tenant: "acme", Type: schemas.TypeRunFailed, WorkflowName: "etl", RunID: run, Duration: time.Second})
		raw, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		doc := string(raw)
		if i == 2 {
			doc = strings.Replace(doc, `"time":"`, `"time":"yesterday`, 1) // not a timestamp
		} else {
			good = append(good, ev.ID)
		}
		docs = append(docs, doc)
	}
	batch := "[" + strings.Join(docs, ",") + "]"
	status, res := s.ingest(t, key, "application/cloudevents-batch+json", batch)
	if status != http.StatusMultiStatus || res.Accepted != 3 || res.Rejected != 1 {
		t.Fatalf("batch: %d %+v; want 207 with 3 accepted, 1 rejected", status, res)
	}
	if bad := res.Events[2]; bad.Status != "invalid" || len(bad.Paths) != 1 || bad.Paths[0] != "/time" || !strings.Contains(bad.Reason, "/time") {
		t.Errorf("the bad event's answer %+v; want invalid at /time", bad)
	}

	deadline := time.Now().Add(30 * time.Second)
	for len(recv.missing(good)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no alert within 30s for %v", recv.missing(good))
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The engine retries the whole batch: the same answer, no new alert.
	if status, res := s.ingest(t, key, "application/cloudevents-batch+json", batch); status != http.StatusMultiStatus || res.Accepted != 3 {
		t.Fatalf("retried batch: %d %+v", status, res)
	}
	// The processor has seen the three again (and dropped them) and the
	// dispatcher delivered exactly three: only then count at the receiver.
	testenv.WaitMetric(t, s.reg, 30*time.Second, "see the retried events", func(v float64) bool { return v >= 3 }, "exo_processor_events_total", "outcome", "duplicate")
	testenv.WaitMetric(t, s.reg, 30*time.Second, "deliver three", func(v float64) bool { return v >= 3 }, "exo_dispatcher_attempts_total", "outcome", schemas.OutcomeDelivered)
	recv.mu.Lock()
	defer recv.mu.Unlock()
	if len(recv.got) != 3 {
		t.Errorf("the receiver got alerts for %d events (%v); want the 3 good ones", len(recv.got), recv.got)
	}
	for _, id := range good {
		if recv.got[id] != 1 {
			t.Errorf("event %s alerted %d times; want exactly once", id, recv.got[id])
		}
	}
	if v := testenv.Metric(t, s.reg, "exo_processor_events_total", "outcome", "invalid"); v != 0 {
		t.Errorf("the processor saw %v invalid events; the bad one must not reach Kafka", v)
	}
	if v := testenv.Metric(t, s.reg, "exo_dispatcher_attempts_total", "outcome", schemas.OutcomeDelivered); v != 3 {
		t.Errorf("%v deliveries; want 3", v)
	}
}
