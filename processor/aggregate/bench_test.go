package aggregate

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/schemas"
)

// BenchmarkGroupMemory reports the heap held per group (window, state, key,
// values, last event and heap entry) with one input each: design §2.5
// budgets about 1 KiB.
func BenchmarkGroupMemory(b *testing.B) {
	const n = 10_000
	rule := rateRule("rul_1", time.Hour, 9_500, 10)
	rule.GroupBy = []string{"workflow.name"}
	spec := SpecOf(rule)
	ins := make([]*schemas.AggregateInput, n)
	for i := range ins {
		ins[i] = &schemas.AggregateInput{Kind: schemas.AggregateInputKindInput, TenantID: "acme", RuleID: "rul_1", Spec: spec,
			Group: []string{fmt.Sprint("wf-", i)}, Outcome: schemas.AggregateOutcomeFailed, At: t0.Add(time.Duration(i) * time.Millisecond),
			Event: &schemas.AggregateEvent{ID: "01JD0000000000000000000000", Type: schemas.TypeRunFailed, RunID: fmt.Sprint("run_", i),
				Workflow: schemas.Workflow{ID: "wf_9", Name: fmt.Sprint("wf-", i)}}}
	}
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		e := New(Config{Sources: 1}, newRules(rule), fakeEndpoints{}, nil)
		e.Assign(0, nil)
		for _, in := range ins {
			e.Input(0, in)
		}
		e.Flush(0)
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/group")
		runtime.KeepAlive(e)
	}
}

// BenchmarkAggregateInput is the cost of one counted input of a count rule
// (15m window, 15 s buckets) in batches (Begin, inputs, Flush, Commit), a
// marker every 10 inputs, inputs 10 ms apart in event time. The changelog
// record of every group a batch changed is part of the cost:
// batch=100/groups=100 writes one record per input (the worst case),
// batch=1000/groups=10 one per hundred.
func BenchmarkAggregateInput(b *testing.B) {
	for _, bc := range []struct{ batch, groups int }{{100, 100}, {1000, 10}} {
		b.Run(fmt.Sprintf("batch=%d/groups=%d", bc.batch, bc.groups), func(b *testing.B) {
			rule := countRule("rul_1", 15*time.Minute, 1_000_000)
			rule.GroupBy = []string{"workflow.name"}
			spec := SpecOf(rule)
			e := New(Config{Sources: 1, Delay: 5 * time.Second}, newRules(rule), fakeEndpoints{}, nil)
			e.Assign(0, nil)
			groups := make([][]string, bc.groups)
			for i := range groups {
				groups[i] = []string{fmt.Sprint("wf-", i)}
			}
			in := &schemas.AggregateInput{Kind: schemas.AggregateInputKindInput, TenantID: "acme", RuleID: "rul_1", Spec: spec,
				Outcome: schemas.AggregateOutcomeMatched,
				Event:   &schemas.AggregateEvent{ID: "01JD0000000000000000000000", Type: schemas.TypeRunFailed, RunID: "run_1", Workflow: schemas.Workflow{ID: "wf_9", Name: "x"}}}
			var src int32
			i := 0
			e.Begin()
			for b.Loop() {
				at := t0.Add(time.Duration(i) * 10 * time.Millisecond)
				if i%10 == 0 {
					e.Input(0, &schemas.AggregateInput{Kind: schemas.AggregateInputKindWatermark, SourcePartition: &src, Watermark: at})
				}
				in.At, in.Group = at, groups[i%len(groups)]
				e.Input(0, in)
				i++
				if i%bc.batch == 0 {
					e.Flush(0)
					e.Commit()
					e.Begin()
				}
			}
			e.Commit()
		})
	}
}
