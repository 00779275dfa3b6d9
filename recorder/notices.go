// Health notices (docs/design/aggregate-alerts.md §6): what the recorder
// sees go wrong for a tenant — a rule disabled on 404/410, an endpoint
// whose breaker stays open, alerts dead-lettered — becomes a row of
// notices, under an id derived from the occurrence (store.NoticeID), in the
// transaction that records the occurrence: one notice per occurrence
// whatever is read again. A new notice is also delivered, as a signed
// tenant.notice, to the endpoint the tenant chose for them.

package recorder

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/exospherehost/exo-alerts/internal/store"
	"github.com/exospherehost/exo-alerts/schemas"
)

// noticeMaxAttempts is the attempts of a tenant.notice delivery.
const noticeMaxAttempts = 8

// deadTenantDisabled begins the last error of a delivery the dispatcher set
// aside because the rollout switched its tenant off: not the endpoint's
// failure, no notice.
const deadTenantDisabled = "tenant_disabled"

// internalRule reports whether rule is the rule id of deliveries the
// system makes for itself (test deliveries, notices): their failures make
// no notice and disable nothing, so that a failing notice endpoint cannot
// feed itself.
func internalRule(rule string) bool {
	return rule == schemas.TestRuleID || rule == schemas.NoticeRuleID
}

// noticeRuleDisabled records that a disabled rule: after is the rule as the
// disable left it, whose version names this disable (a rule re-enabled and
// disabled again gets a new one).
func (r *recorder) noticeRuleDisabled(ctx context.Context, tx *store.Tx, a schemas.ResultRecord, after *store.RuleRow) error {
	status := "404/410"
	if a.StatusCode != 0 {
		status = fmt.Sprint(a.StatusCode)
	}
	n := &store.Notice{
		TenantID: a.TenantID, Kind: store.NoticeRuleDisabled,
		DedupKey: fmt.Sprintf("rule_disabled/%s/%d", a.RuleID, after.Version),
		RuleID:   a.RuleID, EndpointID: a.EndpointID,
		Title: fmt.Sprintf("Alert rule %q was disabled: its webhook endpoint answered HTTP %s (gone)", after.Name, status),
		Detail: map[string]any{"status_code": a.StatusCode, "alert_id": a.AlertID, "rule_name": after.Name,
			"rule_version": after.Version, "attempted_at": a.AttemptedAt.UTC()},
	}
	return r.notice(ctx, tx, n, a.AttemptedAt)
}

// noticeDeadLetters keeps, for every endpoint and UTC hour of the dead
// letters just written, a dead_letters notice counting them: created by the
// first, its count recomputed from the table after each batch (reading a
// dead letter again changes nothing).
func (r *recorder) noticeDeadLetters(ctx context.Context, tx *store.Tx, dead []store.DeadLetter) error {
	hours := map[store.DeadLetterHour]bool{}
	for _, d := range dead {
		if internalRule(d.Record.RuleID) || strings.HasPrefix(d.LastError, deadTenantDisabled) {
			continue
		}
		hours[store.DeadLetterHour{TenantID: d.Record.TenantID, EndpointID: d.Record.EndpointID, Hour: d.DeadAt.UTC().Truncate(time.Hour)}] = true
	}
	keys := make([]store.DeadLetterHour, 0, len(hours))
	for h := range hours {
		keys = append(keys, h)
	}
	// One order for every batch: two recorders never lock notices in
	// opposite orders.
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.TenantID != b.TenantID {
			return a.TenantID < b.TenantID
		}
		if a.EndpointID != b.EndpointID {
			return a.EndpointID < b.EndpointID
		}
		return a.Hour.Before(b.Hour)
	})
	for _, h := range keys {
		count, err := tx.CountDeadLetters(ctx, h)
		if err != nil {
			return fmt.Errorf("recorder: %w", err)
		}
		if count == 0 {
			continue
		}
		hour := h.Hour.Format("2006-01-02T15Z")
		n := &store.Notice{
			TenantID: h.TenantID, Kind: store.NoticeDeadLetters,
			DedupKey: "dead_letters/" + h.EndpointID + "/" + hour, EndpointID: h.EndpointID, Count: count,
			Title: fmt.Sprintf("Alerts to webhook endpoint %s were dead-lettered (hour %s UTC): out of attempts or refused; see its dead letters to replay them",
				h.EndpointID, h.Hour.Format("2006-01-02 15:00")),
			Detail: map[string]any{"hour": h.Hour},
		}
		if err := r.notice(ctx, tx, n, h.Hour); err != nil {
			return err
		}
		if err := tx.SetNoticeCount(ctx, n.ID, count); err != nil {
			return fmt.Errorf("recorder: %w", err)
		}
	}
	return nil
}

// noticeHealth turns endpoint-health records, in the order read, into
// endpoint_unhealthy notices and their resolution.
func (r *recorder) noticeHealth(ctx context.Context, tx *store.Tx, recs []schemas.EndpointHealthRecord) error {
	for _, h := range recs {
		if h.State == schemas.EndpointHealthy {
			if _, err := tx.ResolveUnhealthy(ctx, h.TenantID, h.EndpointID, h.At); err != nil {
				return fmt.Errorf("recorder: %w", err)
			}
			continue
		}
		since := h.Since.UTC()
		detail := map[string]any{"since": since, "consecutive_failures": h.ConsecutiveFailures, "instance": h.Instance}
		if h.LastErrorClass != "" {
			detail["last_error_class"] = h.LastErrorClass
		}
		n := &store.Notice{
			TenantID: h.TenantID, Kind: store.NoticeEndpointUnhealthy,
			DedupKey: "endpoint_unhealthy/" + h.EndpointID + "/" + since.Format(time.RFC3339Nano), EndpointID: h.EndpointID,
			Title: fmt.Sprintf("Webhook endpoint %s keeps failing: its circuit breaker has been open since %s UTC; alerts to it wait in the retry tiers",
				h.EndpointID, since.Format("2006-01-02 15:04")),
			Detail: detail,
		}
		if err := r.notice(ctx, tx, n, h.At); err != nil {
			return err
		}
	}
	return nil
}

// noticeQuota keeps a quota_exceeded notice per tenant and UTC hour of the
// suppressions in recs (stored in quota_suppressions by the same
// transaction before), its count summed from the table.
func (r *recorder) noticeQuota(ctx context.Context, tx *store.Tx, recs []store.QuotaSuppression) error {
	type th struct {
		tenant string
		hour   time.Time
	}
	seen := map[th]bool{}
	for _, q := range recs {
		k := th{q.TenantID, q.Minute.UTC().Truncate(time.Hour)}
		if seen[k] {
			continue
		}
		seen[k] = true
		count, err := tx.CountQuotaSuppressed(ctx, k.tenant, k.hour)
		if err != nil {
			return fmt.Errorf("recorder: %w", err)
		}
		if count == 0 {
			continue
		}
		hour := k.hour.Format("2006-01-02T15Z")
		n := &store.Notice{
			TenantID: k.tenant, Kind: store.NoticeQuotaExceeded, DedupKey: "quota_exceeded/" + hour, Count: count,
			Title: fmt.Sprintf("Alerts were suppressed by the delivery quota (hour %s UTC); GET /v1/quota counts them",
				k.hour.Format("2006-01-02 15:00")),
			Detail: map[string]any{"hour": k.hour},
		}
		if err := r.notice(ctx, tx, n, k.hour); err != nil {
			return err
		}
		if err := tx.SetNoticeCount(ctx, n.ID, count); err != nil {
			return fmt.Errorf("recorder: %w", err)
		}
	}
	return nil
}

// notice stores n (at: when its occurrence was reported) and, if it is
// new and the tenant's settings name an active endpoint for its kind,
// queues its tenant.notice delivery in the same transaction.
func (r *recorder) notice(ctx context.Context, tx *store.Tx, n *store.Notice, at time.Time) error {
	fresh, err := tx.InsertNotice(ctx, n, at)
	if err != nil {
		return fmt.Errorf("recorder: %w", err)
	}
	if !fresh {
		return nil
	}
	r.created = append(r.created, n.Kind)
	r.log.Info("health notice", "tenant_id", n.TenantID, "notice_id", n.ID, "kind", n.Kind, "rule_id", n.RuleID, "endpoint_id", n.EndpointID)
	endpoint, err := tx.NoticeEndpoint(ctx, n.TenantID, n.Kind)
	if err != nil || endpoint == "" {
		return err
	}
	value, alertID, err := noticeDelivery(n, endpoint)
	if err == nil {
		err = schemas.Validate(schemas.KindDelivery, value)
	}
	if err != nil {
		// Cannot happen (the notice is ours); the notice stays, undelivered.
		r.log.Error("health notice not deliverable", "tenant_id", n.TenantID, "notice_id", n.ID, "err", err)
		return nil
	}
	return tx.QueueNoticeDelivery(ctx, n.ID, alertID, r.cfg.Topics.Deliveries, schemas.RecordKey(n.TenantID, endpoint), value)
}

// countNotices counts the notices of the transaction that committed.
func (r *recorder) countNotices() {
	for _, kind := range r.created {
		r.m.notices.WithLabelValues(kind).Inc()
	}
	r.created = r.created[:0]
}

// noticeDelivery is the deliveries record of notice n to endpoint: payload
// v1 of type tenant.notice (workflow and run are placeholders, as in a
// test delivery) with data.notice, and its alert id.
func noticeDelivery(n *store.Notice, endpoint string) ([]byte, string, error) {
	alertID := store.NoticeAlertID(n.TenantID, n.ID)
	at := n.CreatedAt.UTC()
	pn := &schemas.PayloadNotice{ID: n.ID, Kind: n.Kind, Title: n.Title, Count: n.Count, CreatedAt: at}
	if n.RuleID != "" {
		pn.RuleID = &n.RuleID
	}
	if n.EndpointID != "" {
		pn.EndpointID = &n.EndpointID
	}
	payload, err := json.Marshal(schemas.WebhookPayload{
		Type: schemas.TypeTenantNotice, Timestamp: at,
		Data: schemas.PayloadData{
			AlertID: alertID, TenantID: n.TenantID,
			Rule:     schemas.RuleRef{ID: schemas.NoticeRuleID, Name: "Health notice"},
			Event:    schemas.EventRef{ID: n.ID, Type: schemas.TypeTenantNotice, OccurredAt: at},
			Workflow: schemas.Workflow{ID: "-", Name: "-"},
			Run:      schemas.PayloadRun{ID: "-"},
			Labels:   map[string]string{},
			Notice:   pn,
		},
	})
	if err != nil {
		return nil, "", fmt.Errorf("recorder: notice payload: %w", err)
	}
	value, err := json.Marshal(schemas.DeliveryRecord{
		AlertID: alertID, TenantID: n.TenantID, RuleID: schemas.NoticeRuleID, EndpointID: endpoint,
		EventType: schemas.TypeTenantNotice, MaxAttempts: noticeMaxAttempts, Severity: "warning", CreatedAt: at, Payload: payload,
	})
	if err != nil {
		return nil, "", fmt.Errorf("recorder: notice delivery: %w", err)
	}
	return value, alertID, nil
}
