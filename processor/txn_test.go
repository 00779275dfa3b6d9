package processor_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/internal/workload"
	"github.com/exospherehost/exo-alerts/processor/engine"
	"github.com/exospherehost/exo-alerts/schemas"
)

// txnRuns is the backlog of TestTxn*: runs that start and fail, each run's
// two events one after the other (so in one batch), the failure alerting
// through rule "fail".
func txnRuns(e *kenv, tenant string, n int, at time.Time) (recs []*kgo.Record, want map[string]bool) {
	e.t.Helper()
	e.putEndpoint(tenant, "ep", true)
	e.putRule(schemas.RuleRecord{TenantID: tenant, ID: "fail", EventType: schemas.TypeRunFailed, WebhookEndpointID: "ep", IsActive: true})
	want = map[string]bool{}
	for i := range n {
		spec := workload.Spec{Tenant: tenant, Type: schemas.TypeRunStarted, WorkflowName: "etl", RunID: fmt.Sprintf("run_%05d", i),
			Time: at.Add(time.Duration(i) * time.Millisecond)}
		recs = append(recs, e.record(workload.Event(spec)))
		spec.Type, spec.Duration, spec.ErrorCode = schemas.TypeRunFailed, time.Second, "E1"
		spec.Time = spec.Time.Add(time.Second)
		failed := workload.Event(spec)
		recs = append(recs, e.record(failed))
		want[engine.AlertID(tenant, "fail", failed.ID)] = true
	}
	return recs, want
}

// changelog reads the run-state changelog up to its end: the records of
// committed transactions, by key, in order.
func (e *kenv) changelog() map[string][]*kgo.Record {
	e.t.Helper()
	c := e.collect(e.topics.RunState)
	c.drain()
	by := map[string][]*kgo.Record{}
	for _, r := range c.recs {
		by[string(r.Key)] = append(by[string(r.Key)], r)
	}
	return by
}

// TestTxnOneStateWritePerRun: a run that starts and fails in one batch has
// one record in the run-state changelog, its final state, not one per
// event; a run whose state is removed (its grace over) in the batch that
// wrote it has only the tombstone. A processor started after a restart
// restores that state: the failures sent again are duplicates, and no
// alert comes twice.
func TestTxnOneStateWritePerRun(t *testing.T) {
	t.Parallel()
	e := setup(t)
	const n = 150
	now := time.Now().UTC().Truncate(time.Millisecond)
	runs, want := txnRuns(e, "to", n, now.Add(-time.Minute))
	e.produce(runs...)
	// Runs that ended long ago, past their grace (10 minutes) once the
	// partition's watermark passes them: their states are written and
	// removed in the same batch. Then a later event on their partition.
	var gone, late []*kgo.Record
	for i := range 3 {
		spec := workload.Spec{Tenant: "to", Type: schemas.TypeRunSucceeded, WorkflowName: "etl", RunID: fmt.Sprintf("gone_%d", i),
			Time: now.Add(-20*time.Minute + time.Duration(i)*time.Millisecond), Duration: time.Second}
		gone = append(gone, e.onPartition(workload.Event(spec), 0))
	}
	late = append(late, e.onPartition(workload.Event(workload.Spec{Tenant: "to", Type: schemas.TypeRunStarted, WorkflowName: "etl",
		RunID: "late", Time: now.Add(-5 * time.Minute)}), 0))
	e.produceOn(append(gone, late...)...)

	deliveries := e.collect(e.topics.Deliveries)
	p := e.startProcessor("one", nil)
	deliveries.waitFor(60*time.Second, "the failure alerts", deliveries.has(want), deliveries.missing(want))
	e.waitCaughtUp(30 * time.Second)
	txns := testenv.Metric(t, p.reg, "exo_processor_transactions_total", "result", "committed")
	p.stop(t)

	states := e.changelog()
	for i := 0; i < len(runs); i += 2 {
		key := string(runs[i].Key)
		got := states[key]
		if len(got) != 1 {
			t.Fatalf("run %s has %d records in the changelog after %.0f transactions, want 1 (its last state)", key, len(got), txns)
		}
		var st schemas.RunState
		if err := json.Unmarshal(got[0].Value, &st); err != nil || st.FinishedAt == nil || len(st.Seen) != 2 {
			t.Fatalf("run %s: the changelog holds %q (%v), want the state after its failure", key, got[0].Value, err)
		}
	}
	for _, r := range gone {
		if got := states[string(r.Key)]; len(got) != 1 || got[0].Value != nil {
			t.Fatalf("run %s, removed in the batch that wrote it: %d changelog records, want only its tombstone", r.Key, len(got))
		}
	}

	// Restart: the failures sent again are duplicates of the restored runs.
	var again []*kgo.Record
	for i := 1; i < len(runs); i += 2 {
		again = append(again, resend(runs[i]))
	}
	e.produce(again...)
	q := e.startProcessor("two", nil)
	e.waitCaughtUp(30 * time.Second)
	if dup := testenv.Metric(t, q.reg, "exo_processor_events_total", "outcome", "duplicate"); dup != float64(len(again)) {
		t.Fatalf("after the restart, %v of the %d failures sent again were duplicates", dup, len(again))
	}
	deliveries.drain()
	assertExactlyOnce(t, deliveries.counts(), want)
}

// resend is a new record of what r holds: a producer sending it again.
func resend(r *kgo.Record) *kgo.Record {
	return &kgo.Record{Topic: r.Topic, Key: r.Key, Value: r.Value, Headers: r.Headers}
}

// TestTxnBacklogOfDuplicatesNoAbort replays events already processed (a
// producer sending everything again), first as a backlog, then live, a few
// at a time while the processor keeps up, between new runs: most batches
// have only offsets to commit, many right after a transaction that wrote
// run state. None is aborted and processed again — every event is counted
// once — and no alert comes twice.
func TestTxnBacklogOfDuplicatesNoAbort(t *testing.T) {
	t.Parallel()
	e := setup(t)
	const n = 3000 // 6,000 events: a backlog of 4,000, then 2,000 live
	recs, want := txnRuns(e, "tb", n, time.Now().Add(-time.Minute).UTC().Truncate(time.Millisecond))
	e.produce(recs...)
	deliveries := e.collect(e.topics.Deliveries)
	p := e.startProcessor("first", nil)
	deliveries.waitFor(60*time.Second, "the failure alerts", deliveries.has(want), deliveries.missing(want))
	e.waitCaughtUp(30 * time.Second)
	p.stop(t)

	again := make([]*kgo.Record, len(recs))
	for i, r := range recs {
		again[i] = resend(r)
	}
	const backlog = 4000
	e.produce(again[:backlog]...)
	start := time.Now()
	q := e.startProcessor("replay", nil)
	e.waitCaughtUp(60 * time.Second)
	t.Logf("backlog of %d replayed in %s", backlog, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	fresh := 0
	for i := backlog; i < len(again); i += 10 {
		// A new run (its state written, no alert), then ten duplicates.
		e.produce(e.record(workload.Event(workload.Spec{Tenant: "tb", Type: schemas.TypeRunStarted, WorkflowName: "etl"})))
		fresh++
		e.produce(again[i:min(i+10, len(again))]...)
	}
	e.waitCaughtUp(60 * time.Second)
	t.Logf("%d duplicates between %d new runs replayed live in %s", len(again)-backlog, fresh, time.Since(start).Round(time.Millisecond))
	metric := func(name, label, value string) float64 { return testenv.Metric(t, q.reg, name, label, value) }
	committed, aborted := metric("exo_processor_transactions_total", "result", "committed"), metric("exo_processor_transactions_total", "result", "aborted")
	dup := metric("exo_processor_events_total", "outcome", "duplicate")
	t.Logf("replay of %d events already seen and %d new runs: %.0f transactions committed, %.0f aborted, %.0f events counted as duplicates",
		len(recs), fresh, committed, aborted, dup)
	if aborted != 0 {
		t.Errorf("%.0f transactions aborted replaying events already seen (their batches processed again)", aborted)
	}
	if dup != float64(len(recs)) {
		t.Errorf("%.0f events counted as duplicates, want each of the %d once", dup, len(recs))
	}
	if v := metric("exo_processor_events_total", "outcome", "unmatched"); v != float64(fresh) {
		t.Errorf("%.0f events counted unmatched, want each of the %d new runs once", v, fresh)
	}
	for _, outcome := range []string{"matched", "invalid"} {
		if v := metric("exo_processor_events_total", "outcome", outcome); v != 0 {
			t.Errorf("%.0f replayed events counted %s", v, outcome)
		}
	}
	deliveries.drain()
	assertExactlyOnce(t, deliveries.counts(), want)
}
