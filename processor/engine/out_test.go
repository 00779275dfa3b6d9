package engine

import (
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/schemas"
)

// heldOutput is an Output as it was when its call returned.
type heldOutput struct {
	out      Output
	ids      []string
	payloads []string
	states   []string // each Value's JSON ("" for a tombstone)
}

func hold(tb testing.TB, out Output) heldOutput {
	tb.Helper()
	h := heldOutput{out: out}
	for _, d := range out.Deliveries {
		if cap(d.Payload) != len(d.Payload) {
			tb.Fatalf("payload of %s has room to grow into (len %d, cap %d)", d.AlertID, len(d.Payload), cap(d.Payload))
		}
		h.ids = append(h.ids, string([]byte(d.AlertID)))
		h.payloads = append(h.payloads, string(d.Payload))
	}
	for _, s := range out.States {
		js := ""
		if s.Value != nil {
			b, err := s.Value.AppendJSON(nil)
			if err != nil {
				tb.Fatal(err)
			}
			js = string(b)
		}
		h.states = append(h.states, js)
	}
	return h
}

// Outputs belong to the caller until it drops them: the alert ids,
// payloads and run states of every call stay as they were while later
// calls (events, and a Tick firing hundreds of duration alerts at once)
// make theirs, and appending to a payload changes no other.
func TestOutputsStayIntact(t *testing.T) {
	b := setup(t)
	b.rules.put(t, schemas.RuleRecord{ID: "failures", EventType: schemas.TypeRunFailed, IncludeErrorMessage: true})
	b.rules.put(t, schemas.RuleRecord{ID: "prod", EventType: schemas.TypeRunFailed, Condition: `labels.env == "prod"`})
	b.rules.put(t, schemas.RuleRecord{ID: "slow", EventType: schemas.TypeRunDurationExceeded, DurationThresholdMS: 60_000})
	var held []heldOutput
	const runs = 600 // their payloads fill several chunks; their duration alerts outgrow one
	for i := range runs {
		run := "run_" + strconv.Itoa(i)
		at := t0.Add(time.Duration(i) * time.Millisecond)
		held = append(held, hold(t, b.eng.Event(part, started(t, run, at, withLabels("env", "prod")))))
		if i%2 == 0 {
			held = append(held, hold(t, b.eng.Event(part, failed(t, run, at.Add(time.Millisecond), withError("OOM", "out of memory "+run), withLabels("env", "prod")))))
		}
	}
	b.clock.now = t0.Add(2 * time.Minute)
	burst := b.eng.Tick(part, true)
	if len(burst.Deliveries) != runs/2 {
		t.Fatalf("%d duration alerts in the burst, want %d", len(burst.Deliveries), runs/2)
	}
	held = append(held, hold(t, burst))
	for i := range 50 { // and more calls after the burst
		run := "later_" + strconv.Itoa(i)
		at := t0.Add(3 * time.Minute)
		held = append(held, hold(t, b.eng.Event(part, failed(t, run, at))))
	}
	for _, h := range held {
		for i, d := range h.out.Deliveries {
			if d.AlertID != h.ids[i] || string(d.Payload) != h.payloads[i] {
				t.Fatalf("delivery %s changed after its call:\n was %s\n now %s", h.ids[i], h.payloads[i], d.Payload)
			}
			_ = append(d.Payload, "garbage"...) // copies: the capacity is clipped
		}
	}
	n := 0
	for _, h := range held {
		for i, d := range h.out.Deliveries {
			if string(d.Payload) != h.payloads[i] {
				t.Fatalf("delivery %s changed by an append to another payload", h.ids[i])
			}
			n++
		}
		for i, s := range h.out.States {
			js := ""
			if s.Value != nil {
				v, _ := s.Value.AppendJSON(nil)
				js = string(v)
			}
			if js != h.states[i] {
				t.Fatalf("state %s changed after its call:\n was %s\n now %s", s.Key, h.states[i], js)
			}
		}
	}
	if want := runs/2*2 + runs/2 + 50; n != want {
		t.Fatalf("%d deliveries held, want %d", n, want)
	}
}

// A run's state and payloads carry its own labels, even where the shared
// contexts' key could not tell two label sets apart (NULs, which valid
// events never hold).
func TestContextsKeepEachRunsLabels(t *testing.T) {
	b := setup(t)
	b.rules.put(t, schemas.RuleRecord{ID: "failures", EventType: schemas.TypeRunFailed})
	b.rules.put(t, schemas.RuleRecord{ID: "slow", EventType: schemas.TypeRunDurationExceeded, DurationThresholdMS: 1000})
	sets := []map[string]string{{"a\x00b": "c"}, {"a": "b\x00c"}}
	for i, labels := range sets {
		run := "run_" + strconv.Itoa(i)
		out := b.eng.Event(part, rawEvent(schemas.TypeRunStarted, "s_"+run, run, t0, func(e *schemas.WorkflowEvent) { e.Data.Labels = labels }))
		if st, ok := lastState(out, "acme/"+run); !ok || !maps.Equal(st.Value.Labels, labels) {
			t.Fatalf("%s: state labels %q, want %q", run, st.Value.Labels, labels)
		}
	}
	for i, labels := range sets {
		run := "run_" + strconv.Itoa(i)
		out := b.eng.Event(part, rawEvent(schemas.TypeRunFailed, "f_"+run, run, t0.Add(time.Duration(i+2)*time.Second), func(e *schemas.WorkflowEvent) { e.Data.Labels = labels }))
		want, _ := json.Marshal(labels)
		n := 0
		for _, d := range out.Deliveries {
			var p struct {
				Data struct{ Labels json.RawMessage }
			}
			if err := json.Unmarshal(d.Payload, &p); err != nil {
				t.Fatal(err)
			}
			if d.RuleID == "failures" || strings.Contains(string(d.Payload), `"id":"`+run+`"`) {
				if string(p.Data.Labels) != string(want) {
					t.Fatalf("%s: %s alert's labels %s, want %s", run, d.RuleID, p.Data.Labels, want)
				}
				n++
			}
		}
		if n == 0 {
			t.Fatalf("%s: no alert checked", run)
		}
	}
}

// Under Config.ReuseOutput each call's Output, read before the next call,
// is the Output an engine without it gives: the same deliveries (ids and
// payloads) and run states, through calls that fill the chunk and a Tick
// whose burst of duration alerts outgrows it.
func TestReusedOutputIsTheSame(t *testing.T) {
	owned, reused := setup(t), setup(t)
	reused.eng.cfg.ReuseOutput = true
	for _, b := range []*bundle{owned, reused} {
		b.rules.put(t, schemas.RuleRecord{ID: "failures", EventType: schemas.TypeRunFailed, IncludeErrorMessage: true})
		b.rules.put(t, schemas.RuleRecord{ID: "prod", EventType: schemas.TypeRunFailed, Condition: `labels.env == "prod"`})
		b.rules.put(t, schemas.RuleRecord{ID: "slow", EventType: schemas.TypeRunDurationExceeded, DurationThresholdMS: 60_000})
	}
	calls, deliveries := 0, 0
	same := func(call func(b *bundle) Output) {
		t.Helper()
		want, got := hold(t, call(owned)), hold(t, call(reused))
		if !slices.Equal(got.ids, want.ids) || !slices.Equal(got.payloads, want.payloads) || !slices.Equal(got.states, want.states) {
			t.Fatalf("call %d: reused output\n %q\n %q\n %q\nwant\n %q\n %q\n %q", calls, got.ids, got.payloads, got.states, want.ids, want.payloads, want.states)
		}
		for i := range want.out.States {
			if got.out.States[i].Key != want.out.States[i].Key {
				t.Fatalf("call %d: state key %q, want %q", calls, got.out.States[i].Key, want.out.States[i].Key)
			}
		}
		calls++
		deliveries += len(want.ids)
	}
	const runs = 600
	for i := range runs {
		run := "run_" + strconv.Itoa(i)
		at := t0.Add(time.Duration(i) * time.Millisecond)
		same(func(b *bundle) Output { return b.eng.Event(part, started(t, run, at, withLabels("env", "prod"))) })
		if i%2 == 0 {
			same(func(b *bundle) Output {
				return b.eng.Event(part, failed(t, run, at.Add(time.Millisecond), withError("OOM", "out of memory "+run), withLabels("env", "prod")))
			})
		}
	}
	owned.clock.now, reused.clock.now = t0.Add(2*time.Minute), t0.Add(2*time.Minute)
	same(func(b *bundle) Output { return b.eng.Tick(part, true) })
	for i := range 50 {
		run := "later_" + strconv.Itoa(i)
		same(func(b *bundle) Output { return b.eng.Event(part, failed(t, run, t0.Add(3*time.Minute))) })
	}
	if want := runs/2*2 + runs/2 + 50; deliveries != want {
		t.Fatalf("%d deliveries compared, want %d", deliveries, want)
	}
}
