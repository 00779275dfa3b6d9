package dispatcher_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/exospherehost/exo-alerts/dispatcher"
	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/keyring"
	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/schemas"
	"github.com/exospherehost/exo-alerts/signature"
)

// The throughput workload: deliveries spread evenly over endpoints that all
// answer 204 at once.
const (
	throughputEndpoints   = 50
	throughputDeliveries  = 20_000
	throughputConcurrency = 4 // dispatcher.Config.EndpointConcurrency's default
	throughputPartitions  = 3
)

// countingSink is a set of keep-alive HTTP servers answering 204 to every
// POST; it closes the channel done returns when they have answered want
// requests since reset, and takes a snapshot (what the process, the
// machine and the broker had used) at the first request and at the last.
type countingSink struct {
	srvs        []*httptest.Server
	n, want     atomic.Int64
	conns       atomic.Int64 // connections accepted
	brokerPID   int
	mu          sync.Mutex
	first, last snapshot
	reached     chan struct{}
}

func newCountingSink(servers, brokerPID int) *countingSink {
	s := &countingSink{brokerPID: brokerPID}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		// Counted before the answer: a client that has its answer knows it is counted.
		if n := s.n.Add(1); n == 1 || n == s.want.Load() {
			s.mu.Lock()
			if n == 1 {
				s.first = takeSnapshot(s.brokerPID)
			}
			if n == s.want.Load() {
				s.last = takeSnapshot(s.brokerPID)
				close(s.reached)
			}
			s.mu.Unlock()
		}
		w.WriteHeader(http.StatusNoContent)
	})
	for range servers {
		srv := httptest.NewUnstartedServer(h)
		srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				s.conns.Add(1)
			}
		}
		srv.Start()
		s.srvs = append(s.srvs, srv)
	}
	return s
}

func (s *countingSink) close() {
	for _, srv := range s.srvs {
		srv.Close()
	}
}

// reset starts a count towards want.
func (s *countingSink) reset(want int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reached, s.first, s.last = make(chan struct{}), snapshot{}, snapshot{}
	s.n.Store(0)
	s.conns.Store(0)
	s.want.Store(int64(want))
}

func (s *countingSink) done() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reached
}

// steady is the span from the first request of the count to its last
// (once done is closed): the steady phase, the same for every side.
func (s *countingSink) steady() span {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last.since(s.first)
}

// snapshot is what this process, the machine and the local broker had
// used at one instant.
type snapshot struct {
	at      time.Time
	cpu     time.Duration // this process (getrusage)
	machine machineStat
	broker  int64 // the broker's CPU ticks (procCPU); -1: not known
}

func takeSnapshot(brokerPID int) snapshot {
	return snapshot{at: time.Now(), cpu: rusageCPU(), machine: readMachineStat(), broker: procCPU(brokerPID)}
}

// span is what was used between two snapshots.
type span struct {
	wall    time.Duration
	cpu     time.Duration
	machine machineBusy
	broker  int64 // ticks; -1: not known
}

func (b snapshot) since(a snapshot) span {
	sp := span{wall: b.at.Sub(a.at), cpu: b.cpu - a.cpu, broker: -1}
	sp.machine.add(a.machine, b.machine)
	if a.broker >= 0 && b.broker >= 0 {
		sp.broker = b.broker - a.broker
	}
	return sp
}

// add sums spans (the ops of a sub-benchmark).
func (sp *span) add(o span) {
	sp.wall += o.wall
	sp.cpu += o.cpu
	sp.machine.sum(o.machine)
	if sp.broker < 0 || o.broker < 0 {
		sp.broker = -1
	} else {
		sp.broker += o.broker
	}
}

type throughputResult struct {
	// bare, plain, disp: the steady phase of each side (the sink's first
	// request to its last): the bare loop, the loop sending the
	// dispatcher's headers, the dispatcher.
	bare, plain, disp span
	// plainTotal, dispTotal: the loop's first request sent, or
	// dispatcher.Run called, until the sink had answered every one.
	plainTotal, dispTotal time.Duration
	startup               time.Duration // dispatcher start → Ready
	plainConns, dispConns int64         // connections the sink accepted in each phase
	logBytes              int64         // the dispatcher's log
	// requests: what the dispatcher's clients sent the broker, by kind
	// (the whole run, startup included).
	produceReqs, fetchReqs, commitReqs, otherReqs int64
}

// machineStat is the machine's CPU time from /proc/stat, in clock ticks
// summed over its CPUs: busy (all but idle and iowait) and total.
type machineStat struct {
	busy, total int64
	cpus        int
	ok          bool
}

// readMachineStat reads /proc/stat; ok is false where there is none.
func readMachineStat() machineStat {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return machineStat{}
	}
	var st machineStat
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		switch {
		case len(f) > 5 && f[0] == "cpu":
			for i, v := range f[1:] {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return machineStat{}
				}
				if i < 8 { // user … steal; guest time is already in user
					st.total += n
					if i != 3 && i != 4 { // idle, iowait
						st.busy += n
					}
				}
			}
			st.ok = true
		case strings.HasPrefix(f[0], "cpu") && len(f[0]) > 3:
			st.cpus++
		}
	}
	return st
}

// machineBusy sums busy and total ticks over phases.
type machineBusy struct {
	busy, total int64
	cpus        int
	ok          bool
}

// add counts the phase from a to b.
func (m *machineBusy) add(a, b machineStat) {
	if !a.ok || !b.ok || b.total <= a.total {
		return
	}
	m.busy += b.busy - a.busy
	m.total += b.total - a.total
	m.cpus, m.ok = b.cpus, true
}

func (m *machineBusy) sum(o machineBusy) {
	if o.ok {
		m.busy, m.total, m.cpus, m.ok = m.busy+o.busy, m.total+o.total, o.cpus, true
	}
}

// cores is how many of the machine's CPUs were busy on average.
func (m machineBusy) cores() float64 {
	return float64(m.busy) / float64(m.total) * float64(m.cpus)
}

// rusageCPU is the CPU time (user + system) this process has used: 0 if
// getrusage fails (it does not on Linux).
func rusageCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// requestCounter is a kgo hook counting the requests the dispatcher's
// clients write to the broker, by kind: the broker's work grows with their
// number as much as with the records in them.
type requestCounter struct{ produce, fetch, commit, other atomic.Int64 }

// OnBrokerWrite implements kgo.HookBrokerWrite.
func (c *requestCounter) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if err != nil {
		return
	}
	switch kmsg.Key(key) {
	case kmsg.Produce:
		c.produce.Add(1)
	case kmsg.Fetch:
		c.fetch.Add(1)
	case kmsg.OffsetCommit:
		c.commit.Add(1)
	default:
		c.other.Add(1)
	}
}

// brokerPID finds the local broker's process (a JVM running kafka.Kafka,
// deploy/local/kafka.sh): 0 where there is none to be seen (a remote or
// containerized broker, not Linux).
func brokerPID() int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && bytes.Contains(cmd, []byte("\x00kafka.Kafka\x00")) {
			return pid
		}
	}
	return 0
}

// procCPU is a process's CPU time (user + system) from /proc/<pid>/stat,
// in clock ticks (10 ms); -1 if it cannot be read.
func procCPU(pid int) int64 {
	if pid == 0 {
		return -1
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return -1
	}
	// The command (field 2) is in parentheses and may hold spaces: the
	// fields counted from after its closing one.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return -1
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	return u + st
}

// byteCounter is a log destination that keeps only the count of bytes.
type byteCounter struct{ n atomic.Int64 }

func (c *byteCounter) Write(p []byte) (int, error) {
	c.n.Add(int64(len(p)))
	return len(p), nil
}

// BenchmarkDispatcherThroughput compares the dispatcher with a plain
// net/http loop on the same sink. Each op: 20,000 deliveries queued on fresh
// topics for 50 endpoints; first two plain http.Client loops POST the same
// bodies to the same URLs with the dispatcher's total concurrency (50
// endpoints × 4) and a connection pool as large — the bare loop with a
// Content-Type only, then the loop sending every header the dispatcher
// sends (User-Agent, X-Exosphere-Event and -Delivery, and the four
// signature headers, made before the loop starts, so that the requests are
// the same bytes on the wire and the sink parses the same) —; then
// dispatcher.Run starts, and runs until the sink has answered all 20,000.
// The token bucket is opened wide (EndpointRate 10,000/s, the most the
// config accepts): with the default 50/s per endpoint the ceiling would be
// 2,500/s for 50 endpoints, and the benchmark would measure the limiter.
//
// one_host: every endpoint is a path on one server, like many Slack or
// PagerDuty endpoints sharing one host. host_per_endpoint: each endpoint
// has its own server (host:port), like endpoints of different tenants.
//
// Every side is measured the same way, by the sink, over its steady phase:
// from the first request the sink got to the last (dispatcher_deliveries/s,
// plain_http/s, bare_http/s; dispatcher/plain and dispatcher/bare their
// ratios). The dispatcher's start (creating its topics, joining its nine
// groups, loading its tables: once per process, not per delivery) is
// startup_s, and the whole op from dispatcher.Run, startup included, is
// dispatcher_total_deliveries/s (total/plain against the plain loop's own
// whole run, its first dial to its last answer).
//
// *_cpu_us/delivery are the process's CPU (getrusage) over each side's
// steady phase per delivery: the sink runs in this process, so every side
// includes its share. The broker, a separate process on the same machine,
// serves the dispatcher's fetches, produces and commits:
// *_broker_cpu_us/delivery is its CPU over each steady phase (the local
// broker found by its command line, deploy/local/kafka.sh; left out
// where there is none to be seen; it includes what other clients of the
// broker make it do meanwhile), and *_requests/op what the dispatcher's
// clients sent it. *_machine_busy_cores are the machine's busy CPUs
// (/proc/stat: every process, the broker and anything else running
// included) on average over each steady phase: at the machine's CPU count,
// the phase was bound by CPU, not by a limit of the dispatcher.
// cpu_plain/dispatcher is the CPU per delivery of this process and the
// broker together, the plain loop's over the dispatcher's: what
// dispatcher/plain would be on a machine of their own. Linux only; the
// metrics are left out where /proc cannot be read.
func BenchmarkDispatcherThroughput(b *testing.B) {
	brokers := testenv.Brokers(b)
	if !testenv.RealKafka(b) {
		b.Skip("needs a real Kafka broker: eval \"$(deploy/local/services.sh env)\"")
	}
	pid := brokerPID()
	for _, bc := range []struct {
		name    string
		servers int
	}{{"one_host", 1}, {"host_per_endpoint", throughputEndpoints}} {
		b.Run(bc.name, func(b *testing.B) {
			var sum throughputResult
			b.StopTimer()
			b.ResetTimer()
			for range b.N {
				r := throughputOnce(b, brokers, bc.servers, pid)
				sum.bare.add(r.bare)
				sum.plain.add(r.plain)
				sum.disp.add(r.disp)
				sum.plainTotal += r.plainTotal
				sum.dispTotal += r.dispTotal
				sum.startup += r.startup
				sum.plainConns += r.plainConns
				sum.dispConns += r.dispConns
				sum.logBytes += r.logBytes
				sum.produceReqs += r.produceReqs
				sum.fetchReqs += r.fetchReqs
				sum.commitReqs += r.commitReqs
				sum.otherReqs += r.otherReqs
			}
			n := float64(b.N)
			// The steady phase spans the deliveries after the first.
			steadyN := n * (throughputDeliveries - 1)
			rate := func(sp span) float64 { return steadyN / sp.wall.Seconds() }
			disp, plain, bare := rate(sum.disp), rate(sum.plain), rate(sum.bare)
			b.ReportMetric(disp, "dispatcher_deliveries/s")
			b.ReportMetric(plain, "plain_http/s")
			b.ReportMetric(bare, "bare_http/s")
			b.ReportMetric(disp/plain, "dispatcher/plain")
			b.ReportMetric(disp/bare, "dispatcher/bare")
			dispTotal := n * throughputDeliveries / sum.dispTotal.Seconds()
			b.ReportMetric(dispTotal, "dispatcher_total_deliveries/s")
			plainTotal := n * throughputDeliveries / sum.plainTotal.Seconds()
			b.ReportMetric(plainTotal, "plain_total_http/s")
			b.ReportMetric(dispTotal/plainTotal, "total/plain")
			b.ReportMetric(sum.startup.Seconds()/n, "startup_s")
			b.ReportMetric(float64(sum.plainConns)/n, "plain_conns/op")
			b.ReportMetric(float64(sum.dispConns)/n, "dispatcher_conns/op")
			b.ReportMetric(float64(sum.logBytes)/(n*throughputDeliveries), "log_bytes/delivery")
			for _, side := range []struct {
				name string
				sp   span
			}{{"dispatcher", sum.disp}, {"plain", sum.plain}, {"bare", sum.bare}} {
				b.ReportMetric(float64(side.sp.cpu.Microseconds())/steadyN, side.name+"_cpu_us/delivery")
				if side.sp.broker >= 0 {
					// Clock ticks of 10 ms (USER_HZ, 100 on Linux).
					b.ReportMetric(float64(side.sp.broker)*1e4/steadyN, side.name+"_broker_cpu_us/delivery")
				}
				if side.sp.machine.ok {
					b.ReportMetric(side.sp.machine.cores(), side.name+"_machine_busy_cores")
				}
			}
			if sum.disp.broker >= 0 && sum.plain.broker >= 0 {
				// What each delivery cost this process and the broker
				// together, the plain loop's over the dispatcher's: the
				// ratio of their rates on a machine of their own, bound by
				// its CPU. Far steadier than the ratio of rates on a
				// machine that others share (their load takes a share of
				// the cores that differs from one phase to the next).
				perDelivery := func(sp span) float64 {
					return float64(sp.cpu.Microseconds())/steadyN + float64(sp.broker)*1e4/steadyN
				}
				b.ReportMetric(perDelivery(sum.plain)/perDelivery(sum.disp), "cpu_plain/dispatcher")
			}
			perOp := func(v int64) float64 { return float64(v) / n }
			b.ReportMetric(perOp(sum.produceReqs), "produce_requests/op")
			b.ReportMetric(perOp(sum.fetchReqs), "fetch_requests/op")
			b.ReportMetric(perOp(sum.commitReqs), "commit_requests/op")
			b.ReportMetric(perOp(sum.otherReqs), "other_requests/op")
		})
	}
}

func throughputOnce(b *testing.B, brokers []string, servers, brokerPID int) throughputResult {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	topics := testenv.Topics(b)
	cl, err := kgo.NewClient(kafka.ClientOpts(brokers, nil)...)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if err := kafka.EnsureTopics(ctx, adm, topics.Specs(throughputPartitions)); err != nil {
		b.Fatal(err)
	}
	defer func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer dcancel()
		names := []string{}
		if listed, err := adm.ListTopics(dctx); err == nil {
			for _, t := range listed.Names() {
				if strings.HasPrefix(t, topics.Prefix) {
					names = append(names, t)
				}
			}
		}
		if _, err := adm.DeleteTopics(dctx, names...); err != nil {
			b.Logf("delete topics: %v", err)
		}
	}()

	sink := newCountingSink(servers, brokerPID)
	defer sink.close()
	ring, err := keyring.Parse(keyring.Generate("k1"))
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now().UTC()
	urls := make([]string, throughputEndpoints)
	secrets := make([]string, throughputEndpoints)
	var recs []*kgo.Record
	for i := range throughputEndpoints {
		id := fmt.Sprintf("whk_bench%02d", i)
		urls[i] = sink.srvs[i%len(sink.srvs)].URL + "/hook/" + id
		secrets[i] = signature.NewSecret()
		value, _ := json.Marshal(schemas.EndpointRecord{
			TenantID: tenant, ID: id, Name: "bench sink", Kind: schemas.EndpointKindWebhook, TargetURL: urls[i],
			Secret: ring.Seal(secrets[i], tenant+"/"+id), IsActive: true, Version: 1, UpdatedAt: now,
		})
		recs = append(recs, &kgo.Record{Topic: topics.Endpoints, Key: schemas.RecordKey(tenant, id), Value: value})
	}
	bodies := make([][]byte, throughputDeliveries)
	// headers: what the dispatcher sends with each body, for the plain
	// loop that sends the same requests.
	headers := make([]http.Header, throughputDeliveries)
	for i := range throughputDeliveries {
		id := fmt.Sprintf("whk_bench%02d", i%throughputEndpoints)
		alertID := "alrt_" + randHex(16)
		dur := int64(84211)
		started := now.Add(-84211 * time.Millisecond)
		bodies[i], _ = json.Marshal(schemas.WebhookPayload{
			Type: schemas.TypeRunFailed, Timestamp: now,
			Data: schemas.PayloadData{
				AlertID: alertID, TenantID: tenant,
				Rule:     schemas.RuleRef{ID: "rul_bench", Name: "ETL failures"},
				Event:    schemas.EventRef{ID: "01JD" + strings.ToUpper(randHex(11)), Type: schemas.TypeRunFailed, OccurredAt: now},
				Workflow: schemas.Workflow{ID: "wf_9", Name: "nightly-etl"},
				Run: schemas.PayloadRun{ID: fmt.Sprintf("run_%06d", i), Status: "failed", StartedAt: &started,
					FinishedAt: &now, DurationMS: &dur},
				Error:  &schemas.PayloadError{Code: "NODE_ERRORED"},
				Labels: map[string]string{"env": "prod"},
			},
		})
		headers[i] = http.Header{
			"Content-Type":         {"application/json"},
			"User-Agent":           {"exosphere-alerts/" + dispatcher.Version},
			"X-Exosphere-Event":    {schemas.TypeRunFailed},
			"X-Exosphere-Delivery": {"dlv_" + randHex(12)},
		}
		if err := signature.Sign(headers[i], secrets[i%throughputEndpoints:][:1], alertID, now, bodies[i]); err != nil {
			b.Fatal(err)
		}
		value, _ := json.Marshal(schemas.DeliveryRecord{
			AlertID: alertID, TenantID: tenant, RuleID: "rul_bench", EndpointID: id,
			EventType: schemas.TypeRunFailed, MaxAttempts: 8, CreatedAt: now, Payload: bodies[i],
		})
		if i == 0 {
			if err := schemas.Validate(schemas.KindDelivery, value); err != nil {
				b.Fatalf("bench delivery does not validate: %v", err)
			}
		}
		recs = append(recs, &kgo.Record{Topic: topics.Deliveries, Key: schemas.RecordKey(tenant, id), Value: value,
			Headers: []kgo.RecordHeader{{Key: "exo-alert-id", Value: []byte(alertID)}}})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		b.Fatalf("produce: %v", err)
	}

	var res throughputResult
	throughputPlain(ctx, b, sink, urls, bodies, nil)
	res.bare = sink.steady()
	res.plainTotal = throughputPlain(ctx, b, sink, urls, bodies, headers)
	res.plain = sink.steady()
	res.plainConns = sink.conns.Load()

	// The dispatcher, from Run until the sink has answered every delivery.
	reg := prometheus.NewRegistry()
	var logBytes byteCounter
	var reqs requestCounter
	ready := make(chan struct{})
	dctx, dcancel := context.WithCancel(ctx)
	defer dcancel()
	done := make(chan error, 1)
	sink.reset(throughputDeliveries)
	b.StartTimer()
	began := time.Now()
	// Labelled, like the plain loop's goroutines, so that a CPU profile of
	// the benchmark (-cpuprofile) splits into the two sides with -tagfocus
	// side=dispatcher or side=plain: the goroutines they start inherit the
	// label, the sink's (started by its servers) have none.
	go pprof.Do(dctx, pprof.Labels("side", "dispatcher"), func(dctx context.Context) {
		done <- dispatcher.Run(dctx, dispatcher.Config{
			Brokers: brokers, Topics: topics, Partitions: throughputPartitions, Keyring: ring, Allowlist: local,
			EndpointRate: 10000, Registerer: reg, Ready: ready, KafkaOpts: []kgo.Opt{kgo.WithHooks(&reqs)},
			// Formatted like the binary's log (text, info), then counted and dropped.
			Log: slog.New(slog.NewTextHandler(&logBytes, nil)),
		})
	})
	select {
	case <-ready:
		res.startup = time.Since(began)
	case err := <-done:
		b.Fatalf("dispatcher stopped before it was ready: %v", err)
	case <-ctx.Done():
		b.Fatal("dispatcher not ready in time")
	}
	select {
	case <-sink.done():
		b.StopTimer()
		res.dispTotal = time.Since(began)
		res.disp = sink.steady()
	case err := <-done:
		b.Fatalf("dispatcher stopped after %d of %d deliveries: %v", sink.n.Load(), throughputDeliveries, err)
	case <-ctx.Done():
		b.Fatalf("the sink got %d of %d deliveries before the deadline", sink.n.Load(), throughputDeliveries)
	}
	res.dispConns = sink.conns.Load()
	res.logBytes = logBytes.n.Load()
	res.produceReqs, res.fetchReqs, res.commitReqs, res.otherReqs = reqs.produce.Load(), reqs.fetch.Load(), reqs.commit.Load(), reqs.other.Load()
	// The sink counts a request before it answers: let the dispatcher have
	// the last answers before it stops. Every attempt is one delivery.
	delivered := func() float64 {
		return testenv.Metric(b, reg, "exo_dispatcher_attempts_total", "outcome", schemas.OutcomeDelivered)
	}
	for got := delivered(); got != throughputDeliveries; got = delivered() {
		select {
		case <-ctx.Done():
			b.Fatalf("the dispatcher counted %v delivered attempts, want %d (one per delivery, no retries)", got, throughputDeliveries)
		case <-time.After(5 * time.Millisecond):
		}
	}
	dcancel()
	if err := <-done; err != nil {
		b.Fatalf("dispatcher: %v", err)
	}
	return res
}

// throughputPlain POSTs every body to its endpoint's URL with a plain
// http.Client, as many at once as the dispatcher may have in flight, and
// returns how long it took. With headers, body i is sent with headers[i]
// (the dispatcher's headers); without, with a Content-Type only.
func throughputPlain(ctx context.Context, b *testing.B, sink *countingSink, urls []string, bodies [][]byte, headers []http.Header) time.Duration {
	b.Helper()
	workers := min(throughputEndpoints*throughputConcurrency, 256)
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: workers, MaxIdleConnsPerHost: workers, IdleConnTimeout: 90 * time.Second}}
	defer client.CloseIdleConnections()
	sink.reset(len(bodies))
	var next atomic.Int64
	var failed atomic.Int64
	var wg sync.WaitGroup
	b.StartTimer()
	began := time.Now()
	for range workers {
		wg.Go(func() {
			pprof.SetGoroutineLabels(pprof.WithLabels(ctx, pprof.Labels("side", "plain")))
			for {
				i := int(next.Add(1) - 1)
				if i >= len(bodies) {
					return
				}
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, urls[i%len(urls)], bytes.NewReader(bodies[i]))
				if err != nil {
					failed.Add(1)
					continue
				}
				if headers != nil {
					req.Header = headers[i]
				} else {
					req.Header.Set("Content-Type", "application/json")
				}
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
			}
		})
	}
	wg.Wait()
	took := time.Since(began)
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("plain client: %d of %d requests failed", n, len(bodies))
	}
	select {
	case <-sink.done():
	default:
		b.Fatalf("plain client: the sink answered %d of %d", sink.n.Load(), len(bodies))
	}
	return took
}
