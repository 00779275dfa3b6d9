package engine

import (
	"encoding/json"
	"hash/crc32"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/internal/workload"
	"github.com/exospherehost/exo-alerts/schemas"
)

const (
	benchTenants    = 1000
	benchPartitions = 12
)

// benchRules gives each of benchTenants tenants 10 rules (10,000 in all):
// four on failed runs, two on succeeded, one on started, three duration
// rules; most with conditions, some with noise control. Rules of one
// condition source share its program (fakeRules.put compiles through
// condition.Programs, as the processor's rule index does): 7 programs.
// Each rule holds its endpoint's state, as the processor's index gives it.
func benchRules(tb testing.TB) (*fakeRules, fakeEndpoints) {
	tb.Helper()
	rules, eps := newFakeRules(), fakeEndpoints{}
	rules.endpoints = map[string]*EndpointState{}
	for i := range benchTenants {
		tenant := "tenant_" + strconv.Itoa(i)
		eps[tenant+"/ep1"] = true
		for _, r := range []schemas.RuleRecord{
			{ID: "r0", EventType: schemas.TypeRunFailed},
			{ID: "r1", EventType: schemas.TypeRunFailed, Condition: `labels.env == "prod" && run.attempt >= 1`},
			{ID: "r2", EventType: schemas.TypeRunFailed, Condition: `error.code in ["TIMEOUT", "OOM"]`},
			{ID: "r3", EventType: schemas.TypeRunFailed, Condition: `workflow.name startsWith "nightly"`, RateLimitPerMinute: 5},
			{ID: "r4", EventType: schemas.TypeRunSucceeded, Condition: `run.duration_ms > 1000`},
			{ID: "r5", EventType: schemas.TypeRunSucceeded, CooldownMS: 60_000},
			{ID: "r6", EventType: schemas.TypeRunStarted, Condition: `labels.team == "ml"`},
			{ID: "r7", EventType: schemas.TypeRunDurationExceeded, DurationThresholdMS: 500},
			{ID: "r8", EventType: schemas.TypeRunDurationExceeded, DurationThresholdMS: 1000, Condition: `labels.env == "prod"`},
			{ID: "r9", EventType: schemas.TypeRunDurationExceeded, DurationThresholdMS: 3_600_000},
		} {
			r.TenantID = tenant
			rules.put(tb, r)
		}
	}
	for _, st := range rules.endpoints {
		st.SetActive(true)
	}
	return rules, eps
}

// BenchmarkEngineEvent measures events/s through Engine.Event: runs of
// 1,000 tenants start and finish (half failed) about 1,000 events later,
// one event per millisecond of event time, over 12 partitions.
func BenchmarkEngineEvent(b *testing.B) {
	rules, eps := benchRules(b)
	// Outputs are reused, as the processor has the engine do.
	eng := New(Config{Clock: &fakeClock{now: t0}, Grace: time.Minute, MaxRunAge: time.Hour, ReuseOutput: true}, rules, eps)
	tenants := make([]string, benchTenants)
	for i := range tenants {
		tenants[i] = "tenant_" + strconv.Itoa(i)
	}
	labels := map[string]string{"env": "prod", "team": "data"}
	dur := int64(1000)
	ev := &schemas.WorkflowEvent{
		SpecVersion: "1.0", Source: "exosphere/state-manager",
		Data: schemas.WorkflowEventData{Workflow: schemas.Workflow{ID: "wf_1", Name: "nightly-etl"}, Labels: labels},
	}
	// Event i (from 0) starts run lag+i/2 when i is even and finishes run
	// i/2 when odd; runs 0..lag-1 start before the clock runs.
	const lag = 500 // runs in flight
	// The events' strings are made before the clock runs (decoding makes
	// them, not the engine), so the allocations counted are the engine's.
	// Run k is named run_(k mod idRing): a name comes back 2*idRing events
	// (262 s of event time) later, long after its run was tombstoned (its
	// Grace is a minute), under another tenant.
	const idRing = 1 << 17
	type runIDs struct{ run, start, failed, succeeded string }
	ids := make([]runIDs, idRing)
	for k := range ids {
		run := "run_" + strconv.Itoa(k)
		ids[k] = runIDs{run, "s_" + run, "f_" + run, "ok_" + run}
	}
	timeout := &schemas.ErrorInfo{Code: "TIMEOUT"}
	feed := func(i int, start bool, k int) Output {
		ev.Time = t0.Add(time.Duration(i) * time.Millisecond)
		ev.TenantID = tenants[k%benchTenants]
		id := &ids[k%idRing]
		ev.Data.Run = schemas.Run{ID: id.run, Attempt: 1}
		ev.Data.Error = nil
		switch {
		case start:
			ev.Type, ev.ID = schemas.TypeRunStarted, id.start
		case k%2 == 0:
			ev.Type, ev.ID = schemas.TypeRunFailed, id.failed
			ev.Data.Error = timeout
		default:
			ev.Type, ev.ID = schemas.TypeRunSucceeded, id.succeeded
			ev.Data.Run.DurationMS = &dur
		}
		return eng.Event(int32(k%benchTenants%benchPartitions), ev)
	}
	for k := range lag {
		feed(0, true, k)
	}
	var deliveries int
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		var out Output
		if i%2 == 0 {
			out = feed(i, true, lag+i/2)
		} else {
			out = feed(i, false, i/2)
		}
		deliveries += len(out.Deliveries)
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(deliveries)/float64(b.N), "deliveries/event")
}

// BenchmarkEngineMix measures events/s through Engine.Event on the
// processor benchmark's workload (workload's throughput mix: 1,000
// tenants with its 10 rules each, 25,000 runs over three hours of event
// time) over its 3 partitions: the engine's share of
// BenchmarkProcessorThroughput. As in the processor, the events of each
// batch of 2,000 records are decoded from their JSON
// (schemas.CheckWorkflowEvent) just before the engine takes them; the
// decoding is not timed. Each batch is a transaction of the engine's
// (Begin, Commit), as in the processor. Each pass over the 50,000 events starts an empty
// engine, as each op of that benchmark starts an empty processor, and
// checks the deliveries it made are those the mix predicts. Outputs are
// reused, as the processor has the engine do.
func BenchmarkEngineMix(b *testing.B) {
	rules, eps := newFakeRules(), fakeEndpoints{}
	rules.endpoints = map[string]*EndpointState{} // as the processor's index gives them
	for t := range workload.MixTenants {
		tenant := workload.MixTenant(t)
		for e := range workload.MixEndpoints {
			eps[tenant+"/"+workload.MixEndpointID(e)] = true
		}
		for i := range workload.MixRules {
			rules.put(b, workload.MixRuleRecord(tenant, i, t0))
		}
	}
	for _, st := range rules.endpoints {
		st.SetActive(true)
	}
	runs, evs := workload.NewMix(t0)
	want, _ := workload.MixExpected(runs)
	docs := make([][]byte, len(evs))
	parts := make([]int32, len(evs))
	for i := range evs {
		doc, err := json.Marshal(&evs[i])
		if err != nil {
			b.Fatal(err)
		}
		docs[i] = doc
		parts[i] = int32(crc32.ChecksumIEEE(schemas.RecordKey(evs[i].TenantID, evs[i].Data.Run.ID)) % mixPartitions)
	}
	clock := &fakeClock{now: t0.Add(4 * time.Hour)}
	var eng *Engine
	batch := make([]*schemas.WorkflowEvent, 0, mixBatch)
	next, deliveries := len(evs), 0
	b.ReportAllocs()
	for b.Loop() {
		if len(batch) == 0 {
			if eng != nil {
				eng.Commit()
			}
			b.StopTimer()
			if next == len(evs) {
				if eng != nil && deliveries != want {
					b.Fatalf("%d deliveries in a pass, want %d", deliveries, want)
				}
				eng = New(Config{Clock: clock, Grace: 10 * time.Minute, MaxClockSkew: 5 * time.Minute, ReuseOutput: true}, rules, eps)
				next, deliveries = 0, 0
			}
			for i := next; i < min(next+mixBatch, len(docs)); i++ {
				ev, err := schemas.CheckWorkflowEvent(docs[i])
				if err != nil {
					b.Fatal(err)
				}
				batch = append(batch, ev)
			}
			slices.Reverse(batch) // taken from the end
			b.StartTimer()
			eng.Begin()
		}
		ev := batch[len(batch)-1]
		batch = batch[:len(batch)-1]
		deliveries += len(eng.Event(parts[next], ev).Deliveries)
		next++
	}
	if next == len(evs) && deliveries != want { // the last pass, when it ended with the loop
		b.Fatalf("%d deliveries in a pass, want %d", deliveries, want)
	}
	b.ReportMetric(float64(want)/float64(len(evs)), "deliveries/event")
}

// mixBatch is the processor's batch: the records of one transaction.
const mixBatch = 2000

// mixPartitions is the processor benchmark's partition count.
const mixPartitions = 3

// BenchmarkTrackedRunMemory reports the heap held per running run: state,
// its map entry and expiry entry, and (second case) the timers of the
// tenant's three duration rules.
func BenchmarkTrackedRunMemory(b *testing.B) {
	const n = 1_000_000
	cases := []struct {
		name  string
		rules func(testing.TB) (*fakeRules, fakeEndpoints)
	}{
		{"no rules", func(testing.TB) (*fakeRules, fakeEndpoints) { return newFakeRules(), fakeEndpoints{} }},
		{"10 rules per tenant, 3 duration", benchRules},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			rules, eps := c.rules(b)
			var total float64
			iters := 0
			for b.Loop() {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				eng := New(Config{Clock: &fakeClock{now: t0}}, rules, eps)
				// All at t0: every run stays running and no timer fires.
				for i := range n {
					// Fresh strings and labels, as decoding each event makes them.
					run := "run_" + strconv.Itoa(i)
					eng.Event(int32(i%benchPartitions), &schemas.WorkflowEvent{
						SpecVersion: "1.0", ID: "ev_" + run, Source: "exosphere/state-manager", Type: schemas.TypeRunStarted,
						Time: t0, TenantID: "tenant_" + strconv.Itoa(i%benchTenants),
						Data: schemas.WorkflowEventData{
							Workflow: schemas.Workflow{ID: "wf_" + strconv.Itoa(i%50), Name: "nightly-etl-" + strconv.Itoa(i%50)},
							Run:      schemas.Run{ID: run, Attempt: 1, Status: "running"},
							Labels:   map[string]string{"env": "prod", "team": "data"},
						},
					})
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				if eng.TotalRuns() != n {
					b.Fatalf("%d runs held, want %d", eng.TotalRuns(), n)
				}
				runtime.KeepAlive(eng)
				total += float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / n
				iters++
			}
			b.ReportMetric(total/float64(iters), "B/run")
		})
	}
}
