package recorder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/exospherehost/exo-alerts/internal/loop"
	"github.com/exospherehost/exo-alerts/internal/model"
	"github.com/exospherehost/exo-alerts/internal/store"
	"github.com/exospherehost/exo-alerts/schemas"
)

// store writes items in one transaction until it succeeds or ctx ends
// (false). Transient errors are retried (an outage is logged once, and its
// end). A data error (store.IsDataError) splits the items in halves,
// written each on its own, down to the single records at fault, which are
// quarantined: every other record is written, and none blocks the loop.
func (r *recorder) store(ctx context.Context, items []item) bool {
	for {
		b := batchOf(items)
		err := r.db.System(ctx, func(tx *store.Tx) error { return r.write(ctx, tx, b) })
		if err == nil {
			r.pg.OK()
			r.quarantined(b.invalid)
			r.countNotices()
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if store.IsDataError(err) {
			r.pg.OK() // Postgres answered
			if len(items) == 1 {
				it := items[0]
				if it.invalid != nil {
					// Not even quarantine can hold it (cannot happen: the
					// raw bytes go to bytea columns).
					r.log.Error("record refused by postgres, also in quarantine; skipped", "topic", it.kr.Topic,
						"partition", it.kr.Partition, "offset", it.kr.Offset, "err", err, "cause", it.invalid)
					return true
				}
				return r.store(ctx, []item{{kr: it.kr, invalid: err, refused: true}})
			}
			h := len(items) / 2
			return r.store(ctx, items[:h]) && r.store(ctx, items[h:])
		}
		r.m.failures.Inc()
		if !loop.Sleep(ctx, r.pg.Failed(err)) {
			return false
		}
	}
}

// quarantined counts and logs the items a committed batch quarantined.
func (r *recorder) quarantined(items []item) {
	for _, it := range items {
		kr := it.kr
		if it.refused {
			r.m.quarantined.WithLabelValues(kr.Topic).Inc()
			r.log.Error("record refused by postgres; quarantined", "topic", kr.Topic, "partition", kr.Partition,
				"offset", kr.Offset, "err", it.invalid)
			continue
		}
		r.m.skipped.WithLabelValues(kr.Topic).Inc()
		r.log.Error("invalid record; quarantined", "topic", kr.Topic, "partition", kr.Partition,
			"offset", kr.Offset, "err", it.invalid)
	}
}

// write stores a batch in one transaction. Every statement is idempotent:
// writing a batch twice leaves what writing it once left.
func (r *recorder) write(ctx context.Context, tx *store.Tx, b *batch) error {
	r.created = r.created[:0]
	if err := tx.InsertAlerts(ctx, b.alerts); err != nil {
		return err
	}
	r.count("alerts", len(b.alerts))
	fresh, err := tx.InsertAttempts(ctx, b.attempts)
	if err != nil {
		return err
	}
	r.count("delivery_attempts", len(b.attempts))
	dead := make([]store.DeadLetter, 0, len(b.dead))
	for _, d := range b.dead {
		dead = append(dead, d)
	}
	if err := tx.UpsertDeadLetters(ctx, dead); err != nil {
		return err
	}
	r.count("dead_letters", len(dead))
	if err := r.noticeDeadLetters(ctx, tx, dead); err != nil {
		return err
	}
	if err := r.noticeHealth(ctx, tx, b.health); err != nil {
		return err
	}
	// Only an attempt seen for the first time disables its rule: a replay
	// of the topic never disables a rule again. The system's own
	// deliveries (tests, notices) have no rule to disable.
	for _, a := range fresh {
		if a.Outcome != schemas.OutcomeEndpointGone || internalRule(a.RuleID) {
			continue
		}
		if err := r.disableRule(ctx, tx, a); err != nil {
			return err
		}
	}
	for _, re := range b.ruleErrors {
		kept, err := tx.KeepRuleError(ctx, re)
		if err != nil {
			return fmt.Errorf("recorder: %w", err)
		}
		n := 0.0
		if kept {
			n = 1
		}
		r.m.recorded.WithLabelValues(lastErrorTable).Add(n)
	}
	if err := tx.ApplyGroupStatuses(ctx, b.groups); err != nil {
		return fmt.Errorf("recorder: %w", err)
	}
	r.count(groupsTable, len(b.groups))
	// Each quota-usage record once, by its coordinates: a re-read adds
	// nothing.
	n, err := tx.InsertQuotaSuppressions(ctx, b.quota)
	if err != nil {
		return err
	}
	r.count(quotaTable, int(n))
	if err := r.noticeQuota(ctx, tx, b.quota); err != nil {
		return err
	}
	for _, it := range b.invalid {
		if err := tx.InsertQuarantined(ctx, consumer, it.kr, it.invalid.Error()); err != nil {
			return fmt.Errorf("recorder: %w", err)
		}
	}
	return nil
}

// count adds n rows written to table (none: no series is touched).
func (r *recorder) count(table string, n int) {
	if n > 0 {
		r.m.recorded.WithLabelValues(table).Add(float64(n))
	}
}

// disableRule deactivates the rule of an attempt its endpoint answered with
// 404 or 410, if the rule is still active, not deleted, and unchanged since
// it made the alert: still the version the result carries (a user who
// re-enabled or edited it since has the last word, whatever the clocks
// say). Results without a version (older dispatchers) fall back to
// comparing the attempt time with the rule's last change. Audit row and
// outbox snapshot go in the same transaction.
func (r *recorder) disableRule(ctx context.Context, tx *store.Tx, a schemas.ResultRecord) error {
	status := "404/410"
	if a.StatusCode != 0 {
		status = strconv.Itoa(a.StatusCode)
	}
	reason := fmt.Sprintf("disabled automatically: endpoint %s answered HTTP %s (gone) to alert %s at %s; fix the endpoint, then re-enable the rule",
		a.EndpointID, status, a.AlertID, a.AttemptedAt.UTC().Format(time.RFC3339))
	before, after, err := tx.DisableUnchangedRule(ctx, a.TenantID, a.RuleID, a.RuleVersion, a.AttemptedAt, reason)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("recorder: %w", err)
	}
	if err := tx.InsertAudit(ctx, a.TenantID, "system", "alert_rule.disable", "alert_rule", a.RuleID,
		model.RuleOf(before), model.RuleOf(after), "delivery:"+a.DeliveryID); err != nil {
		return err
	}
	snap, _ := json.Marshal(after.Record())
	if err := tx.InsertOutbox(ctx, r.cfg.Topics.Rules, schemas.TenantKey(a.TenantID, a.RuleID), snap); err != nil {
		return err
	}
	if err := r.noticeRuleDisabled(ctx, tx, a, after); err != nil {
		return err
	}
	r.m.disabled.Inc()
	r.log.Warn("alert rule disabled: endpoint gone", "tenant_id", a.TenantID, "rule_id", a.RuleID,
		"endpoint_id", a.EndpointID, "status", a.StatusCode, "alert_id", a.AlertID)
	return nil
}
