package processor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/internal/workload"
	"github.com/exospherehost/exo-alerts/processor"
	"github.com/exospherehost/exo-alerts/schemas"
)

// The aggregate workload (design §8 C): 10 tenants with 100 aggregate rules
// each (1,000), 10,000 runs (20,000 events) spread over the tenants and
// ten teams, over two hours of event time ending an hour ago.
const (
	aggBenchTenants = 10
	aggBenchRules   = 100
	aggBenchRuns    = 10_000
	aggBenchEvents  = 2 * aggBenchRuns
	aggBenchTeams   = 10
)

// aggBenchRule is one rule of every tenant's aggregate mix, with the
// event types and the Go form of its condition that the inputs are
// counted from.
type aggBenchRule struct {
	rec   schemas.RuleRecord
	types []string
	match func(team int, prod bool) bool
}

// aggBenchMix is the 100 aggregate rules of a tenant: per team, 4 count
// rules on failures (grouped by workflow), 3 rate rules on finished runs
// (grouped by workflow), 2 count rules on finished prod runs (grouped by
// team), 1 count rule on starts (no grouping).
func aggBenchMix() []aggBenchRule {
	var mix []aggBenchRule
	finished := []string{schemas.TypeRunSucceeded, schemas.TypeRunFailed}
	for team := range aggBenchTeams {
		cond := fmt.Sprintf(`labels.team == "team%d"`, team)
		onTeam := func(tm int, _ bool) bool { return tm == team }
		add := func(n int, r schemas.RuleRecord, types []string, match func(int, bool) bool) {
			for range n {
				r.ID = fmt.Sprintf("agg_%03d", len(mix))
				mix = append(mix, aggBenchRule{rec: r, types: types, match: match})
			}
		}
		add(4, schemas.RuleRecord{Kind: schemas.RuleKindCount, EventType: schemas.TypeRunFailed, Condition: cond, WindowMS: 15 * 60_000, Threshold: 5,
			GroupBy: []string{"workflow.name"}, MaxGroups: 100}, []string{schemas.TypeRunFailed}, onTeam)
		add(3, schemas.RuleRecord{Kind: schemas.RuleKindRate, EventType: schemas.TypeRunFinished, Condition: cond, WindowMS: 3600_000,
			SuccessRatioBelowBP: 9000, MinRuns: 10, GroupBy: []string{"workflow.name"}, MaxGroups: 100}, finished, onTeam)
		add(2, schemas.RuleRecord{Kind: schemas.RuleKindCount, EventType: schemas.TypeRunFinished, Condition: cond + ` && labels.env == "prod"`,
			WindowMS: 60 * 60_000, Threshold: 50, GroupBy: []string{"labels.team"}, MaxGroups: 10}, finished,
			func(tm int, prod bool) bool { return tm == team && prod })
		add(1, schemas.RuleRecord{Kind: schemas.RuleKindCount, EventType: schemas.TypeRunStarted, Condition: cond, WindowMS: 5 * 60_000, Threshold: 1000},
			[]string{schemas.TypeRunStarted}, onTeam)
	}
	return mix
}

// aggBenchWorkload returns the rule and endpoint records (none when
// aggregates is false), the event backlog in event-time order, and how many
// aggregate inputs the rules make of it.
func aggBenchWorkload(b *testing.B, topics kafka.Topics, aggregates bool) (setup, events []*kgo.Record, inputs int) {
	b.Helper()
	now := time.Now().UTC()
	mix := aggBenchMix()
	if len(mix) != aggBenchRules {
		b.Fatalf("rule mix of %d rules", len(mix))
	}
	if aggregates {
		for t := range aggBenchTenants {
			tenant := benchTenant(t)
			ep, _ := jsonValue(schemas.EndpointRecord{TenantID: tenant, ID: "we_0", Name: "ops", Kind: "webhook", TargetURL: "https://hooks.example.com/" + tenant,
				Secret: schemas.Sealed{KeyID: "k1", Ciphertext: "c2VhbGVkIHNlY3JldA=="}, IsActive: true, Version: 1, UpdatedAt: now})
			setup = append(setup, &kgo.Record{Topic: topics.Endpoints, Key: schemas.RecordKey(tenant, "we_0"), Value: ep})
			for _, r := range mix {
				rec := r.rec
				rec.TenantID, rec.Name, rec.WebhookEndpointID, rec.IsActive, rec.MaxAttempts, rec.Version, rec.UpdatedAt = tenant, "rule "+rec.ID, "we_0", true, 8, 1, now
				v, _ := jsonValue(rec)
				setup = append(setup, &kgo.Record{Topic: topics.Rules, Key: schemas.RecordKey(tenant, rec.ID), Value: v})
			}
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	base := now.Add(-3 * time.Hour).Truncate(time.Second)
	type timed struct {
		at time.Time
		ev schemas.WorkflowEvent
	}
	evs := make([]timed, 0, aggBenchEvents)
	workflows := []string{"etl", "report", "sync"}
	for i := range aggBenchRuns {
		team, prod, failed := rng.IntN(aggBenchTeams), rng.IntN(3) == 0, rng.IntN(5) == 0
		start := base.Add(2 * time.Hour * time.Duration(i) / aggBenchRuns)
		dur := 5*time.Second + time.Duration(rng.IntN(55_000))*time.Millisecond
		env := "staging"
		if prod {
			env = "prod"
		}
		spec := workload.Spec{Tenant: benchTenant(i % aggBenchTenants), WorkflowName: workflows[rng.IntN(3)], RunID: fmt.Sprintf("run_%06d", i),
			Labels: map[string]string{"env": env, "team": fmt.Sprintf("team%d", team)}}
		started, done := spec, spec
		started.Type, started.Time = schemas.TypeRunStarted, start
		done.Type, done.Time, done.Duration = schemas.TypeRunSucceeded, start.Add(dur), dur
		if failed {
			done.Type = schemas.TypeRunFailed
		}
		evs = append(evs, timed{started.Time, workload.Event(started)}, timed{done.Time, workload.Event(done)})
		for _, r := range mix {
			for _, typ := range []string{started.Type, done.Type} {
				if slices.Contains(r.types, typ) && r.match(team, prod) {
					inputs++
				}
			}
		}
	}
	slices.SortStableFunc(evs, func(x, y timed) int { return x.at.Compare(y.at) })
	for _, e := range evs {
		rec, err := workload.Record(topics.Events, e.ev)
		if err != nil {
			b.Fatal(err)
		}
		events = append(events, rec)
	}
	if !aggregates {
		inputs = 0
	}
	return setup, events, inputs
}

// BenchmarkProcessorThroughputAggregates measures, on a real broker, how
// fast the processor works through a backlog of 20,000 workflow events with
// 1,000 aggregate rules (10 tenants × 100: count and rate rules with
// conditions and group_by), and with no rule at all. One op ends when stage
// 1 has counted every event and stage 2 every aggregate input (its
// exo_processor_aggregate_inputs_total); ns/op and events/s cover both
// stages. Each op checks that stage 2 read exactly the inputs the rule mix
// predicts, and no transaction aborted.
//
//	go test -run '^$' -bench BenchmarkProcessorThroughputAggregates -benchtime 1x -count 3 ./processor/
func BenchmarkProcessorThroughputAggregates(b *testing.B) {
	brokers := testenv.Brokers(b)
	if !testenv.RealKafka(b) {
		b.Skip("needs a real Kafka broker: eval \"$(deploy/local/services.sh env)\"")
	}
	for _, c := range []struct {
		name       string
		aggregates bool
	}{{"rules=none", false}, {"rules=aggregate", true}} {
		b.Run(c.name, func(b *testing.B) {
			var took time.Duration
			var inputs, groups, txns float64
			b.StopTimer()
			b.ResetTimer()
			for range b.N {
				r := aggBenchOnce(b, brokers, c.aggregates)
				took += r.took
				inputs += r.inputs
				groups += r.groups
				txns += r.txns
			}
			n := float64(b.N)
			b.ReportMetric(aggBenchEvents*n/took.Seconds(), "events/s")
			b.ReportMetric(float64(took.Microseconds())/(aggBenchEvents*n), "us/event")
			b.ReportMetric(inputs/(aggBenchEvents*n), "inputs/event")
			b.ReportMetric(groups/n, "groups")
			b.ReportMetric(aggBenchEvents*n/txns, "events/txn")
		})
	}
}

type aggBenchResult struct {
	took                 time.Duration
	inputs, groups, txns float64
}

func aggBenchOnce(b *testing.B, brokers []string, aggregates bool) aggBenchResult {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	topics := testenv.Topics(b)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cl, err := kgo.NewClient(kafka.ClientOpts(brokers, log)...)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	specs := topics.Specs(benchPartitions)
	if err := kafka.EnsureTopics(ctx, adm, specs); err != nil {
		b.Fatal(err)
	}
	defer func() {
		names := make([]string, len(specs))
		for i, s := range specs {
			names[i] = s.Name
		}
		dctx, dcancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer dcancel()
		if _, err := adm.DeleteTopics(dctx, names...); err != nil {
			b.Logf("delete topics: %v", err)
		}
	}()
	setup, events, wantInputs := aggBenchWorkload(b, topics, aggregates)
	if err := workload.Produce(ctx, cl, append(setup, events...)...); err != nil {
		b.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	ready := make(chan struct{})
	group := topics.Prefix + "processor"
	pctx, pcancel := context.WithCancel(ctx)
	defer pcancel()
	done := make(chan error, 1)
	go func() {
		done <- processor.Run(pctx, processor.Config{
			Brokers: brokers, Topics: topics, Partitions: benchPartitions, Group: group,
			TransactionalID: topics.Prefix + "processor-bench", Log: log, Registerer: reg, Ready: ready,
			KafkaOpts: aggBenchOpts,
		})
	}()
	select {
	case <-ready:
	case err := <-done:
		b.Fatalf("processor stopped before its tables were loaded: %v", err)
	}
	inputs := func() float64 {
		n := 0.0
		for _, o := range []string{"counted", "late", "dropped", "stale_spec"} {
			n += testenv.Metric(b, reg, "exo_processor_aggregate_inputs_total", "outcome", o)
		}
		return n
	}
	b.StartTimer()
	began := time.Now()
	for testenv.Metric(b, reg, "exo_processor_events_total") < aggBenchEvents || inputs() < float64(wantInputs) {
		select {
		case err := <-done:
			b.Fatalf("processor stopped: %v", err)
		case <-ctx.Done():
			b.Fatalf("processor counted %v of %d events and %v of %d inputs before the deadline",
				testenv.Metric(b, reg, "exo_processor_events_total"), aggBenchEvents, inputs(), wantInputs)
		case <-time.After(5 * time.Millisecond):
		}
	}
	b.StopTimer()
	res := aggBenchResult{took: time.Since(began), inputs: inputs()}
	benchWaitCommitted(ctx, b, adm, group, topics.Events)
	res.groups = testenv.Metric(b, reg, "exo_processor_aggregate_groups")
	res.txns = testenv.Metric(b, reg, "exo_processor_transactions_total", "result", "committed")
	aborted := testenv.Metric(b, reg, "exo_processor_transactions_total", "result", "aborted")
	pcancel()
	if err := <-done; err != nil {
		b.Fatalf("processor: %v", err)
	}
	if res.inputs != float64(wantInputs) || aborted > 0 {
		b.Errorf("stage 2 read %v inputs, the rule mix predicts %d; %v transactions aborted", res.inputs, wantInputs, aborted)
	}
	if late := testenv.Metric(b, reg, "exo_processor_aggregate_inputs_total", "outcome", "late"); late > 0 {
		b.Logf("%v inputs late", late)
	}
	return res
}

func jsonValue(v any) ([]byte, error) { return json.Marshal(v) }

// aggBenchOpts are added to the processor's Kafka options:
// AGG_FETCH_KB=<n> caps each partition's share of a fetch at n KiB (the
// late-input experiment of docs/benchmarks.md, "Aggregate rules").
var aggBenchOpts []kgo.Opt

func init() {
	if v := os.Getenv("AGG_FETCH_KB"); v != "" {
		var kb int32
		if _, err := fmt.Sscan(v, &kb); err != nil || kb <= 0 {
			panic("AGG_FETCH_KB: a positive number of KiB")
		}
		aggBenchOpts = append(aggBenchOpts, kgo.FetchMaxPartitionBytes(kb<<10))
	}
}
