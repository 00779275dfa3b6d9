package recorder_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/store"
	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/schemas"
)

// produceDead writes d to the DLQ as the dispatcher would, dead at at.
func (l *env) produceDead(t *testing.T, d schemas.DeliveryRecord, lastErr string, at time.Time) {
	t.Helper()
	raw, _ := json.Marshal(d)
	r := &kgo.Record{Topic: l.topics.DeliveriesDLQ, Key: schemas.RecordKey(d.TenantID, d.EndpointID), Value: raw, Timestamp: at,
		Headers: []kgo.RecordHeader{{Key: schemas.HeaderLastError, Value: []byte(lastErr)}, {Key: schemas.HeaderAttempts, Value: []byte("8")}}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := l.prod.ProduceSync(ctx, r).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// caughtUpTopic reports whether group has committed every record of topic.
func (l *env) caughtUpTopic(t *testing.T, group, topic string) (bool, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	adm := kadm.NewClient(l.prod)
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return false, err.Error()
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return false, err.Error()
	}
	ok, seen := true, ""
	ends.Each(func(o kadm.ListedOffset) {
		c, _ := committed.Lookup(o.Topic, o.Partition)
		if o.Offset > 0 && c.At < o.Offset {
			ok = false
			seen += fmt.Sprintf(" %d at %d of %d", o.Partition, c.At, o.Offset)
		}
	})
	return ok, seen
}

// notices lists the kind, count and delivery of every notice, by dedup key.
func (l *env) notices(t *testing.T) map[string]string {
	t.Helper()
	rows, err := l.pool.Query(context.Background(), `SELECT dedup_key, kind, count, resolved_at IS NOT NULL, coalesce(delivery_alert_id, '') FROM notices`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var key, kind, alert string
		var count int64
		var resolved bool
		if err := rows.Scan(&key, &kind, &count, &resolved, &alert); err != nil {
			t.Fatal(err)
		}
		out[key] = fmt.Sprintf("%s count=%d resolved=%v delivered=%v", kind, count, resolved, alert != "")
	}
	return out
}

// Dead letters make one notice per endpoint and UTC hour, counting them;
// test and notice deliveries, and deliveries set aside because the tenant
// was switched off, count for nothing; each new notice is queued once as a
// tenant.notice delivery to the tenant's notice endpoint; reading the
// topics again from the start changes nothing.
func TestDeadLetterNoticePerHour(t *testing.T) {
	t.Parallel()
	l := start(t, nil)
	ctx := context.Background()
	endpoint, rule := l.createRule(t, "https://hooks.example.com/x")
	noticeEP, _ := l.createRule(t, "https://hooks.example.com/notices")
	if _, err := l.pool.Exec(ctx, `INSERT INTO tenant_settings (tenant_id, notice_endpoint_id, notice_kinds) VALUES ('acme', $1, $2)`,
		noticeEP, store.NoticeKinds); err != nil {
		t.Fatal(err)
	}
	hour := time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour)
	dead := func(rule string, at time.Time, lastErr string) {
		d, _ := testenv.Delivery(t, "acme", rule, endpoint, at)
		l.produceDead(t, d, lastErr, at)
	}
	dead(rule, hour.Add(5*time.Minute), "exhausted: HTTP 503")
	dead(rule, hour.Add(40*time.Minute), "http_status: HTTP 400")
	dead(rule, hour.Add(70*time.Minute), "exhausted: timeout")
	// None of these is worth a notice.
	dead(schemas.TestRuleID, hour.Add(10*time.Minute), "exhausted: HTTP 500")
	dead(schemas.NoticeRuleID, hour.Add(11*time.Minute), "exhausted: HTTP 500")
	dead(rule, hour.Add(12*time.Minute), "tenant_disabled: not sent: the tenant is disabled (rollout)")
	// A notice delivery whose endpoint is gone disables nothing.
	nd, ndRaw := testenv.Delivery(t, "acme", schemas.NoticeRuleID, noticeEP, hour)
	l.produce(t, l.topics.Deliveries, schemas.RecordKey("acme", noticeEP), ndRaw)
	l.produce(t, l.topics.DeliveryResults, schemas.RecordKey("acme", schemas.NoticeRuleID), testenv.Result(nd, 1, schemas.OutcomeEndpointGone, 410, time.Now().UTC()))

	h0, h1 := hour.Format("2006-01-02T15Z"), hour.Add(time.Hour).Format("2006-01-02T15Z")
	want := map[string]string{
		"dead_letters/" + endpoint + "/" + h0: "dead_letters count=2 resolved=false delivered=true",
		"dead_letters/" + endpoint + "/" + h1: "dead_letters count=1 resolved=false delivered=true",
	}
	testenv.Eventually(t, "dead-letter notices", func() (bool, string) {
		got := l.notices(t)
		n := l.count(t, `SELECT count(*) FROM dead_letters`) + l.count(t, `SELECT count(*) FROM delivery_attempts`)
		return n == 7 && fmt.Sprint(got) == fmt.Sprint(want), fmt.Sprintf("%v (%d rows of history)", got, n)
	})
	if n := testenv.Metric(t, l.reg, "exo_recorder_notices_total", "kind", "dead_letters"); n != 2 {
		t.Errorf("exo_recorder_notices_total{kind=dead_letters} = %v, want 2", n)
	}
	if n := testenv.Metric(t, l.reg, "exo_recorder_notices_total", "kind", "rule_disabled"); n != 0 {
		t.Errorf("exo_recorder_notices_total{kind=rule_disabled} = %v, want 0 (a notice delivery has no rule)", n)
	}
	// The deliveries queued: one per notice, valid, to the notice endpoint.
	rows, err := l.pool.Query(ctx, `SELECT key, value FROM outbox WHERE topic = $1`, l.topics.Deliveries)
	if err != nil {
		t.Fatal(err)
	}
	var queued []schemas.DeliveryRecord
	for rows.Next() {
		var key string
		var value []byte
		if err := rows.Scan(&key, &value); err != nil {
			t.Fatal(err)
		}
		if err := schemas.Validate(schemas.KindDelivery, value); err != nil {
			t.Errorf("queued notice delivery invalid: %v\n%s", err, value)
		}
		var d schemas.DeliveryRecord
		_ = json.Unmarshal(value, &d)
		var p schemas.WebhookPayload
		_ = json.Unmarshal(d.Payload, &p)
		if key != "acme/"+noticeEP || d.EndpointID != noticeEP || d.RuleID != schemas.NoticeRuleID || d.EventType != schemas.TypeTenantNotice ||
			d.MaxAttempts != 8 || p.Data.Notice == nil || p.Data.Notice.Kind != "dead_letters" || *p.Data.Notice.EndpointID != endpoint ||
			d.AlertID != store.NoticeAlertID("acme", p.Data.Notice.ID) {
			t.Errorf("queued notice delivery: key %s %s", key, value)
		}
		queued = append(queued, d)
	}
	rows.Close()
	if len(queued) != 2 {
		t.Errorf("%d notice deliveries queued, want 2", len(queued))
	}

	// Another death in the first hour: counted, not delivered again.
	dead(rule, hour.Add(50*time.Minute), "exhausted: HTTP 502")
	want["dead_letters/"+endpoint+"/"+h0] = "dead_letters count=3 resolved=false delivered=true"
	testenv.Eventually(t, "count recomputed", func() (bool, string) {
		got := l.notices(t)
		return fmt.Sprint(got) == fmt.Sprint(want), fmt.Sprint(got)
	})

	// A second recorder reads every topic from the start: nothing changes.
	reg2 := l.run(t, "replay-"+testenv.HexID(4), nil)
	testenv.Eventually(t, "second recorder read the DLQ", func() (bool, string) {
		n := testenv.Metric(t, reg2, "exo_recorder_records_total", "table", "dead_letters")
		return n >= 7, fmt.Sprintf("%v dead letters written", n)
	})
	if got := l.notices(t); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("replay changed the notices: %v", got)
	}
	if n := l.count(t, `SELECT count(*) FROM outbox WHERE topic = $1`, l.topics.Deliveries); n != 2 {
		t.Errorf("replay queued notice deliveries again: %d", n)
	}
	if n := testenv.Metric(t, reg2, "exo_recorder_notices_total", "kind", "dead_letters"); n != 0 {
		t.Errorf("second recorder created %v notices", n)
	}
	if n := l.count(t, `SELECT count(*) FROM alert_rules WHERE is_active`); n != 2 {
		t.Errorf("%d active rules, want 2: a notice delivery's 410 disabled something", n)
	}
}

// An endpoint reported unhealthy makes one open notice, whichever
// dispatchers report it; healthy resolves it; a later stretch makes a new
// one; reading the topic again makes nothing.
func TestEndpointHealthNotices(t *testing.T) {
	t.Parallel()
	l := start(t, nil)
	endpoint, _ := l.createRule(t, "https://hooks.example.com/x")
	t0 := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Millisecond)
	health := func(state, instance string, since, at time.Time) {
		b, _ := json.Marshal(schemas.EndpointHealthRecord{TenantID: "acme", EndpointID: endpoint, State: state, Since: since,
			ConsecutiveFailures: 7, LastErrorClass: "http_status", Instance: instance, At: at})
		l.produce(t, l.topics.EndpointHealth, schemas.RecordKey("acme", endpoint), b)
	}
	key := func(since time.Time) string {
		return "endpoint_unhealthy/" + endpoint + "/" + since.Format(time.RFC3339Nano)
	}
	health("unhealthy", "d1", t0, t0.Add(15*time.Minute))
	health("unhealthy", "d2", t0.Add(time.Minute), t0.Add(16*time.Minute)) // the same stretch, another dispatcher
	testenv.Eventually(t, "unhealthy notice", func() (bool, string) {
		got := l.notices(t)
		return len(got) == 1 && got[key(t0)] == "endpoint_unhealthy count=1 resolved=false delivered=false", fmt.Sprint(got)
	})
	health("healthy", "d1", t0, t0.Add(20*time.Minute))
	t1 := t0.Add(30 * time.Minute)
	health("unhealthy", "d2", t1, t1.Add(15*time.Minute))
	want := map[string]string{
		key(t0): "endpoint_unhealthy count=1 resolved=true delivered=false",
		key(t1): "endpoint_unhealthy count=1 resolved=false delivered=false",
	}
	testenv.Eventually(t, "resolved, and a second stretch", func() (bool, string) {
		got := l.notices(t)
		return fmt.Sprint(got) == fmt.Sprint(want), fmt.Sprint(got)
	})
	group := "replay-" + testenv.HexID(4)
	reg2 := l.run(t, group, nil)
	testenv.Eventually(t, "second recorder read every record", func() (bool, string) { return l.caughtUpTopic(t, group, l.topics.EndpointHealth) })
	if got := l.notices(t); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("replay changed the notices: %v", got)
	}
	if n := testenv.Metric(t, reg2, "exo_recorder_notices_total", "kind", "endpoint_unhealthy"); n != 0 {
		t.Errorf("second recorder created %v notices", n)
	}
	if n := testenv.Metric(t, l.reg, "exo_recorder_notices_total", "kind", "endpoint_unhealthy"); n != 2 {
		t.Errorf("exo_recorder_notices_total{kind=endpoint_unhealthy} = %v, want 2", n)
	}
}

// Suppressions by the delivery quota make one quota_exceeded notice per
// tenant and UTC hour, counting them; reading the topic again changes
// nothing.
func TestQuotaNoticePerHour(t *testing.T) {
	t.Parallel()
	l := start(t, nil)
	l.createRule(t, "https://hooks.example.com/x") // the tenant
	hour := time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)
	usage := func(n int64, at time.Time) {
		b, _ := json.Marshal(schemas.QuotaUsageRecord{TenantID: "acme", Minute: at, Scope: schemas.QuotaScopeTenant, Suppressed: n, Limit: 60})
		l.produce(t, l.topics.QuotaUsage, []byte("acme"), b)
	}
	usage(12, hour.Add(5*time.Minute))
	usage(3, hour.Add(59*time.Minute))
	usage(7, hour.Add(61*time.Minute))
	h0, h1 := hour.Format("2006-01-02T15Z"), hour.Add(time.Hour).Format("2006-01-02T15Z")
	want := map[string]string{
		"quota_exceeded/" + h0: "quota_exceeded count=15 resolved=false delivered=false",
		"quota_exceeded/" + h1: "quota_exceeded count=7 resolved=false delivered=false",
	}
	testenv.Eventually(t, "quota notices", func() (bool, string) {
		got := l.notices(t)
		return fmt.Sprint(got) == fmt.Sprint(want), fmt.Sprint(got)
	})
	group := "replay-" + testenv.HexID(4)
	reg2 := l.run(t, group, nil)
	testenv.Eventually(t, "second recorder read quota-usage", func() (bool, string) { return l.caughtUpTopic(t, group, l.topics.QuotaUsage) })
	if got := l.notices(t); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("replay changed the notices: %v", got)
	}
	if n := testenv.Metric(t, reg2, "exo_recorder_notices_total", "kind", "quota_exceeded"); n != 0 {
		t.Errorf("second recorder created %v notices", n)
	}
	if n := testenv.Metric(t, l.reg, "exo_recorder_notices_total", "kind", "quota_exceeded"); n != 2 {
		t.Errorf("exo_recorder_notices_total{kind=quota_exceeded} = %v, want 2", n)
	}
}
