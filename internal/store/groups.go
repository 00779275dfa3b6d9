package store

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/exospherehost/exo-alerts/schemas"
)

// The current state of aggregate rules' groups (docs/design/
// aggregate-alerts.md §4): the recorder stores the compacted
// aggregate-groups topic in aggregate_groups and aggregate_rule_stats; the
// control plane reads them for the groups API.

// GroupStatus is one aggregate-groups record as the recorder stores it: a
// group's status, a rule's summary, or a tombstone of either (both nil).
// Tenant, Rule and GroupKey come from the record key (GroupKey "" for a
// rule's summary).
type GroupStatus struct {
	Partition              int32
	Offset                 int64
	Tenant, Rule, GroupKey string
	Group                  *schemas.AggregateGroupInfo
	Summary                *schemas.AggregateRuleSummary
}

// ErrGroupStatusKey: an aggregate-groups record key is neither
// tenant/rule nor tenant/rule/grp_….
var ErrGroupStatusKey = errors.New("store: aggregate-groups key is neither tenant/rule nor tenant/rule/grp_…")

// ParseGroupStatusKey splits an aggregate-groups record key into tenant,
// rule and group key ("" for a rule's summary).
func ParseGroupStatusKey(key string) (tenant, rule, group string, err error) {
	parts := strings.Split(key, "/")
	switch {
	case len(parts) == 2 && parts[0] != "" && parts[1] != "":
		return parts[0], parts[1], "", nil
	case len(parts) == 3 && parts[0] != "" && parts[1] != "" && strings.HasPrefix(parts[2], "grp_"):
		return parts[0], parts[1], parts[2], nil
	}
	return "", "", "", fmt.Errorf("%w: %q", ErrGroupStatusKey, key)
}

// ApplyGroupStatuses stores aggregate-groups records in their order. Each
// write is conditional on the Kafka offset (a key always lands on one
// partition): a status replaces the row only if it is newer than the one
// stored, a tombstone deletes only older rows. Applying the same records
// again, in whole or in part, changes nothing.
func (t *Tx) ApplyGroupStatuses(ctx context.Context, recs []GroupStatus) error {
	for _, r := range recs {
		var err error
		switch {
		case r.Group != nil:
			err = t.upsertGroup(ctx, r)
		case r.Summary != nil:
			_, err = t.tx.Exec(ctx, `INSERT INTO aggregate_rule_stats AS s (tenant_id, rule_id, groups, dropped, late, kafka_partition, kafka_offset)
				VALUES ($1, $2, $3, $4, $5, $6, $7)
				ON CONFLICT (tenant_id, rule_id) DO UPDATE SET groups = excluded.groups, dropped = excluded.dropped, late = excluded.late,
					kafka_partition = excluded.kafka_partition, kafka_offset = excluded.kafka_offset, updated_at = now()
				WHERE excluded.kafka_offset > s.kafka_offset`,
				r.Summary.TenantID, r.Summary.RuleID, r.Summary.Groups, r.Summary.Dropped, r.Summary.Late, r.Partition, r.Offset)
		case r.GroupKey != "":
			_, err = t.tx.Exec(ctx, `DELETE FROM aggregate_groups WHERE tenant_id = $1 AND rule_id = $2 AND group_key = $3 AND kafka_offset < $4`,
				r.Tenant, r.Rule, r.GroupKey, r.Offset)
		default:
			_, err = t.tx.Exec(ctx, `DELETE FROM aggregate_rule_stats WHERE tenant_id = $1 AND rule_id = $2 AND kafka_offset < $3`,
				r.Tenant, r.Rule, r.Offset)
		}
		if err != nil {
			return fmt.Errorf("store: apply aggregate group status: %w", err)
		}
	}
	return nil
}

func (t *Tx) upsertGroup(ctx context.Context, r GroupStatus) error {
	g := r.Group
	values, _ := json.Marshal(g.Group)
	if g.Group == nil {
		values = []byte("{}")
	}
	value, _ := json.Marshal(g.Value)
	var incident *string
	if g.IncidentID != "" {
		incident = &g.IncidentID
	}
	_, err := t.tx.Exec(ctx, `INSERT INTO aggregate_groups AS g (tenant_id, rule_id, group_key, group_values, state, firing_since,
			resolving_since, last_resolved_at, incident_id, value, last_event_at, evaluated_at, kafka_partition, kafka_offset)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
		ON CONFLICT (tenant_id, rule_id, group_key) DO UPDATE SET group_values = excluded.group_values, state = excluded.state,
			firing_since = excluded.firing_since, resolving_since = excluded.resolving_since,
			last_resolved_at = excluded.last_resolved_at, incident_id = excluded.incident_id, value = excluded.value,
			last_event_at = excluded.last_event_at, evaluated_at = excluded.evaluated_at,
			kafka_partition = excluded.kafka_partition, kafka_offset = excluded.kafka_offset, updated_at = now()
		WHERE excluded.kafka_offset > g.kafka_offset`,
		g.TenantID, g.RuleID, g.GroupKey, values, g.State, g.FiringSince, g.ResolvingSince, g.LastResolvedAt, incident, value,
		g.LastEventAt, g.EvaluatedAt, r.Partition, r.Offset)
	return err
}

// GroupRow is an aggregate_groups row, with its rule's name.
type GroupRow struct {
	RuleID, RuleName, GroupKey               string
	Group                                    map[string]string
	State                                    string
	FiringSince, ResolvingSince              *time.Time
	LastResolvedAt, LastEventAt, EvaluatedAt *time.Time
	IncidentID                               *string
	Value                                    schemas.AggregateValue
	UpdatedAt                                time.Time
}

// GroupCursor is a position in a list of groups ordered by (rule_id,
// group_key).
type GroupCursor struct{ RuleID, GroupKey string }

func (c GroupCursor) String() string {
	return base64.RawURLEncoding.EncodeToString([]byte(c.RuleID + "|" + c.GroupKey))
}

// ParseGroupCursor reads a GroupCursor's String; "" is no cursor (nil).
func ParseGroupCursor(s string) (*GroupCursor, error) {
	if s == "" {
		return nil, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, errors.New("malformed cursor")
	}
	rule, group, ok := strings.Cut(string(raw), "|")
	if !ok || rule == "" || group == "" {
		return nil, errors.New("malformed cursor")
	}
	return &GroupCursor{RuleID: rule, GroupKey: group}, nil
}

// GroupFilter narrows ListGroups; zero members do not filter.
type GroupFilter struct {
	RuleID, State string
}

// ListGroups returns up to limit groups of the tenant's rules (not
// deleted) after cur, in (rule_id, group_key) order — stable while their
// states change — and the cursor of the next page ("" on the last).
func (t *Tx) ListGroups(ctx context.Context, cur *GroupCursor, limit int, f GroupFilter) ([]*GroupRow, string, error) {
	args := []any{t.tenant, limit + 1}
	where := ""
	if cur != nil {
		args = append(args, cur.RuleID, cur.GroupKey)
		where += ` AND (g.rule_id, g.group_key) > ($3, $4)`
	}
	if f.RuleID != "" {
		args = append(args, f.RuleID)
		where += fmt.Sprintf(` AND g.rule_id = $%d`, len(args))
	}
	if f.State != "" {
		args = append(args, f.State)
		where += fmt.Sprintf(` AND g.state = $%d`, len(args))
	}
	rows, err := t.tx.Query(ctx, `SELECT g.rule_id, r.name, g.group_key, g.group_values, g.state, g.firing_since, g.resolving_since,
			g.last_resolved_at, g.last_event_at, g.evaluated_at, g.incident_id, g.value, g.updated_at
		FROM aggregate_groups g JOIN alert_rules r ON r.tenant_id = g.tenant_id AND r.id = g.rule_id AND r.deleted_at IS NULL
		WHERE g.tenant_id = $1`+where+` ORDER BY g.rule_id, g.group_key LIMIT $2`, args...)
	if err != nil {
		return nil, "", fmt.Errorf("store: list aggregate groups: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*GroupRow, error) {
		var g GroupRow
		var values, value []byte
		if err := row.Scan(&g.RuleID, &g.RuleName, &g.GroupKey, &values, &g.State, &g.FiringSince, &g.ResolvingSince,
			&g.LastResolvedAt, &g.LastEventAt, &g.EvaluatedAt, &g.IncidentID, &value, &g.UpdatedAt); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(values, &g.Group); err != nil {
			return nil, fmt.Errorf("group_values column: %w", err)
		}
		if err := json.Unmarshal(value, &g.Value); err != nil {
			return nil, fmt.Errorf("value column: %w", err)
		}
		return &g, nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("store: list aggregate groups: %w", err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		last := out[len(out)-1]
		next = GroupCursor{RuleID: last.RuleID, GroupKey: last.GroupKey}.String()
	}
	return out, next, nil
}

// RuleGroupStats is what the processor last reported of a rule's groups.
type RuleGroupStats struct {
	Groups, Dropped, Late int64
}

// GroupStats returns the last reported summary of rule's groups; without
// one yet, Groups counts the groups stored.
func (t *Tx) GroupStats(ctx context.Context, rule string) (RuleGroupStats, error) {
	var s RuleGroupStats
	err := t.tx.QueryRow(ctx, `SELECT groups, dropped, late FROM aggregate_rule_stats WHERE tenant_id = $1 AND rule_id = $2`,
		t.tenant, rule).Scan(&s.Groups, &s.Dropped, &s.Late)
	if errors.Is(err, pgx.ErrNoRows) {
		err = t.tx.QueryRow(ctx, `SELECT count(*) FROM aggregate_groups WHERE tenant_id = $1 AND rule_id = $2`, t.tenant, rule).Scan(&s.Groups)
	}
	if err != nil {
		return RuleGroupStats{}, fmt.Errorf("store: aggregate rule stats: %w", err)
	}
	return s, nil
}
