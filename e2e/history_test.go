package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/controlplane"
	"github.com/exospherehost/exo-alerts/dispatcher"
	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/keyring"
	"github.com/exospherehost/exo-alerts/internal/store"
	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/recorder"
	"github.com/exospherehost/exo-alerts/schemas"
	"github.com/exospherehost/exo-alerts/signature"
)

// histEnv is a running control plane (API, outbox relay) and recorder on a
// fresh database and fresh topics of the real broker, with a producer that
// writes what the processor and the dispatcher would: the delivery history
// from the records to the API.
type histEnv struct {
	pool     *pgxpool.Pool
	topics   kafka.Topics
	brokers  []string
	ring     *keyring.Ring
	group    string // the recorder's consumer group
	url      string
	adminKey string
	otherKey string
	prod     *kgo.Client
}

func startHistEnv(t *testing.T) *histEnv {
	t.Helper()
	ring, err := keyring.Parse(keyring.Generate("k1"))
	if err != nil {
		t.Fatal(err)
	}
	l := &histEnv{pool: testenv.Pool(t), topics: testenv.Topics(t), brokers: testenv.Brokers(t), ring: ring, group: "recorder-" + testenv.HexID(4)}
	prod, err := kgo.NewClient(kgo.SeedBrokers(l.brokers...), kgo.ProducerLinger(0), kgo.UnknownTopicRetries(60))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	l.prod = prod
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := kafka.EnsureTopics(ctx, kadm.NewClient(prod), l.topics.Specs(3)); err != nil {
		t.Fatal(err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addrCh, recReady := make(chan net.Addr, 1), make(chan struct{})
	rctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 2)
	var wg sync.WaitGroup
	t.Cleanup(func() {
		stop()
		wg.Wait()
		close(done)
		for err := range done {
			t.Errorf("component: %v", err)
		}
	})
	for _, run := range []func() error{
		func() error {
			return controlplane.Run(rctx, controlplane.Config{Listener: ln, Pool: l.pool, Brokers: l.brokers, Topics: l.topics,
				Keyring: ring, Log: testenv.Log(t), OutboxPoll: 200 * time.Millisecond, Allowlist: []string{"127.0.0.1"}, Ready: addrCh})
		},
		func() error {
			return recorder.Run(rctx, recorder.Config{Brokers: l.brokers, Topics: l.topics, Group: l.group, Pool: l.pool,
				Log: testenv.Log(t), Ready: recReady})
		},
	} {
		wg.Go(func() {
			if err := run(); err != nil {
				done <- err
			}
		})
	}
	deadline := time.After(30 * time.Second)
	for _, ready := range []func() bool{
		func() bool { addr := <-addrCh; l.url = "http://" + addr.String(); return true },
		func() bool { _, ok := <-recReady; return !ok },
	} {
		ch := make(chan bool, 1)
		go func() { ch <- ready() }()
		select {
		case <-ch:
		case err := <-done:
			t.Fatalf("component stopped: %v", err)
		case <-deadline:
			t.Fatal("control plane and recorder not ready after 30s")
		}
	}
	for _, k := range []struct {
		dst    *string
		tenant string
	}{{&l.adminKey, "acme"}, {&l.otherKey, "globex"}} {
		*k.dst = controlplane.NewAPIKey()
		if _, err := controlplane.CreateAPIKey(context.Background(), l.pool, k.tenant, "test", controlplane.RoleAdmin, *k.dst); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

func (l *histEnv) do(t *testing.T, method, path, key, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), method, l.url+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

// produce writes one record like the processor or dispatcher would.
func (l *histEnv) produce(t *testing.T, topic string, key, value []byte, headers ...string) {
	t.Helper()
	l.produceAt(t, topic, key, value, headers...)
}

// produceAt writes one record and returns it with its partition and offset.
func (l *histEnv) produceAt(t *testing.T, topic string, key, value []byte, headers ...string) *kgo.Record {
	t.Helper()
	r := &kgo.Record{Topic: topic, Key: key, Value: value}
	for i := 0; i+1 < len(headers); i += 2 {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: headers[i], Value: []byte(headers[i+1])})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res := l.prod.ProduceSync(ctx, r)
	if err := res.FirstErr(); err != nil {
		t.Fatal(err)
	}
	return res[0].Record
}

func (l *histEnv) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	if err := l.pool.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// createRule creates an endpoint and a rule of tenant acme through the API.
func (l *histEnv) createRule(t *testing.T, target string) (endpointID, ruleID, secret string) {
	t.Helper()
	status, wh := l.do(t, "POST", "/v1/webhooks", l.adminKey, `{"name":"ops","target_url":"`+target+`"}`)
	if status != http.StatusCreated {
		t.Fatalf("create webhook: %d %v", status, wh)
	}
	status, rule := l.do(t, "POST", "/v1/alert-rules", l.adminKey,
		`{"name":"ETL failures","event_type":"workflow.run.failed","webhook_endpoint_id":"`+wh["id"].(string)+`"}`)
	if status != http.StatusCreated {
		t.Fatalf("create rule: %d %v", status, rule)
	}
	return wh["id"].(string), rule["id"].(string), wh["secret"].(string)
}

// caughtUp reports whether group has committed every record of the
// recorder's topics.
func (l *histEnv) caughtUp(t *testing.T, group string) (bool, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	adm := kadm.NewClient(l.prod)
	ends, err := adm.ListEndOffsets(ctx, l.topics.Deliveries, l.topics.DeliveryResults, l.topics.DeliveriesDLQ)
	if err != nil {
		return false, err.Error()
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return false, err.Error()
	}
	ok := true
	var seen []string
	ends.Each(func(o kadm.ListedOffset) {
		c, _ := committed.Lookup(o.Topic, o.Partition)
		if o.Offset > 0 && c.At < o.Offset {
			ok = false
			seen = append(seen, fmt.Sprintf("%s/%d at %d of %d", o.Topic, o.Partition, c.At, o.Offset))
		}
	})
	return ok, strings.Join(seen, ", ")
}

func histItems(t *testing.T, body map[string]any) []map[string]any {
	t.Helper()
	raw, ok := body["items"].([]any)
	if !ok {
		t.Fatalf("no items in %v", body)
	}
	out := make([]map[string]any, 0, len(raw))
	for _, r := range raw {
		out = append(out, r.(map[string]any))
	}
	return out
}

// histReceiver is a webhook histReceiver whose answer the test sets.
type histReceiver struct {
	srv    *httptest.Server
	status atomic.Int32
	mu     sync.Mutex
	got    []histReceived
}

type histReceived struct {
	webhookID string
	body      []byte
	header    http.Header
}

func newHistReceiver(t *testing.T) *histReceiver {
	r := &histReceiver{}
	r.status.Store(200)
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, histReceived{webhookID: req.Header.Get("webhook-id"), body: body, header: req.Header.Clone()})
		r.mu.Unlock()
		w.WriteHeader(int(r.status.Load()))
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// requests returns what arrived with webhook-id id.
func (r *histReceiver) requests(id string) []histReceived {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []histReceived
	for _, g := range r.got {
		if g.webhookID == id {
			out = append(out, g)
		}
	}
	return out
}

// Through the real dispatcher: a test delivery arrives signed; a dead
// letter replayed and an alert redelivered arrive again with the same
// webhook-id; a bulk replay pages through the dead letters; an endpoint
// answering 410 gets its rule disabled by the system.
func TestRedeliverAndReplayThroughDispatcher(t *testing.T) {
	t.Parallel()
	l := startHistEnv(t)
	rcv := newHistReceiver(t)
	endpoint, rule, secret := l.createRule(t, rcv.srv.URL+"/hook")

	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- dispatcher.Run(ctx, dispatcher.Config{
			Brokers: l.brokers, Topics: l.topics, Keyring: l.ring, Allowlist: []string{"127.0.0.1"}, Group: "dispatcher-" + testenv.HexID(4),
			Tiers: []time.Duration{200 * time.Millisecond, 400 * time.Millisecond}, Registerer: prometheus.NewRegistry(),
			Log: testenv.Log(t), Ready: ready,
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("dispatcher: %v", err)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("dispatcher stopped: %v", err)
	}

	// Test delivery: signed, payload v1 of type webhook.test, recorded.
	status, acc := l.do(t, "POST", "/v1/webhooks/"+endpoint+"/test", l.adminKey, "")
	if status != http.StatusAccepted {
		t.Fatalf("test webhook: %d %v", status, acc)
	}
	testID := acc["alert_id"].(string)
	testenv.Eventually(t, "test delivery histReceived", func() (bool, string) { return len(rcv.requests(testID)) == 1, "nothing yet" })
	got := rcv.requests(testID)[0]
	if err := signature.VerifyStandard(got.header, got.body, secret, time.Now(), 5*time.Minute); err != nil {
		t.Errorf("test delivery signature: %v", err)
	}
	if err := schemas.Validate(schemas.KindWebhookPayload, got.body); err != nil || !strings.Contains(string(got.body), `"type":"webhook.test"`) {
		t.Errorf("test delivery body %s: %v", got.body, err)
	}
	testenv.Eventually(t, "test delivery in the endpoint's history", func() (bool, string) {
		_, page := l.do(t, "GET", "/v1/webhooks/"+endpoint+"/deliveries", l.adminKey, "")
		raw, _ := json.Marshal(page)
		return strings.Contains(string(raw), testID) && strings.Contains(string(raw), `"status":"delivered"`), string(raw)
	})

	// A failing alert with one attempt is dead-lettered; replayed, it
	// arrives with the same webhook-id.
	rcv.status.Store(500)
	d, _ := testenv.Delivery(t, "acme", rule, endpoint, time.Now().UTC())
	d.MaxAttempts = 1
	raw, _ := json.Marshal(d)
	l.produce(t, l.topics.Deliveries, schemas.RecordKey("acme", endpoint), raw)
	testenv.Eventually(t, "dead letter listed", func() (bool, string) {
		_, page := l.do(t, "GET", "/v1/dead-letters?replayed=false", l.adminKey, "")
		raw, _ := json.Marshal(page)
		return strings.Contains(string(raw), d.AlertID), string(raw)
	})
	rcv.status.Store(200)
	status, body := l.do(t, "POST", "/v1/dead-letters/"+d.AlertID+"/replay", l.adminKey, "")
	if status != http.StatusAccepted || body["alert_id"] != d.AlertID {
		t.Fatalf("replay: %d %v", status, body)
	}
	testenv.Eventually(t, "replayed alert delivered", func() (bool, string) {
		_, one := l.do(t, "GET", "/v1/deliveries/"+d.AlertID, l.adminKey, "")
		return one["status"] == "delivered" && len(rcv.requests(d.AlertID)) == 2, fmt.Sprintf("%v; %d requests", one["status"], len(rcv.requests(d.AlertID)))
	})
	if _, page := l.do(t, "GET", "/v1/dead-letters?replayed=true", l.adminKey, ""); len(histItems(t, page)) != 1 {
		t.Errorf("replayed dead letter not marked: %v", page)
	}

	// Redelivered: the same webhook-id a third time.
	if status, body := l.do(t, "POST", "/v1/deliveries/"+d.AlertID+"/redeliver", l.adminKey, ""); status != http.StatusAccepted {
		t.Fatalf("redeliver: %d %v", status, body)
	}
	testenv.Eventually(t, "redelivered", func() (bool, string) {
		return len(rcv.requests(d.AlertID)) == 3, fmt.Sprintf("%d requests", len(rcv.requests(d.AlertID)))
	})
	reqs := rcv.requests(d.AlertID)
	if string(reqs[2].body) != string(reqs[1].body) {
		t.Errorf("redelivery body differs:\n%s\n%s", reqs[2].body, reqs[1].body)
	}

	// Bulk replay, one per call: the answer says whether more remain.
	rcv.status.Store(500)
	var bulk []string
	for range 2 {
		b, _ := testenv.Delivery(t, "acme", rule, endpoint, time.Now().UTC())
		b.MaxAttempts = 1
		raw, _ := json.Marshal(b)
		l.produce(t, l.topics.Deliveries, schemas.RecordKey("acme", endpoint), raw)
		bulk = append(bulk, b.AlertID)
	}
	testenv.Eventually(t, "two more dead letters", func() (bool, string) {
		_, page := l.do(t, "GET", "/v1/dead-letters?replayed=false", l.adminKey, "")
		n := len(histItems(t, page))
		return n == 2, fmt.Sprintf("%d not replayed", n)
	})
	rcv.status.Store(200)
	span := fmt.Sprintf(`"since":%q,"until":%q`, time.Now().Add(-time.Hour).Format(time.RFC3339), time.Now().Add(time.Hour).Format(time.RFC3339))
	status, first := l.do(t, "POST", "/v1/dead-letters/replay", l.adminKey, `{`+span+`,"endpoint_id":"`+endpoint+`","limit":1}`)
	if status != http.StatusAccepted || first["replayed"] != float64(1) || first["more"] != true {
		t.Fatalf("bulk replay 1: %d %v", status, first)
	}
	_, second := l.do(t, "POST", "/v1/dead-letters/replay", l.adminKey, `{`+span+`}`)
	if second["replayed"] != float64(1) || second["more"] != false {
		t.Fatalf("bulk replay 2: %v", second)
	}
	testenv.Eventually(t, "bulk replays delivered", func() (bool, string) {
		a, b := len(rcv.requests(bulk[0])), len(rcv.requests(bulk[1]))
		return a == 2 && b == 2, fmt.Sprintf("%d and %d requests", a, b)
	})
	_, third := l.do(t, "POST", "/v1/dead-letters/replay", l.adminKey, `{`+span+`}`)
	if third["replayed"] != float64(0) {
		t.Errorf("a third bulk replay sent %v again", third["replayed"])
	}
	if n := l.count(t, `SELECT count(*) FROM audit_events WHERE action IN ('webhook.test', 'dead_letter.replay', 'delivery.redeliver', 'dead_letter.replay_range')`); n != 5 {
		t.Errorf("%d audit rows for test, replay, redeliver and two bulk replays, want 5", n)
	}

	// The endpoint is gone: its rule is disabled by the system.
	rcv.status.Store(410)
	g, graw := testenv.Delivery(t, "acme", rule, endpoint, time.Now().UTC())
	l.produce(t, l.topics.Deliveries, schemas.RecordKey("acme", endpoint), graw)
	testenv.Eventually(t, "rule disabled", func() (bool, string) {
		_, r := l.do(t, "GET", "/v1/alert-rules/"+rule, l.adminKey, "")
		return r["is_active"] == false, fmt.Sprint(r)
	})
	_, r := l.do(t, "GET", "/v1/alert-rules/"+rule, l.adminKey, "")
	if reason, _ := r["disabled_reason"].(string); !strings.Contains(reason, "410") {
		t.Errorf("disabled_reason %q does not say 410", reason)
	}
	if n := l.count(t, `SELECT count(*) FROM audit_events WHERE actor = 'system' AND action = 'alert_rule.disable' AND resource_id = $1`, rule); n != 1 {
		t.Errorf("%d system audit rows for the disable, want 1", n)
	}
	if n := l.count(t, `SELECT count(*) FROM outbox WHERE topic = $1 AND convert_from(value, 'UTF8') LIKE '%"is_active":false%'`, l.topics.Rules); n != 1 {
		t.Errorf("%d disabled-rule snapshots in the outbox, want 1", n)
	}
	_, one := l.do(t, "GET", "/v1/deliveries/"+g.AlertID, l.adminKey, "")
	if one["status"] != "endpoint_gone" {
		t.Errorf("gone alert status %v", one["status"])
	}
}

// A rule error reported on the rule-errors topic shows on the rule (get and
// list) and is cleared when the rule's condition changes.
func TestRuleErrorShownOnRule(t *testing.T) {
	t.Parallel()
	l := startHistEnv(t)
	_, ruleID, _ := l.createRule(t, "https://hooks.example.com/x")
	if status, rule := l.do(t, "GET", "/v1/alert-rules/"+ruleID, l.adminKey, ""); status != 200 || rule["last_error"] != nil {
		t.Fatalf("new rule: %d last_error %v", status, rule["last_error"])
	}
	at := time.Now().UTC().Truncate(time.Millisecond)
	v, _ := json.Marshal(schemas.RuleErrorRecord{TenantID: "acme", RuleID: ruleID, RuleVersion: 1, EventID: "ev_1",
		Error: "condition exceeded its evaluation budget (memory)", Errors: 3, At: at})
	if err := schemas.Validate(schemas.KindRuleError, v); err != nil {
		t.Fatal(err)
	}
	l.produce(t, l.topics.RuleErrors, schemas.RecordKey("acme", ruleID), v)
	l.produce(t, l.topics.RuleErrors, schemas.RecordKey("acme", ruleID), v) // read twice: counted once
	want := map[string]any{"message": "condition exceeded its evaluation budget (memory)", "at": at.Format(time.RFC3339Nano),
		"event_id": "ev_1", "rule_version": 1.0, "count": 3.0}
	testenv.Eventually(t, "last_error on the rule", func() (bool, string) {
		_, rule := l.do(t, "GET", "/v1/alert-rules/"+ruleID, l.adminKey, "")
		got, _ := rule["last_error"].(map[string]any)
		return fmt.Sprint(got) == fmt.Sprint(want), fmt.Sprint(rule["last_error"])
	})
	_, list := l.do(t, "GET", "/v1/alert-rules", l.adminKey, "")
	items, _ := list["items"].([]any)
	if len(items) != 1 || fmt.Sprint(items[0].(map[string]any)["last_error"]) != fmt.Sprint(want) {
		t.Errorf("list: %v", items)
	}
	// Another tenant sees nothing of it.
	if status, _ := l.do(t, "GET", "/v1/alert-rules/"+ruleID, l.otherKey, ""); status != http.StatusNotFound {
		t.Errorf("globex reads acme's rule: %d", status)
	}
	if status, rule := l.do(t, "PATCH", "/v1/alert-rules/"+ruleID, l.adminKey, `{"condition":"labels.env == \"prod\""}`); status != 200 || rule["last_error"] != nil {
		t.Fatalf("after a new condition: %d last_error %v", status, rule["last_error"])
	}
	if _, rule := l.do(t, "GET", "/v1/alert-rules/"+ruleID, l.adminKey, ""); rule["last_error"] != nil {
		t.Errorf("last_error kept after the condition changed: %v", rule["last_error"])
	}
	// A late report about the old condition is not shown; one about the
	// new condition (after it on the partition) is.
	late, _ := json.Marshal(schemas.RuleErrorRecord{TenantID: "acme", RuleID: ruleID, RuleVersion: 1, Error: "late", Errors: 1, At: at.Add(time.Second)})
	l.produce(t, l.topics.RuleErrors, schemas.RecordKey("acme", ruleID), late)
	fresh, _ := json.Marshal(schemas.RuleErrorRecord{TenantID: "acme", RuleID: ruleID, RuleVersion: 2, Error: "new", Errors: 1, At: at.Add(2 * time.Second)})
	l.produce(t, l.topics.RuleErrors, schemas.RecordKey("acme", ruleID), fresh)
	testenv.Eventually(t, "the new condition's error shown, alone", func() (bool, string) {
		_, rule := l.do(t, "GET", "/v1/alert-rules/"+ruleID, l.adminKey, "")
		got, _ := rule["last_error"].(map[string]any)
		return got != nil && got["message"] == "new" && got["count"] == 1.0, fmt.Sprint(rule["last_error"])
	})
}

// A record Postgres refused with a data error, quarantined by the
// recorder (recorder TestRecorderQuarantinesDataError), is listed, and
// replayed once the cause is fixed: it is written.
func TestQuarantinedDataErrorReplayed(t *testing.T) {
	t.Parallel()
	l := startHistEnv(t)
	ctx := context.Background()
	// A constraint the recorder cannot know of stands for any data error.
	if _, err := l.pool.Exec(ctx, `ALTER TABLE delivery_attempts ADD CONSTRAINT no_poison CHECK (error IS DISTINCT FROM 'poison')`); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	d, raw := testenv.Delivery(t, "acme", "rul_1", "whk_1", now)
	key := schemas.RecordKey("acme", "rul_1")
	attempt := func(n int, outcome, errText string) []byte {
		b, _ := json.Marshal(schemas.ResultRecord{
			AlertID: d.AlertID, DeliveryID: fmt.Sprintf("dlv_%d_%s", n, testenv.HexID(4)), TenantID: "acme", RuleID: "rul_1", EndpointID: "whk_1",
			Attempt: n, Outcome: outcome, StatusCode: map[bool]int{true: 200, false: 500}[errText == ""], LatencyMS: 3,
			AttemptedAt: now.Add(time.Duration(n) * time.Second), ErrorClass: map[bool]string{true: "", false: "http_status"}[errText == ""], Error: errText,
		})
		return b
	}
	// One produce call: the records share a batch where the broker allows.
	recs := []*kgo.Record{
		{Topic: l.topics.Deliveries, Key: schemas.RecordKey("acme", "whk_1"), Value: raw},
		{Topic: l.topics.DeliveryResults, Key: key, Value: attempt(1, schemas.OutcomeRetry, "HTTP 500")},
		{Topic: l.topics.DeliveryResults, Key: key, Value: attempt(2, schemas.OutcomeRetry, "poison"),
			Headers: []kgo.RecordHeader{{Key: "trace", Value: []byte{0, 1, 2}}}},
		{Topic: l.topics.DeliveryResults, Key: key, Value: attempt(3, schemas.OutcomeDelivered, "")},
	}
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := l.prod.ProduceSync(pctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	poison := recs[2]
	testenv.Eventually(t, "the batch's good records written", func() (bool, string) {
		a := l.count(t, `SELECT count(*) FROM alerts WHERE alert_id = $1`, d.AlertID)
		at := l.count(t, `SELECT count(*) FROM delivery_attempts WHERE alert_id = $1`, d.AlertID)
		return a == 1 && at == 2, fmt.Sprintf("alerts=%d attempts=%d", a, at)
	})
	testenv.Eventually(t, "offsets committed past the poison", func() (bool, string) { return l.caughtUp(t, l.group) })

	// The operator fixes the cause and replays the record.
	if _, err := l.pool.Exec(ctx, `ALTER TABLE delivery_attempts DROP CONSTRAINT no_poison`); err != nil {
		t.Fatal(err)
	}
	list, err := store.New(l.pool, "").ListQuarantined(ctx, 10)
	if err != nil || len(list) != 1 || list[0].Consumer != "recorder" || list[0].Topic != poison.Topic ||
		list[0].Partition != poison.Partition || list[0].Offset != poison.Offset {
		t.Fatalf("ListQuarantined = %+v, %v; want the record at %s/%d@%d", list, err, poison.Topic, poison.Partition, poison.Offset)
	}
	id := list[0].ID
	if err := recorder.Replay(ctx, store.New(l.pool, ""), l.prod, id); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "the replayed record written", func() (bool, string) {
		at := l.count(t, `SELECT count(*) FROM delivery_attempts WHERE alert_id = $1`, d.AlertID)
		return at == 3, fmt.Sprintf("attempts=%d", at)
	})
	if n := l.count(t, `SELECT count(*) FROM quarantined_records WHERE replayed_at IS NOT NULL`); n != 1 {
		t.Errorf("replayed_at not set")
	}
}

// A record that cannot be decoded or fails its schema, on every topic the
// recorder reads, quarantined by it (recorder
// TestRecorderQuarantinesInvalidRecords), is listed with its coordinates
// and raw bytes, and replaying one produces it again (it is read, and
// quarantined again, at a new offset).
func TestQuarantinedInvalidRecordReplayed(t *testing.T) {
	t.Parallel()
	l := startHistEnv(t)
	group := l.group
	ctx := context.Background()
	endpoint, rule, _ := l.createRule(t, "https://hooks.example.com/x")
	key := schemas.RecordKey("acme", endpoint)
	now := time.Now().UTC().Truncate(time.Millisecond)

	bad := []*kgo.Record{
		l.produceAt(t, l.topics.Deliveries, key, []byte("{not json")),
		l.produceAt(t, l.topics.DeliveryResults, schemas.RecordKey("acme", rule), []byte(`{"alert_id":"alrt_x","outcome":"exploded"}`)),
		l.produceAt(t, l.topics.DeliveriesDLQ, key, []byte(`[]`), "exo-last-error", "undecodable delivery record", "exo-attempts", "0"),
		l.produceAt(t, l.topics.RuleErrors, schemas.RecordKey("acme", rule), []byte(`{"tenant_id":"acme"}`)),
	}
	good, goodRaw := testenv.Delivery(t, "acme", rule, endpoint, now)
	l.produce(t, l.topics.Deliveries, key, goodRaw)
	l.produce(t, l.topics.DeliveryResults, schemas.RecordKey("acme", rule), testenv.Result(good, 1, schemas.OutcomeDead, 500, now.Add(time.Second)))
	l.produce(t, l.topics.DeliveriesDLQ, key, goodRaw, "exo-last-error", "http_status: HTTP 500", "exo-attempts", "1")
	re, _ := json.Marshal(schemas.RuleErrorRecord{TenantID: "acme", RuleID: rule, RuleVersion: 1, Error: "boom", Errors: 1, At: now})
	l.produce(t, l.topics.RuleErrors, schemas.RecordKey("acme", rule), re)

	testenv.Eventually(t, "the good records after the invalid ones written", func() (bool, string) {
		a := l.count(t, `SELECT count(*) FROM alerts WHERE alert_id = $1`, good.AlertID)
		at := l.count(t, `SELECT count(*) FROM delivery_attempts WHERE alert_id = $1`, good.AlertID)
		dl := l.count(t, `SELECT count(*) FROM dead_letters WHERE alert_id = $1`, good.AlertID)
		e := l.count(t, `SELECT count(*) FROM alert_rules WHERE id = $1 AND last_error = 'boom'`, rule)
		return a == 1 && at == 1 && dl == 1 && e == 1, fmt.Sprintf("alerts=%d attempts=%d dead_letters=%d rule_error=%d", a, at, dl, e)
	})
	testenv.Eventually(t, "offsets committed", func() (bool, string) { return l.caughtUp(t, group) })

	list, err := store.New(l.pool, "").ListQuarantined(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	byTopic := map[string]store.QuarantinedRecord{}
	for _, q := range list {
		byTopic[q.Topic] = q
	}
	if len(list) != len(bad) {
		t.Errorf("%d records quarantined, want %d: %+v", len(list), len(bad), list)
	}
	for _, b := range bad {
		q, ok := byTopic[b.Topic]
		if !ok {
			t.Errorf("the invalid record on %s is not in the quarantine list", b.Topic)
			continue
		}
		if q.Consumer != "recorder" || q.Partition != b.Partition || q.Offset != b.Offset ||
			!bytes.Equal(q.Key, b.Key) || !bytes.Equal(q.Value, b.Value) || len(q.Headers) != len(b.Headers) || q.Error == "" {
			t.Errorf("quarantined %s %s/%d@%d key %q value %q headers %d error %q; want recorder %s/%d@%d key %q value %q headers %d",
				q.Consumer, q.Topic, q.Partition, q.Offset, q.Key, q.Value, len(q.Headers), q.Error,
				b.Topic, b.Partition, b.Offset, b.Key, b.Value, len(b.Headers))
		}
	}
	// Replaying the dead letter produces it again: the recorder reads it at
	// a new offset (and, still invalid, quarantines it there).
	dlq := byTopic[l.topics.DeliveriesDLQ]
	if err := recorder.Replay(ctx, store.New(l.pool, ""), l.prod, dlq.ID); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "the replayed record read again", func() (bool, string) {
		n := l.count(t, `SELECT count(*) FROM quarantined_records WHERE topic = $1 AND value = $2 AND "offset" > $3`,
			dlq.Topic, dlq.Value, dlq.Offset)
		return n == 1, fmt.Sprintf("%d copies at a later offset", n)
	})
	if n := l.count(t, `SELECT count(*) FROM quarantined_records WHERE id = $1 AND replayed_at IS NOT NULL`, dlq.ID); n != 1 {
		t.Error("replayed_at not set")
	}
}
