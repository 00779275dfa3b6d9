package aggregate

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// BenchmarkGroupMemory reports the heap held per group (window, state and
// key) with one input each: design §2.5 budgets about 1 KiB.
func BenchmarkGroupMemory(b *testing.B) {
	const n = 10_000
	sp := Spec{Kind: Rate, WindowMS: 3_600_000, RatioBelowBP: 9_500, MinRuns: 10}
	keys := make([]string, n)
	for i := range keys {
		keys[i] = GroupKey("acme", "rul_1", []string{fmt.Sprint("wf-", i)})
	}
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		s := NewSet(0)
		for i, k := range keys {
			s.Input("acme", "rul_1", k, sp, Input{At: t0.Add(time.Duration(i) * time.Millisecond), Outcome: Failed, EventID: "01JD0000000000000000000000"}, t0)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/group")
		runtime.KeepAlive(s)
	}
}

// BenchmarkAggregateInput is the cost of one counted input.
func BenchmarkAggregateInput(b *testing.B) {
	sp := Spec{Kind: Count, WindowMS: 900_000, Threshold: 1_000_000}
	s := NewSet(0)
	i := 0
	for b.Loop() {
		at := t0.Add(time.Duration(i) * 10 * time.Millisecond)
		s.Input("acme", "rul_1", "grp_a", sp, Input{At: at, Outcome: Matched}, at)
		i++
	}
}
