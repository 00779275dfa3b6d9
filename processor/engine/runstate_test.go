package engine

import (
	"encoding/json"
	"maps"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/schemas"
)

// A run keeps every state exactly: restored and written back, a state is
// the one given (what the compact form keeps inline, and what it keeps in
// its extra record: other zones, unknown or many seen types, an empty seen
// list, fired rules, long tenants and keys, large attempts).
func TestRunStateRoundTrip(t *testing.T) {
	t.Parallel()
	at := func(d time.Duration) *time.Time { x := t0.Add(d); return &x }
	paris := time.FixedZone("CET", 3600)
	inParis := t0.In(paris)
	far := time.Date(2400, 1, 1, 0, 0, 0, 0, time.UTC) // beyond int64 nanoseconds
	base := schemas.RunState{TenantID: "acme", RunID: "run_1", Workflow: schemas.Workflow{ID: "wf", Name: "etl"}, Attempt: 1,
		Labels: map[string]string{"env": "prod"}, StartEventID: "ev_s", StartedAt: at(0), Seen: []string{schemas.TypeRunStarted}, LastEventAt: t0}
	cases := map[string]func(*schemas.RunState){
		"running":           func(*schemas.RunState) {},
		"finished":          func(s *schemas.RunState) { s.FinishedAt, s.LastEventAt = at(time.Minute), t0.Add(time.Minute) },
		"no start event":    func(s *schemas.RunState) { s.StartEventID, s.StartedAt = "", nil },
		"no workflow":       func(s *schemas.RunState) { s.Workflow, s.Labels = schemas.Workflow{}, nil },
		"empty labels":      func(s *schemas.RunState) { s.Labels = map[string]string{} },
		"fired":             func(s *schemas.RunState) { s.Fired = []string{"slow", "slower"} },
		"seen out of order": func(s *schemas.RunState) { s.Seen = []string{schemas.TypeRunFailed, schemas.TypeRunStarted} },
		"seen unknown type": func(s *schemas.RunState) { s.Seen = []string{schemas.TypeRunStarted, "workflow.run.paused"} },
		"seen many": func(s *schemas.RunState) {
			s.Seen = []string{schemas.TypeRunStarted, schemas.TypeRunFailed, schemas.TypeRunSucceeded, schemas.TypeRunFailed, schemas.TypeRunStarted}
		},
		"seen empty":         func(s *schemas.RunState) { s.Seen = []string{} },
		"seen nil":           func(s *schemas.RunState) { s.Seen = nil },
		"another zone":       func(s *schemas.RunState) { s.StartedAt, s.LastEventAt = &inParis, inParis },
		"beyond nanoseconds": func(s *schemas.RunState) { s.FinishedAt, s.LastEventAt = &far, far },
		"nanoseconds":        func(s *schemas.RunState) { s.StartedAt = at(time.Nanosecond) },
		"no attempt":         func(s *schemas.RunState) { s.Attempt = 0 },
		"large attempt":      func(s *schemas.RunState) { s.Attempt = math.MaxInt32 + 1 },
		"long tenant":        func(s *schemas.RunState) { s.TenantID = strings.Repeat("t", 300) },
		"long key":           func(s *schemas.RunState) { s.RunID = strings.Repeat("r", 70_000) },
		"tenant with slash":  func(s *schemas.RunState) { s.TenantID = "a/b" },
	}
	for name, change := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			want := base
			want.Labels = map[string]string{"env": "prod"}
			change(&want)
			pt := newPartition()
			r := pt.restoredRun(&want)
			if k := r.key(); k != runKey(want.TenantID, want.RunID) {
				t.Fatalf("key %q, want %q", k, runKey(want.TenantID, want.RunID))
			}
			got := r.state()
			if !reflect.DeepEqual(got, &want) {
				t.Fatalf("state\n%+v\nwant\n%+v", got, &want)
			}
			j1, _ := json.Marshal(got)
			j2, _ := json.Marshal(&want)
			if string(j1) != string(j2) {
				t.Fatalf("state encodes as\n%s\nwant\n%s", j1, j2)
			}
		})
	}
}

// Runs with the same workflow and labels share them; a run's labels are
// never changed under a state already written.
func TestRunContextsShared(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var outs []Output
	for _, run := range []string{"run_1", "run_2", "run_3"} {
		outs = append(outs, b.eng.Event(0, started(t, run, t0, withLabels("env", "prod"))))
	}
	pt := b.eng.parts[0]
	if a, c := pt.runs[runKey("acme", "run_1")].ctx, pt.runs[runKey("acme", "run_3")].ctx; a == nil || a != c {
		t.Fatalf("runs with the same workflow and labels hold contexts %p and %p", a, c)
	}
	first, _ := json.Marshal(outs[0].States)
	b.eng.Event(0, failed(t, "run_1", t0.Add(time.Second), withLabels("env", "dev")))
	if again, _ := json.Marshal(outs[0].States); string(again) != string(first) {
		t.Fatalf("a state written before changed:\n%s\nwas\n%s", again, first)
	}
	if st := pt.runs[runKey("acme", "run_2")].state(); st.Labels["env"] != "prod" {
		t.Fatalf("another run's labels became %v", st.Labels)
	}
}

// newRunOf keeps the key, tenant, run id and started event id of a run
// whatever their lengths: ids stored with the run (up to 32 and up to 48
// bytes) or in a string of their own (longer), with and without a started
// event, and leaves the lookup key in the scratch buffer.
func TestNewRunOfIDs(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ tenant, run, start string }{
		{"a", "r", ""}, {"a", "r", "s"},
		{"acme", "run_0123456789abcdefghijklm", ""},                 // key of 32 bytes
		{"acme", "run_0123456789abcdefghijklmn", ""},                // 33
		{"acme", "run_0123456789", "ev_0123456789a"},                // 19 + 14 = 33
		{"acme", "run_0123456789", "ev_0123456789abcdefghijklmno"},  // 19 + 29 = 48
		{"acme", "run_0123456789", "ev_0123456789abcdefghijklmnop"}, // 49
		{"tenant_" + strings.Repeat("t", 300), "run_1", "ev_1"},     // a tenant longer than maxTenantLen
	} {
		kb := keyOf(make([]byte, 0, 8), c.tenant, c.run)
		key := string(kb)
		r := newRunOf(&kb, c.tenant, c.start)
		if string(kb) != key || r.key() != key || r.tenant() != c.tenant || r.runID() != c.run || r.startEventID() != c.start {
			t.Errorf("%q/%q start %q: key %q tenant %q run %q start %q, buffer %q", c.tenant, c.run, c.start,
				r.key(), r.tenant(), r.runID(), r.startEventID(), kb)
		}
		// A later start replaces the started event's id; the key stays.
		r.setStartEventID("ev_again")
		if r.key() != key || r.startEventID() != "ev_again" {
			t.Errorf("%q after a new start: key %q start %q", key, r.key(), r.startEventID())
		}
	}
}

// A run's deadline in nanoseconds, computed in integers for a plain UTC
// start, is the one its times give (nanos(deadline(started, rule))), for
// thresholds up to the schema's maximum (whose Duration wraps), starts near
// both ends of the int64 nanosecond range, and starts in other zones.
func TestDeadlineNanosIsDeadline(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 3))
	thresholds := []int64{1, 500, 1000, 3_600_000, math.MaxInt64 / 1_000_000, math.MaxInt64/1_000_000 + 1, math.MaxInt64 / 1000, math.MaxInt64 - 1, math.MaxInt64}
	starts := []time.Time{t0, time.Unix(0, 0).UTC(), time.Unix(0, math.MaxInt64).UTC(), time.Unix(0, math.MaxInt64-1500).UTC(),
		time.Unix(0, math.MinInt64+1).UTC(), time.Unix(0, -1).UTC(), t0.In(time.FixedZone("X", 3600)), time.Now()}
	// A wrapped threshold landing exactly on math.MinInt64 nanoseconds.
	wrapped := int64(9_223_372_036_855)
	starts = append(starts, time.Unix(0, math.MinInt64-int64(time.Duration(wrapped)*time.Millisecond)).UTC())
	thresholds = append(thresholds, wrapped)
	for range 2000 {
		starts = append(starts, time.Unix(0, int64(rnd.Uint64())).UTC())
		thresholds = append(thresholds, int64(rnd.Uint64()>>1), rnd.Int64N(1<<40))
	}
	for i, started := range starts {
		r := newRun("acme/run_1", "acme", "")
		r.setTime(tStarted, &started)
		for j, ms := range thresholds {
			if j%7 != i%7 && j > 9 && i > 8 {
				continue // a sample of the random pairs
			}
			rule := &Rule{RuleRecord: schemas.RuleRecord{DurationThresholdMS: ms}}
			want, _ := nanos(deadline(started, rule))
			if got := r.deadlineNanos(rule); got != want {
				t.Fatalf("started %v, threshold %d ms: %d, want %d", started, ms, got, want)
			}
		}
	}
}

// Events as the decoder gives them, with their labels' canonical form
// (schemas.WorkflowEventData.LabelsKey), find and compare run contexts by
// it: the engine's output is the same as for the same events built in
// code (without it), runs with the same labels share a context, and a
// run whose labels change gets the new ones.
func TestDecodedLabelsKeyContexts(t *testing.T) {
	t.Parallel()
	built, decoded := setup(t), setup(t)
	for _, b := range []*bundle{built, decoded} {
		b.rules.put(t, schemas.RuleRecord{ID: "failures", EventType: schemas.TypeRunFailed})
		b.rules.put(t, schemas.RuleRecord{ID: "prod", EventType: schemas.TypeRunFailed, Condition: `labels.env == "prod"`})
		b.rules.put(t, schemas.RuleRecord{ID: "slow", EventType: schemas.TypeRunDurationExceeded, DurationThresholdMS: 1000})
	}
	events := []*schemas.WorkflowEvent{
		started(t, "run_1", t0, withLabels("env", "prod", "team", "data")),
		started(t, "run_2", t0, withLabels("team", "data", "env", "prod")),
		started(t, "run_3", t0, withLabels("env", "dev")),
		failed(t, "run_1", t0.Add(2*time.Second), withLabels("env", "prod", "team", "data")),
		failed(t, "run_2", t0.Add(3*time.Second), withLabels("env", "prod", "team", "ml")),
		failed(t, "run_3", t0.Add(4*time.Second)),
	}
	for i, ev := range events {
		dev := decodedEvent(t, ev)
		if len(ev.Data.Labels) > 0 && dev.Data.LabelsKey() == "" {
			t.Fatalf("event %d: the decoder made no LabelsKey", i)
		}
		want, got := built.eng.Event(part, ev), decoded.eng.Event(part, dev)
		w, _ := json.Marshal(struct{ S, D any }{want.States, want.Deliveries})
		g, _ := json.Marshal(struct{ S, D any }{got.States, got.Deliveries})
		if string(g) != string(w) {
			t.Fatalf("event %d: decoded gives\n%s\nbuilt gives\n%s", i, g, w)
		}
		if i == 1 {
			pt := decoded.eng.parts[part]
			if a, c := pt.runs[runKey("acme", "run_1")].ctx, pt.runs[runKey("acme", "run_2")].ctx; a == nil || a != c {
				t.Fatalf("runs with the same labels hold contexts %p and %p", a, c)
			}
		}
	}
	pt := decoded.eng.parts[part]
	if got := pt.runs[runKey("acme", "run_2")].ctx.labels; !maps.Equal(got, map[string]string{"env": "prod", "team": "ml"}) {
		t.Fatalf("run_2's labels after its failure: %v", got)
	}
	if got := pt.runs[runKey("acme", "run_3")].ctx.labels; !maps.Equal(got, map[string]string{"env": "dev"}) {
		t.Fatalf("run_3's labels after a failure without labels: %v", got)
	}
}

// The labels part of a context key built from the map is the decoder's
// LabelsKey for the same labels, byte for byte: contexts made from
// restored states (the map) and from decoded events (the key) are shared.
func TestContextKeyIsTheDecodersLabelsKey(t *testing.T) {
	t.Parallel()
	ev := failed(t, "run_1", t0, withLabels("team", "data", "env", "prod", "app.kubernetes.io/name", "etl"))
	dev := decodedEvent(t, ev)
	var pairs []labelPair
	key, at := contextKey(nil, &pairs, ev.Data.Workflow, ev.Data.Labels, "")
	if got := string(key[at:]); got == "" || got != dev.Data.LabelsKey() {
		t.Fatalf("labels part of the map's key %q, the decoder's LabelsKey %q", got, dev.Data.LabelsKey())
	}
}

// decodedEvent is ev as the processor's decoder gives it: encoded, then decoded.
func decodedEvent(tb testing.TB, ev *schemas.WorkflowEvent) *schemas.WorkflowEvent {
	tb.Helper()
	doc, err := json.Marshal(ev)
	if err != nil {
		tb.Fatal(err)
	}
	dev, err := schemas.DecodeWorkflowEvent(doc)
	if err != nil {
		tb.Fatal(err)
	}
	return dev
}
