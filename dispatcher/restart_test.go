package dispatcher_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/exospherehost/exo-alerts/dispatcher"
	"github.com/exospherehost/exo-alerts/internal/keyring"
	"github.com/exospherehost/exo-alerts/schemas"
	"github.com/exospherehost/exo-alerts/signature"
)

// buildBinary builds cmd/exo-alerts into a temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("this test builds the exo-alerts binary and needs the go command on PATH: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "exo-alerts")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, gobin, "build", "-o", bin, "../cmd/exo-alerts").CombinedOutput()
	if err != nil {
		t.Fatalf("go build ../cmd/exo-alerts: %v\n%s", err, out)
	}
	return bin
}

// proc is one dispatcher process.
type proc struct {
	cmd  *exec.Cmd
	log  string        // its stderr and stdout
	done chan struct{} // closed when it has exited
	err  error         // what Wait returned, once done
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// tail is the end of the process's log, for failure messages.
func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-30):], "\n")
}

// restartRig runs `exo-alerts dispatcher` processes on a harness's topics.
type restartRig struct {
	t    *testing.T
	h    *harness
	bin  string
	env  []string
	dir  string
	runs int
}

// start starts a dispatcher process; the test's cleanup kills it if it is
// still running then.
func (r *restartRig) start() *proc {
	r.t.Helper()
	return r.startEnv()
}

// startEnv starts a dispatcher process with extra environment variables.
func (r *restartRig) startEnv(extra ...string) *proc {
	r.t.Helper()
	r.runs++
	logPath := filepath.Join(r.dir, fmt.Sprintf("dispatcher-%d.log", r.runs))
	f, err := os.Create(logPath)
	if err != nil {
		r.t.Fatal(err)
	}
	defer func() { _ = f.Close() }() // the child has its own descriptor
	// The receiver answers at once; the generous attempt timeout keeps a
	// loaded machine (race detector, other tests) from timing out an
	// attempt that succeeds, which would be a duplicate with no kill.
	cmd := exec.Command(r.bin, "dispatcher", "--metrics-addr=", "--attempt-timeout=15s")
	cmd.Env, cmd.Stdout, cmd.Stderr = append(slices.Clone(r.env), extra...), f, f
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("start dispatcher: %v", err)
	}
	p := &proc{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	r.t.Cleanup(func() {
		if !p.exited() {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// waitUntil polls cond every 5 ms until it holds; it fails after the
// deadline, or as soon as p exits, with what was seen.
func (r *restartRig) waitUntil(p *proc, limit time.Duration, what string, cond func() (bool, string)) {
	r.t.Helper()
	end := time.Now().Add(limit)
	for {
		ok, seen := cond()
		if ok {
			return
		}
		if p != nil && p.exited() {
			r.t.Fatalf("%s: dispatcher %d exited (%v) first; saw %s; its log ends:\n%s", what, r.runs, p.err, seen, p.tail())
		}
		if time.Now().After(end) {
			msg := fmt.Sprintf("%s: not within %v; saw %s", what, limit, seen)
			if p != nil {
				msg += "; the dispatcher's log ends:\n" + p.tail()
			}
			r.t.Fatal(msg)
		}
		time.Sleep(5 * time.Millisecond) // polling interval of a condition with a deadline
	}
}

// groups are the consumer groups of the dispatcher: the main topic's and
// one per retry tier.
func (r *restartRig) groups(tiers []time.Duration) []string {
	g := r.h.topics.Prefix + "dispatcher"
	out := []string{g}
	for _, t := range tiers {
		out = append(out, g+".retry."+dispatcher.TierName(t))
	}
	return out
}

func (r *restartRig) describe(groups []string) (kadm.DescribedGroups, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d, err := kadm.NewClient(r.h.prod).DescribeGroups(ctx, groups...)
	if err == nil {
		err = d.Error()
	}
	return d, err
}

// stable reports whether every group has exactly one member and is
// Stable: the process has joined all of them, and no member is half-way
// through a join.
func (r *restartRig) stable(groups []string) (bool, string) {
	return r.stableWith(groups, 1)
}

// stableWith reports whether every group is Stable with exactly n members.
func (r *restartRig) stableWith(groups []string, n int) (bool, string) {
	d, err := r.describe(groups)
	if err != nil {
		return false, err.Error()
	}
	var seen []string
	ok := true
	for _, g := range groups {
		dg := d[g]
		seen = append(seen, fmt.Sprintf("%s: %s with %d members", g, dg.State, len(dg.Members)))
		ok = ok && dg.State == "Stable" && len(dg.Members) == n
	}
	return ok, strings.Join(seen, "; ")
}

// evict removes the members of a killed process from its groups, as the
// coordinator does when their session times out (10 s,
// EXO_DISPATCHER_SESSION_TIMEOUT). A SIGKILLed process cannot leave its
// groups; without this each restart would wait out the dead members'
// sessions (TestKilledDispatcherIsTakenOver measures that wait). Committed offsets are
// not touched.
func (r *restartRig) evict(groups []string) {
	r.t.Helper()
	d, err := r.describe(groups)
	if err != nil {
		r.t.Fatalf("describe groups: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	for _, g := range groups {
		if len(d[g].Members) == 0 {
			continue
		}
		req := kmsg.NewPtrLeaveGroupRequest()
		req.Group = g
		for _, m := range d[g].Members {
			lm := kmsg.NewLeaveGroupRequestMember()
			lm.MemberID = m.MemberID
			req.Members = append(req.Members, lm)
		}
		resp, err := req.RequestWith(ctx, r.h.prod)
		if err == nil {
			err = kerr.ErrorForCode(resp.ErrorCode)
			for _, m := range resp.Members {
				if err == nil {
					err = kerr.ErrorForCode(m.ErrorCode)
				}
			}
		}
		if err != nil {
			r.t.Fatalf("remove the killed process's members from %s: %v", g, err)
		}
	}
}

// caughtUp reports whether each group has committed its topic up to the end.
func (r *restartRig) caughtUp(groups, topics []string) (bool, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	adm := kadm.NewClient(r.h.prod)
	var seen []string
	ok := true
	for i, g := range groups {
		ends, err := adm.ListEndOffsets(ctx, topics[i])
		if err == nil {
			err = ends.Error()
		}
		if err != nil {
			return false, err.Error()
		}
		committed, err := adm.FetchOffsets(ctx, g)
		if err == nil {
			err = committed.Error()
		}
		if err != nil {
			return false, err.Error()
		}
		ends.Each(func(o kadm.ListedOffset) {
			c, _ := committed.Lookup(o.Topic, o.Partition)
			if o.Offset > 0 && c.At < o.Offset {
				ok = false
				seen = append(seen, fmt.Sprintf("%s[%d] committed %d of %d", o.Topic, o.Partition, c.At, o.Offset))
			}
		})
	}
	return ok, strings.Join(seen, "; ")
}

// deleteTopics deletes the test's topics, the dispatcher's tier topics
// included: each run makes a dozen, and a broker with thousands of
// partitions left over grows slow for every test.
func deleteTopics(t *testing.T, h *harness) {
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	adm := kadm.NewClient(h.prod)
	listed, err := adm.ListTopics(ctx)
	if err != nil {
		t.Logf("list topics to delete: %v", err)
		return
	}
	var names []string
	for _, name := range listed.Names() {
		if strings.HasPrefix(name, h.topics.Prefix) {
			names = append(names, name)
		}
	}
	if _, err := adm.DeleteTopics(ctx, names...); err != nil {
		t.Logf("delete topics: %v", err)
	}
}

// arrival is one request the receiver got.
type arrival struct {
	endpointID string
	header     http.Header
	body       []byte
	at         time.Time
	code       int
}

// A dispatcher process SIGKILLed at random points while it delivers a
// backlog, and restarted each time, loses nothing: every alert reaches its
// endpoint, every repeat carries the alert id as its webhook-id (so the
// receiver can drop it) and a valid signature, every alert has a delivered
// result, none is dead-lettered, and the last process stops cleanly on
// SIGTERM once the backlog is done.
func TestHardStopRestartDeliversAtLeastOnce(t *testing.T) {
	t.Parallel()
	const (
		nEndpoints = 40
		nFlaky     = 10 // endpoints answering 500 to the first attempt of every third alert
		nAlerts    = 2400
		kills      = 3
	)
	tiers := []time.Duration{200 * time.Millisecond, 400 * time.Millisecond}
	h := setup(t)
	spec := keyring.Generate("k1")
	ring, err := keyring.Parse(spec)
	if err != nil {
		t.Fatal(err)
	}
	h.ring = ring // the processes get the spec; the endpoints' secrets are sealed with it
	t.Cleanup(func() { deleteTopics(t, h) })

	type want struct {
		endpointID string
		payload    []byte
		failFirst  bool
		pos        int // place in its endpoint's queue
	}
	var (
		mu        sync.Mutex
		arrivals  []arrival
		seen      = map[string]bool{} // alert ids the receiver has seen
		delivered = map[string]int{}  // alert id → requests answered 204
		wants     = map[string]want{}
	)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		var p schemas.WebhookPayload
		_ = json.Unmarshal(body, &p)
		id := p.Data.AlertID
		mu.Lock()
		code := http.StatusNoContent
		if wants[id].failFirst && !seen[id] {
			code = http.StatusInternalServerError
		}
		seen[id] = true
		if code == http.StatusNoContent {
			delivered[id]++
		}
		arrivals = append(arrivals, arrival{endpointID: strings.TrimPrefix(r.URL.Path, "/hook/"),
			header: r.Header.Clone(), body: body, at: time.Now(), code: code})
		mu.Unlock()
		w.WriteHeader(code)
	}))
	t.Cleanup(recv.Close)

	bin := buildBinary(t)

	eps := make([]endpoint, nEndpoints)
	secrets := map[string]string{}
	for i := range eps {
		id := "whk_" + randHex(6)
		eps[i] = h.addEndpoint(endpoint{id: id, url: recv.URL + "/hook/" + id})
		secrets[id] = eps[i].secret
	}
	recs := make([]*kgo.Record, 0, nAlerts)
	mu.Lock()
	for i := range nAlerts {
		ep := eps[i%nEndpoints]
		rec, del := h.delivery(ep.id)
		recs = append(recs, withMaxAttempts(t, rec, 8))
		wants[del.AlertID] = want{endpointID: ep.id, payload: del.Payload, failFirst: i%nEndpoints < nFlaky && (i/nEndpoints)%3 == 0, pos: i / nEndpoints}
	}
	mu.Unlock()
	h.produce(recs...)

	env := []string{
		"KAFKA_BROKERS=" + strings.Join(h.brokers, ","),
		"EXO_TOPIC_PREFIX=" + h.topics.Prefix,
		"EXO_PARTITIONS=3",
		"EXO_KEYRING=" + spec,
		"EXO_SSRF_ALLOWLIST=127.0.0.1",
		"EXO_RETRY_TIERS=200ms,400ms",
	}
	for _, kv := range os.Environ() { // keep PATH, HOME, ...; not another setup's settings
		if !strings.HasPrefix(kv, "EXO_") && !strings.HasPrefix(kv, "KAFKA_") && !strings.HasPrefix(kv, "DATABASE_URL=") {
			env = append(env, kv)
		}
	}
	rig := &restartRig{t: t, h: h, bin: bin, env: env, dir: t.TempDir()}
	groups := rig.groups(tiers)
	progress := func() (int, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(delivered), fmt.Sprintf("%d of %d alerts delivered, %d requests", len(delivered), nAlerts, len(arrivals))
	}
	// starts[k] is how many requests had arrived when dispatcher k+1 started.
	var starts []int
	startProc := func() *proc {
		mu.Lock()
		starts = append(starts, len(arrivals))
		mu.Unlock()
		return rig.start()
	}

	// Kill points: one at a random fraction of the backlog within each of
	// `kills` equal slices of 5%–90%, and always after the process has
	// delivered at least 50 alerts of its own.
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, seed>>1))
	t.Logf("kill points seed %d", seed)
	const lo, hi = 0.05, 0.90
	for k := range kills {
		p := startProc()
		from, _ := progress()
		rig.waitUntil(p, deadline, fmt.Sprintf("dispatcher %d joins its %d groups", k+1, len(groups)), func() (bool, string) {
			return rig.stable(groups)
		})
		slice := (hi - lo) / kills
		target := max(int(float64(nAlerts)*(lo+slice*(float64(k)+rng.Float64()))), from+50)
		rig.waitUntil(p, deadline, fmt.Sprintf("dispatcher %d reaches %d delivered", k+1, target), func() (bool, string) {
			n, s := progress()
			return n >= target, s
		})
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatalf("SIGKILL dispatcher %d: %v", k+1, err)
		}
		<-p.done
		n, s := progress()
		t.Logf("dispatcher %d SIGKILLed at %d delivered (it delivered %d): %s", k+1, n, n-from, s)
		rig.evict(groups)
	}

	final := startProc()
	rig.waitUntil(final, 40*time.Second, "every alert delivered", func() (bool, string) {
		n, s := progress()
		return n == nAlerts, s
	})
	topics := []string{h.topics.Deliveries}
	for _, tier := range tiers {
		topics = append(topics, dispatcher.TierTopic(h.topics, tier))
	}
	// Every outcome is committed: no attempt is still to come, so the
	// duplicates counted below are all there will be.
	rig.waitUntil(final, deadline, "the dispatcher commits its topics to the end", func() (bool, string) {
		return rig.caughtUp(groups, topics)
	})
	if err := final.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-final.done:
		if final.err != nil {
			t.Errorf("the dispatcher exited with %v on SIGTERM, want 0; its log ends:\n%s", final.err, final.tail())
		}
	case <-time.After(deadline):
		t.Errorf("the dispatcher did not stop within %v of SIGTERM", deadline)
	}

	mu.Lock()
	defer mu.Unlock()
	failedFirst, dupAlerts := 0, 0
	for id, w := range wants {
		if w.failFirst {
			failedFirst++
		}
		switch n := delivered[id]; {
		case n == 0:
			t.Errorf("alert %s (endpoint %s) never delivered", id, w.endpointID)
		case n > 1:
			dupAlerts++
		}
	}
	bad := 0
	for i, a := range arrivals {
		var p schemas.WebhookPayload
		_ = json.Unmarshal(a.body, &p)
		id := p.Data.AlertID
		w, ok := wants[id]
		var problem string
		switch {
		case !ok:
			problem = fmt.Sprintf("alert id %q was never queued", id)
		case a.header.Get("webhook-id") != id:
			problem = fmt.Sprintf("webhook-id %q, want the alert id %s", a.header.Get("webhook-id"), id)
		case a.endpointID != w.endpointID:
			problem = fmt.Sprintf("alert %s arrived at endpoint %s, want %s", id, a.endpointID, w.endpointID)
		case !bytes.Equal(a.body, w.payload):
			problem = fmt.Sprintf("alert %s: body differs from the queued payload", id)
		default:
			if err := signature.VerifyStandard(a.header, a.body, secrets[w.endpointID], a.at, 5*time.Minute); err != nil {
				problem = fmt.Sprintf("alert %s: webhook-signature does not verify: %v", id, err)
			}
		}
		if problem != "" {
			if bad++; bad <= 10 {
				t.Errorf("request %d: %s", i, problem)
			}
		}
	}
	if bad > 10 {
		t.Errorf("... %d bad requests in all", bad)
	}
	// A duplicate is a request for an alert its endpoint had already
	// accepted; it is counted against the dispatcher that sent it, so
	// against the kill before it.
	ok := map[string]bool{}
	dupsBy := make([]int, len(starts))
	proc := 0
	for i, a := range arrivals {
		for proc+1 < len(starts) && i >= starts[proc+1] {
			proc++
		}
		var p schemas.WebhookPayload
		_ = json.Unmarshal(a.body, &p)
		if ok[p.Data.AlertID] {
			dupsBy[proc]++
		}
		if a.code == http.StatusNoContent {
			ok[p.Data.AlertID] = true
		}
	}
	dups := len(arrivals) - nAlerts - failedFirst
	t.Logf("%d kills: %d requests for %d alerts (%d answered 500 once by design): %d duplicate requests "+
		"(after each kill: %v); %d alerts delivered more than once",
		kills, len(arrivals), nAlerts, failedFirst, dups, dupsBy[1:], dupAlerts)
	if dups < 0 || dupsBy[0] != 0 {
		t.Errorf("%d requests, %d duplicates before the first kill; want at least the %d alerts plus %d planned failures, and no duplicate before a kill",
			len(arrivals), dupsBy[0], nAlerts, failedFirst)
	}

	// One endpoint's alerts first reach it in the order they were queued,
	// give or take its 4 attempts in flight. This is also what lets a
	// partition's committed offset follow the work done, so that a kill
	// repeats only the last moments' work.
	// One endpoint's alerts first reach it in the order they were queued,
	// give or take its 4 attempts in flight: at most 5% of them are
	// overtaken by more than 8 alerts queued after them. That order is also
	// what lets a partition's committed offset follow the work done, so that
	// a kill repeats only the last moments' work.
	arrived := map[string][]int{} // endpoint → queue places of its first arrivals so far
	firstSeen := map[string]bool{}
	overtaken := []int{} // per alert: how many alerts queued after it on its endpoint arrived first
	for _, a := range arrivals {
		var p schemas.WebhookPayload
		_ = json.Unmarshal(a.body, &p)
		w, known := wants[p.Data.AlertID]
		if !known || firstSeen[p.Data.AlertID] {
			continue
		}
		firstSeen[p.Data.AlertID] = true
		n := 0
		for _, q := range arrived[w.endpointID] {
			if q > w.pos {
				n++
			}
		}
		arrived[w.endpointID] = append(arrived[w.endpointID], w.pos)
		overtaken = append(overtaken, n)
	}
	if len(overtaken) > 0 {
		slices.Sort(overtaken)
		far := len(overtaken) - sort.SearchInts(overtaken, 9)
		t.Logf("alerts overtaken on their endpoint by later ones: p50 %d, p90 %d, max %d; by more than 8: %d of %d",
			overtaken[len(overtaken)/2], overtaken[len(overtaken)*9/10], overtaken[len(overtaken)-1], far, len(overtaken))
		if far*20 > len(overtaken) {
			t.Errorf("%d of %d alerts were overtaken on their endpoint by more than 8 alerts queued after them, want at most 5%%", far, len(overtaken))
		}
	}

	// The delivery log agrees: each alert has a delivered result, and none
	// was dead-lettered.
	results := map[string]bool{}
	for _, r := range h.readAll(h.topics.DeliveryResults) {
		var res schemas.ResultRecord
		if err := json.Unmarshal(r.Value, &res); err != nil {
			t.Fatalf("result record: %v", err)
		}
		if res.Outcome == schemas.OutcomeDelivered {
			results[res.AlertID] = true
		}
	}
	missing := 0
	for id := range wants {
		if !results[id] {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d alerts have no delivered result", missing, nAlerts)
	}
	if dl := h.readAll(h.topics.DeliveriesDLQ); len(dl) != 0 {
		t.Errorf("%d dead letters, want none; first: %s %s", len(dl), header(dl[0], "exo-last-error"), dl[0].Value)
	}
}
