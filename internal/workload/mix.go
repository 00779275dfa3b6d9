package workload

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/exospherehost/exo-alerts/schemas"
)

// The throughput mix is the workload of the throughput benchmarks: the
// processor's on a real broker (BenchmarkProcessorThroughput, and its raw
// pipe) and the engine's alone (BenchmarkEngineMix). MixTenants tenants
// have the same MixRules each, and MixRuns runs (a started and a terminal
// event each) are spread over them.
const (
	MixTenants   = 1000
	MixEndpoints = 2 // per tenant; rule i delivers to endpoint i mod MixEndpoints
	MixRuns      = 25_000
	MixEvents    = 2 * MixRuns
	// mixLongRun is the shortest long run: long runs last 20-30 min and
	// pass the duration thresholds, short ones 5-60 s.
	mixLongRun = 20 * time.Minute
)

// MixRun is one generated workflow run.
type MixRun struct {
	Tenant, ID, Workflow, Env, Code string
	Attempt                         int
	Failed                          bool
	Start                           time.Time
	Dur                             time.Duration
}

// MixRule is one rule of every tenant's mix; Match says, in Go, what its
// condition says, so the expected deliveries can be counted.
type MixRule struct {
	EventType string
	Condition string
	Threshold time.Duration
	Match     func(r *MixRun) bool
}

func mixAlways(*MixRun) bool { return true }

func mixProd(r *MixRun) bool { return r.Env == "prod" }

// MixRules are the 10 rules of every tenant: 5 on failures, 3 on
// successes, 2 duration rules; 7 of them with a condition (7 distinct
// sources in all).
var MixRules = [10]MixRule{
	{EventType: schemas.TypeRunFailed, Match: mixAlways},
	{EventType: schemas.TypeRunFailed, Condition: `labels.env == "prod"`, Match: mixProd},
	{EventType: schemas.TypeRunFailed, Condition: `error.code == "TIMEOUT"`, Match: func(r *MixRun) bool { return r.Code == "TIMEOUT" }},
	{EventType: schemas.TypeRunFailed, Condition: `labels.env == "prod" && run.attempt > 1`, Match: func(r *MixRun) bool { return r.Env == "prod" && r.Attempt > 1 }},
	{EventType: schemas.TypeRunFailed, Condition: `workflow.name in ["etl", "sync"]`, Match: func(r *MixRun) bool { return r.Workflow == "etl" || r.Workflow == "sync" }},
	{EventType: schemas.TypeRunSucceeded, Match: mixAlways},
	{EventType: schemas.TypeRunSucceeded, Condition: `labels.env == "prod"`, Match: mixProd},
	{EventType: schemas.TypeRunSucceeded, Condition: `run.duration_ms > 600000`, Match: func(r *MixRun) bool { return r.Dur > 10*time.Minute }},
	{EventType: schemas.TypeRunDurationExceeded, Threshold: 10 * time.Minute, Match: mixAlways},
	{EventType: schemas.TypeRunDurationExceeded, Threshold: 15 * time.Minute, Condition: `labels.env == "prod"`, Match: mixProd},
}

// MixTenant is the id of tenant i.
func MixTenant(i int) string { return fmt.Sprintf("tenant_%04d", i) }

// MixEndpointID is the id of a tenant's endpoint i.
func MixEndpointID(i int) string { return fmt.Sprintf("we_%d", i) }

// MixRuleRecord is rule i of MixRules for tenant, as the control plane
// publishes it, updated at.
func MixRuleRecord(tenant string, i int, at time.Time) schemas.RuleRecord {
	r := MixRules[i]
	id := fmt.Sprintf("ar_%d", i)
	return schemas.RuleRecord{
		TenantID: tenant, ID: id, Name: "rule " + id, EventType: r.EventType, Condition: r.Condition,
		WebhookEndpointID: MixEndpointID(i % MixEndpoints), IsActive: true, MaxAttempts: 8,
		DurationThresholdMS: r.Threshold.Milliseconds(), Severity: "warning", Version: 1, UpdatedAt: at,
	}
}

// NewMix returns the runs and their events in event-time order: runs
// start over three hours from base, so that, an hour after that, every
// run has finished in event time and long runs pass their duration
// thresholds while other events of their partition move the watermark.
// The same runs every time (a fixed seed); event ids are random.
func NewMix(base time.Time) ([]MixRun, []schemas.WorkflowEvent) {
	rng := rand.New(rand.NewPCG(1, 2)) //nolint:gosec // G404: a fixed seed, so every run generates the same workload
	span := 3 * time.Hour
	workflows := []string{"etl", "report", "sync"}
	runs := make([]MixRun, MixRuns)
	type timed struct {
		at time.Time
		ev schemas.WorkflowEvent
	}
	evs := make([]timed, 0, MixEvents)
	for i := range runs {
		r := &runs[i]
		r.Tenant = MixTenant(i % MixTenants)
		r.ID = fmt.Sprintf("run_%06d", i)
		r.Workflow = workflows[rng.IntN(len(workflows))]
		r.Env = "staging"
		if rng.IntN(3) == 0 {
			r.Env = "prod"
		}
		r.Attempt = 1
		if rng.IntN(4) == 0 {
			r.Attempt = 2
		}
		r.Failed = rng.IntN(5) == 0
		if r.Failed {
			r.Code = "NODE_ERRORED"
			if rng.IntN(2) == 0 {
				r.Code = "TIMEOUT"
			}
		}
		r.Start = base.Add(span * time.Duration(i) / MixRuns).Add(time.Duration(rng.IntN(1000)) * time.Millisecond)
		if rng.IntN(20) == 0 {
			r.Dur = mixLongRun + time.Duration(rng.IntN(600_000))*time.Millisecond
		} else {
			r.Dur = 5*time.Second + time.Duration(rng.IntN(55_000))*time.Millisecond
		}
		spec := Spec{
			Tenant: r.Tenant, WorkflowName: r.Workflow, RunID: r.ID, Attempt: r.Attempt,
			Labels: map[string]string{"env": r.Env, "team": "data"},
		}
		started := spec
		started.Type, started.Time = schemas.TypeRunStarted, r.Start
		done := spec
		done.Type, done.Time, done.Duration = schemas.TypeRunSucceeded, r.Start.Add(r.Dur), r.Dur
		if r.Failed {
			done.Type, done.ErrorCode, done.ErrorMessage = schemas.TypeRunFailed, r.Code, "node transform failed"
		}
		evs = append(evs, timed{started.Time, Event(started)}, timed{done.Time, Event(done)})
	}
	slices.SortStableFunc(evs, func(x, y timed) int { return x.at.Compare(y.at) })
	out := make([]schemas.WorkflowEvent, len(evs))
	for i := range evs {
		out[i] = evs[i].ev
	}
	return runs, out
}

// MixExpected counts the deliveries MixRules predict for runs: all of
// them, and of them duration alerts.
func MixExpected(runs []MixRun) (total, duration int) {
	for i := range runs {
		r := &runs[i]
		terminal := schemas.TypeRunSucceeded
		if r.Failed {
			terminal = schemas.TypeRunFailed
		}
		for _, rule := range MixRules {
			switch {
			case rule.EventType == terminal && rule.Match(r):
				total++
			case rule.EventType == schemas.TypeRunDurationExceeded && r.Dur > rule.Threshold && rule.Match(r):
				total++
				duration++
			}
		}
	}
	return total, duration
}
