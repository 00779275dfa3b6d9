package recorder_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/internal/model"
	"github.com/exospherehost/exo-alerts/internal/store"
	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/schemas"
)

// The recorder writes alerts, attempts and dead letters; skips garbage
// without stalling; disables a rule whose endpoint is gone (once, with an
// audit row and a new snapshot); and a second recorder reading the topics
// from the start adds nothing.
func TestRecorderRecordsHistory(t *testing.T) {
	t.Parallel()
	l := start(t, nil)
	ctx := context.Background()
	endpoint, rule := l.createRule(t, "https://hooks.example.com/x")
	key := schemas.RecordKey("acme", endpoint)
	t0 := time.Now().UTC().Add(-time.Minute).Truncate(time.Millisecond)

	// Garbage first on every topic: later records must still land.
	l.produce(t, l.topics.Deliveries, key, []byte("{not json"))
	l.produce(t, l.topics.DeliveryResults, key, []byte(`{"alert_id":"alrt_x","outcome":"exploded"}`))
	l.produce(t, l.topics.DeliveriesDLQ, key, []byte(`[]`), "exo-last-error", "undecodable delivery record", "exo-attempts", "0")

	ok, okRaw := testenv.Delivery(t, "acme", rule, endpoint, t0)
	dead, deadRaw := testenv.Delivery(t, "acme", rule, endpoint, t0.Add(time.Second))
	l.produce(t, l.topics.Deliveries, key, okRaw)
	l.produce(t, l.topics.Deliveries, key, deadRaw)
	l.produce(t, l.topics.DeliveryResults, schemas.RecordKey("acme", rule), testenv.Result(ok, 1, schemas.OutcomeRetry, 503, t0.Add(2*time.Second)))
	l.produce(t, l.topics.DeliveryResults, schemas.RecordKey("acme", rule), testenv.Result(ok, 2, schemas.OutcomeDelivered, 200, t0.Add(7*time.Second)))
	l.produce(t, l.topics.DeliveryResults, schemas.RecordKey("acme", rule), testenv.Result(dead, 1, schemas.OutcomeDead, 500, t0.Add(3*time.Second)))
	l.produce(t, l.topics.DeliveriesDLQ, key, deadRaw, "exo-last-error", "http_status: HTTP 500", "exo-attempts", "1",
		"exo-original-topic", l.topics.Deliveries)

	testenv.Eventually(t, "history recorded", func() (bool, string) {
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
	gone, goneRaw := testenv.Delivery(t, "acme", rule, endpoint, time.Now().UTC())
	l.produce(t, l.topics.Deliveries, key, goneRaw)
	l.produce(t, l.topics.DeliveryResults, schemas.RecordKey("acme", rule), testenv.Result(gone, 1, schemas.OutcomeEndpointGone, 410, time.Now().UTC()))
	testenv.Eventually(t, "rule disabled", func() (bool, string) {
		var active bool
		var reason *string
		_ = l.pool.QueryRow(ctx, `SELECT is_active, disabled_reason FROM alert_rules WHERE id = $1`, rule).Scan(&active, &reason)
		return !active, fmt.Sprintf("active=%v reason=%v", active, reason)
	})
	// The rule as the API shows it.
	row, err := store.ScanRule(l.pool.QueryRow(ctx, `SELECT `+store.RuleCols+` FROM alert_rules WHERE id = $1`, rule))
	if err != nil {
		t.Fatal(err)
	}
	got := model.RuleOf(row)
	if got.IsActive || got.DisabledReason == nil || !strings.Contains(*got.DisabledReason, "410") || !strings.Contains(*got.DisabledReason, endpoint) || got.Version != 2 {
		t.Errorf("disabled rule: %+v (reason %v)", got, got.DisabledReason)
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
	l.produce(t, l.topics.DeliveryResults, schemas.RecordKey("acme", rule), testenv.Result(gone, 2, schemas.OutcomeEndpointGone, 404, time.Now().UTC().Add(-time.Hour)))
	testenv.Eventually(t, "late attempt recorded", func() (bool, string) {
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
	group := "replay-" + testenv.HexID(4)
	reg2 := l.run(t, group, nil)
	testenv.Eventually(t, "second recorder caught up", func() (bool, string) { return l.caughtUp(t, group) })
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
	testenv.Eventually(t, "second death recorded", func() (bool, string) {
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
		_ = json.Unmarshal(testenv.Result(gone, attempt, schemas.OutcomeEndpointGone, 410, time.Now().UTC().Add(time.Hour)), &r)
		r.RuleVersion = v
		b, _ := json.Marshal(r)
		return b
	}
	l.produce(t, l.topics.DeliveryResults, schemas.RecordKey("acme", rule), versioned(3, version-1))
	testenv.Eventually(t, "versioned late attempt recorded", func() (bool, string) {
		n := l.count(t, `SELECT count(*) FROM delivery_attempts WHERE alert_id = $1`, gone.AlertID)
		return n == 3, fmt.Sprintf("%d attempts", n)
	})
	if n := l.count(t, `SELECT count(*) FROM alert_rules WHERE id = $1 AND is_active`, rule); n != 1 {
		t.Error("a 404 for an older rule version disabled the rule (clock skew must not matter)")
	}
	l.produce(t, l.topics.DeliveryResults, schemas.RecordKey("acme", rule), versioned(4, version))
	testenv.Eventually(t, "a 404 for the current version disables the rule", func() (bool, string) {
		n := l.count(t, `SELECT count(*) FROM alert_rules WHERE id = $1 AND NOT is_active AND version = $2`, rule, version+1)
		return n == 1, fmt.Sprintf("%d disabled at version %d", n, version+1)
	})
}

// While Postgres refuses the writes, the recorder retries and commits no
// offset; once it accepts them again, everything lands.
func TestRecorderWaitsOutPostgresFailure(t *testing.T) {
	t.Parallel()
	l := start(t, nil)
	group := l.group
	ctx := context.Background()
	if _, err := l.pool.Exec(ctx, `ALTER TABLE alerts RENAME TO alerts_away`); err != nil {
		t.Fatal(err)
	}
	d, raw := testenv.Delivery(t, "acme", "rul_1", "whk_1", time.Now().UTC())
	l.produce(t, l.topics.Deliveries, schemas.RecordKey("acme", "whk_1"), raw)
	l.produce(t, l.topics.DeliveryResults, schemas.RecordKey("acme", "rul_1"), testenv.Result(d, 1, schemas.OutcomeDelivered, 200, time.Now().UTC()))
	testenv.Eventually(t, "write failures retried", func() (bool, string) {
		n := testenv.Metric(t, l.reg, "exo_recorder_write_failures_total")
		return n >= 2, fmt.Sprintf("%v failures", n)
	})
	if done, _ := l.caughtUp(t, group); done {
		t.Fatal("offsets committed although nothing was written")
	}
	if _, err := l.pool.Exec(ctx, `ALTER TABLE alerts_away RENAME TO alerts`); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "history recorded after the failure", func() (bool, string) {
		a, at := l.count(t, `SELECT count(*) FROM alerts`), l.count(t, `SELECT count(*) FROM delivery_attempts`)
		return a == 1 && at == 1, fmt.Sprintf("alerts=%d attempts=%d", a, at)
	})
	testenv.Eventually(t, "offsets committed", func() (bool, string) { return l.caughtUp(t, group) })
}
