// Stage 1 of aggregate (count and rate) rules: an event that is not a
// duplicate makes one aggregate input per aggregate rule whose condition
// holds, for stage 2 (processor/aggregate) to count. Aggregate rules never
// alert per event.

package engine

import (
	"time"

	"github.com/exospherehost/exo-alerts/internal/condition"
	"github.com/exospherehost/exo-alerts/schemas"
)

// eventInput is the input of aggregate rule r for ev, when r's condition
// holds on it (the evaluator's environment is ev's).
func (e *Engine) eventInput(out *Output, r *Rule, ev *schemas.WorkflowEvent) (schemas.AggregateInput, bool) {
	outcome := inputOutcome(r, ev.Type)
	if outcome == "" {
		return schemas.AggregateInput{}, false
	}
	ok, err := e.eval.Match(r.Cond)
	if err != nil {
		e.ruleError(out, r, ev.ID, err)
		return schemas.AggregateInput{}, false
	}
	if !ok {
		return schemas.AggregateInput{}, false
	}
	e.count(&e.Stats.AggregateInputs)
	in := newInput(r, e.eval.Env(), outcome)
	in.At = ev.Time.UTC()
	in.Event = &schemas.AggregateEvent{ID: ev.ID, Type: ev.Type, RunID: ev.Data.Run.ID, Workflow: ev.Data.Workflow}
	if ev.Data.Error != nil {
		in.Event.ErrorCode = ev.Data.Error.Code
	}
	return in, true
}

// durationInput is the input of duration count rule r for the run of st,
// whose deadline passed at deadline (its event time).
func durationInput(st *schemas.RunState, r *Rule, env *condition.Env, deadline time.Time) schemas.AggregateInput {
	in := newInput(r, env, schemas.AggregateOutcomeMatched)
	in.At = deadline.UTC()
	id := st.StartEventID
	if id == "" {
		id = st.RunID
	}
	in.Event = &schemas.AggregateEvent{ID: id, Type: schemas.TypeRunDurationExceeded, RunID: st.RunID, Workflow: st.Workflow}
	return in
}

func newInput(r *Rule, env *condition.Env, outcome string) schemas.AggregateInput {
	in := schemas.AggregateInput{
		Kind: schemas.AggregateInputKindInput, TenantID: r.TenantID, RuleID: r.ID, Spec: r.Spec, Outcome: outcome,
	}
	if len(r.GroupBy) > 0 {
		in.Group = make([]string, len(r.GroupBy))
		for i, path := range r.GroupBy {
			in.Group[i] = condition.GroupValue(env, path)
		}
	}
	return in
}

// inputOutcome is what an event of type t counts as for aggregate rule r:
// matched for a count rule; succeeded or failed, by the run's terminal
// type, for a rate rule ("" for any other type: a rate rule counts only
// finished runs).
func inputOutcome(r *Rule, t string) string {
	switch r.RuleKind() {
	case schemas.RuleKindCount:
		return schemas.AggregateOutcomeMatched
	case schemas.RuleKindRate:
		switch t {
		case schemas.TypeRunSucceeded:
			return schemas.AggregateOutcomeSucceeded
		case schemas.TypeRunFailed:
			return schemas.AggregateOutcomeFailed
		}
	}
	return ""
}
