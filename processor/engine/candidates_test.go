package engine

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/schemas"
)

// The engine only reads the candidate lists Rules hands out (the
// processor's index shares one slice between every caller): after events
// of every kind, duration alerts, rule errors, aborts and restores, every
// list holds what it held.
func TestEngineDoesNotChangeCandidates(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, r := range []schemas.RuleRecord{
		{ID: "f0", EventType: schemas.TypeRunFailed},
		{ID: "f1", EventType: schemas.TypeRunFailed, Condition: `int(labels.n) > 1`, RateLimitPerMinute: 1},
		{ID: "s0", EventType: schemas.TypeRunSucceeded, CooldownMS: 1000},
		{ID: "st", EventType: schemas.TypeRunStarted},
		{ID: "d1", EventType: schemas.TypeRunDurationExceeded, DurationThresholdMS: 1000},
		{ID: "d2", EventType: schemas.TypeRunDurationExceeded, DurationThresholdMS: 1000, Condition: `labels.env == "prod"`},
		{ID: "d3", EventType: schemas.TypeRunDurationExceeded, DurationThresholdMS: 5000},
	} {
		b.rules.put(t, r)
	}
	snapshot := map[string][]*Rule{}
	for typ, rs := range b.rules.index["acme"] {
		snapshot[typ] = slices.Clone(rs)
	}
	for i := range 200 {
		at := t0.Add(time.Duration(i) * 300 * time.Millisecond)
		run := fmt.Sprintf("run_%d", i%40)
		if i%7 == 0 {
			b.eng.Begin()
		}
		b.eng.Event(0, started(t, run, at, withLabels("env", "prod", "n", "x")))
		b.eng.Event(0, failed(t, run, at.Add(1500*time.Millisecond), withLabels("n", "2")))
		b.clock.now = at.Add(time.Minute)
		b.eng.Tick(0, i%3 == 0)
		switch i % 7 {
		case 3:
			b.eng.Abort()
		case 5:
			b.eng.Commit()
		}
	}
	for typ, want := range snapshot {
		if got := b.rules.index["acme"][typ]; !slices.Equal(got, want) {
			t.Fatalf("candidates of %s changed: %v, were %v", typ, ids(got), ids(want))
		}
	}
}

func ids(rs []*Rule) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}
