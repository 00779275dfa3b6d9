package engine

import (
	"errors"
	"time"

	"github.com/exospherehost/exo-alerts/internal/condition"
	"github.com/exospherehost/exo-alerts/schemas"
)

// RuleErrorInterval is the shortest time between two rule-error records of
// one rule from one engine; the failures in between are counted into the
// next record.
const RuleErrorInterval = time.Minute

// ruleErrors is what a rule's failures since its last record add up to.
type ruleErrors struct {
	lastReport time.Time // wall clock of the last record; zero: none yet
	pending    schemas.RuleErrorRecord
}

// ruleError handles rule r failing on the event eventID: the rule is
// skipped for that event (the caller continues with the next rule), the
// failure is counted by reason, and a rule-error record is added to out
// unless the rule had one less than RuleErrorInterval ago. Which events a
// rule fails on is decided by the condition alone (its budget is counted,
// not timed), so a replay skips the same; only when the records are written
// depends on the wall clock.
func (e *Engine) ruleError(out *Output, r *Rule, eventID string, err error) {
	e.count(&e.Stats.ConditionErrors)
	msg := "condition failed at run time"
	var ee *condition.EvalError
	if errors.As(err, &ee) {
		msg = ee.Summary()
	}
	if ee != nil && ee.Reason == condition.ReasonBudget {
		e.count(&e.Stats.RuleErrorsBudget)
	} else {
		e.count(&e.Stats.RuleErrorsRuntime)
	}
	key := schemas.TenantKey(r.TenantID, r.ID)
	old := e.ruleErrs[key]
	e.saveRuleErrors(key, old)
	re := &ruleErrors{}
	if old != nil {
		*re = *old
	}
	e.ruleErrs[key] = re
	now := e.cfg.Clock.Now().UTC()
	re.pending = schemas.RuleErrorRecord{
		TenantID: r.TenantID, RuleID: r.ID, RuleVersion: max(r.Version, 1), EventID: eventID,
		Error: msg, Errors: re.pending.Errors + 1, At: now,
	}
	e.flushRuleError(out, key, re, now)
}

// flushRuleError adds re's pending record to out when it has one and the
// rule's last record is at least RuleErrorInterval old.
func (e *Engine) flushRuleError(out *Output, key string, re *ruleErrors, now time.Time) {
	if re.pending.Errors == 0 || (!re.lastReport.IsZero() && now.Sub(re.lastReport) < RuleErrorInterval) {
		return
	}
	out.RuleErrors = append(out.RuleErrors, re.pending)
	re.lastReport = now
	re.pending = schemas.RuleErrorRecord{}
	e.ruleErrs[key] = re
}

// flushRuleErrors reports the failures still pending whose rule may have a
// record again.
func (e *Engine) flushRuleErrors(out *Output) {
	if len(e.ruleErrs) == 0 {
		return // the usual case: no clock reading for nothing
	}
	now := e.cfg.Clock.Now().UTC()
	for key, re := range e.ruleErrs {
		if re.pending.Errors == 0 || now.Sub(re.lastReport) < RuleErrorInterval {
			if re.pending.Errors == 0 && now.Sub(re.lastReport) >= RuleErrorInterval {
				e.saveRuleErrors(key, re)
				delete(e.ruleErrs, key) // nothing to report and free to report at once
			}
			continue
		}
		e.saveRuleErrors(key, re)
		cp := *re
		e.flushRuleError(out, key, &cp, now)
	}
}

func (e *Engine) saveRuleErrors(key string, re *ruleErrors) {
	if e.undo == nil {
		return
	}
	if _, done := e.undo.ruleErrs[key]; !done {
		e.undo.ruleErrs[key] = re
	}
}
