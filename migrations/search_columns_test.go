package migrations_test

import (
	"context"
	"testing"

	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/migrations"
)

// 0014 gives every alert its run id and workflow name as columns (the
// deliveries search's indexes): alerts stored before it are filled by the
// migration, those stored after by its trigger, from the record's payload;
// down removes them and brings back the index 0014 replaced.
func TestSearchColumnsOfAlerts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testenv.Pool(t)
	all, err := migrations.All()
	if err != nil {
		t.Fatal(err)
	}
	for i := len(all) - 1; all[i].Version >= 14; i-- {
		if _, err := migrations.Down(ctx, pool); err != nil {
			t.Fatalf("down %04d: %v", all[i].Version, err)
		}
	}
	insert := func(id, run, workflow string) {
		t.Helper()
		if _, err := pool.Exec(ctx, `INSERT INTO alerts (alert_id, tenant_id, rule_id, endpoint_id, event_type, record, created_at)
			VALUES ($1, 'acme', 'rul_1', 'whk_1', 'workflow.run.failed',
				jsonb_build_object('payload', jsonb_build_object('data', jsonb_build_object(
					'run', jsonb_build_object('id', $2::text), 'workflow', jsonb_build_object('id', 'wf_1', 'name', $3::text)))), now())`,
			id, run, workflow); err != nil {
			t.Fatal(err)
		}
	}
	insert("alrt_before", "run_before", "nightly")
	if _, err := migrations.Up(ctx, pool); err != nil {
		t.Fatalf("up: %v", err)
	}
	insert("alrt_after", "run_after", "hourly")
	// A record without a run or workflow (none the processor makes) has
	// neither.
	if _, err := pool.Exec(ctx, `INSERT INTO alerts (alert_id, tenant_id, rule_id, endpoint_id, event_type, record, created_at)
		VALUES ('alrt_bare', 'acme', 'rul_1', 'whk_1', 'workflow.run.failed', '{}', now())`); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string][2]*string{
		"alrt_before": {ptr("run_before"), ptr("nightly")},
		"alrt_after":  {ptr("run_after"), ptr("hourly")},
		"alrt_bare":   {nil, nil},
	} {
		var run, workflow *string
		if err := pool.QueryRow(ctx, `SELECT run_id, workflow_name FROM alerts WHERE alert_id = $1`, id).Scan(&run, &workflow); err != nil {
			t.Fatal(err)
		}
		if str(run) != str(want[0]) || str(workflow) != str(want[1]) {
			t.Errorf("%s: run_id %s, workflow_name %s; want %s, %s", id, str(run), str(workflow), str(want[0]), str(want[1]))
		}
	}
	if _, err := migrations.Down(ctx, pool); err != nil {
		t.Fatalf("down 0014: %v", err)
	}
	var cols, oldIndex int
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM information_schema.columns WHERE table_name = 'alerts' AND column_name IN ('run_id', 'workflow_name')),
		(SELECT count(*) FROM pg_indexes WHERE indexname = 'alerts_tenant_idx')`).Scan(&cols, &oldIndex); err != nil {
		t.Fatal(err)
	}
	if cols != 0 || oldIndex != 1 {
		t.Errorf("after down: %d search columns, alerts_tenant_idx %d; want 0, 1", cols, oldIndex)
	}
}

func ptr(s string) *string { return &s }

func str(s *string) string {
	if s == nil {
		return "NULL"
	}
	return *s
}
