package processor_test

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/workload"
	"github.com/exospherehost/exo-alerts/schemas"
)

// groupRef names one group of one aggregate rule.
type groupRef struct{ tenant, rule, group string }

// aggStream is a stream of events whose aggregate outcome is unambiguous:
// each group's events are consecutive in event time (well inside one
// window), groups are separated by filler events of a tenant without rules
// that move event time on, and each group's kind decides what it does:
//
//	a: 2 failures and a duplicate of the first — nothing fires;
//	b: 3 failures — the count rule fires, the rate rule has too few runs;
//	c: 5 failures, 1 success — both rules fire;
//	d: 4 successes, 1 failure — nothing fires (ratio 0.8).
//
// Every group that fires resolves once event time is a window past it.
type aggStream struct {
	recs   []*kgo.Record
	fire   map[groupRef]bool
	last   time.Time // event time of the last event
	events int
}

func genAggStream(rng *rand.Rand, e *kenv, tenants []string, groups int, base time.Time, step time.Duration) *aggStream {
	s := &aggStream{fire: map[groupRef]bool{}}
	at := base
	emit := func(ev schemas.WorkflowEvent) {
		s.recs = append(s.recs, e.record(ev))
		s.events++
	}
	next := func() time.Time { at = at.Add(step); return at }
	type pending struct{ tenant, wf string }
	var order []pending
	for _, tn := range tenants {
		for g := range groups {
			order = append(order, pending{tn, fmt.Sprintf("wf%03d", g)})
		}
	}
	rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	for _, p := range order {
		ev := func(typ string) schemas.WorkflowEvent {
			return workload.Event(workload.Spec{Tenant: p.tenant, Type: typ, WorkflowName: p.wf, Time: next()})
		}
		n, _ := strconv.Atoi(p.wf[2:])
		switch "abcd"[n%4] {
		case 'a':
			first := ev(schemas.TypeRunFailed)
			emit(first)
			emit(ev(schemas.TypeRunFailed))
			emit(first) // a duplicate: not counted
		case 'b':
			for range 3 {
				emit(ev(schemas.TypeRunFailed))
			}
			s.fire[groupRef{p.tenant, "count3", p.wf}] = true
		case 'c':
			evs := []schemas.WorkflowEvent{ev(schemas.TypeRunSucceeded)}
			for range 5 {
				evs = append(evs, ev(schemas.TypeRunFailed))
			}
			rng.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
			for _, x := range evs {
				emit(x)
			}
			s.fire[groupRef{p.tenant, "count3", p.wf}] = true
			s.fire[groupRef{p.tenant, "rate", p.wf}] = true
		case 'd':
			for range 4 {
				emit(ev(schemas.TypeRunSucceeded))
			}
			emit(ev(schemas.TypeRunFailed))
		}
		for range 5 + rng.IntN(10) {
			emit(workload.Event(workload.Spec{Tenant: "filler", Type: schemas.TypeRunStarted, WorkflowName: "filler", Time: next()}))
		}
	}
	s.last = at
	return s
}

// aggregateRules are the two aggregate rules of each tenant of the restart
// test, grouped by workflow.name, with 1-minute windows.
func (e *kenv) putAggregateRules(tenants []string) {
	for _, tn := range tenants {
		e.putEndpoint(tn, "ep", true)
		e.putRule(schemas.RuleRecord{TenantID: tn, ID: "count3", Kind: schemas.RuleKindCount, EventType: schemas.TypeRunFailed, WebhookEndpointID: "ep",
			IsActive: true, WindowMS: 60_000, Threshold: 3, GroupBy: []string{"workflow.name"}, MaxGroups: 1000})
		e.putRule(schemas.RuleRecord{TenantID: tn, ID: "rate", Kind: schemas.RuleKindRate, EventType: schemas.TypeRunFinished, WebhookEndpointID: "ep",
			IsActive: true, WindowMS: 60_000, SuccessRatioBelowBP: 5000, MinRuns: 4, GroupBy: []string{"workflow.name"}, MaxGroups: 1000})
	}
}

// checkEpisodes checks that the aggregate deliveries are exactly one firing
// and, when resolved, one resolve of the same incident per expected group,
// and nothing else; it returns a description of what differs ("" if
// nothing).
func checkEpisodes(eps []episode, want map[groupRef]bool, resolved bool) string {
	type seen struct{ firing, resolved []string }
	got := map[groupRef]*seen{}
	ids := map[string]int{}
	for _, ep := range eps {
		ids[ep.AlertID]++
		ref := groupRef{ep.TenantID, ep.RuleID, ep.P.Data.Aggregate.Group["workflow.name"]}
		s := got[ref]
		if s == nil {
			s = &seen{}
			got[ref] = s
		}
		if ep.EventType == schemas.TypeAlertFiring {
			s.firing = append(s.firing, ep.P.Data.Aggregate.IncidentID)
		} else {
			s.resolved = append(s.resolved, ep.P.Data.Aggregate.IncidentID)
		}
	}
	var problems []string
	for id, n := range ids {
		if n > 1 {
			problems = append(problems, fmt.Sprintf("alert %s delivered %d times", id, n))
		}
	}
	for ref, s := range got {
		if !want[ref] {
			problems = append(problems, fmt.Sprintf("unexpected %v: %d firings %d resolves", ref, len(s.firing), len(s.resolved)))
		}
	}
	for ref := range want {
		s := got[ref]
		switch {
		case s == nil || len(s.firing) != 1:
			problems = append(problems, fmt.Sprintf("%v: firings %v, want one", ref, s))
		case resolved && (len(s.resolved) != 1 || s.resolved[0] != s.firing[0]):
			problems = append(problems, fmt.Sprintf("%v: firing %v, resolves %v; want one resolve of the same incident", ref, s.firing, s.resolved))
		case !resolved && len(s.resolved) > 1:
			problems = append(problems, fmt.Sprintf("%v: resolves %v", ref, s.resolved))
		}
	}
	slices.Sort(problems)
	if len(problems) > 10 {
		problems = append(problems[:10], fmt.Sprintf("... %d in all", len(problems)))
	}
	return strings.Join(problems, "; ")
}

// scrapeGroups reads exo_processor_aggregate_groups{state} from a
// processor's /metrics.
func scrapeGroups(addr string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, `exo_processor_aggregate_groups{state="`)
		if !ok {
			continue
		}
		state, value, _ := strings.Cut(rest, `"} `)
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return nil, fmt.Errorf("line %q: %w", line, err)
		}
		out[state] = v
	}
	return out, sc.Err()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestAggregateRestartExactlyOnce runs the processor binary, kills it with
// SIGKILL at random points while a stream flows whose aggregate outcome is
// unambiguous (genAggStream), restarts it each time with the same
// transactional id, and checks that every group meant to fire fires exactly
// once and resolves exactly once under the same incident, and that nothing
// else is delivered; and that a processor killed with its groups in
// memory restores them all (exo_processor_aggregate_groups equal before
// and after).
//
// Event times lie ahead of the wall clock, so only event time moves the
// watermarks (and stage 2's clock): the outcome does not depend on when
// the kills happen.
func TestAggregateRestartExactlyOnce(t *testing.T) {
	t.Parallel()
	e := setup(t)
	bin := buildBinary(t)
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("EXO_TEST_SEED"); v != "" {
		seed, _ = strconv.ParseUint(v, 10, 64)
	}
	t.Logf("seed %d (EXO_TEST_SEED reproduces the stream and the kill points)", seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))

	tenants := []string{"t0", "t1", "t2", "t3", "t4"}
	e.putAggregateRules(tenants)
	// 200 groups and ~3,000 events, 40ms of event time apart: about two
	// minutes of event time from a minute ahead of the wall clock, so
	// groups resolve while the stream flows, and the final events (75s
	// past the last) stay within the processor's 5-minute skew allowance.
	base := time.Now().Add(time.Minute).UTC().Truncate(time.Millisecond)
	stream := genAggStream(rng, e, tenants, 40, base, 40*time.Millisecond)
	t.Logf("stream: %d events, %d groups must fire", stream.events, len(stream.fire))

	metricsAddr := ""
	env := append(os.Environ(),
		"KAFKA_BROKERS="+strings.Join(e.brokers, ","),
		"EXO_TOPIC_PREFIX="+e.topics.Prefix,
		"EXO_PARTITIONS="+strconv.Itoa(partitions),
		"EXO_PROCESSOR_TRANSACTIONAL_ID="+e.topics.Prefix+"processor-0",
		"EXO_PROCESSOR_GROUP="+e.group(),
		"EXO_PROCESSOR_GRACE=1h",
		"EXO_PROCESSOR_AGGREGATE_DELAY=0s",
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
		metricsAddr = freeAddr(t)
		cmd := exec.Command(bin, "processor", "--metrics-addr="+metricsAddr)
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
	kill := func(sp *subprocess) {
		t.Helper()
		if err := sp.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatalf("kill: %v", err)
		}
		_ = sp.cmd.Wait()
	}

	// 100 events every 800ms: about 22s of flow, across which the process
	// is killed and restarted.
	producing := &job{done: make(chan struct{})}
	go func() {
		defer close(producing.done)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		for i := 0; i < len(stream.recs); i += 100 {
			if producing.err = workload.Produce(ctx, e.cl, stream.recs[i:min(i+100, len(stream.recs))]...); producing.err != nil {
				return
			}
			time.Sleep(800 * time.Millisecond)
		}
	}()

	deliveries := e.collect(e.topics.Deliveries)
	inputs := e.collect(e.topics.AggregateInput)
	began := time.Now()
	current := start()
	const kills = 3
	for k := 1; k <= kills; k++ {
		// Kill up to 400ms after the process committed its first aggregate
		// inputs or markers (read after everything its predecessors
		// committed), or once it caught up with the whole stream.
		before := len(inputs.recs)
		var killAt time.Time
		var why string
		inputs.waitFor(90*time.Second, fmt.Sprintf("progress before kill %d", k), func() bool {
			switch {
			case !killAt.IsZero():
				return time.Now().After(killAt)
			case len(inputs.recs) > before:
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
		}, func() string { return "nothing committed by the current process" })
		kill(current)
		inputs.drain() // what the killed process committed
		deliveries.drain()
		t.Logf("kill %d at %s: SIGKILL %s; %d aggregate deliveries so far", k, time.Since(began).Round(time.Millisecond), why, len(deliveries.episodes()))
		current = start()
	}
	<-producing.done
	if producing.err != nil {
		t.Fatalf("produce stream: %v", producing.err)
	}

	// Every firing of a count rule (on arrival), before the final events
	// move event time past the last groups (rate rules decide at closed
	// boundaries: the last groups' wait for them).
	counts := map[groupRef]bool{}
	for ref := range stream.fire {
		if ref.rule == "count3" {
			counts[ref] = true
		}
	}
	deliveries.waitFor(120*time.Second, "every expected firing of the count rules", func() bool {
		n := 0
		for _, ep := range ofType(deliveries.episodes(), schemas.TypeAlertFiring) {
			if ep.RuleID == "count3" {
				n++
			}
		}
		return n >= len(counts)
	}, func() string { return checkEpisodes(deliveries.episodes(), stream.fire, false) })
	e.waitCaughtUp(60 * time.Second)
	e.waitInputsRead(inputs, 60*time.Second)

	// A processor killed now holds groups (the last minute's are still in
	// their window, firing or not): its successor restores the same.
	var held map[string]float64
	eventually(t, 30*time.Second, "the processor to report its groups", func() bool {
		var err error
		held, err = scrapeGroups(metricsAddr)
		return err == nil && held["firing"] > 0
	}, func() string { return fmt.Sprintf("groups %v", held) })
	kill(current)
	current = start()
	var restored map[string]float64
	eventually(t, 60*time.Second, "the restarted processor to restore every group", func() bool {
		var err error
		restored, err = scrapeGroups(metricsAddr)
		return err == nil && maps.Equal(restored, held)
	}, func() string { return fmt.Sprintf("groups before the kill %v, after the restart %v", held, restored) })
	t.Logf("groups held and restored across a kill: %v", held)

	// Event time moves past every window on every partition: every group
	// that fired resolves.
	end := stream.last.Add(75 * time.Second)
	var tail []*kgo.Record
	for part := range int32(partitions) {
		tail = append(tail, e.onPartition(workload.Event(workload.Spec{Tenant: "filler", Type: schemas.TypeRunStarted, WorkflowName: "filler", Time: end}), part))
	}
	e.produceOn(tail...)
	deliveries.waitFor(120*time.Second, "every expected resolve", func() bool {
		return len(ofType(deliveries.episodes(), schemas.TypeAlertResolved)) >= len(stream.fire)
	}, func() string { return checkEpisodes(deliveries.episodes(), stream.fire, true) })
	e.waitCaughtUp(60 * time.Second)
	e.waitInputsRead(inputs, 60*time.Second)
	deliveries.drain()
	if problems := checkEpisodes(deliveries.episodes(), stream.fire, true); problems != "" {
		t.Fatalf("aggregate deliveries are not one firing and one resolve per expected group: %s", problems)
	}
	if n := len(deliveries.recs); n != 2*len(stream.fire) {
		t.Fatalf("%d delivery records, want %d", n, 2*len(stream.fire))
	}
	t.Logf("%d firings and %d resolves, each once, across %d kills; total %s", len(stream.fire), len(stream.fire), kills+1, time.Since(began).Round(time.Millisecond))
	if err := current.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	_ = current.cmd.Wait()
}
