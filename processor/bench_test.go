package processor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"runtime/pprof"
	"strings"
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

// The throughput workload is workload's throughput mix: 1,000 tenants
// with 10 rules each, and per op 25,000 runs (a started and a terminal
// event each) spread over the tenants.
const (
	benchTenants    = workload.MixTenants
	benchEvents     = workload.MixEvents
	benchPartitions = 3
)

func benchTenant(i int) string { return workload.MixTenant(i) }

// benchRuleRecords returns the rule and endpoint snapshots of every tenant,
// keyed as the control plane keys them.
func benchRuleRecords(b *testing.B, topics kafka.Topics) []*kgo.Record {
	b.Helper()
	now := time.Now().UTC()
	recs := make([]*kgo.Record, 0, benchTenants*(len(workload.MixRules)+workload.MixEndpoints))
	add := func(topic, tenant, id string, v any) {
		value, err := json.Marshal(v)
		if err != nil {
			b.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: topic, Key: schemas.RecordKey(tenant, id), Value: value})
	}
	for t := range benchTenants {
		tenant := benchTenant(t)
		for e := range workload.MixEndpoints {
			id := workload.MixEndpointID(e)
			add(topics.Endpoints, tenant, id, schemas.EndpointRecord{
				TenantID: tenant, ID: id, Name: "ops " + id, Kind: "webhook", TargetURL: "https://hooks.example.com/" + tenant + "/" + id,
				Secret: schemas.Sealed{KeyID: "k1", Ciphertext: "c2VhbGVkIHNlY3JldA=="}, IsActive: true, Version: 1, UpdatedAt: now,
			})
		}
		for i := range workload.MixRules {
			r := workload.MixRuleRecord(tenant, i, now)
			add(topics.Rules, tenant, r.ID, r)
		}
	}
	return recs
}

// benchWorkload returns the mix's runs and their events' records in
// event-time order, the runs starting over three hours ending an hour ago.
func benchWorkload(b *testing.B, topic string) ([]workload.MixRun, []*kgo.Record) {
	b.Helper()
	runs, evs := workload.NewMix(time.Now().UTC().Add(-4 * time.Hour).Truncate(time.Second))
	recs := make([]*kgo.Record, len(evs))
	for i, ev := range evs {
		rec, err := workload.Record(topic, ev)
		if err != nil {
			b.Fatal(err)
		}
		recs[i] = rec
	}
	return runs, recs
}

// benchResult is what one op measured.
type benchResult struct {
	rawEvents, procEvents        int // events counted in the measured windows
	rawTime, procTime            time.Duration
	startup, join, commit        time.Duration
	deliveries, durationAlerts   int
	committedTxns, abortedTxns   float64
	wantDeliveries, wantDuration int
	rawCPU, procCPU, pipeCPU     time.Duration // process CPU in each measured window
	pipeEvents                   int
	pipeTime                     time.Duration
	outDeliveries, outStates     benchOutput // what the processor wrote
}

// BenchmarkProcessorThroughput compares, on a real broker, how fast the
// processor works through a backlog of workflow events with how fast a plain
// franz-go consumer merely reads the same topic. One op is 50,000 events
// (25,000 runs of 1,000 tenants with 10 rules each); ns/op is the time
// processor.Run takes from its start until it has counted all of them.
// processor_events/s counts events as the processor handles them (its
// exo_processor_events_total); commit_s is how much later the group's
// offsets, and with them the last transaction, are committed. Every op also
// checks that the deliveries written are exactly those the rule mix predicts.
//
//	go test -run '^$' -bench BenchmarkProcessorThroughput -benchtime 1x -count 3 ./processor/
func BenchmarkProcessorThroughput(b *testing.B) {
	brokers := testenv.Brokers(b)
	if !testenv.RealKafka(b) {
		b.Skip("needs a real Kafka broker: eval \"$(deploy/local/services.sh env)\"")
	}
	var sum benchResult
	b.StopTimer()
	b.ResetTimer()
	for range b.N {
		r := benchThroughputOnce(b, brokers)
		sum.rawEvents += r.rawEvents
		sum.procEvents += r.procEvents
		sum.rawTime += r.rawTime
		sum.procTime += r.procTime
		sum.startup += r.startup
		sum.join += r.join
		sum.commit += r.commit
		sum.deliveries += r.deliveries
		sum.durationAlerts += r.durationAlerts
		sum.committedTxns += r.committedTxns
		sum.rawCPU += r.rawCPU
		sum.procCPU += r.procCPU
		sum.pipeCPU += r.pipeCPU
		sum.pipeEvents += r.pipeEvents
		sum.pipeTime += r.pipeTime
		sum.outDeliveries.records += r.outDeliveries.records
		sum.outDeliveries.bytes += r.outDeliveries.bytes
		sum.outStates.records += r.outStates.records
		sum.outStates.bytes += r.outStates.bytes
	}
	raw := float64(sum.rawEvents) / sum.rawTime.Seconds()
	proc := float64(sum.procEvents) / sum.procTime.Seconds()
	n := float64(b.N)
	b.ReportMetric(raw, "raw_events/s")
	b.ReportMetric(proc, "processor_events/s")
	b.ReportMetric(proc/raw, "processor/raw")
	pipe := float64(sum.pipeEvents) / sum.pipeTime.Seconds()
	b.ReportMetric(pipe, "pipe_events/s")
	b.ReportMetric(proc/pipe, "processor/pipe")
	us := func(cpu time.Duration, events int) float64 { return float64(cpu.Microseconds()) / float64(events) }
	b.ReportMetric(us(sum.rawCPU, sum.rawEvents), "raw_cpu_us/event")
	b.ReportMetric(us(sum.procCPU, sum.procEvents), "processor_cpu_us/event")
	b.ReportMetric(us(sum.pipeCPU, sum.pipeEvents), "pipe_cpu_us/event")
	b.ReportMetric(float64(sum.outDeliveries.records)/(n*benchEvents), "deliveries/event")
	b.ReportMetric(float64(sum.outDeliveries.bytes)/float64(max(sum.outDeliveries.records, 1)), "delivery_B")
	b.ReportMetric(float64(sum.outStates.records)/(n*benchEvents), "run_states/event")
	b.ReportMetric(float64(sum.outStates.bytes)/float64(max(sum.outStates.records, 1)), "run_state_B")
	b.ReportMetric(float64(sum.deliveries)/n, "deliveries/op")
	b.ReportMetric(float64(sum.durationAlerts)/n, "duration_alerts/op")
	b.ReportMetric(float64(benchEvents)*n/sum.committedTxns, "events/txn")
	b.ReportMetric(sum.startup.Seconds()/n, "startup_s")
	b.ReportMetric(sum.join.Seconds()/n, "join_s")
	b.ReportMetric(sum.commit.Seconds()/n, "commit_s")
}

// benchThroughputOnce runs one op on fresh topics, with the timer running
// only while processor.Run works.
func benchThroughputOnce(b *testing.B, brokers []string) benchResult {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
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

	// Rules, endpoints and the event backlog.
	if err := workload.Produce(ctx, cl, benchRuleRecords(b, topics)...); err != nil {
		b.Fatal(err)
	}
	runs, events := benchWorkload(b, topics.Events)
	if err := workload.Produce(ctx, cl, events...); err != nil {
		b.Fatal(err)
	}
	var res benchResult
	res.wantDeliveries, res.wantDuration = workload.MixExpected(runs)

	res.rawEvents, res.rawTime, res.rawCPU = benchRawConsume(ctx, b, brokers, topics.Events)

	// The processor on the same topic, with a fresh group.
	reg := prometheus.NewRegistry()
	ready := make(chan struct{})
	group := topics.Prefix + "processor"
	pctx, pcancel := context.WithCancel(ctx)
	defer pcancel()
	done := make(chan error, 1)
	b.StartTimer()
	began, beganCPU := time.Now(), benchCPU(b)
	// Labelled for CPU profiles (-tagfocus side=processor): the label is
	// inherited by every goroutine the processor starts, its Kafka
	// clients' included.
	go pprof.Do(pctx, pprof.Labels("side", "processor"), func(pctx context.Context) {
		done <- processor.Run(pctx, processor.Config{
			Brokers: brokers, Topics: topics, Partitions: benchPartitions, Group: group,
			TransactionalID: topics.Prefix + "processor-bench", Log: log, Registerer: reg, Ready: ready,
		})
	})
	select {
	case <-ready:
	case err := <-done:
		b.Fatalf("processor stopped before its tables were loaded: %v", err)
	case <-ctx.Done():
		b.Fatal("the processor did not load its tables in time")
	}
	res.startup = time.Since(began)
	var (
		firstAt  time.Time
		firstN   float64
		firstCPU time.Duration
	)
	for {
		n := testenv.Metric(b, reg, "exo_processor_events_total")
		if n > 0 && firstAt.IsZero() {
			firstAt, firstN, firstCPU = time.Now(), n, benchCPU(b)
			res.join = firstAt.Sub(began) - res.startup
		}
		if n >= benchEvents {
			b.StopTimer()
			res.procCPU = benchCPU(b) - firstCPU
			res.procTime = time.Since(firstAt)
			res.procEvents = benchEvents - int(firstN)
			if res.procEvents == 0 { // all in the first batch seen: count from the start
				res.procTime, res.procEvents = time.Since(began)-res.startup, benchEvents
				res.procCPU = benchCPU(b) - beganCPU
			}
			break
		}
		select {
		case err := <-done:
			b.Fatalf("processor stopped after %v of %d events: %v", n, benchEvents, err)
		case <-ctx.Done():
			b.Fatalf("processor counted %v of %d events before the deadline", n, benchEvents)
		case <-time.After(5 * time.Millisecond):
		}
	}

	// Sanity: every event committed once, and the deliveries the rule mix predicts.
	counted := time.Now()
	benchWaitCommitted(ctx, b, adm, group, topics.Events)
	res.commit = time.Since(counted)
	res.committedTxns = testenv.Metric(b, reg, "exo_processor_transactions_total", "result", "committed")
	res.abortedTxns = testenv.Metric(b, reg, "exo_processor_transactions_total", "result", "aborted")
	pcancel()
	if err := <-done; err != nil {
		b.Fatalf("processor: %v", err)
	}
	if res.abortedTxns > 0 {
		b.Errorf("%v transactions aborted", res.abortedTxns)
	}
	if matched, unmatched := testenv.Metric(b, reg, "exo_processor_events_total", "outcome", "matched"), testenv.Metric(b, reg, "exo_processor_events_total", "outcome", "unmatched"); matched+unmatched != benchEvents {
		b.Errorf("events: %v matched + %v unmatched, want %d in all", matched, unmatched, benchEvents)
	}
	res.outDeliveries = benchCountOutput(ctx, b, brokers, adm, topics.Deliveries)
	res.deliveries, res.durationAlerts = res.outDeliveries.records, res.outDeliveries.duration
	if res.deliveries == 0 || res.deliveries != res.wantDeliveries || res.durationAlerts != res.wantDuration {
		b.Errorf("deliveries: %d (%d duration alerts), the rule mix predicts %d (%d)",
			res.deliveries, res.durationAlerts, res.wantDeliveries, res.wantDuration)
	}

	// The comparator: a raw transactional pipe writing, per event, what the
	// processor wrote per event in this op.
	res.outStates = benchCountOutput(ctx, b, brokers, adm, topics.RunState)
	pprof.Do(ctx, pprof.Labels("side", "pipe"), func(ctx context.Context) {
		res.pipeEvents, res.pipeTime, res.pipeCPU = benchPipe(ctx, b, brokers, adm, topics.Prefix, topics.Events, specs,
			topics.Deliveries, topics.RunState, benchShape(res.outDeliveries, res.outStates))
	})
	return res
}

// benchRawConsume reads topic from the start with a plain read_committed
// consumer until it has every event, returning how many events it read and
// how long that took after its first fetch (which is not counted).
func benchRawConsume(ctx context.Context, b *testing.B, brokers []string, topic string) (int, time.Duration, time.Duration) {
	b.Helper()
	cl, err := kgo.NewClient(append(kafka.ClientOpts(brokers, nil),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)...)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	began, beganCPU := time.Now(), benchCPU(b)
	var (
		n, firstN int
		firstAt   time.Time
		firstCPU  time.Duration
	)
	for n < benchEvents {
		f := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			b.Fatalf("raw consumer read %d of %d events", n, benchEvents)
		}
		n += f.NumRecords()
		if firstAt.IsZero() && n > 0 {
			firstAt, firstN, firstCPU = time.Now(), n, benchCPU(b)
		}
	}
	if n == firstN {
		return n, time.Since(began), benchCPU(b) - beganCPU
	}
	return n - firstN, time.Since(firstAt), benchCPU(b) - firstCPU
}

// benchWaitCommitted waits until group has committed topic to its end: then
// every delivery of those events is committed too (same transactions).
func benchWaitCommitted(ctx context.Context, b *testing.B, adm *kadm.Client, group, topic string) {
	b.Helper()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		b.Fatal(err)
	}
	var seen []string
	for {
		offs, err := adm.FetchOffsets(ctx, group)
		if err == nil {
			err = offs.Error()
		}
		if err != nil {
			b.Fatal(err)
		}
		seen = seen[:0]
		all := true
		ends.Each(func(end kadm.ListedOffset) {
			o, ok := offs.Lookup(topic, end.Partition)
			if !ok || o.At < end.Offset {
				all = false
			}
			seen = append(seen, fmt.Sprintf("p%d %d/%d", end.Partition, o.At, end.Offset))
		})
		if all {
			return
		}
		select {
		case <-ctx.Done():
			b.Fatalf("group %s did not commit to the end of %s: %s", group, topic, strings.Join(seen, ", "))
		case <-time.After(20 * time.Millisecond):
		}
	}
}
