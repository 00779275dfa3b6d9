package aggregate

import (
	"encoding/json"

	"github.com/exospherehost/exo-alerts/schemas"
)

// runStatus is the run status an event type reports.
func runStatus(eventType string) string {
	switch eventType {
	case schemas.TypeRunFailed:
		return "failed"
	case schemas.TypeRunSucceeded:
		return "succeeded"
	}
	return "running"
}

// delivery makes the DeliveryRecord of one firing, repeat or resolve of
// en's episode (design §3.3): payload v1 of type typ with data.aggregate,
// to n's endpoint with its rule version, severity and attempts. ev is the
// event the payload names: the crossing one (count), the last failure
// (rate), the group's last for a resolve.
func (e *Engine) delivery(en *entry, n *schemas.AggregateNotify, typ, alertID string, tr Transition, ev *schemas.AggregateEvent) schemas.DeliveryRecord {
	g := &en.g
	at := tr.At.UTC()
	group, labels := e.groupMap(en)
	agg := &schemas.PayloadAggregate{
		IncidentID: tr.IncidentID, Kind: schemas.RuleKindCount, State: schemas.AggregateStateFiring, Group: group,
		WindowMS: g.Spec.WindowMS, FiringSince: tr.FiringSince.UTC(), Repeat: tr.Repeat,
	}
	var value schemas.PayloadAggregateValue
	if g.Spec.Kind == Rate {
		agg.Kind = schemas.RuleKindRate
		if g.Spec.RatioBelowBP > 0 {
			r := float64(g.Spec.RatioBelowBP) / 10_000
			agg.SuccessRatioBelow = &r
		}
		if g.Spec.MinRuns > 0 {
			m := g.Spec.MinRuns
			agg.MinRuns = &m
		}
	} else if g.Spec.Threshold > 0 {
		th := g.Spec.Threshold
		agg.Threshold = &th
	}
	v := valueOf(g.Spec.Kind, tr.Value)
	value.Matched, value.Succeeded, value.Failed, value.Ratio = v.Matched, v.Succeeded, v.Failed, v.Ratio
	agg.Value = value

	data := schemas.PayloadData{
		AlertID: alertID, TenantID: g.Tenant, Rule: schemas.RuleRef{ID: g.Rule, Name: n.RuleName},
		Labels: labels, Aggregate: agg,
	}
	if ev != nil {
		data.Workflow = ev.Workflow
		data.Run = schemas.PayloadRun{ID: ev.RunID, Status: runStatus(ev.Type)}
	}
	if typ == schemas.TypeAlertResolved {
		agg.State = "resolved"
		agg.ResolvedAt = &at
		reason := tr.Reason
		agg.ResolveReason = &reason
		agg.Repeat = 0
		data.Event = schemas.EventRef{ID: tr.IncidentID, Type: schemas.TypeAlertResolved, OccurredAt: at}
	} else if ev != nil {
		occurred := ev.At
		if occurred.IsZero() {
			occurred = at
		}
		data.Event = schemas.EventRef{ID: ev.ID, Type: ev.Type, OccurredAt: occurred.UTC()}
		if g.Spec.Kind == Count && ev.Type == schemas.TypeRunFailed && ev.ErrorCode != "" {
			data.Error = &schemas.PayloadError{Code: ev.ErrorCode}
		}
	} else {
		data.Event = schemas.EventRef{ID: tr.IncidentID, Type: typ, OccurredAt: at}
	}
	body, _ := json.Marshal(schemas.WebhookPayload{Type: typ, Timestamp: at, Data: data}) // plain structs: cannot fail
	return schemas.DeliveryRecord{
		AlertID: alertID, TenantID: g.Tenant, RuleID: g.Rule, EndpointID: n.EndpointID, EventType: typ,
		MaxAttempts: n.MaxAttempts, RuleVersion: n.RuleVersion, Severity: n.Severity, CreatedAt: at, Payload: body,
	}
}
