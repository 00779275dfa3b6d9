package processor_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/internal/workload"
	"github.com/exospherehost/exo-alerts/processor"
	"github.com/exospherehost/exo-alerts/processor/engine"
	"github.com/exospherehost/exo-alerts/schemas"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// testRule is a rule together with the test's own evaluation of it, so the
// expected alerts are computed independently of the processor.
type testRule struct {
	rec schemas.RuleRecord
	// match decides an event rule for an event (endpoint activity included).
	match func(ev *schemas.WorkflowEvent) bool
	// matchRun decides a duration rule from the run's labels.
	matchRun func(labels map[string]string) bool
}

// sent is one record of a generated stream with the event it carries.
type sent struct {
	ev  schemas.WorkflowEvent
	rec *kgo.Record
}

// expectAlerts replays the produced stream, partition by partition in offset
// order, the way design §4 defines the outcome. The partition's watermark
// is the highest event time seen; time moves before an event is applied, so
// first every duration deadline (started_at + threshold) at or below the
// event's time fires once for a run with no terminal event yet; then the
// event fires each matching rule of its tenant, unless its run already saw
// that event type (a duplicate, which moves no time either). Event times
// lie a little ahead of the wall clock, so the wall clock never moves a
// watermark and the outcome is fully determined.
func expectAlerts(stream []*sent, rules map[string][]testRule) (want map[string]bool, duplicates, durationAlerts int) {
	type simRun struct {
		tenant, id string
		attempt    int
		seen       map[string]bool
		startedAt  *time.Time
		finished   bool
		labels     map[string]string
	}
	byPart := map[int32][]*sent{}
	for _, s := range stream {
		byPart[s.rec.Partition] = append(byPart[s.rec.Partition], s)
	}
	want = map[string]bool{}
	for _, evs := range byPart {
		slices.SortFunc(evs, func(a, b *sent) int { return int(a.rec.Offset - b.rec.Offset) })
		runs := map[string]*simRun{}
		armed := map[string]*simRun{} // running, with a duration rule that has not fired
		var wm time.Time
		fire := func() {
			for k, run := range armed {
				for _, r := range rules[run.tenant] {
					if r.rec.EventType != schemas.TypeRunDurationExceeded {
						continue
					}
					if deadline := run.startedAt.Add(time.Duration(r.rec.DurationThresholdMS) * time.Millisecond); deadline.After(wm) {
						continue
					}
					delete(armed, k) // one duration rule per tenant in these streams
					if r.matchRun(run.labels) {
						want[engine.DurationAttemptAlertID(run.tenant, r.rec.ID, run.id, run.attempt)] = true
						durationAlerts++
					}
				}
			}
		}
		for _, s := range evs {
			ev := &s.ev
			key := ev.TenantID + "/" + ev.Data.Run.ID
			st := runs[key]
			if st != nil && st.seen[ev.Type] {
				duplicates++
				continue
			}
			if ev.Time.After(wm) {
				wm = ev.Time
				fire()
			}
			if st == nil {
				st = &simRun{tenant: ev.TenantID, id: ev.Data.Run.ID, attempt: ev.Data.Run.Attempt, seen: map[string]bool{}}
				runs[key] = st
			}
			st.seen[ev.Type] = true
			if len(ev.Data.Labels) > 0 {
				st.labels = ev.Data.Labels
			}
			if ev.Type == schemas.TypeRunStarted {
				if !st.finished {
					at := ev.Time
					st.startedAt = &at
					armed[key] = st
				}
			} else {
				st.finished = true
				delete(armed, key)
			}
			for _, r := range rules[ev.TenantID] {
				if r.rec.EventType == ev.Type && r.match(ev) {
					want[engine.AlertID(ev.TenantID, r.rec.ID, ev.ID)] = true
				}
			}
			fire() // a start may come in already past its deadline
		}
	}
	return want, duplicates, durationAlerts
}

// restartRules are the rules of each tenant of the restart test: plain and
// conditional event rules, a rule whose endpoint is inactive, an inactive
// rule, and (every fifth tenant) a conditional duration rule.
func restartRules(e *kenv, tenants []string) map[string][]testRule {
	rules := map[string][]testRule{}
	for i, tn := range tenants {
		e.putEndpoint(tn, "ep", true)
		e.putEndpoint(tn, "ep_off", false)
		rs := []testRule{
			{rec: schemas.RuleRecord{ID: "fail-all", EventType: schemas.TypeRunFailed},
				match: func(*schemas.WorkflowEvent) bool { return true }},
			{rec: schemas.RuleRecord{ID: "succ-prod", EventType: schemas.TypeRunSucceeded, Condition: `labels.env == "prod"`},
				match: func(ev *schemas.WorkflowEvent) bool { return ev.Data.Labels["env"] == "prod" }},
			{rec: schemas.RuleRecord{ID: "fail-data-retry", EventType: schemas.TypeRunFailed, Condition: `labels.team == "data" && run.attempt > 1`},
				match: func(ev *schemas.WorkflowEvent) bool {
					return ev.Data.Labels["team"] == "data" && ev.Data.Run.Attempt > 1
				}},
			{rec: schemas.RuleRecord{ID: "start-deploy", EventType: schemas.TypeRunStarted, Condition: `workflow.name == "deploy"`},
				match: func(ev *schemas.WorkflowEvent) bool { return ev.Data.Workflow.Name == "deploy" }},
			{rec: schemas.RuleRecord{ID: "fail-endpoint-off", EventType: schemas.TypeRunFailed, WebhookEndpointID: "ep_off"},
				match: func(*schemas.WorkflowEvent) bool { return false }},
		}
		if i%5 == 0 {
			rs = append(rs, testRule{
				rec:      schemas.RuleRecord{ID: "slow-prod", EventType: schemas.TypeRunDurationExceeded, DurationThresholdMS: 2_500, Condition: `labels.env == "prod"`},
				matchRun: func(l map[string]string) bool { return l["env"] == "prod" },
			})
		}
		for j := range rs {
			rs[j].rec.TenantID = tn
			rs[j].rec.IsActive = true
			if rs[j].rec.WebhookEndpointID == "" {
				rs[j].rec.WebhookEndpointID = "ep"
			}
			e.putRule(rs[j].rec)
		}
		// An inactive rule never matches.
		e.putRule(schemas.RuleRecord{TenantID: tn, ID: "off", EventType: schemas.TypeRunFailed, WebhookEndpointID: "ep", IsActive: false})
		rules[tn] = rs
	}
	return rules
}

// genStream generates n events of interleaved runs over tenants (200 in
// flight, a random one finishing whenever a new one starts): started and
// terminal events, about 1% of runs whose started event arrives after the
// terminal one, about 5% of terminal events sent twice (half identical, half
// re-sent with a new CloudEvent id, some of those much later), and runs still
// running at the end. Event time advances 5ms per event from base.
func genStream(rng *rand.Rand, tenants []string, n int, base time.Time) (stream []schemas.WorkflowEvent, dupTerminals int) {
	type run struct {
		spec workload.Spec
		late bool
	}
	type delayed struct {
		at int
		ev schemas.WorkflowEvent
	}
	var (
		inflight []*run
		later    []delayed
		runs     int
	)
	now := func() time.Time { return base.Add(time.Duration(len(stream)) * 5 * time.Millisecond) }
	workflows := []string{"etl", "deploy", "report", "sync"}
	for len(stream) < n {
		for i := 0; i < len(later); i++ {
			if later[i].at <= len(stream) {
				stream = append(stream, later[i].ev)
				later = slices.Delete(later, i, i+1)
				i--
			}
		}
		if len(inflight) < 200 {
			runs++
			r := &run{spec: workload.Spec{
				Tenant: tenants[rng.IntN(len(tenants))], Type: schemas.TypeRunStarted,
				WorkflowName: workflows[rng.IntN(len(workflows))], RunID: fmt.Sprintf("run_%05d", runs),
				Attempt: 1 + rng.IntN(3), Time: now(),
				Labels: map[string]string{"env": []string{"prod", "staging"}[rng.IntN(2)], "team": []string{"data", "ml"}[rng.IntN(2)]},
			}, late: rng.IntN(100) == 0}
			if !r.late {
				stream = append(stream, workload.Event(r.spec))
			}
			inflight = append(inflight, r)
			continue
		}
		i := rng.IntN(len(inflight))
		r := inflight[i]
		inflight = slices.Delete(inflight, i, i+1)
		spec := r.spec
		spec.Type = schemas.TypeRunSucceeded
		if rng.IntN(10) < 3 {
			spec.Type = schemas.TypeRunFailed
		}
		spec.Time = now()
		spec.Duration = spec.Time.Sub(r.spec.Time)
		ev := workload.Event(spec)
		stream = append(stream, ev)
		if r.late {
			stream = append(stream, workload.Event(r.spec))
		}
		if rng.IntN(20) == 0 {
			dupTerminals++
			if rng.IntN(2) == 0 {
				stream = append(stream, ev) // the very same event again
			} else {
				again := ev
				again.ID = workload.NewID() // re-sent as a new CloudEvent
				later = append(later, delayed{at: len(stream) + 1 + rng.IntN(200), ev: again})
			}
		}
	}
	for _, d := range later {
		stream = append(stream, d.ev)
	}
	return stream, dupTerminals
}

// buildBinary builds cmd/exo-alerts into a temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build the processor binary: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "exo-alerts")
	start := time.Now()
	out, err := exec.Command(goBin, "build", "-o", bin, "../cmd/exo-alerts").CombinedOutput()
	if err != nil {
		t.Fatalf("go build ../cmd/exo-alerts: %v\n%s", err, out)
	}
	t.Logf("built exo-alerts in %s", time.Since(start).Round(time.Millisecond))
	return bin
}

// job is a background producer.
type job struct {
	done chan struct{}
	err  error // set before done is closed
}

// subprocess is one run of `exo-alerts processor`.
type subprocess struct {
	cmd  *exec.Cmd
	logf string
}

// TestRestartExactlyOnce runs the processor binary as a process, kills it
// with SIGKILL at random points while a stream of events flows, restarts it
// with the same transactional id, and checks that the deliveries are exactly
// the alerts the stream calls for, each once.
func TestRestartExactlyOnce(t *testing.T) {
	t.Parallel()
	e := setup(t)
	bin := buildBinary(t)

	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("EXO_TEST_SEED"); v != "" {
		seed, _ = strconv.ParseUint(v, 10, 64)
	}
	t.Logf("seed %d (EXO_TEST_SEED reproduces the stream and the kill points)", seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))

	tenants := make([]string, 50)
	for i := range tenants {
		tenants[i] = fmt.Sprintf("t%02d", i)
	}
	rules := restartRules(e, tenants)
	// Event times from 3 to about 4.7 minutes ahead: the wall clock stays
	// behind every watermark for three minutes, and no event time is more
	// than the processor's 5-minute clock-skew allowance ahead, so only
	// event time moves the watermarks.
	base := time.Now().Add(3 * time.Minute).UTC().Truncate(time.Millisecond)
	events, dupTerminals := genStream(rng, tenants, 20_000, base)
	stream := make([]*sent, len(events))
	for i, ev := range events {
		stream[i] = &sent{ev: ev, rec: e.record(ev)}
	}

	env := append(os.Environ(),
		"KAFKA_BROKERS="+strings.Join(e.brokers, ","),
		"EXO_TOPIC_PREFIX="+e.topics.Prefix,
		"EXO_PARTITIONS="+strconv.Itoa(partitions),
		"EXO_PROCESSOR_TRANSACTIONAL_ID="+e.topics.Prefix+"processor-0",
		"EXO_PROCESSOR_GROUP="+e.group(),
		"EXO_PROCESSOR_GRACE=1h",
		"EXO_LOG_LEVEL=info",
	)
	var procs []*subprocess
	start := func() *subprocess {
		t.Helper()
		f, err := os.Create(filepath.Join(t.TempDir(), fmt.Sprintf("processor-%d.log", len(procs))))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		cmd := exec.Command(bin, "processor", "--metrics-addr=")
		cmd.Env, cmd.Stdout, cmd.Stderr = env, f, f
		if err := cmd.Start(); err != nil {
			t.Fatalf("start processor: %v", err)
		}
		sp := &subprocess{cmd: cmd, logf: f.Name()}
		procs = append(procs, sp)
		return sp
	}
	t.Cleanup(func() {
		for i, sp := range procs {
			if sp.cmd.ProcessState == nil {
				_ = sp.cmd.Process.Kill()
				_ = sp.cmd.Wait()
			}
			if t.Failed() {
				b, _ := os.ReadFile(sp.logf)
				if len(b) > 6000 {
					b = b[len(b)-6000:]
				}
				t.Logf("processor run %d log (tail):\n%s", i, b)
			}
		}
	})

	// The stream flows, 200 events every 250ms, while the processor is
	// killed and restarted. A restarted process waits for the group to drop
	// its killed predecessor (the session timeout), so it starts with a
	// backlog and then keeps up with the flow.
	const kills = 3
	producing := &job{done: make(chan struct{})}
	go func() {
		defer close(producing.done)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		for i := 0; i < len(stream); i += 200 {
			recs := make([]*kgo.Record, 0, 200)
			for _, s := range stream[i:min(i+200, len(stream))] {
				recs = append(recs, s.rec)
			}
			if producing.err = workload.Produce(ctx, e.cl, recs...); producing.err != nil {
				return
			}
			time.Sleep(250 * time.Millisecond) // pacing: events keep arriving across the kills
		}
	}()

	deliveries := e.collect(e.topics.Deliveries)
	began := time.Now()
	current := start()
	for k := 1; k <= kills; k++ {
		// Kill at a random point up to 400ms after the process committed its
		// first deliveries (read after everything its predecessors
		// committed): a restarted one is then busy with its backlog. Or
		// once it caught up with the whole stream.
		restarted := len(deliveries.recs)
		var killAt time.Time
		var why string
		deliveries.waitFor(90*time.Second, fmt.Sprintf("progress before kill %d", k), func() bool {
			switch {
			case !killAt.IsZero():
				return time.Now().After(killAt)
			case len(deliveries.recs) > restarted:
				killAt = time.Now().Add(time.Duration(rng.IntN(400)) * time.Millisecond)
				why = fmt.Sprintf("%s after its first commit was read", time.Until(killAt).Round(time.Millisecond))
			default:
				select {
				case <-producing.done:
					if ok, _ := e.caughtUp(e.group()); ok {
						why = "caught up with the whole stream"
						return true
					}
				default:
				}
			}
			return false
		}, func() string { return "no delivery committed by the current process" })
		if err := current.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatalf("kill: %v", err)
		}
		_ = current.cmd.Wait()
		deliveries.drain() // what the killed process committed
		t.Logf("kill %d at %s: SIGKILL %s; it committed %d delivery records", k, time.Since(began).Round(time.Millisecond), why, len(deliveries.recs)-restarted)
		current = start()
	}
	<-producing.done
	if producing.err != nil {
		t.Fatalf("produce stream: %v", producing.err)
	}
	t.Logf("stream produced by %s", time.Since(began).Round(time.Millisecond))

	want, dups, durationAlerts := expectAlerts(stream, rules)
	nRules := 0
	for _, rs := range rules {
		nRules += len(rs) + 1 // and the inactive one
	}
	t.Logf("stream: %d events (%d terminal events sent twice; %d records are duplicates), %d tenants, %d rules; expect %d alerts (%d duration)",
		len(stream), dupTerminals, dups, len(tenants), nRules, len(want), durationAlerts)
	if dups == 0 || durationAlerts == 0 {
		t.Fatalf("the stream must exercise duplicates (%d) and duration alerts (%d)", dups, durationAlerts)
	}
	deliveries.waitFor(120*time.Second, "every expected alert", deliveries.has(want), deliveries.missing(want))
	e.waitCaughtUp(60 * time.Second)
	deliveries.drain()
	assertExactlyOnce(t, deliveries.counts(), want)

	// What the killed processes' open transactions wrote is on the topic too,
	// aborted: read_committed readers (the dispatcher) never see it.
	written := e.collectWith(e.topics.Deliveries, kgo.ReadUncommitted())
	written.drain()
	t.Logf("%d delivery records, %d distinct alerts, each expected once; %d kills; %d delivery records written by aborted transactions; total %s",
		len(deliveries.recs), len(deliveries.counts()), kills, len(written.recs)-len(deliveries.recs), time.Since(began).Round(time.Millisecond))

	// A clean stop of the last process exits 0.
	if err := current.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	waitErr := make(chan error, 1)
	go func() { waitErr <- current.cmd.Wait() }()
	select {
	case err := <-waitErr:
		if err != nil {
			t.Errorf("processor after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("processor did not exit within 30s of SIGTERM")
	}
}

// onPartition returns the record of ev placed on partition p.
func (e *kenv) onPartition(ev schemas.WorkflowEvent, p int32) *kgo.Record {
	r := e.record(ev)
	r.Partition = p
	return r
}

// TestRebalanceDurationAlertsOnce runs two in-process processors in one
// group: the second joins while runs are in flight and events stream, the
// first leaves later. Every duration alert of the in-flight runs fires
// exactly once, whichever instance owns its partition when the deadline
// passes; runs that finished in time never fire.
func TestRebalanceDurationAlertsOnce(t *testing.T) {
	t.Parallel()
	e := setup(t)
	const threshold = 60 * time.Second
	tenants := []string{"ta", "tb"}
	for _, tn := range tenants {
		e.putEndpoint(tn, "ep", true)
		e.putRule(schemas.RuleRecord{TenantID: tn, ID: "slow", EventType: schemas.TypeRunDurationExceeded, WebhookEndpointID: "ep",
			IsActive: true, DurationThresholdMS: threshold.Milliseconds()})
	}
	e.putEndpoint("tc", "ep", true)
	e.putRule(schemas.RuleRecord{TenantID: "tc", ID: "fail-all", EventType: schemas.TypeRunFailed, WebhookEndpointID: "ep", IsActive: true})

	// Event times from one to about 3.5 minutes ahead: the wall clock stays
	// behind every deadline, and no event is more than the processor's
	// 5-minute clock-skew allowance ahead: only the events move time.
	t0 := time.Now().Add(time.Minute).UTC().Truncate(time.Second)
	want := map[string]bool{}
	// runs starts 30 runs at event time at, ten per partition, and finishes
	// a third of them finish after their start; if fires, the others must
	// alert once.
	runs := func(prefix string, at time.Time, finish time.Duration, fires bool) {
		var recs []*kgo.Record
		for i := 0; i < 30; i++ {
			tn := tenants[i%2]
			spec := workload.Spec{Tenant: tn, Type: schemas.TypeRunStarted, WorkflowName: "etl", RunID: fmt.Sprintf("%s_%02d", prefix, i), Time: at}
			p := int32(i % partitions)
			recs = append(recs, e.onPartition(workload.Event(spec), p))
			if (i/3)%3 == 2 {
				spec.Type, spec.Time, spec.Duration = schemas.TypeRunSucceeded, at.Add(finish), finish
				recs = append(recs, e.onPartition(workload.Event(spec), p))
			} else if fires {
				want[engine.DurationAlertID(tn, "slow", spec.RunID)] = true
			}
		}
		e.produceOn(recs...)
	}
	// tick moves every partition's watermark to at.
	tick := func(at time.Time) {
		var recs []*kgo.Record
		for p := int32(0); p < partitions; p++ {
			ev := workload.Event(workload.Spec{Tenant: "tick", Type: schemas.TypeRunSucceeded, WorkflowName: "tick",
				RunID: fmt.Sprintf("tick_%d_%d", at.Unix(), p), Time: at})
			recs = append(recs, e.onPartition(ev, p))
		}
		e.produceOn(recs...)
	}
	// stream produces failed events of tenant tc, event times from..to,
	// until stop closes; each one must alert once.
	type streamed struct {
		ids []string
		err error
	}
	stream := func(from, to time.Time, stop <-chan struct{}) <-chan streamed {
		out := make(chan streamed, 1)
		go func() {
			var s streamed
			defer func() { out <- s }()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				at := from.Add(time.Duration(i) * 10 * time.Millisecond)
				if at.After(to) {
					at = to
				}
				var recs []*kgo.Record
				for j := 0; j < 20; j++ {
					ev := workload.Event(workload.Spec{Tenant: "tc", Type: schemas.TypeRunFailed, WorkflowName: "etl", Time: at})
					s.ids = append(s.ids, engine.AlertID("tc", "fail-all", ev.ID))
					r, _ := workload.Record(e.topics.Events, ev)
					recs = append(recs, r)
				}
				if s.err = workload.Produce(ctx, e.cl, recs...); s.err != nil {
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
		return out
	}
	// members describes the group: its state, and how many members own
	// how many partitions of the events topic.
	members := func() (state string, owners, owned int) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		gs, err := e.adm.DescribeGroups(ctx, e.group())
		if err != nil {
			return err.Error(), 0, 0
		}
		g := gs[e.group()]
		var b strings.Builder
		for _, m := range g.Members {
			if a, ok := m.Assigned.AsConsumer(); ok {
				for _, tp := range a.Topics {
					if tp.Topic == e.topics.Events && len(tp.Partitions) > 0 {
						owners++
						owned += len(tp.Partitions)
						fmt.Fprintf(&b, " %s:%v", m.ClientID, tp.Partitions)
					}
				}
			}
		}
		return g.State + b.String(), owners, owned
	}
	waitOwners := func(n int) {
		t.Helper()
		var state string
		eventually(t, 60*time.Second, fmt.Sprintf("%d group members owning every partition", n), func() bool {
			var owners, owned int
			state, owners, owned = members()
			return owners == n && owned == partitions && strings.HasPrefix(state, "Stable")
		}, func() string { return "group: " + state })
		t.Logf("group: %s", state)
	}
	deliveries := e.collect(e.topics.Deliveries)

	a := e.startProcessor("a", nil)
	waitOwners(1)
	runs("r1", t0, 5*time.Second, true) // deadline t0+60s
	e.waitCaughtUp(30 * time.Second)

	// B joins mid-stream; the r1 runs are in flight.
	stop := make(chan struct{})
	streamed1 := stream(t0.Add(10*time.Second), t0.Add(20*time.Second), stop)
	b := e.startProcessor("b", nil)
	waitOwners(2)
	close(stop)
	s1 := <-streamed1
	if s1.err != nil {
		t.Fatalf("stream: %v", s1.err)
	}
	r1 := map[string]bool{}
	for id := range want {
		r1[id] = true
	}
	for _, id := range s1.ids {
		r1[id] = true
	}
	runs("r2", t0.Add(30*time.Second), 5*time.Second, true) // deadline t0+90s
	tick(t0.Add(61 * time.Second))                          // r1 deadlines pass, on both instances
	deliveries.waitFor(60*time.Second, "the r1 duration alerts and the streamed alerts", deliveries.has(r1), deliveries.missing(r1))
	firedA, firedB := testenv.Metric(t, a.reg, "exo_processor_duration_alerts_total"), testenv.Metric(t, b.reg, "exo_processor_duration_alerts_total")

	// A leaves mid-stream; B restores A's partitions, r2 in flight.
	stop = make(chan struct{})
	streamed2 := stream(t0.Add(62*time.Second), t0.Add(85*time.Second), stop)
	a.stop(t)
	waitOwners(1)
	close(stop)
	s2 := <-streamed2
	if s2.err != nil {
		t.Fatalf("stream: %v", s2.err)
	}
	runs("r3", t0.Add(86*time.Second), 50*time.Second, false) // deadline t0+146s: never passes
	tick(t0.Add(95 * time.Second))                            // r2 deadlines pass, on B only
	for _, id := range append(s1.ids, s2.ids...) {
		want[id] = true
	}
	deliveries.waitFor(60*time.Second, "every expected alert", deliveries.has(want), deliveries.missing(want))
	e.waitCaughtUp(30 * time.Second)
	deliveries.drain()
	assertExactlyOnce(t, deliveries.counts(), want)
	t.Logf("%d duration alerts and %d streamed event alerts, each once (engine counters, aborted attempts included: before A left, A fired %.0f and B %.0f duration alerts; B %.0f in all)",
		len(want)-len(s1.ids)-len(s2.ids), len(s1.ids)+len(s2.ids), firedA, firedB, testenv.Metric(t, b.reg, "exo_processor_duration_alerts_total"))
}

// TestReplayBacklog starts the processor on a backlog produced while it was
// down: runs that finished inside the backlog before their deadline never
// fire; runs still running past their deadline fire once each, when the
// processor has caught up and the watermark follows the wall clock.
func TestReplayBacklog(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.putEndpoint("tr", "ep", true)
	e.putRule(schemas.RuleRecord{TenantID: "tr", ID: "slow", EventType: schemas.TypeRunDurationExceeded, WebhookEndpointID: "ep",
		IsActive: true, DurationThresholdMS: (2 * time.Minute).Milliseconds()})

	const finished, running = 3000, 150
	started := time.Now().Add(-10 * time.Minute).UTC().Truncate(time.Millisecond)
	var starts, ends []*kgo.Record
	want := map[string]bool{}
	for i := 0; i < finished+running; i++ {
		// Large, incompressible events (about 2 KiB): a fetch holds at most
		// 1 MiB of a partition, so the backlog takes several batches.
		padding := map[string]string{}
		for j := range 6 {
			var b strings.Builder
			for b.Len() < 240 {
				fmt.Fprintf(&b, "%016x", rand.Uint64())
			}
			padding[fmt.Sprintf("pad%d", j)] = b.String()
		}
		spec := workload.Spec{Tenant: "tr", Type: schemas.TypeRunStarted, WorkflowName: "etl", RunID: fmt.Sprintf("run_%04d", i),
			Time: started.Add(time.Duration(i) * time.Millisecond), Labels: padding}
		starts = append(starts, e.record(workload.Event(spec)))
		if i < finished {
			// Finished after one minute, before the two-minute deadline.
			spec.Type, spec.Duration = schemas.TypeRunSucceeded, time.Minute
			spec.Time = spec.Time.Add(time.Minute)
			ends = append(ends, e.record(workload.Event(spec)))
		} else {
			want[engine.DurationAlertID("tr", "slow", spec.RunID)] = true
		}
	}
	// All starts first, then the completions: a processor that let the wall
	// clock move a watermark before reaching the completions would fire for
	// the finished runs.
	e.produce(starts...)
	e.produce(ends...)

	deliveries := e.collect(e.topics.Deliveries)
	p := e.startProcessor("replay", nil)
	deliveries.waitFor(60*time.Second, "the alerts of the runs still running", deliveries.has(want), deliveries.missing(want))
	e.waitCaughtUp(30 * time.Second)
	deliveries.drain()
	assertExactlyOnce(t, deliveries.counts(), want)
	txns := testenv.Metric(t, p.reg, "exo_processor_transactions_total", "result", "committed")
	t.Logf("backlog of %d events (%d finished runs, %d running): %d duration alerts, none for finished runs; %.0f transactions",
		len(starts)+len(ends), finished, running, len(want), txns)
	if txns < 4 {
		t.Fatalf("the backlog was processed in %.0f transactions: too few batches to show that a watermark waits for the end of the backlog", txns)
	}
}

// TestQuietPartitionFiresOnTime starts a run and then sends nothing more: the
// wall clock advances the caught-up partition's watermark, so the duration
// alert comes right after its deadline. A run that finished before its
// deadline on the same partition does not fire.
func TestQuietPartitionFiresOnTime(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.putEndpoint("tq", "ep", true)
	e.putRule(schemas.RuleRecord{TenantID: "tq", ID: "slow", EventType: schemas.TypeRunDurationExceeded, WebhookEndpointID: "ep",
		IsActive: true, DurationThresholdMS: 1000})
	deliveries := e.collect(e.topics.Deliveries)
	e.startProcessor("quiet", nil)

	now := time.Now().UTC().Truncate(time.Millisecond)
	slow := workload.Spec{Tenant: "tq", Type: schemas.TypeRunStarted, WorkflowName: "etl", RunID: "run_slow", Time: now}
	fast := workload.Spec{Tenant: "tq", Type: schemas.TypeRunStarted, WorkflowName: "etl", RunID: "run_fast", Time: now}
	fastEnd := fast
	fastEnd.Type, fastEnd.Duration, fastEnd.Time = schemas.TypeRunSucceeded, 300*time.Millisecond, now.Add(300*time.Millisecond)
	e.produceOn(e.onPartition(workload.Event(slow), 1), e.onPartition(workload.Event(fast), 1), e.onPartition(workload.Event(fastEnd), 1))
	deadline := now.Add(time.Second)

	id := engine.DurationAlertID("tq", "slow", "run_slow")
	wantOne := map[string]bool{id: true}
	deliveries.waitFor(10*time.Second, "the duration alert", deliveries.has(wantOne), deliveries.missing(wantOne))
	i := slices.IndexFunc(deliveries.deliveries(), func(d schemas.DeliveryRecord) bool { return d.AlertID == id })
	t.Logf("duration alert read %s after its deadline", deliveries.at[i].Sub(deadline).Round(time.Millisecond))
	assertExactlyOnce(t, deliveries.counts(), wantOne) // and none for run_fast

	d := deliveries.deliveries()[i]
	var payload schemas.WebhookPayload
	if err := json.Unmarshal(d.Payload, &payload); err != nil {
		t.Fatalf("payload: %v", err)
	}
	if d.EventType != schemas.TypeRunDurationExceeded || payload.Data.Run.ID != "run_slow" || payload.Data.Run.Status != "running" ||
		payload.Data.ThresholdMS == nil || *payload.Data.ThresholdMS != 1000 ||
		payload.Data.Run.DurationMS == nil || *payload.Data.Run.DurationMS < 1000 || !payload.Timestamp.Equal(deadline) {
		t.Fatalf("duration alert %s has payload %s", d.EventType, d.Payload)
	}
}

// TestRuleChangesLive publishes, deactivates and deletes a rule while the
// processor runs: once the processor's exo_processor_rules_active gauge shows
// a change, every event produced afterwards is matched accordingly.
func TestRuleChangesLive(t *testing.T) {
	t.Parallel()
	e := setup(t)
	const tn = "tl"
	e.putEndpoint(tn, "ep", true)
	// A sentinel rule on succeeded events: its alert for an event of the
	// same run, produced right after, proves an earlier event was processed.
	e.putRule(schemas.RuleRecord{TenantID: tn, ID: "sentinel", EventType: schemas.TypeRunSucceeded, WebhookEndpointID: "ep", IsActive: true})
	deliveries := e.collect(e.topics.Deliveries)
	p := e.startProcessor("live", nil)
	rulesActive := func() float64 { return testenv.Metric(t, p.reg, "exo_processor_rules_active") }
	waitRules := func(n float64) {
		t.Helper()
		eventually(t, 30*time.Second, fmt.Sprintf("exo_processor_rules_active = %v", n), func() bool { return rulesActive() == n },
			func() string { return fmt.Sprintf("gauge %v", rulesActive()) })
	}
	waitRules(1)
	failed := func() schemas.WorkflowEvent {
		return workload.Event(workload.Spec{Tenant: tn, Type: schemas.TypeRunFailed, WorkflowName: "etl"})
	}
	rule := schemas.RuleRecord{TenantID: tn, ID: "new", EventType: schemas.TypeRunFailed, WebhookEndpointID: "ep", IsActive: true}

	// Publish, then send a fresh event every 100ms until one matches.
	published := time.Now()
	e.putRule(rule)
	producedAt := map[string]time.Time{}
	var matched schemas.DeliveryRecord
	for matched.AlertID == "" {
		if time.Since(published) > 30*time.Second {
			t.Fatalf("no event matched the new rule within 30s of its publication")
		}
		ev := failed()
		producedAt[engine.AlertID(tn, "new", ev.ID)] = time.Now()
		e.produce(e.record(ev))
		deliveries.poll(100 * time.Millisecond)
		for _, d := range deliveries.deliveries() {
			if d.RuleID == "new" {
				matched = d
				break
			}
		}
	}
	t.Logf("new rule live: the event produced %s after publication matched (delivery read %s after publication; %d events sent)",
		producedAt[matched.AlertID].Sub(published).Round(time.Millisecond), time.Since(published).Round(time.Millisecond), len(producedAt))

	// expectMatch produces events and waits for their alerts.
	expectMatch := func(n int) {
		t.Helper()
		want := map[string]bool{}
		var recs []*kgo.Record
		for range n {
			ev := failed()
			want[engine.AlertID(tn, "new", ev.ID)] = true
			recs = append(recs, e.record(ev))
		}
		e.produce(recs...)
		deliveries.waitFor(10*time.Second, "alerts of events produced after the rule is active", deliveries.has(want), deliveries.missing(want))
	}
	// expectNoMatch produces a failed event and, after it on the same run, a
	// succeeded one: once the sentinel's alert for the second is read, the
	// first has been processed (same partition, same delivery key).
	expectNoMatch := func(what string) {
		t.Helper()
		ev := failed()
		done := ev
		done.ID, done.Type = workload.NewID(), schemas.TypeRunSucceeded
		e.produce(e.record(ev), e.record(done))
		sentinel := map[string]bool{engine.AlertID(tn, "sentinel", done.ID): true}
		deliveries.waitFor(10*time.Second, "the sentinel alert", deliveries.has(sentinel), deliveries.missing(sentinel))
		if n := deliveries.counts()[engine.AlertID(tn, "new", ev.ID)]; n != 0 {
			t.Fatalf("%s: an event produced afterwards still matched (%d deliveries)", what, n)
		}
	}
	waitRules(2)
	expectMatch(5)

	rule.IsActive, rule.Version = false, 2
	e.putRule(rule)
	waitRules(1)
	expectNoMatch("rule deactivated")

	rule.IsActive, rule.Version = true, 3
	e.putRule(rule)
	waitRules(2)
	expectMatch(3)

	e.deleteRule(tn, "new")
	waitRules(1)
	expectNoMatch("rule deleted")
}

// TestBadInputKeepsStreamGoing interleaves records that are not valid
// workflow events with good ones: the bad ones go to the invalid topic with
// their reason and origin, an unknown event type is ignored (not invalid),
// and every good event still alerts.
func TestBadInputKeepsStreamGoing(t *testing.T) {
	t.Parallel()
	e := setup(t)
	const tn = "tb"
	e.putEndpoint(tn, "ep", true)
	e.putRule(schemas.RuleRecord{TenantID: tn, ID: "fail-all", EventType: schemas.TypeRunFailed, WebhookEndpointID: "ep", IsActive: true})
	p := e.startProcessor("bad", nil)

	want := map[string]bool{}
	good := func() *kgo.Record {
		ev := workload.Event(workload.Spec{Tenant: tn, Type: schemas.TypeRunFailed, WorkflowName: "etl"})
		want[engine.AlertID(tn, "fail-all", ev.ID)] = true
		return e.record(ev)
	}
	raw := func(key, value string) *kgo.Record {
		return &kgo.Record{Topic: e.topics.Events, Key: []byte(key), Value: []byte(value),
			Headers: []kgo.RecordHeader{{Key: "content-type", Value: []byte("application/cloudevents+json")}}}
	}
	valid := workload.Event(workload.Spec{Tenant: tn, Type: schemas.TypeRunFailed, WorkflowName: "etl"})
	validJSON, _ := json.Marshal(valid)
	var doc map[string]any
	_ = json.Unmarshal(validJSON, &doc)
	doc["specversion"] = "0.3"
	v03, _ := json.Marshal(doc)
	unknown := workload.Event(workload.Spec{Tenant: tn, Type: "workflow.run.paused", WorkflowName: "etl", RunID: "run_paused"})
	binaryEv := workload.Event(workload.Spec{Tenant: tn, Type: schemas.TypeRunFailed, WorkflowName: "etl"})
	binary, _ := workload.BinaryRecord(e.topics.Events, binaryEv)
	want[engine.AlertID(tn, "fail-all", binaryEv.ID)] = true

	// Binary mode with ce_tenantid twice: which tenant is it? Not one to
	// guess (the last used to win): refused like a repeated JSON key.
	twoTenants, _ := workload.BinaryRecord(e.topics.Events, workload.Event(workload.Spec{Tenant: "other", Type: schemas.TypeRunFailed, WorkflowName: "etl"}))
	twoTenants.Key = []byte("bad/ce-repeated")
	twoTenants.Headers = append(twoTenants.Headers, kgo.RecordHeader{Key: "ce_tenantid", Value: []byte(tn)})

	bad := map[string]*kgo.Record{
		"bad/ce-repeated":    twoTenants,
		"bad/not-json":       raw("bad/not-json", `{"specversion": "1.0", "id": `),
		"bad/schema-invalid": raw("bad/schema-invalid", `{"specversion":"1.0","id":"x1","source":"s","type":"workflow.run.failed","time":"2026-01-01T00:00:00Z","tenantid":"tb","data":{}}`),
		"bad/specversion":    raw("bad/specversion", string(v03)),
		// Valid JSON of a valid event, padded past the 256 KiB limit.
		"bad/oversized": raw("bad/oversized", string(validJSON)+strings.Repeat(" ", processor.MaxEventBytes)),
	}
	unknownRec := e.record(unknown)
	// A valid event under a key that is not tenantid/run id: processed all
	// the same, and counted for the operator.
	misKeyed := good()
	misKeyed.Key = []byte(tn + "/not-its-run")
	recs := []*kgo.Record{
		good(), bad["bad/not-json"], good(), bad["bad/schema-invalid"], good(), bad["bad/specversion"],
		good(), bad["bad/oversized"], good(), unknownRec, good(), binary, misKeyed, good(), bad["bad/ce-repeated"], good(),
	}
	// One partition, so the good events after each bad one prove the stream
	// went on past it.
	for _, r := range recs {
		r.Partition = 2
	}
	e.produceOn(recs...)

	deliveries := e.collect(e.topics.Deliveries)
	deliveries.waitFor(30*time.Second, "an alert for every good event", deliveries.has(want), deliveries.missing(want))
	e.waitCaughtUp(30 * time.Second)
	deliveries.drain()
	assertExactlyOnce(t, deliveries.counts(), want)

	invalid := e.collect(e.topics.EventsInvalid)
	invalid.drain()
	got := map[string]bool{}
	for _, r := range invalid.recs {
		key := string(r.Key)
		orig, ok := bad[key]
		if !ok {
			t.Errorf("unexpected record on the invalid topic: key %q (reason %q)", key, kafka.Header(r, "exo-invalid-reason"))
			continue
		}
		got[key] = true
		reason := kafka.Header(r, "exo-invalid-reason")
		// The copy keeps the value; an oversized one is cut to the limit,
		// saying from what size (the original stays on the events topic).
		want := orig.Value
		if len(want) > processor.MaxEventBytes {
			want = want[:processor.MaxEventBytes]
			if from := kafka.Header(r, "exo-invalid-truncated-from"); from != strconv.Itoa(len(orig.Value)) {
				t.Errorf("invalid record %q: truncated from %q, want %d", key, from, len(orig.Value))
			}
		}
		if reason == "" || string(r.Value) != string(want) ||
			kafka.Header(r, "exo-original-topic") != e.topics.Events ||
			kafka.Header(r, "exo-original-partition") != strconv.Itoa(int(orig.Partition)) ||
			kafka.Header(r, "exo-original-offset") != strconv.FormatInt(orig.Offset, 10) {
			t.Errorf("invalid record %q: reason %q, origin %s/%s/%s (want %s/%d/%d), value kept: %v", key, reason,
				kafka.Header(r, "exo-original-topic"), kafka.Header(r, "exo-original-partition"), kafka.Header(r, "exo-original-offset"),
				e.topics.Events, orig.Partition, orig.Offset, string(r.Value) == string(want))
		}
		t.Logf("%s → invalid: %s", key, reason)
	}
	for key := range bad {
		if !got[key] {
			t.Errorf("%s is not on the invalid topic", key)
		}
	}
	if n := testenv.Metric(t, p.reg, "exo_processor_events_total", "outcome", "invalid"); n != 5 {
		t.Errorf("events_total{outcome=invalid} = %v, want 5", n)
	}
	if n := testenv.Metric(t, p.reg, "exo_processor_events_total", "outcome", "ignored_type"); n != 1 {
		t.Errorf("events_total{outcome=ignored_type} = %v, want 1 (the unknown type)", n)
	}
	if n := testenv.Metric(t, p.reg, "exo_processor_miskeyed_events_total"); n != 1 {
		t.Errorf("miskeyed_events_total = %v, want 1", n)
	}
}

// TestRateLimitEndToEnd sends ten matching events within one minute of event
// time to a rule limited to three alerts a minute: three deliveries, seven
// suppressions counted.
func TestRateLimitEndToEnd(t *testing.T) {
	t.Parallel()
	e := setup(t)
	const tn = "tn"
	e.putEndpoint(tn, "ep", true)
	e.putRule(schemas.RuleRecord{TenantID: tn, ID: "limited", EventType: schemas.TypeRunFailed, WebhookEndpointID: "ep",
		IsActive: true, RateLimitPerMinute: 3})
	p := e.startProcessor("noise", nil)

	minute := time.Now().UTC().Truncate(time.Minute).Add(-time.Minute)
	allowed := map[string]bool{}
	var recs []*kgo.Record
	for i := range 10 {
		ev := workload.Event(workload.Spec{Tenant: tn, Type: schemas.TypeRunFailed, WorkflowName: "etl", Time: minute.Add(time.Duration(i) * 5 * time.Second)})
		allowed[engine.AlertID(tn, "limited", ev.ID)] = true
		recs = append(recs, e.record(ev))
	}
	e.produce(recs...)
	e.waitCaughtUp(30 * time.Second)
	deliveries := e.collect(e.topics.Deliveries)
	deliveries.drain()
	got := deliveries.counts()
	n := 0
	for id, c := range got {
		if !allowed[id] || c != 1 {
			t.Errorf("unexpected delivery %s ×%d", id, c)
		}
		n += c
	}
	if n != 3 {
		t.Errorf("%d deliveries for 10 events within one minute, want 3 (rate limit 3/min)", n)
	}
	if s := testenv.Metric(t, p.reg, "exo_processor_alerts_suppressed_total", "reason", "rate_limit"); s != 7 {
		t.Errorf("exo_processor_alerts_suppressed_total{reason=rate_limit} = %v, want 7", s)
	}
}

// TestStartAbortsPredecessorTransaction leaves a transaction open under the
// processor's transactional id, as a processor killed mid-batch does, with
// a timeout far beyond the test. While it is open, read_committed readers
// (the dispatcher) cannot read past it. A processor starting with the same
// id aborts it at once, with no event to process.
func TestStartAbortsPredecessorTransaction(t *testing.T) {
	t.Parallel()
	e := setup(t)
	txnID := e.topics.Prefix + "processor-fence"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dead, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.UnknownTopicRetries(60), kgo.TransactionalID(txnID), kgo.TransactionTimeout(10*time.Minute),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dead.Close)
	if err := dead.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	orphan := &kgo.Record{Topic: e.topics.Deliveries, Partition: 0, Key: []byte("tz/ep"), Value: []byte(`{"alert_id":"alrt_orphan"}`)}
	if err := dead.ProduceSync(ctx, orphan).FirstErr(); err != nil {
		t.Fatal(err)
	}
	after := &kgo.Record{Topic: e.topics.Deliveries, Partition: 0, Key: []byte("tz/ep"), Value: []byte(`{"alert_id":"alrt_after"}`)}
	e.produceOn(after)
	lso, err := e.adm.ListCommittedOffsets(ctx, e.topics.Deliveries)
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := lso.Lookup(e.topics.Deliveries, 0); o.Offset != orphan.Offset {
		t.Fatalf("precondition: the open transaction should hold the last stable offset at %d, it is %d", orphan.Offset, o.Offset)
	}

	e.startProcessor("fence", func(c *processor.Config) { c.TransactionalID = txnID })
	deliveries := e.collect(e.topics.Deliveries)
	wantAfter := map[string]bool{"alrt_after": true}
	deliveries.waitFor(60*time.Second, "the record behind the open transaction", deliveries.has(wantAfter), deliveries.missing(wantAfter))
	assertExactlyOnce(t, deliveries.counts(), wantAfter) // the orphan was aborted
}

// hookClock is the wall clock; the first reading after hook is set runs it.
type hookClock struct {
	mu   sync.Mutex
	hook func()
}

func (c *hookClock) Now() time.Time {
	c.mu.Lock()
	h := c.hook
	c.hook = nil
	c.mu.Unlock()
	if h != nil {
		h()
	}
	return time.Now()
}

// TestStopFinishesBatchInFlight stops the processor while it processes its
// first batch: the batch is still committed (deliveries and offsets), so no
// transaction is left open to hold back the dispatcher, and a successor
// delivers the rest, everything exactly once.
func TestStopFinishesBatchInFlight(t *testing.T) {
	t.Parallel()
	e := setup(t)
	const tn = "ts"
	e.putEndpoint(tn, "ep", true)
	e.putRule(schemas.RuleRecord{TenantID: tn, ID: "fail-all", EventType: schemas.TypeRunFailed, WebhookEndpointID: "ep", IsActive: true})
	// A backlog on every partition before the processor starts: no
	// partition is caught up, so the first clock reading is the engine's,
	// for the first event of the first batch.
	var recs []*kgo.Record
	events := map[int32][]string{} // partition -> alert ids by offset
	for i := range 3000 {
		ev := workload.Event(workload.Spec{Tenant: tn, Type: schemas.TypeRunFailed, WorkflowName: "etl"})
		p := int32(i % partitions)
		recs = append(recs, e.onPartition(ev, p))
		events[p] = append(events[p], engine.AlertID(tn, "fail-all", ev.ID))
	}
	e.produceOn(recs...)

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	clock := &hookClock{hook: stop} // stop mid-batch
	p := e.startProcessorCtx(ctx, "stop", func(c *processor.Config) { c.Clock = clock })
	p.wait(t)

	// A transaction's offsets show once its markers are written, which
	// EndTransaction does not wait for: read them until they appear.
	prefix := map[string]bool{}
	for deadline := time.Now().Add(15 * time.Second); len(prefix) == 0 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		committed, err := e.adm.FetchOffsets(context.Background(), e.group())
		if err == nil {
			err = committed.Error()
		}
		if err != nil {
			t.Fatalf("committed offsets: %v", err)
		}
		for part, ids := range events {
			if o, ok := committed.Lookup(e.topics.Events, part); ok {
				for _, id := range ids[:o.At] {
					prefix[id] = true
				}
			}
		}
	}
	if len(prefix) == 0 {
		t.Fatalf("the processor stopped during its first batch and committed nothing: the batch's transaction was abandoned")
	}
	deliveries := e.collect(e.topics.Deliveries)
	deliveries.drain()
	assertExactlyOnce(t, deliveries.counts(), prefix)
	t.Logf("stopped mid-batch: %d of %d events committed with their deliveries", len(prefix), len(recs))

	// A successor with the same transactional id delivers the rest.
	e.startProcessor("stop", nil)
	all := map[string]bool{}
	for _, ids := range events {
		for _, id := range ids {
			all[id] = true
		}
	}
	deliveries.waitFor(60*time.Second, "every alert", deliveries.has(all), deliveries.missing(all))
	e.waitCaughtUp(30 * time.Second)
	deliveries.drain()
	assertExactlyOnce(t, deliveries.counts(), all)
}

// TestLagAndWatermarkMetrics: a processor started on a backlog reports the
// backlog as its lag before it processes it (the loop is held at its first
// clock reading, which comes after the first lag check), and, once caught
// up, no lag and watermarks that follow the wall clock although the events
// are ten minutes old.
func TestLagAndWatermarkMetrics(t *testing.T) {
	t.Parallel()
	e := setup(t)
	const n = 30
	old := time.Now().Add(-10 * time.Minute).UTC().Truncate(time.Millisecond)
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, e.record(workload.Event(workload.Spec{Tenant: "tw", Type: schemas.TypeRunStarted, WorkflowName: "etl",
			RunID: fmt.Sprintf("run_%02d", i), Time: old.Add(time.Duration(i) * time.Millisecond)})))
	}
	e.produce(recs...)

	held, released := make(chan struct{}), make(chan struct{})
	release := sync.OnceFunc(func() { close(released) })
	clock := &hookClock{hook: func() { close(held); <-released }}
	p := e.startProcessor("lag", func(c *processor.Config) { c.Clock = clock })
	t.Cleanup(release) // before the processor's stop
	select {
	case <-held:
	case <-time.After(60 * time.Second):
		t.Fatal("the processor never read its clock")
	}
	lags := func() (sum float64, parts int) {
		mfs, err := p.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "exo_processor_lag_records" {
				for _, m := range mf.GetMetric() {
					sum += m.GetGauge().GetValue()
					parts++
				}
			}
		}
		return sum, parts
	}
	if sum, parts := lags(); sum != n || parts != partitions {
		t.Fatalf("held before the backlog: lag %v over %d partitions, want %d over %d", sum, parts, n, partitions)
	}
	release()

	e.waitCaughtUp(60 * time.Second)
	eventually(t, 30*time.Second, "no lag and watermarks at the wall clock", func() bool {
		sum, parts := lags()
		if sum != 0 || parts != partitions {
			return false
		}
		for part := range partitions {
			age := testenv.Metric(t, p.reg, "exo_processor_watermark_lag_seconds", "partition", strconv.Itoa(part))
			if age <= 0 || age >= 60 { // 0: no series yet
				return false
			}
		}
		return true
	}, func() string {
		sum, parts := lags()
		return fmt.Sprintf("lag %v over %d partitions; watermark lag of partition 0: %vs", sum, parts,
			testenv.Metric(t, p.reg, "exo_processor_watermark_lag_seconds", "partition", "0"))
	})
}

// A changelog with another partition count than the topic it is the state
// of (made by hand) would split runs, or a rule's groups, across
// partitions: the processor refuses to start and says why.
func TestRefusesChangelogNotCoPartitioned(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for _, c := range []struct {
		name             string
		topic, changelog func(kafka.Topics) string
		want             string
	}{
		{"run state", func(t kafka.Topics) string { return t.Events }, func(t kafka.Topics) string { return t.RunState },
			"the run-state changelog must have as many partitions"},
		{"aggregate state", func(t kafka.Topics) string { return t.AggregateInput }, func(t kafka.Topics) string { return t.AggregateState },
			"the aggregate-state changelog must have as many partitions"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			topics := testenv.Topics(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			compact := "compact" // a changelog right but for its partitions
			if err := kafka.EnsureTopics(ctx, e.adm, []kafka.Spec{{Name: c.topic(topics), Partitions: 3},
				{Name: c.changelog(topics), Partitions: 2, Configs: map[string]*string{"cleanup.policy": &compact}}}); err != nil {
				t.Fatal(err)
			}
			err := processor.Run(ctx, processor.Config{Brokers: e.brokers, Topics: topics, Partitions: 3, Log: testenv.Log(t)})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Run = %v, want a refusal saying %q", err, c.want)
			}
		})
	}
}

// An event whose alert Kafka refuses for good (larger than the deliveries
// topic takes) is set aside on the invalid topic, saying why, and the
// stream goes on: the events around it, in the same transaction and the
// same batch of deliveries, alert exactly once. Before, the transaction
// aborted and the same batch was processed again, forever.
func TestEventWithRefusedAlertSetAside(t *testing.T) {
	t.Parallel()
	e := setup(t)
	const maxBytes = 6 << 10
	e.limitMessageBytes(e.topics.Deliveries, maxBytes)
	const tn = "tl"
	e.putEndpoint(tn, "ep", true)
	e.putRule(schemas.RuleRecord{TenantID: tn, ID: "fail-all", EventType: schemas.TypeRunFailed, WebhookEndpointID: "ep", IsActive: true})
	p := e.startProcessor("large", nil)

	want := map[string]bool{}
	good := func() *kgo.Record {
		ev := workload.Event(workload.Spec{Tenant: tn, Type: schemas.TypeRunFailed, WorkflowName: "etl"})
		want[engine.AlertID(tn, "fail-all", ev.ID)] = true
		return e.record(ev)
	}
	largeEv := workload.Event(workload.Spec{Tenant: tn, Type: schemas.TypeRunFailed, WorkflowName: "etl", Labels: largeLabels(maxBytes)})
	large := e.record(largeEv)
	recs := []*kgo.Record{good(), good(), large, good(), good()}
	for _, r := range recs {
		r.Partition = 1 // one partition: the events after the large one prove the stream went on
	}
	e.produceOn(recs...)

	deliveries := e.collect(e.topics.Deliveries)
	deliveries.waitFor(60*time.Second, "an alert for every event but the large one", deliveries.has(want), deliveries.missing(want))
	e.waitCaughtUp(30 * time.Second)
	deliveries.drain()
	assertExactlyOnce(t, deliveries.counts(), want)

	invalid := e.collect(e.topics.EventsInvalid)
	invalid.drain()
	if len(invalid.recs) != 1 {
		t.Fatalf("%d records on the invalid topic, want the large event alone", len(invalid.recs))
	}
	r := invalid.recs[0]
	reason := kafka.Header(r, "exo-invalid-reason")
	if !bytes.Equal(r.Value, large.Value) || !bytes.Equal(r.Key, large.Key) ||
		kafka.Header(r, "exo-original-offset") != strconv.FormatInt(large.Offset, 10) ||
		!strings.Contains(reason, e.topics.Deliveries) || !strings.Contains(reason, "MESSAGE_TOO_LARGE") {
		t.Errorf("invalid record: key %q offset %s reason %q, value kept: %v; want the large event (offset %d), refused by %s",
			r.Key, kafka.Header(r, "exo-original-offset"), reason, bytes.Equal(r.Value, large.Value), large.Offset, e.topics.Deliveries)
	}
	if n := testenv.Metric(t, p.reg, "exo_processor_events_total", "outcome", "invalid"); n != 1 {
		t.Errorf("events_total{outcome=invalid} = %v, want 1", n)
	}
}

// limitMessageBytes sets topic's max.message.bytes and waits until the
// broker describes it, so that what is produced next is under the limit
// (the broker applies a config change from its metadata log a moment after
// it answers).
func (e *kenv) limitMessageBytes(topic string, maxBytes int) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := e.adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "max.message.bytes", Value: kadm.StringPtr(strconv.Itoa(maxBytes))}}, topic)
	if err == nil {
		_, err = res.On(topic, nil)
	}
	if err != nil {
		e.t.Fatalf("limit %s: %v", topic, err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		rcs, err := e.adm.DescribeTopicConfigs(ctx, topic)
		if err == nil {
			if rc, err := rcs.On(topic, nil); err == nil {
				if slices.ContainsFunc(rc.Configs, func(c kadm.Config) bool {
					return c.Key == "max.message.bytes" && c.Value != nil && *c.Value == strconv.Itoa(maxBytes)
				}) {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("the broker does not describe max.message.bytes=%d on %s", maxBytes, topic)
		}
	}
}

// largeLabels are labels within the event schema's limits (random:
// compression must not shrink them) that make an alert carrying them
// larger than maxBytes.
func largeLabels(maxBytes int) map[string]string {
	labels := map[string]string{}
	for i := range 2 * maxBytes / 256 {
		var v strings.Builder
		for v.Len() < 240 {
			fmt.Fprintf(&v, "%016x", rand.Uint64())
		}
		labels[fmt.Sprintf("label%03d", i)] = v.String()
	}
	return labels
}
