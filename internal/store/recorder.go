package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/schemas"
)

// The recorder's writes: the delivery history (alerts, delivery_attempts,
// dead_letters), the rules' last errors, the rules it disables on 404/410,
// and the records it sets aside (quarantined_records). Every statement is
// idempotent: writing the same records twice leaves what writing them once
// left. Strings and JSON documents are made storable first (Text, JSON).

// Alert is a delivery record as the alerts table keeps it.
type Alert struct {
	Record schemas.DeliveryRecord
	// Raw is the record as it was read, stored as the alert's record.
	Raw json.RawMessage
}

// DeadLetter is a delivery record out of attempts, as the dead_letters
// table keeps it.
type DeadLetter struct {
	Record    schemas.DeliveryRecord
	Raw       json.RawMessage
	Attempts  int
	LastError string
	DeadAt    time.Time
}

// InsertAlerts stores alerts; an alert stored before is left as it is.
func (t *Tx) InsertAlerts(ctx context.Context, alerts []Alert) error {
	if len(alerts) == 0 {
		return nil
	}
	rows := make([]map[string]any, 0, len(alerts))
	for _, a := range alerts {
		rows = append(rows, storable(map[string]any{
			"alert_id": a.Record.AlertID, "tenant_id": a.Record.TenantID, "rule_id": a.Record.RuleID, "endpoint_id": a.Record.EndpointID,
			"event_type": a.Record.EventType, "record": a.Raw, "created_at": a.Record.CreatedAt,
		}))
	}
	js, _ := json.Marshal(rows)
	if _, err := t.tx.Exec(ctx, `INSERT INTO alerts (alert_id, tenant_id, rule_id, endpoint_id, event_type, record, created_at)
		SELECT alert_id, tenant_id, rule_id, endpoint_id, event_type, record, created_at
		FROM jsonb_populate_recordset(NULL::alerts, $1::jsonb)
		ON CONFLICT (alert_id) DO NOTHING`, js); err != nil {
		return fmt.Errorf("store: insert alerts: %w", err)
	}
	return nil
}

// InsertAttempts stores delivery attempts and returns those stored for the
// first time: an attempt read again (a replay of the topic) is not among
// them.
func (t *Tx) InsertAttempts(ctx context.Context, attempts []schemas.ResultRecord) ([]schemas.ResultRecord, error) {
	if len(attempts) == 0 {
		return nil, nil
	}
	rows := make([]map[string]any, 0, len(attempts))
	for _, a := range attempts {
		rows = append(rows, storable(map[string]any{
			"alert_id": a.AlertID, "attempt": a.Attempt, "delivery_id": a.DeliveryID, "tenant_id": a.TenantID,
			"rule_id": a.RuleID, "endpoint_id": a.EndpointID, "outcome": a.Outcome, "status_code": orNullInt(a.StatusCode),
			"latency_ms": a.LatencyMS, "error_class": orNullText(a.ErrorClass), "error": orNullText(a.Error),
			"response_excerpt": orNullText(a.ResponseExcerpt), "attempted_at": a.AttemptedAt,
		}))
	}
	js, _ := json.Marshal(rows)
	inserted, err := t.tx.Query(ctx, `INSERT INTO delivery_attempts (alert_id, attempt, delivery_id, tenant_id, rule_id, endpoint_id,
			outcome, status_code, latency_ms, error_class, error, response_excerpt, attempted_at)
		SELECT alert_id, attempt, delivery_id, tenant_id, rule_id, endpoint_id,
			outcome, status_code, latency_ms, error_class, error, response_excerpt, attempted_at
		FROM jsonb_populate_recordset(NULL::delivery_attempts, $1::jsonb)
		ON CONFLICT (alert_id, delivery_id) DO NOTHING
		RETURNING alert_id, delivery_id`, js)
	if err != nil {
		return nil, fmt.Errorf("store: insert attempts: %w", err)
	}
	fresh := map[[2]string]bool{}
	for inserted.Next() {
		var k [2]string
		if err := inserted.Scan(&k[0], &k[1]); err != nil {
			inserted.Close()
			return nil, fmt.Errorf("store: insert attempts: %w", err)
		}
		fresh[k] = true
	}
	if err := inserted.Err(); err != nil {
		return nil, fmt.Errorf("store: insert attempts: %w", err)
	}
	var out []schemas.ResultRecord
	for _, a := range attempts {
		if fresh[[2]string{Text(a.AlertID), Text(a.DeliveryID)}] {
			out = append(out, a)
		}
	}
	return out, nil
}

// UpsertDeadLetters stores dead letters (one per alert). A later death of
// the same alert (after a redelivery or replay) replaces the row and makes
// it replayable again; the same death read twice changes nothing.
func (t *Tx) UpsertDeadLetters(ctx context.Context, dead []DeadLetter) error {
	if len(dead) == 0 {
		return nil
	}
	rows := make([]map[string]any, 0, len(dead))
	for _, d := range dead {
		rows = append(rows, storable(map[string]any{
			"alert_id": d.Record.AlertID, "tenant_id": d.Record.TenantID, "rule_id": d.Record.RuleID, "endpoint_id": d.Record.EndpointID,
			"attempts": d.Attempts, "last_error": d.LastError, "record": d.Raw, "dead_at": d.DeadAt,
		}))
	}
	js, _ := json.Marshal(rows)
	if _, err := t.tx.Exec(ctx, `INSERT INTO dead_letters (alert_id, tenant_id, rule_id, endpoint_id, attempts, last_error, record, dead_at)
		SELECT alert_id, tenant_id, rule_id, endpoint_id, attempts, last_error, record, dead_at
		FROM jsonb_populate_recordset(NULL::dead_letters, $1::jsonb)
		ON CONFLICT (alert_id) DO UPDATE SET attempts = excluded.attempts, last_error = excluded.last_error,
			record = excluded.record, dead_at = excluded.dead_at, replayed_at = NULL
		WHERE dead_letters.dead_at < excluded.dead_at`, js); err != nil {
		return fmt.Errorf("store: upsert dead letters: %w", err)
	}
	return nil
}

// KeepRuleError keeps re as its rule's last error, if it is later than the
// one kept and was reported for the rule's current condition (a changed
// condition clears the error: trigger alert_rules_condition_changed), and
// reports whether it did. Reading a record twice changes nothing (its time
// is not later).
func (t *Tx) KeepRuleError(ctx context.Context, re schemas.RuleErrorRecord) (bool, error) {
	tag, err := t.tx.Exec(ctx, `UPDATE alert_rules SET last_error = $4, last_error_at = $5, last_error_event_id = $6,
			last_error_rule_version = $3, error_count = error_count + $7
		WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL AND $3 >= condition_version
			AND (last_error_at IS NULL OR last_error_at < $5)`,
		re.TenantID, re.RuleID, re.RuleVersion, Text(re.Error), re.At, orNullText(Text(re.EventID)), re.Errors)
	if err != nil {
		return false, fmt.Errorf("store: keep rule error: %w", err)
	}
	return tag.RowsAffected() > 0, nil
}

// DisableUnchangedRule deactivates rule of tenant with reason, if the rule
// is still active, not deleted, and unchanged since it made an alert: still
// at version (a user who re-enabled or edited it since has the last word,
// whatever the clocks say), or, when version is 0 (results of older
// dispatchers carry none), not updated since at. It returns the rule before
// and after, or ErrNotFound when it leaves the rule alone. The caller
// writes the audit row and the snapshot in the same transaction.
func (t *Tx) DisableUnchangedRule(ctx context.Context, tenant, rule string, version int64, at time.Time, reason string) (before, after *RuleRow, err error) {
	unchanged, since := `updated_at < $3`, any(at)
	if version > 0 {
		unchanged, since = `version = $3`, version
	}
	before, err = ScanRule(t.tx.QueryRow(ctx, `SELECT `+RuleCols+` FROM alert_rules
		WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL AND is_active AND `+unchanged+`
		FOR UPDATE`, tenant, rule, since))
	if errors.Is(err, ErrNotFound) {
		return nil, nil, ErrNotFound
	}
	if err != nil {
		return nil, nil, fmt.Errorf("store: disable rule: %w", err)
	}
	after, err = ScanRule(t.tx.QueryRow(ctx, `UPDATE alert_rules
		SET is_active = false, disabled_reason = $3, version = version + 1, updated_at = now()
		WHERE tenant_id = $1 AND id = $2
		RETURNING `+RuleCols, tenant, rule, reason))
	if err != nil {
		return nil, nil, fmt.Errorf("store: disable rule: %w", err)
	}
	return before, after, nil
}

// storedHeader is a header as quarantined_records.headers stores it
// (the value base64, as encoding/json writes bytes).
type storedHeader struct {
	Key   string `json:"key"`
	Value []byte `json:"value"`
}

// InsertQuarantined stores kr raw in quarantined_records, with the consumer
// that set it aside and the reason; storing it twice (the same coordinates)
// changes nothing.
func (t *Tx) InsertQuarantined(ctx context.Context, consumer string, kr *kgo.Record, reason string) error {
	hs := make([]storedHeader, 0, len(kr.Headers))
	for _, h := range kr.Headers {
		hs = append(hs, storedHeader{Key: Text(h.Key), Value: h.Value})
	}
	headers, _ := json.Marshal(hs)
	if _, err := t.tx.Exec(ctx, `INSERT INTO quarantined_records (consumer, topic, "partition", "offset", key, value, headers, error)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (consumer, topic, "partition", "offset") DO NOTHING`,
		consumer, kr.Topic, kr.Partition, kr.Offset, kr.Key, kr.Value, headers, Text(reason)); err != nil {
		return fmt.Errorf("store: quarantine: %w", err)
	}
	return nil
}

// storable makes a row's strings and JSON documents storable (Text, JSON).
func storable(row map[string]any) map[string]any {
	for k, v := range row {
		switch x := v.(type) {
		case string:
			row[k] = Text(x)
		case json.RawMessage:
			row[k] = json.RawMessage(JSON(x))
		}
	}
	return row
}

func orNullInt(n int) any {
	if n == 0 {
		return nil
	}
	return n
}

func orNullText(s string) any {
	if s == "" {
		return nil
	}
	return s
}
