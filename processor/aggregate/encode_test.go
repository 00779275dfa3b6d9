package aggregate

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/schemas"
)

// groupState is the changelog record of a group as encoding/json would
// write it from the schema type: the reference of encodeGroup.
func groupState(en *entry) schemas.AggregateStateRecord {
	g := &en.g
	st := &schemas.AggregateGroupState{
		TenantID: g.Tenant, RuleID: g.Rule, Spec: en.spec, GroupKey: g.Key, Group: en.values,
		BucketMS: g.win.bucketMS, Buckets: g.win.buckets(), Evaluated: g.evaluated, State: g.state.String(),
		IncidentID: g.incident, Repeats: g.repeats, Last: en.last, Notify: en.notify,
	}
	if g.state != Inactive {
		st.FiringSince = timePtr(g.firingSince)
		st.NotifiedAt = msTime(g.notifiedAtMS)
	}
	if g.state == Resolving {
		st.FalseSince = msTime(g.falseSinceMS)
	}
	if g.lastResolvedMS != 0 {
		st.LastResolvedAt = msTime(g.lastResolvedMS)
	}
	return schemas.AggregateStateRecord{Group: st}
}

func checkEncoding(t *testing.T, en *entry) {
	t.Helper()
	raw := encodeGroup(en)
	var got, want schemas.AggregateStateRecord
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	ref, _ := json.Marshal(groupState(en))
	if err := json.Unmarshal(ref, &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("encodeGroup\n got %s\nwant %s", raw, ref)
	}
}

// TestEncodeGroupDecodes: the hand-written changelog record reads back, with
// encoding/json, as the schema type it stands for — over the groups of
// random streams and over strings that need escaping.
func TestEncodeGroupDecodes(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(3, 5))
	w := newWorld()
	e := newPropertyEngine(w)
	e.Assign(0, nil)
	clock, seq, n := t0, 0, 0
	for range 30 {
		runBatch(e, w, randomOps(r, &clock, &seq, 30))
		for _, en := range e.parts[0].groups {
			checkEncoding(t, en)
			n++
		}
	}
	if n == 0 {
		t.Fatal("no group to check")
	}
	for _, s := range []string{`quo"te`, `back\slash`, "ctl\x00\x1f\n\t", "ünïcødé ✓", "bad\xffutf8", "<html>&", ""} {
		en := &entry{key: "k", spec: s, values: []string{s, "x"}, last: &schemas.AggregateEvent{ID: s, Type: s, RunID: s,
			Workflow: schemas.Workflow{ID: s, Name: s}, ErrorCode: s, At: t0.Add(123 * time.Nanosecond)},
			notify: &schemas.AggregateNotify{EndpointID: s, RuleName: s, RuleVersion: 3, Severity: s, MaxAttempts: 2, Suppressed: true}}
		en.g = *NewGroup(s, s, s, Spec{Kind: Rate, WindowMS: 60_000})
		en.g.Add(Input{At: t0, Outcome: Failed}, t0)
		en.g.state, en.g.incident, en.g.firingSince, en.g.falseSinceMS, en.g.lastResolvedMS = Resolving, s, t0.Add(time.Nanosecond), t0.UnixMilli(), 5
		checkEncoding(t, en)
	}
}
