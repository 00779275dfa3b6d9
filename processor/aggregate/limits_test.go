package aggregate

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/schemas"
)

// maxRecordBytes is what every stage-2 record must stay under: far below
// Kafka's default max.message.bytes (1 MiB), so the broker never refuses
// one for its size, and a refusal of a stage-2 output is transient (the
// processor retries the batch) rather than a record that can never succeed.
const maxRecordBytes = 64 << 10

// widest is n characters that encoding/json and appendString escape the
// most (6 bytes each: \u0001), allowed wherever the schemas only exclude
// NUL; r picks the character, so several such strings stay distinct.
func widest(n int, r byte) string { return strings.Repeat(string([]byte{r}), n) }

// The largest records stage 2 can write — every id and name at the longest
// its schema allows, made of characters that escape to 6 bytes, 4 group
// values of 256 bytes (stage 1 cuts them there), the ring full and the
// tail at its bound (192 buckets) with the largest counts, every time at
// nanosecond precision — each stay under 64 KiB: the changelog and status
// records, the rule records, the firing, repeat and resolved deliveries,
// and the watermarks of 1,024 events partitions.
func TestLargestOutputsAreBounded(t *testing.T) {
	t.Parallel()
	tenant := "t" + strings.Repeat("x", 62) // ^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$
	var paths []string
	for i := range 4 {
		paths = append(paths, "labels."+widest(63, byte(1+i)))
	}
	base := schemas.RuleRecord{TenantID: tenant, Name: widest(256, 1), EventType: schemas.TypeRunFailed,
		WebhookEndpointID: widest(256, 2), IsActive: true, MaxAttempts: 50, Severity: "critical",
		WindowMS: 60_000, GroupBy: paths, MaxGroups: 5000, RepeatIntervalMS: 60_000, HoldMS: 0,
		Version: math.MaxInt64, UpdatedAt: t0}
	count := base
	count.ID, count.Kind, count.Threshold = widest(256, 3), schemas.RuleKindCount, 1
	rate := base
	rate.ID, rate.Kind, rate.EventType, rate.SuccessRatioBelowBP, rate.MinRuns = widest(256, 4), schemas.RuleKindRate, schemas.TypeRunFinished, 10_000, 1
	for _, r := range []schemas.RuleRecord{count, rate} {
		raw, _ := json.Marshal(r)
		if err := schemas.Validate(schemas.KindRule, raw); err != nil {
			t.Fatalf("rule %s is not one the control plane accepts: %v", r.Kind, err)
		}
	}
	rig := newRig(t, Config{Sources: 1}, count, rate)
	values := []string{widest(256, 5), widest(256, 6), widest(256, 7), widest(256, 8)}
	input := func(r schemas.RuleRecord, outcome string, at time.Duration) *schemas.AggregateInput {
		in := &schemas.AggregateInput{Kind: schemas.AggregateInputKindInput, TenantID: tenant, RuleID: r.ID, Spec: SpecOf(r),
			Group: values, Outcome: outcome, At: t0.Add(at),
			Event: &schemas.AggregateEvent{ID: widest(256, 9), Type: schemas.TypeRunFailed, RunID: widest(256, 10),
				Workflow: schemas.Workflow{ID: widest(256, 11), Name: widest(256, 12)}, ErrorCode: widest(256, 13)}}
		raw, _ := json.Marshal(in)
		if err := schemas.Validate(schemas.KindAggregateInput, raw); err != nil {
			t.Fatalf("input is not one stage 1 can write: %v", err)
		}
		return in
	}

	largest := map[string]int{} // by record: the largest seen
	see := func(what string, b []byte) {
		t.Helper()
		if !json.Valid(b) {
			t.Fatalf("%s: not JSON: %.200s", what, b)
		}
		largest[what] = max(largest[what], len(b))
	}
	collect := func(out Output) {
		for _, d := range out.Deliveries {
			b, err := json.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			payloadOf(t, d) // valid against the schemas
			see("delivery "+d.EventType, b)
		}
		for _, s := range out.States {
			if s.Value != nil {
				see("changelog", s.Value)
			}
		}
		for _, s := range out.Status {
			if s.Value != nil {
				see("status", s.Value)
			}
		}
	}
	step := func(in *schemas.AggregateInput) {
		rig.e.Begin()
		collect(rig.e.Input(0, in))
		collect(rig.e.Flush(0))
		rig.e.Commit()
	}
	step(marker(0, 0))
	step(input(count, schemas.AggregateOutcomeMatched, time.Second))
	step(input(rate, schemas.AggregateOutcomeFailed, time.Second))
	step(marker(0, 2*time.Minute+30*time.Second)) // rate fires, count repeats
	step(marker(0, time.Hour))                    // both resolve
	for _, want := range []string{"delivery " + schemas.TypeAlertFiring, "delivery " + schemas.TypeAlertResolved, "changelog", "status"} {
		if largest[want] == 0 {
			t.Fatalf("no %s record written: the test did not reach it (seen %v)", want, largest)
		}
	}

	// The group's state at its largest, which inputs alone would take
	// billions of events to reach: every bucket of the ring and the tail at
	// its bound, each with the largest counts, resolving after repeats,
	// every time with nanoseconds, the last event and notify at their
	// longest.
	pt := rig.e.parts[0]
	step(input(count, schemas.AggregateOutcomeMatched, 2*time.Hour)) // the group again, firing
	var en *entry
	for _, x := range pt.groups {
		if x.g.Rule == count.ID {
			en = x
		}
	}
	if en == nil {
		t.Fatalf("no group of the count rule")
	}
	far := time.Date(9998, 12, 31, 23, 59, 59, 999_999_999, time.UTC) // a year before the schemas' last, so every time derived stays in it
	w := &en.g.win
	w.started, w.head = true, w.index(far.UnixMilli())
	full := bucket{n: math.MaxUint32, s: math.MaxUint32, f: math.MaxUint32}
	for i := range w.ring {
		w.ring[i] = full
	}
	w.tail = w.tail[:0]
	for i := range maxTail {
		w.tail = append(w.tail, tailBucket{i: w.head - ringSize - maxTail + int64(i), b: full})
	}
	g := &en.g
	g.state, g.firingSince, g.repeats = Resolving, far, math.MaxInt32
	g.notifiedAtMS, g.falseSinceMS, g.lastResolvedMS = far.UnixMilli(), far.UnixMilli(), far.UnixMilli()
	g.evaluated = w.head
	en.last = &schemas.AggregateEvent{ID: widest(256, 9), Type: schemas.TypeRunDurationExceeded, RunID: widest(256, 10),
		Workflow: schemas.Workflow{ID: widest(256, 11), Name: widest(256, 12)}, ErrorCode: widest(256, 13), At: far}
	en.notify = &schemas.AggregateNotify{EndpointID: widest(256, 2), RuleName: widest(256, 1), RuleVersion: math.MaxInt64,
		Severity: "critical", MaxAttempts: 50, Suppressed: true}
	rec := encodeGroup(en)
	if err := schemas.Validate(schemas.KindAggregateState, rec); err != nil {
		t.Fatalf("the largest changelog record is not a valid one: %v", err)
	}
	var back schemas.AggregateStateRecord
	if err := json.Unmarshal(rec, &back); err != nil || back.Group == nil || len(back.Group.Buckets) != ringSize+maxTail {
		t.Fatalf("the largest changelog record: %v, buckets %d, want %d", err, len(back.Group.Buckets), ringSize+maxTail)
	}
	see("changelog (largest group)", rec)
	pt.e = far
	see("status (largest group)", rig.e.statusGroup(pt, en))
	st := &ruleStat{tenant: tenant, rule: count.ID, spec: en.spec, dropped: math.MaxInt64, late: math.MaxInt64, groups: math.MaxInt}
	see("changelog rule", encodeRule(st))
	see("status rule", statusRule(st))
	// The watermarks record grows with the events partitions (one time
	// each): 1,024 of them.
	sources := map[int32]time.Time{}
	for i := range int32(1024) {
		sources[i] = far
	}
	see("changelog watermarks (1024)", encodeWatermarks(sources))

	for what, n := range largest {
		t.Logf("%-28s %6d bytes", what, n)
		if n >= maxRecordBytes {
			t.Errorf("%s: %d bytes, want under %d", what, n, maxRecordBytes)
		}
	}
}

// Inputs the processor refuses before the engine (processor.aggregateInput)
// must not hurt the engine either, should one get through: none panics,
// none delivers, and the rule then fires as if they had not been there.
func TestOddInputsHarmless(t *testing.T) {
	t.Parallel()
	count := countRule("rul_c", time.Minute, 2)
	r := newRig(t, Config{Sources: 2}, count)
	src := func(s int32) *int32 { return &s }
	good := r.in("rul_c", time.Second, matched)
	odd := func(f func(in *schemas.AggregateInput)) *schemas.AggregateInput {
		in := *good
		f(&in)
		return &in
	}
	for name, in := range map[string]*schemas.AggregateInput{
		"nil":                     nil,
		"no kind":                 {},
		"unknown kind":            odd(func(in *schemas.AggregateInput) { in.Kind = "alert" }),
		"unknown outcome":         odd(func(in *schemas.AggregateInput) { in.Outcome = "exploded" }),
		"rate outcome, count":     odd(func(in *schemas.AggregateInput) { in.Outcome = schemas.AggregateOutcomeFailed }),
		"no tenant or rule":       odd(func(in *schemas.AggregateInput) { in.TenantID, in.RuleID = "", "" }),
		"no event":                odd(func(in *schemas.AggregateInput) { in.Event = nil; in.Spec = "" }),
		"zero at, other spec":     odd(func(in *schemas.AggregateInput) { in.At = time.Time{}; in.Spec = "0000000000000000" }),
		"zero at":                 odd(func(in *schemas.AggregateInput) { in.At = time.Time{} }),
		"far future":              odd(func(in *schemas.AggregateInput) { in.At = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC) }),
		"marker without source":   {Kind: schemas.AggregateInputKindWatermark, Watermark: t0},
		"marker, negative source": {Kind: schemas.AggregateInputKindWatermark, SourcePartition: src(-1), Watermark: t0.Add(time.Hour)},
		"marker, source too high": {Kind: schemas.AggregateInputKindWatermark, SourcePartition: src(2), Watermark: t0.Add(time.Hour)},
		"marker, zero watermark":  {Kind: schemas.AggregateInputKindWatermark, SourcePartition: src(0)},
	} {
		r.e.Begin()
		out := r.e.Input(0, in)
		out.Deliveries = append(out.Deliveries, r.e.Input(7, in).Deliveries...) // a partition not assigned
		out.Deliveries = append(out.Deliveries, r.e.Flush(0).Deliveries...)
		r.e.Commit()
		if len(out.Deliveries) != 0 {
			t.Fatalf("%s: %d deliveries", name, len(out.Deliveries))
		}
	}
	if wm := r.e.Watermark(0); !wm.IsZero() {
		t.Fatalf("watermark %v after odd markers only, want none", wm)
	}
	var got []string
	for _, in := range []*schemas.AggregateInput{marker(0, 0), marker(1, 0), good, r.in("rul_c", 2*time.Second, matched)} {
		for _, d := range r.e.Input(0, in).Deliveries {
			got = append(got, describe(t, d))
		}
	}
	if len(got) != 1 || got[0] != "firing@2s(2)" {
		t.Fatalf("deliveries %v, want one firing at the second good input", got)
	}
}
