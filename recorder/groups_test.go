package recorder_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/schemas"
)

// groupStatus is an aggregate-groups record of a group.
func groupStatus(t *testing.T, tenant, rule, group, state string, since time.Time, matched int64) (key, value []byte) {
	t.Helper()
	info := schemas.AggregateGroupInfo{TenantID: tenant, RuleID: rule, RuleVersion: 1, GroupKey: group,
		Group: map[string]string{"workflow.name": "nightly-etl"}, State: state, Value: schemas.AggregateValue{Matched: &matched}}
	if state != schemas.AggregateStateInactive {
		info.FiringSince, info.IncidentID = &since, "inc_"+strings.TrimPrefix(group, "grp_")
	}
	if state == schemas.AggregateStateResolving {
		later := since.Add(time.Minute)
		info.ResolvingSince = &later
	}
	v, err := json.Marshal(schemas.AggregateGroupStatus{Group: &info})
	if err != nil {
		t.Fatal(err)
	}
	if err := schemas.Validate(schemas.KindAggregateGroup, v); err != nil {
		t.Fatalf("group status %s: %v", v, err)
	}
	return schemas.RecordKey(tenant, rule+"/"+group), v
}

// The recorder keeps the latest status of each group and the summary of
// each rule from the compacted aggregate-groups topic, deletes what a
// tombstone removes, quarantines a record that is not about its key, and a
// second recorder reading the topic from the start changes nothing.
func TestRecorderStoresGroupStatuses(t *testing.T) {
	t.Parallel()
	l := start(t, nil)
	ctx := context.Background()
	since := time.Date(2026, 11, 28, 10, 2, 0, 0, time.UTC)
	topic := l.topics.AggregateGroups
	grpA, grpB := "grp_"+strings.Repeat("a", 32), "grp_"+strings.Repeat("b", 32)

	// Garbage first: a value that is not about its key, a key that names
	// no group.
	_, wrong := groupStatus(t, "acme", "rul_1", grpA, schemas.AggregateStateFiring, since, 3)
	l.produce(t, topic, schemas.RecordKey("globex", "rul_1/"+grpA), wrong)
	l.produce(t, topic, []byte("acme/rul_1/x/y"), nil)

	// grp_a fires, then resolves (its newest record wins); grp_b appears
	// and is dropped (tombstone); rul_1's summary is reported twice.
	for _, st := range []string{schemas.AggregateStateFiring, schemas.AggregateStateResolving} {
		k, v := groupStatus(t, "acme", "rul_1", grpA, st, since, 3)
		l.produce(t, topic, k, v)
	}
	k, v := groupStatus(t, "acme", "rul_1", grpB, schemas.AggregateStateInactive, since, 1)
	l.produce(t, topic, k, v)
	l.produce(t, topic, k, nil)
	for _, n := range []int64{2, 1} {
		sum, _ := json.Marshal(schemas.AggregateGroupStatus{Rule: &schemas.AggregateRuleSummary{TenantID: "acme", RuleID: "rul_1", Groups: n, Dropped: 12, Late: 3}})
		l.produce(t, topic, schemas.RecordKey("acme", "rul_1"), sum)
	}
	// Another rule's summary, then its tombstone.
	other, _ := json.Marshal(schemas.AggregateGroupStatus{Rule: &schemas.AggregateRuleSummary{TenantID: "acme", RuleID: "rul_2", Groups: 1}})
	l.produce(t, topic, schemas.RecordKey("acme", "rul_2"), other)
	l.produce(t, topic, schemas.RecordKey("acme", "rul_2"), nil)

	testenv.Eventually(t, "group statuses stored", func() (bool, string) {
		var state string
		var resolving *time.Time
		_ = l.pool.QueryRow(ctx, `SELECT state, resolving_since FROM aggregate_groups WHERE group_key = $1`, grpA).Scan(&state, &resolving)
		groups := l.count(t, `SELECT count(*) FROM aggregate_groups`)
		stats := l.count(t, `SELECT count(*) FROM aggregate_rule_stats WHERE groups = 1 AND dropped = 12 AND late = 3`)
		allStats := l.count(t, `SELECT count(*) FROM aggregate_rule_stats`)
		return state == "resolving" && resolving != nil && groups == 1 && stats == 1 && allStats == 1,
			fmt.Sprintf("grp_a %q resolving %v; %d groups; %d/%d stats", state, resolving, groups, stats, allStats)
	})
	var values, value map[string]any
	var firing time.Time
	var incident string
	if err := l.pool.QueryRow(ctx, `SELECT group_values, value, firing_since, incident_id FROM aggregate_groups WHERE tenant_id = 'acme' AND rule_id = 'rul_1' AND group_key = $1`, grpA).
		Scan(&values, &value, &firing, &incident); err != nil {
		t.Fatal(err)
	}
	if values["workflow.name"] != "nightly-etl" || value["matched"] != float64(3) || !firing.Equal(since) || incident != "inc_"+strings.Repeat("a", 32) {
		t.Errorf("grp_a row: group %v value %v firing_since %v incident %s", values, value, firing, incident)
	}
	// The two bad records may sit on another partition than the rows above.
	testenv.WaitMetric(t, l.reg, 30*time.Second, "both bad records skipped", func(v float64) bool { return v >= 2 }, "exo_recorder_skipped_records_total")
	if n := testenv.Metric(t, l.reg, "exo_recorder_skipped_records_total"); n != 2 {
		t.Errorf("skipped %v records, want 2 (wrong key, bad key)", n)
	}

	// A second recorder reads the topic from the start: every row stays as
	// it is (rows are replaced only by newer offsets; updated_at included).
	state := func() string {
		var s string
		if err := l.pool.QueryRow(ctx, `SELECT coalesce(string_agg(row_to_json(g)::text, ',' ORDER BY group_key), '') ||
			(SELECT coalesce(string_agg(row_to_json(s)::text, ',' ORDER BY rule_id), '') FROM aggregate_rule_stats s)
			FROM aggregate_groups g`).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	before := state()
	group := "replay-" + testenv.HexID(4)
	l.run(t, group, nil)
	testenv.Eventually(t, "second recorder caught up", func() (bool, string) { return l.caughtUp(t, group) })
	if after := state(); after != before {
		t.Errorf("re-reading aggregate-groups changed the rows:\nbefore %s\nafter  %s", before, after)
	}
}
