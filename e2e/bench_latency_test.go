package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/controlplane"
	"github.com/exospherehost/exo-alerts/e2e/harness"
	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/internal/workload"
	"github.com/exospherehost/exo-alerts/schemas"
)

// Live latency: the load of BenchmarkLiveLatency. The rate and duration
// can be changed for a diagnosis (EXO_BENCH_LATENCY_RATE, events per
// second; EXO_BENCH_LATENCY_SECONDS; EXO_BENCH_LATENCY_WARMUP, seconds);
// the figures to record use these.
const (
	latencyRate     = 1000             // events per second
	latencySteady   = 10 * time.Second // how long the load lasts
	latencyInterval = 10 * time.Millisecond
	// latencyEndpoints is how many endpoints (and rules) share the load.
	latencyEndpoints = 8
	// latencyWarmup is how long the load runs, unmeasured, before the
	// first measurement of the process, latencyRewarm before each later
	// one (the broker is warm by then). A freshly started broker compiles
	// its hot paths over its first half minute of load: with 1 s of
	// warm-up, three 10 s runs on a fresh broker measured p50 60, 34, 22 ms
	// and 60, 39, 19 ms; with 6 s, 41, 34, 9 ms and 44, 23, 7 ms
	// (docs/benchmarks.md, "The live latency's warm-up"). The target is
	// the steady state.
	latencyWarmup = 30 * time.Second
	latencyRewarm = 2 * time.Second
)

// latencyWarmed says whether a BenchmarkLiveLatency of this process has
// warmed the broker up (benchmarks run one at a time).
var latencyWarmed bool

// BenchmarkLiveLatency runs the whole system in one process (harness) and
// produces failed runs, each matching one of 8 rules (one endpoint each), at a steady 1,000 events/s
// for 10 s, as a live stream: the processor and the dispatcher keep up. It
// measures each event's latency from the moment it is handed to the
// producer to the moment its webhook POST reaches the receiver, and
// reports p50_ms, p95_ms, p99_ms and the achieved events/s. Every alert
// must arrive, exactly once.
//
//	go test -run '^$' -bench BenchmarkLiveLatency -benchtime 1x ./e2e/
func BenchmarkLiveLatency(b *testing.B) {
	h := harness.Start(b, harness.Options{})
	recv := newLatencyReceiver(b)
	key := controlplane.NewAPIKey()
	if _, err := controlplane.CreateAPIKey(context.Background(), h.Pool, "acme", "bench", controlplane.RoleAdmin, key); err != nil {
		b.Fatal(err)
	}
	// The load is spread over latencyEndpoints endpoints (the dispatcher
	// caps the attempts in flight to one endpoint at 4), one rule each,
	// matching the events of its shard (a label); each endpoint takes its
	// whole share (the default caps it at 50 attempts per second).
	for shard := range latencyEndpoints {
		wh := benchPost(b, h.API, key, "/v1/webhooks", map[string]any{"name": fmt.Sprintf("ops-%d", shard),
			"target_url": recv.srv.URL + "/hook", "rate_limit_per_second": 10000})
		benchPost(b, h.API, key, "/v1/alert-rules", map[string]any{"name": fmt.Sprintf("failures-%d", shard), "event_type": schemas.TypeRunFailed,
			"webhook_endpoint_id": wh["id"], "condition": fmt.Sprintf("labels.shard == %q", strconv.Itoa(shard))})
	}
	for deadline := time.Now().Add(30 * time.Second); testenv.Metric(b, h.Registry, "exo_processor_rules_active") != latencyEndpoints; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("the rules are not active in the processor within 30s")
		}
	}
	cl, err := kgo.NewClient(kafka.ClientOpts(h.Brokers, nil)...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cl.Close)

	// Where the time goes: when each alert's delivery record becomes
	// readable (read_committed, as the dispatcher reads it) splits the
	// latency into the processor's part and the dispatcher's.
	committed := watchDeliveries(b, h.Brokers, h.Topics.Deliveries)

	// Warm up at the measured rate (connections, metadata, the first
	// transactions, the broker's JIT), unmeasured.
	warmup := latencyRewarm
	if !latencyWarmed {
		warmup = latencyWarmup
	}
	warmup = time.Duration(envInt(b, "EXO_BENCH_LATENCY_WARMUP", int(warmup/time.Second))) * time.Second
	warm := runLoad(b, cl, h.Topics.Events, envInt(b, "EXO_BENCH_LATENCY_RATE", latencyRate), warmup)
	latencyWarmed = true
	recv.wait(b, warm)
	committed.wait(b, warm)

	b.ResetTimer()
	for range b.N {
		recv.reset()
		committed.reset()
		start := time.Now()
		sent := runLoad(b, cl, h.Topics.Events, envInt(b, "EXO_BENCH_LATENCY_RATE", latencyRate),
			time.Duration(envInt(b, "EXO_BENCH_LATENCY_SECONDS", int(latencySteady/time.Second)))*time.Second)
		took := time.Since(start)
		lat, com := recv.wait(b, sent), committed.wait(b, sent)
		ms := func(lat []time.Duration, p float64) float64 {
			return float64(percentile(lat, p).Microseconds()) / 1000
		}
		b.ReportMetric(ms(lat, .50), "p50_ms")
		b.ReportMetric(ms(lat, .95), "p95_ms")
		b.ReportMetric(ms(lat, .99), "p99_ms")
		b.ReportMetric(ms(com, .50), "committed_p50_ms")
		b.ReportMetric(ms(com, .99), "committed_p99_ms")
		b.ReportMetric(float64(len(sent))/took.Seconds(), "events/s")
		b.Logf("%d events in %s: produce→POST p50 %.1f ms, p95 %.1f ms, p99 %.1f ms, max %.1f ms; produce→delivery record committed p50 %.1f ms, p99 %.1f ms",
			len(sent), took.Round(time.Millisecond), ms(lat, .50), ms(lat, .95), ms(lat, .99), ms(lat, 1), ms(com, .50), ms(com, .99))
	}
	b.StopTimer()
	h.Alive(b)
}

// runLoad produces failed runs (a new run id each) at rate events/s for d,
// a tick's worth every latencyInterval, and returns when each was handed to
// the producer, by event id. It waits until every record is acknowledged.
func runLoad(b *testing.B, cl *kgo.Client, topic string, rate int, d time.Duration) map[string]time.Time {
	b.Helper()
	perTick := rate * int(latencyInterval) / int(time.Second)
	ticks := int(d / latencyInterval)
	sent := make(map[string]time.Time, perTick*ticks)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		failure error
	)
	start := time.Now()
	n := 0
	for tick := range ticks {
		// Paced by the clock, not by sleeps: a late tick catches up.
		time.Sleep(time.Until(start.Add(time.Duration(tick) * latencyInterval)))
		for range perTick {
			ev := workload.Event(workload.Spec{Tenant: "acme", Type: schemas.TypeRunFailed, WorkflowName: "etl", Duration: time.Second,
				Labels: map[string]string{"env": "prod", "shard": strconv.Itoa(n % latencyEndpoints)}})
			n++
			rec, err := workload.Record(topic, ev)
			if err != nil {
				b.Fatal(err)
			}
			sent[ev.ID] = time.Now()
			wg.Add(1)
			cl.Produce(context.Background(), rec, func(_ *kgo.Record, err error) {
				defer wg.Done()
				if err != nil {
					mu.Lock()
					failure = err
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	if failure != nil {
		b.Fatalf("produce: %v", failure)
	}
	return sent
}

// firstSeen notes when each event's alert is first seen (by event id).
type firstSeen struct {
	what string
	mu   sync.Mutex
	at   map[string]time.Time
	n    int // sightings, repeats included
}

func (f *firstSeen) saw(eventID string, at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.at == nil {
		f.at = map[string]time.Time{}
	}
	f.n++
	if _, ok := f.at[eventID]; !ok {
		f.at[eventID] = at
	}
}

func (f *firstSeen) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.at)
	f.n = 0
}

// wait waits until the alert of every event of sent has been seen and
// returns their latencies, sorted; it fails if one is missing after a
// minute or was seen twice.
func (f *firstSeen) wait(b *testing.B, sent map[string]time.Time) []time.Duration {
	b.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		f.mu.Lock()
		got, n := len(f.at), f.n
		f.mu.Unlock()
		if got >= len(sent) {
			if n != got {
				b.Fatalf("%s: %d for %d alerts: some alert came twice", f.what, n, got)
			}
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s: %d of %d alerts within a minute", f.what, got, len(sent))
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	lat := make([]time.Duration, 0, len(sent))
	for id, at := range sent {
		got, ok := f.at[id]
		if !ok {
			b.Fatalf("%s: no alert for event %s (another event's alert instead)", f.what, id)
		}
		lat = append(lat, got.Sub(at))
	}
	slices.Sort(lat)
	return lat
}

// latencyReceiver is the tenant's endpoint: it notes when the first POST
// of each event's alert arrives.
type latencyReceiver struct {
	firstSeen
	srv *httptest.Server
}

func newLatencyReceiver(b *testing.B) *latencyReceiver {
	r := &latencyReceiver{firstSeen: firstSeen{what: "POSTs"}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		now := time.Now()
		var p schemas.WebhookPayload
		_ = json.NewDecoder(req.Body).Decode(&p)
		r.saw(p.Data.Event.ID, now)
		w.WriteHeader(http.StatusNoContent)
	}))
	b.Cleanup(r.srv.Close)
	return r
}

// watchDeliveries notes when each delivery record of topic becomes
// readable with read_committed isolation, until the benchmark ends.
func watchDeliveries(b *testing.B, brokers []string, topic string) *firstSeen {
	b.Helper()
	f := &firstSeen{what: "committed delivery records"}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	b.Cleanup(func() { cancel(); <-done; cl.Close() })
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			fetches := cl.PollFetches(ctx)
			now := time.Now()
			fetches.EachRecord(func(r *kgo.Record) {
				var d schemas.DeliveryRecord
				var p schemas.WebhookPayload
				if json.Unmarshal(r.Value, &d) == nil && json.Unmarshal(d.Payload, &p) == nil {
					f.saw(p.Data.Event.ID, now)
				}
			})
		}
	}()
	return f
}

// benchPost calls the API as tenant acme's admin and returns its answer.
func benchPost(b *testing.B, api, key, path string, body any) map[string]any {
	b.Helper()
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, api+path, bytes.NewReader(raw))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != http.StatusCreated {
		b.Fatalf("POST %s: %d %v", path, resp.StatusCode, out)
	}
	if _, ok := out["id"]; !ok {
		b.Fatal(fmt.Errorf("POST %s: no id in %v", path, out))
	}
	return out
}

// envInt is the integer in the environment variable name, or def.
func envInt(b *testing.B, name string, def int) int {
	b.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}
