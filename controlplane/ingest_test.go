package controlplane_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/controlplane"
	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/internal/workload"
	"github.com/exospherehost/exo-alerts/schemas"
)

// ingestEnv is a running control plane with keys of tenants acme and globex.
type ingestEnv struct {
	*relayEnv
	cp                                     *runningCP
	ingestKey, viewKey, otherIngest, admin string
}

func newIngestEnv(t *testing.T, mod func(*controlplane.Config)) *ingestEnv {
	t.Helper()
	e := &ingestEnv{relayEnv: newRelayEnv(t)}
	e.admin = e.key
	for _, k := range []struct {
		dst          *string
		tenant, role string
	}{{&e.ingestKey, "acme", controlplane.RoleIngest}, {&e.viewKey, "acme", controlplane.RoleViewer}, {&e.otherIngest, "globex", controlplane.RoleIngest}} {
		*k.dst = controlplane.NewAPIKey()
		if _, err := controlplane.CreateAPIKey(context.Background(), e.pool, k.tenant, "test", k.role, *k.dst); err != nil {
			t.Fatal(err)
		}
	}
	cfg := e.config(t)
	if mod != nil {
		mod(&cfg)
	}
	e.cp = startCP(t, cfg)
	return e
}

// send POSTs body to /v1/events with the content type and headers given.
func (e *ingestEnv) send(t *testing.T, key, contentType, body string, headers ...string) (int, http.Header, []byte) {
	t.Helper()
	return call(t, e.cp.url, http.MethodPost, "/v1/events", key, body, append([]string{"Content-Type", contentType}, headers...)...)
}

func event(t *testing.T, tenant, run string) (schemas.WorkflowEvent, string) {
	t.Helper()
	ev := workload.Event(workload.Spec{Tenant: tenant, Type: schemas.TypeRunFailed, WorkflowName: "etl", RunID: run, Duration: time.Second})
	raw, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return ev, string(raw)
}

func result(t *testing.T, raw []byte) controlplane.IngestResult {
	t.Helper()
	var r controlplane.IngestResult
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("answer %s: %v", raw, err)
	}
	return r
}

// eventsOnTopic reads the events topic and returns its records' values by
// key, checking that each is a structured-mode event the processor takes.
func (e *ingestEnv) eventsOnTopic(t *testing.T) map[string][]schemas.WorkflowEvent {
	t.Helper()
	out := map[string][]schemas.WorkflowEvent{}
	for _, r := range readTopic(t, e.brokers, e.topics.Events) {
		if ct := kafka.Header(r, "content-type"); ct != "application/cloudevents+json" {
			t.Errorf("record %s: content-type %q", r.Key, ct)
		}
		ev, err := schemas.CheckWorkflowEvent(r.Value)
		if err != nil {
			t.Fatalf("record %s on the topic is not a valid event: %v", r.Key, err)
		}
		out[string(r.Key)] = append(out[string(r.Key)], *ev)
	}
	return out
}

// Binary, structured and batch modes are each accepted (202) and land on
// workflow-events keyed tenant/run in structured JSON, before the answer.
func TestIngestModes(t *testing.T) {
	t.Parallel()
	e := newIngestEnv(t, nil)
	structured, sBody := event(t, "acme", "run_s")
	status, _, raw := e.send(t, e.ingestKey, "application/cloudevents+json", sBody)
	if status != http.StatusAccepted || result(t, raw).Accepted != 1 {
		t.Fatalf("structured: %d %s", status, raw)
	}

	bin, _ := event(t, "acme", "run_b")
	data, _ := json.Marshal(bin.Data)
	status, _, raw = e.send(t, e.ingestKey, "application/json", string(data),
		"ce-specversion", "1.0", "ce-id", bin.ID, "ce-source", "engine%20one", "ce-type", bin.Type,
		"ce-time", bin.Time.Format(time.RFC3339Nano), "ce-tenantid", "acme", "ce-subject", "run_b")
	if status != http.StatusAccepted {
		t.Fatalf("binary: %d %s", status, raw)
	}

	b1, r1 := event(t, "acme", "run_x")
	b2, r2 := event(t, "acme", "run_y")
	status, _, raw = e.send(t, e.admin, "application/cloudevents-batch+json", "["+r1+","+r2+"]")
	if r := result(t, raw); status != http.StatusAccepted || r.Accepted != 2 || r.Events[1].ID != b2.ID || r.Events[1].Status != "accepted" {
		t.Fatalf("batch with an admin key: %d %s", status, raw)
	}

	// 202 means on Kafka: the topic holds them now, no waiting.
	got := e.eventsOnTopic(t)
	for key, id := range map[string]string{"acme/run_s": structured.ID, "acme/run_b": bin.ID, "acme/run_x": b1.ID, "acme/run_y": b2.ID} {
		if len(got[key]) != 1 || got[key][0].ID != id {
			t.Errorf("key %s: %+v; want event %s", key, got[key], id)
		}
	}
	if b := got["acme/run_b"]; len(b) == 1 && (b[0].Source != "engine one" || b[0].Subject != "run_b" || b[0].DataContentType != "application/json") {
		t.Errorf("binary mode event = %+v; want percent-decoded source, the subject and datacontenttype", b[0])
	}
	if v := testenv.Metric(t, e.cp.reg, "exo_controlplane_ingest_events_total", "outcome", "accepted"); v != 4 {
		t.Errorf("accepted events counted %v; want 4", v)
	}
}

// A batch with bad events among good ones: the good ones are on Kafka
// (207), each bad one has its reason and the JSON path at fault; another
// tenant's event is refused. A batch of bad events only is 422.
func TestIngestBatchWithBadEvents(t *testing.T) {
	t.Parallel()
	e := newIngestEnv(t, nil)
	good1, g1 := event(t, "acme", "run_1")
	good2, g2 := event(t, "acme", "run_2")
	other, o := event(t, "globex", "run_3")
	broken := strings.Replace(g1, `"run":{"id":"run_1"`, `"run":{"id":""`, 1)
	broken = strings.Replace(broken, good1.ID, "ev_broken", 1)
	status, _, raw := e.send(t, e.ingestKey, "application/cloudevents-batch+json", "["+g1+","+broken+","+o+","+g2+", 42]")
	if status != http.StatusMultiStatus {
		t.Fatalf("status %d; want 207: %s", status, raw)
	}
	r := result(t, raw)
	if r.Accepted != 2 || r.Rejected != 3 || len(r.Events) != 5 {
		t.Fatalf("result %s", raw)
	}
	if ev := r.Events[1]; ev.Status != "invalid" || ev.ID != "ev_broken" || !strings.Contains(ev.Reason, "/data/run/id") || len(ev.Paths) != 1 || ev.Paths[0] != "/data/run/id" {
		t.Errorf("broken event result %+v", ev)
	}
	if ev := r.Events[2]; ev.Status != "wrong_tenant" || ev.ID != other.ID || ev.Paths[0] != "/tenantid" {
		t.Errorf("other tenant's event result %+v", ev)
	}
	if ev := r.Events[4]; ev.Status != "invalid" || ev.Index != 4 || ev.Reason == "" {
		t.Errorf("non-object result %+v", ev)
	}
	got := e.eventsOnTopic(t)
	if len(got) != 2 || len(got["acme/run_1"]) != 1 || got["acme/run_1"][0].ID != good1.ID || got["acme/run_2"][0].ID != good2.ID {
		t.Errorf("topic holds %+v; want the two good events only", got)
	}

	// A key of tenant A cannot send tenant B's event, alone either.
	status, _, raw = e.send(t, e.ingestKey, "application/cloudevents+json", o)
	if r := result(t, raw); status != http.StatusUnprocessableEntity || r.Events[0].Status != "wrong_tenant" {
		t.Errorf("acme's key sending globex's event: %d %s", status, raw)
	}
	// globex's own key can.
	if status, _, raw := e.send(t, e.otherIngest, "application/cloudevents+json", o); status != http.StatusAccepted {
		t.Errorf("globex's key: %d %s", status, raw)
	}
	for outcome, want := range map[string]float64{"accepted": 3, "invalid": 2, "wrong_tenant": 2} {
		if v := testenv.Metric(t, e.cp.reg, "exo_controlplane_ingest_events_total", "outcome", outcome); v != want {
			t.Errorf("outcome %s counted %v; want %v", outcome, v, want)
		}
	}
}

// Requests that are not CloudEvents are 400; too large ones 413.
func TestIngestRefusals(t *testing.T) {
	t.Parallel()
	e := newIngestEnv(t, nil)
	_, one := event(t, "acme", "run_1")
	big := strings.Repeat("x", controlplane.MaxIngestBodyBytes)
	var many []string
	for range controlplane.MaxIngestBatch + 1 {
		many = append(many, "{}")
	}
	for _, c := range []struct {
		name, ct, body string
		headers        []string
		want           int
	}{
		{"not JSON", "application/cloudevents+json", "{not json", nil, 400},
		{"a JSON array in structured mode", "application/cloudevents+json", "[" + one + "]", nil, 400},
		{"batch not an array", "application/cloudevents-batch+json", one, nil, 400},
		{"empty batch", "application/cloudevents-batch+json", "[]", nil, 400},
		{"plain JSON without ce- headers", "application/json", one, nil, 400},
		{"form", "application/x-www-form-urlencoded", "a=b", nil, 400},
		{"binary mode, data not JSON", "application/json", "{x", []string{"ce-specversion", "1.0"}, 400},
		{"body over the limit", "application/cloudevents+json", `{"a":"` + big + `"}`, nil, 413},
		{"batch over the limit", "application/cloudevents-batch+json", "[" + strings.Join(many, ",") + "]", nil, 413},
		{"event over the limit", "application/cloudevents+json", strings.Replace(one, `"data":{`, `"data":{"pad":"`+strings.Repeat("y", 300<<10)+`",`, 1), nil, 422},
		{"invalid event", "application/cloudevents+json", `{"specversion":"1.0"}`, nil, 422},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, _, raw := e.send(t, e.ingestKey, c.ct, c.body, c.headers...)
			if status != c.want {
				t.Errorf("status %d; want %d: %.300s", status, c.want, raw)
			}
		})
	}
	if got := e.eventsOnTopic(t); len(got) != 0 {
		t.Errorf("refused requests put events on the topic: %+v", got)
	}
}

// An ingest key only sends events: it cannot read or change rules or
// endpoints. A viewer key cannot send events; a missing key is 401.
func TestIngestKeyRole(t *testing.T) {
	t.Parallel()
	e := newIngestEnv(t, nil)
	for _, c := range []struct{ method, path, body string }{
		{http.MethodGet, "/v1/alert-rules", ""},
		{http.MethodPost, "/v1/alert-rules", `{"name":"x","event_type":"workflow.run.failed","webhook_endpoint_id":"whk_1"}`},
		{http.MethodGet, "/v1/webhooks", ""},
		{http.MethodPost, "/v1/webhooks", `{"name":"x","target_url":"https://example.com/h"}`},
		{http.MethodGet, "/v1/me", ""},
	} {
		if status, _, raw := call(t, e.cp.url, c.method, c.path, e.ingestKey, c.body); status != http.StatusForbidden {
			t.Errorf("ingest key %s %s: %d %s; want 403", c.method, c.path, status, raw)
		}
	}
	_, one := event(t, "acme", "run_1")
	if status, _, raw := e.send(t, e.viewKey, "application/cloudevents+json", one); status != http.StatusForbidden {
		t.Errorf("viewer key sending: %d %s; want 403", status, raw)
	}
	if status, _, _ := e.send(t, "", "application/cloudevents+json", one); status != http.StatusUnauthorized {
		t.Errorf("no key: %d; want 401", status)
	}
	if got := e.eventsOnTopic(t); len(got) != 0 {
		t.Errorf("refused keys put events on the topic: %+v", got)
	}
}

// While tenant A floods the ingest past its key's rate (429 with
// Retry-After), tenant B's events are still taken (202).
func TestIngestFloodDoesNotStarveOthers(t *testing.T) {
	t.Parallel()
	e := newIngestEnv(t, func(c *controlplane.Config) { c.IngestRate, c.IngestBurst = 20, 20 })
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	floodCodes := map[int]int{}
	retryAfter := ""
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				var evs []string
				for range 5 {
					_, raw := event(t, "acme", "run_flood")
					evs = append(evs, raw)
				}
				status, h, _ := e.send(t, e.ingestKey, "application/cloudevents-batch+json", "["+strings.Join(evs, ",")+"]")
				mu.Lock()
				floodCodes[status]++
				if status == http.StatusTooManyRequests {
					retryAfter = h.Get("Retry-After")
				}
				mu.Unlock()
			}
		})
	}
	// Wait until A is being refused, then B sends: every one of B's is taken.
	eventually(t, 30*time.Second, "tenant A rate limited", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return floodCodes[http.StatusTooManyRequests] >= 5, strconv.Itoa(floodCodes[http.StatusTooManyRequests])
	})
	for i := range 10 {
		_, raw := event(t, "globex", "run_b"+strconv.Itoa(i))
		if status, _, ans := e.send(t, e.otherIngest, "application/cloudevents+json", raw); status != http.StatusAccepted {
			t.Errorf("tenant B's event %d during A's flood: %d %s", i, status, ans)
		}
	}
	cancel()
	wg.Wait()
	if floodCodes[http.StatusAccepted] == 0 || floodCodes[http.StatusTooManyRequests] == 0 || len(floodCodes) != 2 {
		t.Errorf("tenant A's answers %v; want 202s then 429s only", floodCodes)
	}
	if secs, err := strconv.Atoi(retryAfter); err != nil || secs < 1 {
		t.Errorf("Retry-After %q; want whole seconds", retryAfter)
	}
	accepted := testenv.Metric(t, e.cp.reg, "exo_controlplane_ingest_events_total", "outcome", "accepted")
	if limited := testenv.Metric(t, e.cp.reg, "exo_controlplane_ingest_events_total", "outcome", "rate_limited"); limited == 0 || accepted < 10 {
		t.Errorf("accepted %v, rate_limited %v", accepted, limited)
	}
}

// While Kafka is away the ingest never answers 202: it answers 503 with
// Retry-After once Kafka has not taken the events in time; the engine's
// retry once Kafka is back is accepted and lands on the topic.
func TestIngestKafkaOutage(t *testing.T) {
	t.Parallel()
	gate := testenv.NewKafkaGate(t)
	e := newIngestEnv(t, func(c *controlplane.Config) { c.KafkaOpts = []kgo.Opt{gate.Opt()} })
	first, body := event(t, "acme", "run_1")
	if status, _, raw := e.send(t, e.ingestKey, "application/cloudevents+json", body); status != http.StatusAccepted {
		t.Fatalf("before the outage: %d %s", status, raw)
	}
	gate.Cut()
	second, body2 := event(t, "acme", "run_2")
	status, h, raw := e.send(t, e.ingestKey, "application/cloudevents+json", body2)
	if status != http.StatusServiceUnavailable || h.Get("Retry-After") == "" {
		t.Fatalf("during the outage: %d (Retry-After %q) %s; want 503 with Retry-After", status, h.Get("Retry-After"), raw)
	}
	if v := testenv.Metric(t, e.cp.reg, "exo_controlplane_ingest_events_total", "outcome", "unavailable"); v != 1 {
		t.Errorf("unavailable events counted %v; want 1", v)
	}
	gate.Restore(t)
	eventually(t, time.Minute, "the retry accepted", func() (bool, string) {
		status, _, raw := e.send(t, e.ingestKey, "application/cloudevents+json", body2)
		return status == http.StatusAccepted, strconv.Itoa(status) + " " + string(raw)
	})
	got := e.eventsOnTopic(t)
	if len(got["acme/run_1"]) != 1 || got["acme/run_1"][0].ID != first.ID || len(got["acme/run_2"]) == 0 || got["acme/run_2"][0].ID != second.ID {
		t.Errorf("topic holds %+v", got)
	}
}
