package processor

import (
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/internal/condition"
	"github.com/exospherehost/exo-alerts/internal/ktable"
	"github.com/exospherehost/exo-alerts/internal/workload"
	"github.com/exospherehost/exo-alerts/processor/engine"
	"github.com/exospherehost/exo-alerts/schemas"
)

// benchRuleRecords are the throughput mix's rules (workload.MixRules),
// 1,000 tenants × 10: 7 distinct condition sources.
func benchRuleRecords() []schemas.RuleRecord {
	var out []schemas.RuleRecord
	at := time.Now()
	for t := range workload.MixTenants {
		for i := range workload.MixRules {
			out = append(out, workload.MixRuleRecord(workload.MixTenant(t), i, at))
		}
	}
	return out
}

func loadRules(tb testing.TB, recs []schemas.RuleRecord) *ruleIndex {
	tb.Helper()
	x := newRuleIndex(slog.New(slog.DiscardHandler))
	for i := range recs {
		r := recs[i]
		x.apply(ktable.Change[schemas.RuleRecord]{Key: schemas.TenantKey(r.TenantID, r.ID), Value: &r})
	}
	if x.len() != len(recs) {
		tb.Fatalf("%d rules indexed, want %d", x.len(), len(recs))
	}
	return x
}

// BenchmarkRuleCandidates is the cost of finding an event's candidate
// rules among 10,000: the flat index, and (the comparator, in the same
// run) the map of maps with a copy it replaced.
func BenchmarkRuleCandidates(b *testing.B) {
	recs := benchRuleRecords()
	x := loadRules(b, recs)
	nested := map[string]map[string]map[string]*engine.Rule{}
	for _, r := range x.byKey {
		if nested[r.TenantID] == nil {
			nested[r.TenantID] = map[string]map[string]*engine.Rule{}
		}
		if nested[r.TenantID][r.EventType] == nil {
			nested[r.TenantID][r.EventType] = map[string]*engine.Rule{}
		}
		nested[r.TenantID][r.EventType][r.ID] = r
	}
	tenants := make([]string, workload.MixTenants)
	for i := range tenants {
		tenants[i] = workload.MixTenant(i)
	}
	b.Run("flat", func(b *testing.B) {
		b.ReportAllocs()
		n, i := 0, 0
		for b.Loop() {
			n += len(x.Candidates(tenants[i%len(tenants)], schemas.TypeRunFailed))
			i++
		}
		if n != 5*i {
			b.Fatalf("%d candidates in %d lookups", n, i)
		}
	})
	b.Run("nested map copy (before)", func(b *testing.B) {
		b.ReportAllocs()
		n, i := 0, 0
		for b.Loop() {
			x.mu.RLock()
			m := nested[tenants[i%len(tenants)]][schemas.TypeRunFailed]
			out := make([]*engine.Rule, 0, len(m))
			for _, r := range m {
				out = append(out, r)
			}
			x.mu.RUnlock()
			n += len(out)
			i++
		}
		if n != 5*i {
			b.Fatalf("%d candidates in %d lookups", n, i)
		}
	})
}

// BenchmarkRuleTableMemory reports the heap the rule table holds per rule
// with 10,000 rules of 7 condition sources: with programs shared by source,
// and (the comparator, in the same run) with one program compiled per rule,
// as before.
func BenchmarkRuleTableMemory(b *testing.B) {
	recs := benchRuleRecords()
	measure := func(b *testing.B, perRule bool) {
		var total float64
		iters := 0
		for b.Loop() {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			x := loadRules(b, recs)
			if perRule {
				for _, r := range x.byKey {
					p, err := condition.Compile(r.Condition)
					if err != nil {
						b.Fatal(err)
					}
					r.Cond = p
				}
				x.progs = &condition.Programs{} // the rules hold their own programs now
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			runtime.KeepAlive(x)
			total += float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(len(recs))
			iters++
		}
		b.ReportMetric(total/float64(iters), "B/rule")
	}
	b.Run("shared programs", func(b *testing.B) { measure(b, false) })
	b.Run("program per rule (before)", func(b *testing.B) { measure(b, true) })
}
