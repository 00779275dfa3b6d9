package controlplane_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/controlplane"
	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/keyring"
	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/schemas"
)

// histEnv is a running control plane (API, outbox relay, recorder) on a fresh
// database and fresh topics of the real broker.
type histEnv struct {
	pool     *pgxpool.Pool
	topics   kafka.Topics
	brokers  []string
	ring     *keyring.Ring
	reg      *prometheus.Registry
	url      string
	adminKey string
	otherKey string
	prod     *kgo.Client
}

// startHistEnv runs a control plane; mod adjusts its config.
func startHistEnv(t *testing.T, mod func(*controlplane.Config)) *histEnv {
	t.Helper()
	ring, err := keyring.Parse(keyring.Generate("k1"))
	if err != nil {
		t.Fatal(err)
	}
	l := &histEnv{pool: testenv.Pool(t), topics: testenv.Topics(t), brokers: testenv.Brokers(t), ring: ring}
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
	l.reg, l.url = l.serve(t, "recorder-"+histHex(4), mod)
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

// serve runs one more control plane on l's database and topics, whose
// recorder consumes in group; it stops when the test ends.
func (l *histEnv) serve(t *testing.T, group string, mod func(*controlplane.Config)) (*prometheus.Registry, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	ready := make(chan net.Addr, 1)
	cfg := controlplane.Config{
		Listener: ln, Pool: l.pool, Brokers: l.brokers, Topics: l.topics, Keyring: l.ring, Log: testenv.Log(t),
		Registry: reg, RecorderGroup: group, OutboxPoll: 200 * time.Millisecond, Allowlist: []string{"127.0.0.1"}, Ready: ready,
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := controlplane.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("control plane: %v", err)
		}
	})
	select {
	case addr := <-ready:
		return reg, "http://" + addr.String()
	case err := <-done:
		t.Fatalf("control plane stopped: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("control plane not ready after 30s")
	}
	return nil, ""
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
	r := &kgo.Record{Topic: topic, Key: key, Value: value}
	for i := 0; i+1 < len(headers); i += 2 {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: headers[i], Value: []byte(headers[i+1])})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := l.prod.ProduceSync(ctx, r).FirstErr(); err != nil {
		t.Fatal(err)
	}
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

func histHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func histAlertID() string { return "alrt_" + histHex(16) }

// deliveryRecord is a valid delivery record, as the processor emits it.
func histDelivery(t *testing.T, tenant, rule, endpoint string, at time.Time) (schemas.DeliveryRecord, []byte) {
	t.Helper()
	id := histAlertID()
	payload, _ := json.Marshal(schemas.WebhookPayload{
		Type: schemas.TypeRunFailed, Timestamp: at,
		Data: schemas.PayloadData{
			AlertID: id, TenantID: tenant, Rule: schemas.RuleRef{ID: rule, Name: "ETL failures"},
			Event:    schemas.EventRef{ID: "ev_" + histHex(4), Type: schemas.TypeRunFailed, OccurredAt: at},
			Workflow: schemas.Workflow{ID: "wf_9", Name: "nightly-etl"}, Run: schemas.PayloadRun{ID: "run_" + histHex(4), Status: "failed"},
			Error: &schemas.PayloadError{Code: "NODE_ERRORED"}, Labels: map[string]string{"env": "prod"},
		},
	})
	d := schemas.DeliveryRecord{AlertID: id, TenantID: tenant, RuleID: rule, EndpointID: endpoint, EventType: schemas.TypeRunFailed,
		MaxAttempts: 8, Severity: "error", CreatedAt: at, Payload: payload}
	raw, _ := json.Marshal(d)
	if err := schemas.Validate(schemas.KindDelivery, raw); err != nil {
		t.Fatal(err)
	}
	return d, raw
}

// result is a valid attempt report, as the dispatcher emits it.
func histResult(d schemas.DeliveryRecord, attempt int, outcome string, status int, at time.Time) []byte {
	r := schemas.ResultRecord{
		AlertID: d.AlertID, DeliveryID: "dlv_" + histHex(8), TenantID: d.TenantID, RuleID: d.RuleID, EndpointID: d.EndpointID,
		Attempt: attempt, Outcome: outcome, StatusCode: status, LatencyMS: 12, AttemptedAt: at,
	}
	if outcome != schemas.OutcomeDelivered {
		r.ErrorClass, r.Error, r.ResponseExcerpt = "http_status", fmt.Sprintf("HTTP %d", status), "upstream says no"
	}
	b, _ := json.Marshal(r)
	return b
}

// eventually polls cond until it holds or 30s pass; cond says what it saw.
func histWait(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, seen := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 30s; last seen: %s", what, seen)
		}
		time.Sleep(50 * time.Millisecond)
	}
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

// The recorder writes alerts, attempts and dead letters; skips garbage
// without stalling; disables a rule whose endpoint is gone (once, with an
// audit row and a new snapshot); and a second recorder reading the topics
// from the start adds nothing.
func TestRecorderRecordsHistory(t *testing.T) {
	t.Parallel()
	l := startHistEnv(t, nil)
	ctx := context.Background()
	endpoint, rule, _ := l.createRule(t, "https://hooks.example.com/x")
	key := schemas.RecordKey("acme", endpoint)
	t0 := time.Now().UTC().Add(-time.Minute).Truncate(time.Millisecond)

	// Garbage first on every topic: later records must still land.
	l.produce(t, l.topics.Deliveries, key, []byte("{not json"))
	l.produce(t, l.topics.DeliveryResults, key, []byte(`{"alert_id":"alrt_x","outcome":"exploded"}`))
	l.produce(t, l.topics.DeliveriesDLQ, key, []byte(`[]`), "exo-last-error", "undecodable delivery record", "exo-attempts", "0")

	ok, okRaw := histDelivery(t, "acme", rule, endpoint, t0)
	dead, deadRaw := histDelivery(t, "acme", rule, endpoint, t0.Add(time.Second))
	l.produce(t, l.topics.Deliveries, key, okRaw)
	l.produce(t, l.topics.Deliveries, key, deadRaw)
	l.produce(t, l.topics.DeliveryResults, schemas.RecordKey("acme", rule), histResult(ok, 1, schemas.OutcomeRetry, 503, t0.Add(2*time.Second)))
	l.produce(t, l.topics.DeliveryResults, schemas.RecordKey("acme", rule), histResult(ok, 2, schemas.OutcomeDelivered, 200, t0.Add(7*time.Second)))
	l.produce(t, l.topics.DeliveryResults, schemas.RecordKey("acme", rule), histResult(dead, 1, schemas.OutcomeDead, 500, t0.Add(3*time.Second)))
	l.produce(t, l.topics.DeliveriesDLQ, key, deadRaw, "exo-last-error", "http_status: HTTP 500", "exo-attempts", "1",
		"exo-original-topic", l.topics.Deliveries)

	histWait(t, "history recorded", func() (bool, string) {
		a := l.count(t, `SELECT count(*) FROM alerts`)
		at := l.count(t, `SELECT count(*) FROM delivery_attempts`)
		dl := l.count(t, `SELECT count(*) FROM dead_letters`)
		return a == 2 && at == 3 && dl == 1, fmt.Sprintf("alerts=%d attempts=%d dead_letters=%d", a, at, dl)
	})
	var record []byte
	var created time.Time
	if err := l.pool.QueryRow(ctx, `SELECT record, created_at FROM alerts WHERE alert_id = $1`, ok.AlertID).Scan(&record, &created); err != nil {
		t.Fatal(err)
	}
	var back schemas.DeliveryRecord
	if err := json.Unmarshal(record, &back); err != nil || back.AlertID != ok.AlertID || back.EndpointID != endpoint || !created.Equal(t0) {
		t.Errorf("alerts row: %s created %v (want %v): %v", record, created, t0, err)
	}
	var status *int
	var excerpt *string
	if err := l.pool.QueryRow(ctx, `SELECT status_code, response_excerpt FROM delivery_attempts WHERE alert_id = $1 AND attempt = 1`,
		ok.AlertID).Scan(&status, &excerpt); err != nil || status == nil || *status != 503 || excerpt == nil || *excerpt != "upstream says no" {
		t.Errorf("attempt row: status %v excerpt %v: %v", status, excerpt, err)
	}
	var lastErr string
	var attempts int
	if err := l.pool.QueryRow(ctx, `SELECT last_error, attempts FROM dead_letters WHERE alert_id = $1`, dead.AlertID).Scan(&lastErr, &attempts); err != nil ||
		lastErr != "http_status: HTTP 500" || attempts != 1 {
		t.Errorf("dead letter: %q after %d attempts: %v", lastErr, attempts, err)
	}
	if n := testenv.Metric(t, l.reg, "exo_recorder_skipped_records_total"); n != 3 {
		t.Errorf("skipped records counted %v, want 3", n)
	}

	// The endpoint answers 410: the rule is disabled by the system, in one
	// transaction with an audit row and a new snapshot for the processor.
	gone, goneRaw := histDelivery(t, "acme", rule, endpoint, time.Now().UTC())
	l.produce(t, l.topics.Deliveries, key, goneRaw)
	l.produce(t, l.topics.DeliveryResults, schemas.RecordKey("acme", rule), histResult(gone, 1, schemas.OutcomeEndpointGone, 410, time.Now().UTC()))
	histWait(t, "rule disabled", func() (bool, string) {
		var active bool
		var reason *string
		_ = l.pool.QueryRow(ctx, `SELECT is_active, disabled_reason FROM alert_rules WHERE id = $1`, rule).Scan(&active, &reason)
		return !active, fmt.Sprintf("active=%v reason=%v", active, reason)
	})
	_, got := l.do(t, "GET", "/v1/alert-rules/"+rule, l.adminKey, "")
	reason, _ := got["disabled_reason"].(string)
	if got["is_active"] != false || !strings.Contains(reason, "410") || !strings.Contains(reason, endpoint) || got["version"] != float64(2) {
		t.Errorf("disabled rule: %v", got)
	}
	var actor string
	var before, after map[string]any
	if err := l.pool.QueryRow(ctx, `SELECT actor, before, after FROM audit_events WHERE action = 'alert_rule.disable' AND resource_id = $1`,
		rule).Scan(&actor, &before, &after); err != nil || actor != "system" || before["is_active"] != true || after["is_active"] != false {
		t.Errorf("audit row: actor %q before %v after %v: %v", actor, before, after, err)
	}
	var snap []byte
	if err := l.pool.QueryRow(ctx, `SELECT value FROM outbox WHERE topic = $1 ORDER BY id DESC LIMIT 1`, l.topics.Rules).Scan(&snap); err != nil {
		t.Fatal(err)
	}
	var rec schemas.RuleRecord
	if err := json.Unmarshal(snap, &rec); err != nil || schemas.Validate(schemas.KindRule, snap) != nil || rec.IsActive || rec.Version != 2 {
		t.Errorf("outbox snapshot after disable: %s (%v)", snap, err)
	}

	// A user re-enables the rule; an older 410 attempt reported late (or
	// replayed) does not disable it again.
	if _, err := l.pool.Exec(ctx, `UPDATE alert_rules SET is_active = true, disabled_reason = NULL, version = version + 1, updated_at = now() WHERE id = $1`, rule); err != nil {
		t.Fatal(err)
	}
	l.produce(t, l.topics.DeliveryResults, schemas.RecordKey("acme", rule), histResult(gone, 2, schemas.OutcomeEndpointGone, 404, time.Now().UTC().Add(-time.Hour)))
	histWait(t, "late attempt recorded", func() (bool, string) {
		n := l.count(t, `SELECT count(*) FROM delivery_attempts WHERE alert_id = $1`, gone.AlertID)
		return n == 2, fmt.Sprintf("%d attempts", n)
	})
	if n := l.count(t, `SELECT count(*) FROM alert_rules WHERE id = $1 AND is_active`, rule); n != 1 {
		t.Error("a late 404 disabled a rule the user re-enabled afterwards")
	}

	// A second recorder reads all topics from the start: nothing changes.
	tables := `SELECT (SELECT count(*) FROM alerts) * 1000000 + (SELECT count(*) FROM delivery_attempts) * 10000 +
		(SELECT count(*) FROM dead_letters) * 100 + (SELECT count(*) FROM audit_events)`
	snapshot := l.count(t, tables)
	if _, err := l.pool.Exec(ctx, `UPDATE dead_letters SET replayed_at = now()`); err != nil {
		t.Fatal(err)
	}
	group := "replay-" + histHex(4)
	reg2, _ := l.serve(t, group, nil)
	histWait(t, "second recorder caught up", func() (bool, string) { return l.caughtUp(t, group) })
	if n := l.count(t, tables); n != snapshot {
		t.Errorf("replaying the topics changed the history: %d -> %d", snapshot, n)
	}
	if n := l.count(t, `SELECT count(*) FROM dead_letters WHERE replayed_at IS NULL`); n != 0 {
		t.Errorf("reading the same death again made %d dead letters replayable", n)
	}
	if n := l.count(t, `SELECT count(*) FROM alert_rules WHERE id = $1 AND is_active`, rule); n != 1 {
		t.Error("replaying the topics disabled the re-enabled rule")
	}
	if n := testenv.Metric(t, reg2, "exo_recorder_skipped_records_total"); n != 3 {
		t.Errorf("second recorder skipped %v records, want 3", n)
	}

	// The same alert dies again later (after a replay): the row is updated
	// and can be replayed again.
	l.produce(t, l.topics.DeliveriesDLQ, key, deadRaw, "exo-last-error", "timeout: no answer", "exo-attempts", "8")
	histWait(t, "second death recorded", func() (bool, string) {
		var lastErr string
		var replayed *time.Time
		_ = l.pool.QueryRow(ctx, `SELECT last_error, replayed_at FROM dead_letters WHERE alert_id = $1`, dead.AlertID).Scan(&lastErr, &replayed)
		return lastErr == "timeout: no answer" && replayed == nil, fmt.Sprintf("last_error=%q replayed_at=%v", lastErr, replayed)
	})

	// Results that carry the rule's version decide by it, not by clocks: a
	// 404 for the version before the user's re-enable leaves the rule alone
	// even stamped an hour ahead (a dispatcher with a skewed clock); one for
	// the current version disables it.
	var version int64
	if err := l.pool.QueryRow(ctx, `SELECT version FROM alert_rules WHERE id = $1`, rule).Scan(&version); err != nil {
		t.Fatal(err)
	}
	versioned := func(attempt int, v int64) []byte {
		var r schemas.ResultRecord
		_ = json.Unmarshal(histResult(gone, attempt, schemas.OutcomeEndpointGone, 410, time.Now().UTC().Add(time.Hour)), &r)
		r.RuleVersion = v
		b, _ := json.Marshal(r)
		return b
	}
	l.produce(t, l.topics.DeliveryResults, schemas.RecordKey("acme", rule), versioned(3, version-1))
	histWait(t, "versioned late attempt recorded", func() (bool, string) {
		n := l.count(t, `SELECT count(*) FROM delivery_attempts WHERE alert_id = $1`, gone.AlertID)
		return n == 3, fmt.Sprintf("%d attempts", n)
	})
	if n := l.count(t, `SELECT count(*) FROM alert_rules WHERE id = $1 AND is_active`, rule); n != 1 {
		t.Error("a 404 for an older rule version disabled the rule (clock skew must not matter)")
	}
	l.produce(t, l.topics.DeliveryResults, schemas.RecordKey("acme", rule), versioned(4, version))
	histWait(t, "a 404 for the current version disables the rule", func() (bool, string) {
		n := l.count(t, `SELECT count(*) FROM alert_rules WHERE id = $1 AND NOT is_active AND version = $2`, rule, version+1)
		return n == 1, fmt.Sprintf("%d disabled at version %d", n, version+1)
	})
}

// While Postgres refuses the writes, the recorder retries and commits no
// offset; once it accepts them again, everything lands.
func TestRecorderWaitsOutPostgresFailure(t *testing.T) {
	t.Parallel()
	group := "recorder-" + histHex(4)
	l := startHistEnv(t, func(c *controlplane.Config) { c.RecorderGroup = group })
	ctx := context.Background()
	if _, err := l.pool.Exec(ctx, `ALTER TABLE alerts RENAME TO alerts_away`); err != nil {
		t.Fatal(err)
	}
	d, raw := histDelivery(t, "acme", "rul_1", "whk_1", time.Now().UTC())
	l.produce(t, l.topics.Deliveries, schemas.RecordKey("acme", "whk_1"), raw)
	l.produce(t, l.topics.DeliveryResults, schemas.RecordKey("acme", "rul_1"), histResult(d, 1, schemas.OutcomeDelivered, 200, time.Now().UTC()))
	histWait(t, "write failures retried", func() (bool, string) {
		n := testenv.Metric(t, l.reg, "exo_recorder_write_failures_total")
		return n >= 2, fmt.Sprintf("%v failures", n)
	})
	if done, _ := l.caughtUp(t, group); done {
		t.Fatal("offsets committed although nothing was written")
	}
	if _, err := l.pool.Exec(ctx, `ALTER TABLE alerts_away RENAME TO alerts`); err != nil {
		t.Fatal(err)
	}
	histWait(t, "history recorded after the failure", func() (bool, string) {
		a, at := l.count(t, `SELECT count(*) FROM alerts`), l.count(t, `SELECT count(*) FROM delivery_attempts`)
		return a == 1 && at == 1, fmt.Sprintf("alerts=%d attempts=%d", a, at)
	})
	histWait(t, "offsets committed", func() (bool, string) { return l.caughtUp(t, group) })
}
