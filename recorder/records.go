package recorder

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/store"
	"github.com/exospherehost/exo-alerts/schemas"
)

// item is one consumed record, decoded: exactly one of the pointers, or
// invalid, is set.
type item struct {
	kr *kgo.Record
	// invalid says why the record can never be written: it is quarantined
	// instead (refused: Postgres refused it with a data error; otherwise it
	// could not be decoded or failed its schema).
	invalid error
	refused bool
	alert   *store.Alert
	attempt *schemas.ResultRecord
	dead    *store.DeadLetter
	ruleErr *schemas.RuleErrorRecord
	group   *store.GroupStatus
	quota   *store.QuotaSuppression
	health  *schemas.EndpointHealthRecord
}

// batch is what a run of items gives, sorted by table.
type batch struct {
	alerts     []store.Alert
	attempts   []schemas.ResultRecord
	dead       map[string]store.DeadLetter // by alert id: the latest death
	ruleErrors []schemas.RuleErrorRecord
	groups     []store.GroupStatus // in record order
	quota      []store.QuotaSuppression
	health     []schemas.EndpointHealthRecord // in the order read
	invalid    []item                         // quarantined
}

func batchOf(items []item) *batch {
	b := &batch{dead: map[string]store.DeadLetter{}}
	for _, it := range items {
		switch {
		case it.invalid != nil:
			b.invalid = append(b.invalid, it)
		case it.alert != nil:
			b.alerts = append(b.alerts, *it.alert)
		case it.attempt != nil:
			b.attempts = append(b.attempts, *it.attempt)
		case it.dead != nil:
			if prev, ok := b.dead[it.dead.Record.AlertID]; !ok || prev.DeadAt.Before(it.dead.DeadAt) {
				b.dead[it.dead.Record.AlertID] = *it.dead
			}
		case it.ruleErr != nil:
			b.ruleErrors = append(b.ruleErrors, *it.ruleErr)
		case it.group != nil:
			b.groups = append(b.groups, *it.group)
		case it.quota != nil:
			b.quota = append(b.quota, *it.quota)
		case it.health != nil:
			b.health = append(b.health, *it.health)
		}
	}
	return b
}

// decode decodes records; what is not valid becomes an item to quarantine.
func (r *recorder) decode(recs []*kgo.Record) []item {
	t := r.cfg.Topics
	var items []item
	for _, kr := range recs {
		skip := func(reason error) {
			items = append(items, item{kr: kr, invalid: reason})
		}
		switch kr.Topic {
		case t.Deliveries, t.DeliveriesDLQ:
			dp, err := schemas.DecodeDelivery(kr.Value)
			if err != nil {
				skip(err)
				continue
			}
			d := *dp
			if kr.Topic == t.Deliveries {
				items = append(items, item{kr: kr, alert: &store.Alert{Record: d, Raw: kr.Value}})
				continue
			}
			n, _ := strconv.Atoi(kafka.Header(kr, schemas.HeaderAttempts))
			dl := store.DeadLetter{Record: d, Raw: kr.Value, Attempts: n, LastError: kafka.Header(kr, schemas.HeaderLastError), DeadAt: kr.Timestamp.UTC()}
			if dl.LastError == "" {
				dl.LastError = "unknown"
			}
			items = append(items, item{kr: kr, dead: &dl})
		case t.DeliveryResults:
			res, err := schemas.DecodeResult(kr.Value)
			if err != nil {
				skip(err)
				continue
			}
			items = append(items, item{kr: kr, attempt: res})
		case t.RuleErrors:
			re, err := decodeRuleError(kr.Value)
			if err != nil {
				skip(err)
				continue
			}
			items = append(items, item{kr: kr, ruleErr: re})
		case t.AggregateGroups:
			gs, err := decodeGroupStatus(kr)
			if err != nil {
				skip(err)
				continue
			}
			items = append(items, item{kr: kr, group: gs})
		case t.QuotaUsage:
			q, err := decodeQuotaUsage(kr)
			if err != nil {
				skip(err)
				continue
			}
			items = append(items, item{kr: kr, quota: q})
		case t.EndpointHealth:
			var h schemas.EndpointHealthRecord
			err := schemas.Validate(schemas.KindEndpointHealth, kr.Value)
			if err == nil {
				err = json.Unmarshal(kr.Value, &h)
			}
			if err != nil {
				skip(err)
				continue
			}
			items = append(items, item{kr: kr, health: &h})
		}
	}
	return items
}

// decodeGroupStatus decodes a record of the compacted aggregate-groups
// topic: a group's status, a rule's summary, or (no value) a tombstone of
// the key's group or summary. The value must be about its key.
func decodeGroupStatus(kr *kgo.Record) (*store.GroupStatus, error) {
	tenant, rule, group, err := store.ParseGroupStatusKey(string(kr.Key))
	if err != nil {
		return nil, err
	}
	gs := &store.GroupStatus{Partition: kr.Partition, Offset: kr.Offset, Tenant: tenant, Rule: rule, GroupKey: group}
	if kr.Value == nil {
		return gs, nil
	}
	if err := schemas.Validate(schemas.KindAggregateGroup, kr.Value); err != nil {
		return nil, err
	}
	var v schemas.AggregateGroupStatus
	if err := json.Unmarshal(kr.Value, &v); err != nil {
		return nil, fmt.Errorf("recorder: decode aggregate group status: %w", err)
	}
	switch {
	case v.Group != nil && group != "" && v.Group.TenantID == tenant && v.Group.RuleID == rule && v.Group.GroupKey == group:
		gs.Group = v.Group
	case v.Rule != nil && group == "" && v.Rule.TenantID == tenant && v.Rule.RuleID == rule:
		gs.Summary = v.Rule
	default:
		return nil, fmt.Errorf("recorder: aggregate group status %s is not about its key %q", kr.Value, kr.Key)
	}
	return gs, nil
}

func decodeRuleError(v []byte) (*schemas.RuleErrorRecord, error) {
	if err := schemas.Validate(schemas.KindRuleError, v); err != nil {
		return nil, err
	}
	var re schemas.RuleErrorRecord
	if err := json.Unmarshal(v, &re); err != nil {
		return nil, fmt.Errorf("recorder: decode rule error: %w", err)
	}
	return &re, nil
}

// decodeQuotaUsage decodes a quota-usage record into its row, stored once
// by the record's Kafka coordinates.
func decodeQuotaUsage(kr *kgo.Record) (*store.QuotaSuppression, error) {
	if err := schemas.Validate(schemas.KindQuotaUsage, kr.Value); err != nil {
		return nil, err
	}
	var u schemas.QuotaUsageRecord
	if err := json.Unmarshal(kr.Value, &u); err != nil {
		return nil, fmt.Errorf("recorder: decode quota usage: %w", err)
	}
	return &store.QuotaSuppression{Partition: kr.Partition, Offset: kr.Offset, TenantID: u.TenantID, Minute: u.Minute.UTC(),
		Scope: u.Scope, Suppressed: u.Suppressed, Limit: u.Limit}, nil
}
