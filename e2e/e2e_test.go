package e2e_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/controlplane"
	"github.com/exospherehost/exo-alerts/e2e/harness"
	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/internal/workload"
	"github.com/exospherehost/exo-alerts/processor"
	"github.com/exospherehost/exo-alerts/schemas"
	"github.com/exospherehost/exo-alerts/signature"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// request is one POST the receiver got.
type request struct {
	header http.Header
	body   []byte
}

// receiver is the tenant's endpoint.
type receiver struct {
	srv *httptest.Server
	ch  chan request
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{ch: make(chan request, 100)}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.ch <- request{header: req.Header.Clone(), body: body}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// system runs the four components on real services.
type system struct {
	pool    *pgxpool.Pool
	api     string
	reg     *prometheus.Registry
	brokers []string
	topics  kafka.Topics
	keys    map[string]string // tenant -> admin key
	// exited receives any component whose Run returned while the test runs.
	exited <-chan error
}

func start(t *testing.T) *system { return startWith(t) }

// startWith starts the four components with opts added to every Kafka
// client of theirs (e.g. a testenv.KafkaGate's dialer) and waits until
// they are ready.
func startWith(t *testing.T, opts ...kgo.Opt) *system {
	t.Helper()
	h := harness.Start(t, harness.Options{KafkaOpts: opts})
	s := &system{pool: h.Pool, api: h.API, reg: h.Registry, brokers: h.Brokers, topics: h.Topics, keys: map[string]string{}, exited: h.Exited}
	for _, tenant := range []string{"acme", "globex"} {
		key := controlplane.NewAPIKey()
		if _, err := controlplane.CreateAPIKey(context.Background(), h.Pool, tenant, "e2e", controlplane.RoleAdmin, key); err != nil {
			t.Fatal(err)
		}
		s.keys[tenant] = key
	}
	return s
}

// alive fails the test if a component's Run has returned.
func (s *system) alive(t *testing.T) {
	t.Helper()
	select {
	case err := <-s.exited:
		t.Fatal(err)
	default:
	}
}

func (s *system) post(t *testing.T, tenant, path string, body any) map[string]any {
	t.Helper()
	raw, _ := json.Marshal(body)
	return s.call(t, tenant, http.MethodPost, path, string(raw), http.StatusCreated)
}

// verifyStandardWebhooks checks the signature straight from the Standard
// Webhooks spec, independently of the signature package.
func verifyStandardWebhooks(h http.Header, body []byte, secret string) bool {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(h.Get("webhook-id") + "." + h.Get("webhook-timestamp") + "." + string(body)))
	want := "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
	for _, s := range strings.Fields(h.Get("webhook-signature")) {
		if s == want {
			return true
		}
	}
	return false
}

// A failed workflow turns into exactly one signed webhook; a succeeded event
// no rule watches, another tenant's failure and a malformed record cause
// none, and the malformed record lands on the invalid topic.
func TestFailedRunDeliversExactlyOneSignedWebhook(t *testing.T) {
	t.Parallel()
	s := start(t)
	recv := newReceiver(t)

	wh := s.post(t, "acme", "/v1/webhooks", map[string]any{"name": "ops", "target_url": recv.srv.URL + "/hook"})
	secret := wh["secret"].(string)
	rule := s.post(t, "acme", "/v1/alert-rules", map[string]any{
		"name": "on workflow failure send POST to X", "event_type": schemas.TypeRunFailed, "webhook_endpoint_id": wh["id"],
	})

	cl, err := kgo.NewClient(kafka.ClientOpts(s.brokers, nil)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()

	// The rule is live once the processor has it: wait on its gauge rather than sleeping.
	s.waitGauge(t, "exo_processor_rules_active", 1)

	failed := workload.Event(workload.Spec{Tenant: "acme", Type: schemas.TypeRunFailed, WorkflowName: "nightly-etl",
		RunID: "run_123", Duration: 84211 * time.Millisecond, Labels: map[string]string{"env": "prod"}, ErrorMessage: "secret detail"})
	var recs []*kgo.Record
	recs = append(recs, &kgo.Record{Topic: s.topics.Events, Key: []byte("acme/run_bad"), Value: []byte("{not json")})
	for _, ev := range []schemas.WorkflowEvent{
		workload.Event(workload.Spec{Tenant: "acme", Type: schemas.TypeRunSucceeded, WorkflowName: "nightly-etl", Duration: time.Minute}),
		workload.Event(workload.Spec{Tenant: "globex", Type: schemas.TypeRunFailed, WorkflowName: "nightly-etl", Duration: time.Minute}),
		failed,
	} {
		rec, err := workload.Record(s.topics.Events, ev)
		if err != nil {
			t.Fatal(err)
		}
		rec.Key = []byte(ev.TenantID + "/same-partition") // one partition: the failure comes last
		recs = append(recs, rec)
	}
	if err := workload.Produce(ctx, cl, recs...); err != nil {
		t.Fatal(err)
	}

	var got request
	select {
	case got = <-recv.ch:
	case <-time.After(30 * time.Second):
		t.Fatal("no webhook within 30s of the failed run")
	}
	// Exactly one: nothing else arrives in the seconds after.
	select {
	case extra := <-recv.ch:
		t.Fatalf("a second POST arrived: %s", extra.body)
	case <-time.After(3 * time.Second):
	}

	if err := schemas.Validate(schemas.KindWebhookPayload, got.body); err != nil {
		t.Fatalf("payload does not validate: %v\n%s", err, got.body)
	}
	var p schemas.WebhookPayload
	if err := json.Unmarshal(got.body, &p); err != nil {
		t.Fatal(err)
	}
	d := p.Data
	if p.Type != schemas.TypeRunFailed || d.TenantID != "acme" || d.Rule.ID != rule["id"] || d.Rule.Name != rule["name"] ||
		d.Workflow.Name != "nightly-etl" || d.Run.ID != "run_123" || d.Event.ID != failed.ID ||
		d.Run.DurationMS == nil || *d.Run.DurationMS != 84211 || d.Labels["env"] != "prod" {
		t.Errorf("payload fields wrong: %s", got.body)
	}
	if d.Error == nil || d.Error.Code != "NODE_ERRORED" || d.Error.Message != "" {
		t.Errorf("error summary = %+v; want the code only (the rule did not opt in to messages)", d.Error)
	}
	if d.AlertID != processor.AlertID("acme", d.Rule.ID, failed.ID) || got.header.Get("webhook-id") != d.AlertID {
		t.Errorf("alert id %q / webhook-id %q not the deterministic id", d.AlertID, got.header.Get("webhook-id"))
	}
	if err := signature.VerifyExosphere(got.header, got.body, secret, time.Now(), 5*time.Minute); err != nil {
		t.Errorf("X-Exosphere-Signature: %v", err)
	}
	if err := signature.VerifyStandard(got.header, got.body, secret, time.Now(), 5*time.Minute); err != nil {
		t.Errorf("webhook-signature: %v", err)
	}
	if !verifyStandardWebhooks(got.header, got.body, secret) {
		t.Error("independent Standard Webhooks verification failed")
	}
	if ua := got.header.Get("User-Agent"); !strings.HasPrefix(ua, "exosphere-alerts/") || got.header.Get("X-Exosphere-Event") != schemas.TypeRunFailed {
		t.Errorf("headers: User-Agent %q, X-Exosphere-Event %q", ua, got.header.Get("X-Exosphere-Event"))
	}

	// The malformed record is on the invalid topic with its reason.
	inv := readAll(t, s.brokers, s.topics.EventsInvalid, 1)
	if string(inv[0].Value) != "{not json" || kafka.Header(inv[0], "exo-invalid-reason") == "" {
		t.Errorf("invalid topic record = %q, reason %q", inv[0].Value, kafka.Header(inv[0], "exo-invalid-reason"))
	}
	// Every attempt is reported.
	res := readAll(t, s.brokers, s.topics.DeliveryResults, 1)
	if err := schemas.Validate(schemas.KindResult, res[0].Value); err != nil || !strings.Contains(string(res[0].Value), `"delivered"`) {
		t.Errorf("result record %s: %v", res[0].Value, err)
	}
}

// readAll reads at least n committed records of topic from the start.
func readAll(t *testing.T, brokers []string, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(append(kafka.ClientOpts(brokers, nil), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		f := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records from %s", len(out), n, topic)
		}
		out = append(out, f.Records()...)
	}
	return out
}

// waitGauge waits until the gauge name reaches at least want.
func (s *system) waitGauge(t *testing.T, name string, want float64) {
	t.Helper()
	testenv.WaitMetric(t, s.reg, 20*time.Second, fmt.Sprintf("reach %v", want), func(v float64) bool { return v >= want }, name)
}

// A rule created through the API comes into force within moments: events
// are produced every 50 ms from the moment the API answers; once one of them
// alerts, every later one does too. The measured latency is logged (and
// recorded in docs/benchmarks.md); it is not asserted, speed being a matter
// for benchmarks.
func TestRuleCreatedThroughAPIComesIntoForce(t *testing.T) {
	t.Parallel()
	s := start(t)
	recv := newReceiver(t)
	wh := s.post(t, "acme", "/v1/webhooks", map[string]any{"name": "ops", "target_url": recv.srv.URL + "/hook"})
	cl, err := kgo.NewClient(kafka.ClientOpts(s.brokers, nil)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	// The API waits for publication once its relay has published (here:
	// the endpoint's snapshot).
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var unsent int
		if err := s.pool.QueryRow(context.Background(), `SELECT count(*) FROM outbox WHERE sent_at IS NULL`).Scan(&unsent); err != nil {
			t.Fatal(err)
		}
		if unsent == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the relay published nothing within 30 s")
		}
	}
	s.post(t, "acme", "/v1/alert-rules", map[string]any{
		"name": "failures", "event_type": schemas.TypeRunFailed, "webhook_endpoint_id": wh["id"],
	})
	created := time.Now()
	sent := map[string]time.Time{} // event id -> produced at
	var atAnswer string
	produce := func() {
		ev := workload.Event(workload.Spec{Tenant: "acme", Type: schemas.TypeRunFailed, WorkflowName: "etl", Duration: time.Second})
		rec, _ := workload.Record(s.topics.Events, ev)
		if err := workload.Produce(context.Background(), cl, rec); err != nil {
			t.Fatal(err)
		}
		sent[ev.ID] = time.Now()
		if atAnswer == "" {
			atAnswer = ev.ID
		}
	}
	// Read your writes: an event produced as soon as the API answered is
	// matched by the new rule. More are produced every 50ms until a first
	// delivery arrives. Deliveries may come in another order than their
	// events were produced (events of different runs sit on different
	// partitions, and one batch may hold several), so they are collected
	// by event id.
	produce()
	got := map[string]bool{}
	receive := func(r request) {
		var p schemas.WebhookPayload
		if err := json.Unmarshal(r.body, &p); err != nil {
			t.Fatal(err)
		}
		got[p.Data.Event.ID] = true
	}
	deadline := time.After(20 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !got[atAnswer] {
		select {
		case <-tick.C:
			if len(got) == 0 {
				produce()
			}
		case r := <-recv.ch:
			receive(r)
		case <-deadline:
			var first string
			for id := range got {
				if first == "" || sent[id].Before(sent[first]) {
					first = id
				}
			}
			if first == "" {
				t.Fatal("the rule never came into force")
			}
			t.Fatalf("the event produced when the API answered did not alert; the first that did came %v later", sent[first].Sub(created).Round(time.Millisecond))
		}
	}
	t.Logf("the event produced %v after the API answered alerted", sent[atAnswer].Sub(created).Round(time.Millisecond))
	// Every event produced after it alerts too.
	timeout := time.After(20 * time.Second)
	for len(got) < len(sent) {
		select {
		case r := <-recv.ch:
			receive(r)
		case <-timeout:
			for id := range sent {
				if !got[id] {
					t.Errorf("event %s produced after the rule was in force did not alert", id)
				}
			}
			t.FailNow()
		}
	}
}

// "Workflow exceeded duration X": a run still running past the rule's
// threshold alerts once, with threshold and elapsed time; a run that
// finishes in time does not.
func TestDurationExceededThroughTheWholeSystem(t *testing.T) {
	t.Parallel()
	s := start(t)
	recv := newReceiver(t)
	wh := s.post(t, "acme", "/v1/webhooks", map[string]any{"name": "ops", "target_url": recv.srv.URL + "/hook"})
	secret := wh["secret"].(string)
	rule := s.post(t, "acme", "/v1/alert-rules", map[string]any{
		"name": "slow runs", "event_type": schemas.TypeRunDurationExceeded, "duration_threshold": "2s", "webhook_endpoint_id": wh["id"],
	})
	s.waitGauge(t, "exo_processor_rules_active", 1)
	cl, err := kgo.NewClient(kafka.ClientOpts(s.brokers, nil)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	now := time.Now().UTC().Truncate(time.Millisecond)
	var recs []*kgo.Record
	for _, ev := range []schemas.WorkflowEvent{
		workload.Event(workload.Spec{Tenant: "acme", Type: schemas.TypeRunStarted, WorkflowName: "etl", RunID: "run_slow", Time: now}),
		workload.Event(workload.Spec{Tenant: "acme", Type: schemas.TypeRunStarted, WorkflowName: "etl", RunID: "run_fast", Time: now}),
		workload.Event(workload.Spec{Tenant: "acme", Type: schemas.TypeRunSucceeded, WorkflowName: "etl", RunID: "run_fast", Time: now.Add(500 * time.Millisecond), Duration: 500 * time.Millisecond}),
	} {
		rec, _ := workload.Record(s.topics.Events, ev)
		recs = append(recs, rec)
	}
	if err := workload.Produce(context.Background(), cl, recs...); err != nil {
		t.Fatal(err)
	}
	var got request
	select {
	case got = <-recv.ch:
	case <-time.After(30 * time.Second):
		t.Fatal("no duration alert")
	}
	t.Logf("duration alert arrived %v after the deadline", time.Since(now.Add(2*time.Second)).Round(time.Millisecond))
	select {
	case extra := <-recv.ch:
		t.Fatalf("a second alert arrived: %s", extra.body)
	case <-time.After(3 * time.Second):
	}
	if err := schemas.Validate(schemas.KindWebhookPayload, got.body); err != nil {
		t.Fatalf("payload: %v", err)
	}
	var p schemas.WebhookPayload
	_ = json.Unmarshal(got.body, &p)
	if p.Type != schemas.TypeRunDurationExceeded || p.Data.Run.ID != "run_slow" || p.Data.Rule.ID != rule["id"] ||
		p.Data.ThresholdMS == nil || *p.Data.ThresholdMS != 2000 || p.Data.Run.DurationMS == nil || *p.Data.Run.DurationMS < 2000 {
		t.Fatalf("payload: %s", got.body)
	}
	if err := signature.VerifyStandard(got.header, got.body, secret, time.Now(), time.Minute); err != nil {
		t.Error(err)
	}
}
