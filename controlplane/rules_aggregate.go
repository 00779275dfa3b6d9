package controlplane

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/exospherehost/exo-alerts/internal/condition"
	"github.com/exospherehost/exo-alerts/internal/store"
	"github.com/exospherehost/exo-alerts/schemas"
)

// The aggregate kinds of a rule (count and rate; docs/design/
// aggregate-alerts.md §1): their members' limits and defaults, the members
// each kind refuses, and the per-tenant caps.

// Defaults and per-tenant caps of aggregate rules.
const (
	DefaultMinRuns                  = 10
	DefaultMaxGroups                = 500
	DefaultAggregateRulesPerTenant  = 100
	DefaultAggregateGroupsPerTenant = 50_000
)

// aggregateSpec is the validated aggregate part of a rule; nil pointers are
// NULL columns (a per-event rule has only nils).
type aggregateSpec struct {
	kind                    string
	windowMS, holdMS, repMS *int64
	threshold, bp, minRuns  *int
	groupBy                 []string
	maxGroups               *int
}

func (a aggregateSpec) apply(r *store.RuleRow) {
	r.Kind, r.WindowMS, r.HoldMS, r.RepeatIntervalMS = a.kind, a.windowMS, a.holdMS, a.repMS
	r.Threshold, r.SuccessRatioBelowBP, r.MinRuns, r.MaxGroups = a.threshold, a.bp, a.minRuns, a.maxGroups
	r.GroupBy = a.groupBy
}

func ptr[T any](v T) *T { return &v }

// buildAggregate validates the kind and its members; eventType is the
// rule's (rate rules' already filled in).
func buildAggregate(kind, eventType string, b *AlertRuleCreate) (aggregateSpec, []error) {
	m := &b.AggregateMembers
	a := aggregateSpec{kind: kind, groupBy: []string{}}
	var details []error
	refuse := func(member string, value any, msg string) {
		details = append(details, &huma.ErrorDetail{Location: "body." + member, Message: msg, Value: value})
	}
	if kind == schemas.RuleKindPerEvent {
		if eventType == schemas.TypeRunFinished {
			refuse("event_type", eventType, "workflow.run.finished (a run's succeeded or failed event) is watched by count and rate rules only; a per-event rule watches workflow.run.succeeded or workflow.run.failed")
		}
		const only = "only count and rate rules take %s (set kind, or leave it out)"
		for _, f := range []struct {
			member string
			set    bool
			value  any
		}{
			{"window", m.Window != "", m.Window}, {"threshold", m.Threshold != 0, m.Threshold},
			{"success_ratio_below", m.SuccessRatioBelow != 0, m.SuccessRatioBelow}, {"min_runs", m.MinRuns != 0, m.MinRuns},
			{"group_by", len(m.GroupBy) > 0, m.GroupBy}, {"max_groups", m.MaxGroups != 0, m.MaxGroups},
			{"hold", m.Hold != "", m.Hold}, {"repeat_interval", m.RepeatInterval != "", m.RepeatInterval},
		} {
			if f.set {
				refuse(f.member, f.value, fmt.Sprintf(only, f.member))
			}
		}
		return aggregateSpec{kind: kind, groupBy: []string{}}, details
	}

	// count and rate: the per-event noise controls do not apply.
	if b.RateLimitPerMinute != 0 {
		refuse("rate_limit_per_minute", b.RateLimitPerMinute, "count and rate rules fire once per episode: their noise control is repeat_interval")
	}
	if b.Cooldown != "" {
		refuse("cooldown", b.Cooldown, "count and rate rules fire once per episode: their noise control is repeat_interval")
	}
	if b.IncludeErrorMessage {
		refuse("include_error_message", true, "count and rate rules carry no error message (their inputs keep only the error code)")
	}
	if m.Window == "" {
		refuse("window", nil, "required for "+kind+" rules: a Go duration in whole minutes from 1m to 24h, e.g. 15m")
	} else {
		w, d := parseDuration("body.window", m.Window, time.Minute, 24*time.Hour)
		switch {
		case d != nil:
			details = append(details, d)
		case w%time.Minute != 0:
			refuse("window", m.Window, "whole minutes only (the window is 60 buckets of window/60), e.g. 15m")
		default:
			a.windowMS = ptr(w.Milliseconds())
		}
	}
	if kind == schemas.RuleKindCount {
		if m.Threshold == 0 {
			refuse("threshold", nil, "required for count rules: fire at this many matching events in the window (1 to 100000)")
		} else {
			a.threshold = ptr(m.Threshold)
		}
		if m.SuccessRatioBelow != 0 {
			refuse("success_ratio_below", m.SuccessRatioBelow, "only rate rules take success_ratio_below")
		}
		if m.MinRuns != 0 {
			refuse("min_runs", m.MinRuns, "only rate rules take min_runs")
		}
	} else {
		if eventType != schemas.TypeRunFinished {
			refuse("event_type", eventType, "rate rules watch workflow.run.finished (leave event_type out, or set it to workflow.run.finished)")
		}
		if m.Threshold != 0 {
			refuse("threshold", m.Threshold, "only count rules take a threshold; a rate rule's is success_ratio_below")
		}
		switch bp := math.Round(m.SuccessRatioBelow * 10000); {
		case m.SuccessRatioBelow == 0:
			refuse("success_ratio_below", nil, "required for rate rules: fire when the success ratio is below this number, from 0.0001 to 1, e.g. 0.95")
		case math.Abs(m.SuccessRatioBelow*10000-bp) > 1e-6:
			refuse("success_ratio_below", m.SuccessRatioBelow, "at most 4 decimals, e.g. 0.95 or 0.9995")
		case bp < 1 || bp > 10000:
			refuse("success_ratio_below", m.SuccessRatioBelow, "must be between 0.0001 and 1")
		default:
			a.bp = ptr(int(bp))
		}
		a.minRuns = ptr(DefaultMinRuns)
		if m.MinRuns != 0 {
			a.minRuns = ptr(m.MinRuns)
		}
	}
	for _, err := range condition.CheckGroupByList(m.GroupBy, eventType) {
		loc := "body.group_by"
		var ge *condition.GroupByError
		if errors.As(err, &ge) {
			if i := slices.Index(m.GroupBy, ge.Path); i >= 0 {
				if ge.Reason == "listed twice" {
					i = i + 1 + slices.Index(m.GroupBy[i+1:], ge.Path)
				}
				loc = fmt.Sprintf("body.group_by[%d]", i)
			}
			details = append(details, &huma.ErrorDetail{Location: loc, Message: ge.Reason, Value: ge.Path})
			continue
		}
		details = append(details, &huma.ErrorDetail{Location: loc, Message: err.Error(), Value: m.GroupBy})
	}
	if len(m.GroupBy) > 0 {
		a.groupBy = slices.Clone(m.GroupBy)
		a.maxGroups = ptr(DefaultMaxGroups)
		if m.MaxGroups != 0 {
			a.maxGroups = ptr(m.MaxGroups)
		}
	} else {
		if m.MaxGroups > 1 {
			refuse("max_groups", m.MaxGroups, "without group_by a rule watches one group: max_groups is 1 or absent")
		}
		a.maxGroups = ptr(1)
	}
	hold, d := parseDuration("body.hold", m.Hold, 0, 24*time.Hour)
	if d != nil {
		details = append(details, d)
	}
	a.holdMS = ptr(hold.Milliseconds())
	rep, d := parseDuration("body.repeat_interval", m.RepeatInterval, time.Minute, 168*time.Hour)
	if d != nil {
		details = append(details, d)
	}
	if rep > 0 {
		a.repMS = ptr(rep.Milliseconds())
	}
	return a, details
}

// aggregateDocument is the aggregate part of a rule's create document (the
// base of a merge patch): the members as a user would send them, defaults
// left out where leaving them out gives the same rule (hold 0s, max_groups
// 1 without group_by), so that a patch to another kind needs to null only
// what the user could have set.
func aggregateDocument(r *store.RuleRow, a *AlertRule) AggregateMembers {
	if !r.IsAggregate() {
		return AggregateMembers{Kind: a.Kind}
	}
	m := AggregateMembers{Kind: a.Kind, Window: a.Window, Threshold: deref(r.Threshold), MinRuns: deref(r.MinRuns),
		GroupBy: slices.Clone(r.GroupBy), RepeatInterval: a.RepeatInterval}
	if a.SuccessRatioBelow != nil {
		m.SuccessRatioBelow = *a.SuccessRatioBelow
	}
	if len(r.GroupBy) > 0 {
		m.MaxGroups = deref(r.MaxGroups)
	}
	if deref(r.HoldMS) > 0 {
		m.Hold = a.Hold
	}
	return m
}

// groupsOf is what a rule takes of the tenant's groups cap (0 when it is
// not an active aggregate rule).
func groupsOf(r *store.RuleRow) int64 {
	if r == nil || !r.IsAggregate() || !r.IsActive {
		return 0
	}
	return int64(max(deref(r.MaxGroups), 1))
}

// checkAggregateCaps refuses (422 on body.kind or body.max_groups) a rule
// that would take the tenant over its caps of active aggregate rules
// (EXO_AGGREGATE_RULES_PER_TENANT) or of their summed max_groups
// (EXO_AGGREGATE_GROUPS_PER_TENANT). before is the rule as stored (nil for
// a create): a change that does not add to the load is never refused, even
// above a cap lowered since. It runs in the rule's transaction under the
// tenant's aggregate-rules lock, so racing writes cannot both pass.
func (s *Server) checkAggregateCaps(ctx context.Context, tx *store.Tx, before, r *store.RuleRow) error {
	after := groupsOf(r)
	if after == 0 {
		return nil
	}
	load, err := tx.LockAggregateRules(ctx, r.ID)
	if err != nil {
		return err
	}
	var details []error
	if groupsOf(before) == 0 && load.Rules+1 > s.cfg.AggregateRulesPerTenant {
		details = append(details, &huma.ErrorDetail{Location: "body.kind", Value: r.Kind, Message: fmt.Sprintf(
			"the tenant has %d active count and rate rules, the most allowed (EXO_AGGREGATE_RULES_PER_TENANT): deactivate or delete one, or make this one per_event",
			load.Rules)})
	}
	if after > groupsOf(before) && load.Groups+after > s.cfg.AggregateGroupsPerTenant {
		details = append(details, &huma.ErrorDetail{Location: "body.max_groups", Value: after, Message: fmt.Sprintf(
			"the tenant's active count and rate rules already take %d groups of the %d allowed (EXO_AGGREGATE_GROUPS_PER_TENANT): at most %d are left",
			load.Groups, s.cfg.AggregateGroupsPerTenant, max(s.cfg.AggregateGroupsPerTenant-load.Groups, 0))})
	}
	if len(details) > 0 {
		return huma.Error422UnprocessableEntity("validation failed: the tenant's aggregate rule caps", details...)
	}
	return nil
}
