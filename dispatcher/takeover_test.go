package dispatcher_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/keyring"
)

// takeoverLimit is the longest a takeover may take in
// TestKilledDispatcherIsTakenOver: well above the 10 s session timeout plus
// a rebalance, well below the 45 s of franz-go's default session timeout,
// which a killed dispatcher's partitions used to wait for.
const takeoverLimit = 35 * time.Second

// A dispatcher killed hard (SIGKILL) while a standby runs: the standby
// takes over the dead one's partitions once its session times out (10 s,
// not franz-go's 45 s), and deliveries resume. A static member (instance
// id) killed and restarted with the same id takes its partitions back at
// once, without waiting for its old session. Under a steady stream every
// alert arrives, none is dead-lettered, and a static member that stops
// cleanly leaves its groups, so that nobody waits for it. The takeover
// gaps are logged.
func TestKilledDispatcherIsTakenOver(t *testing.T) {
	t.Parallel()
	tiers := []time.Duration{200 * time.Millisecond, 400 * time.Millisecond}
	h := setup(t)
	spec := keyring.Generate("k1")
	ring, err := keyring.Parse(spec)
	if err != nil {
		t.Fatal(err)
	}
	h.ring = ring
	t.Cleanup(func() { deleteTopics(t, h) })

	var (
		mu      sync.Mutex
		arrived = map[string]time.Time{} // alert id → first arrival
		sentTo  = map[string]sent{}
	)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		if id := r.Header.Get("webhook-id"); arrived[id].IsZero() {
			arrived[id] = time.Now()
		}
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(recv.Close)
	bin := buildBinary(t)
	// Ten endpoints: their lanes drain a takeover's backlog in well under a
	// second, so it does not add to the gaps measured.
	eps := make([]endpoint, 10)
	for i := range eps {
		eps[i] = h.addEndpoint(endpoint{url: recv.URL + "/hook"})
	}

	env := []string{
		"KAFKA_BROKERS=" + strings.Join(h.brokers, ","),
		"EXO_TOPIC_PREFIX=" + h.topics.Prefix,
		"EXO_PARTITIONS=3",
		"EXO_KEYRING=" + spec,
		"EXO_SSRF_ALLOWLIST=127.0.0.1",
		"EXO_RETRY_TIERS=200ms,400ms",
	}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "EXO_") && !strings.HasPrefix(kv, "KAFKA_") && !strings.HasPrefix(kv, "DATABASE_URL=") {
			env = append(env, kv)
		}
	}
	rig := &restartRig{t: t, h: h, bin: bin, env: env, dir: t.TempDir()}
	groups := rig.groups(tiers)

	a := rig.startEnv("EXO_DISPATCHER_INSTANCE_ID=disp-a")
	rig.waitUntil(a, deadline, "dispatcher a joins its groups", func() (bool, string) { return rig.stableWith(groups, 1) })
	b := rig.startEnv("EXO_DISPATCHER_INSTANCE_ID=disp-b")
	rig.waitUntil(b, deadline, "standby b joins its groups", func() (bool, string) { return rig.stableWith(groups, 2) })

	// A steady stream, 50 alerts a second, over the main topic's partitions.
	prod, err := kgo.NewClient(append(kafka.ClientOpts(h.brokers, nil), kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	stop, streamDone := make(chan struct{}), make(chan error, 1)
	go func(stop <-chan struct{}) { // its own copy: stopStream sets the variable to nil
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := int32(0); ; i++ {
			select {
			case <-stop:
				streamDone <- nil
				return
			case <-tick.C:
			}
			rec, del := h.delivery(eps[int(i)%len(eps)].id)
			rec.Partition = i % 3
			mu.Lock()
			sentTo[del.AlertID] = sent{part: rec.Partition, at: time.Now()}
			mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			err := prod.ProduceSync(ctx, rec).FirstErr()
			cancel()
			if err != nil {
				streamDone <- fmt.Errorf("produce the stream: %w", err)
				return
			}
		}
	}(stop)
	stopStream := func() {
		if stop != nil {
			close(stop)
			stop = nil
			if err := <-streamDone; err != nil {
				t.Error(err)
			}
		}
	}
	defer stopStream()
	// firstAfter waits for the first alert of parts (nil: any) produced
	// after at to arrive, and returns how long after at it arrived. Only a
	// dispatcher that owns the partition can deliver it (a request of the
	// killed process still on its way cannot be one).
	firstAfter := func(p *proc, at time.Time, parts map[int32]bool, what string) time.Duration {
		var gap time.Duration
		rig.waitUntil(p, 90*time.Second, what, func() (bool, string) {
			mu.Lock()
			defer mu.Unlock()
			for id, when := range arrived {
				s := sentTo[id]
				if s.at.After(at) && (parts == nil || parts[s.part]) && (gap == 0 || when.Sub(at) < gap) {
					gap = when.Sub(at)
				}
			}
			return gap > 0, fmt.Sprintf("%d alerts arrived, none produced since the kill %v ago", len(arrived), time.Since(at).Round(time.Millisecond))
		})
		return gap
	}
	rig.waitUntil(b, deadline, "100 alerts arrive", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(arrived) >= 100, fmt.Sprintf("%d arrived", len(arrived))
	})

	// a's partitions of the main topic, then kill a.
	d, err := rig.describe(groups[:1])
	if err != nil {
		t.Fatal(err)
	}
	owned := map[int32]bool{}
	for _, m := range d[groups[0]].Members {
		if m.InstanceID == nil || *m.InstanceID != "disp-a" {
			continue
		}
		if c, ok := m.Assigned.AsConsumer(); ok {
			for _, tp := range c.Topics {
				for _, p := range tp.Partitions {
					owned[p] = true
				}
			}
		}
	}
	if len(owned) == 0 {
		t.Fatalf("dispatcher a owns no partition of %s: %+v", h.topics.Deliveries, d[groups[0]].Members)
	}
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-a.done
	killed := time.Now()
	gap := firstAfter(b, killed, owned, "the standby delivers the killed dispatcher's partitions")
	t.Logf("dispatcher a (partitions %v of 3) SIGKILLed: the standby delivered its partitions %v later", keys(owned), gap.Round(time.Millisecond))
	if gap > takeoverLimit {
		t.Errorf("the standby took %v to take over, want under %v (the session timeout is 10 s)", gap, takeoverLimit)
	}

	// The standby, now alone, is killed and restarted with its instance id.
	if err := b.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-b.done
	killed = time.Now()
	b2 := rig.startEnv("EXO_DISPATCHER_INSTANCE_ID=disp-b")
	gap = firstAfter(b2, killed, nil, "the restarted static member delivers")
	t.Logf("dispatcher b SIGKILLed and restarted with its instance id: deliveries resumed %v later", gap.Round(time.Millisecond))

	// Every alert of the stream arrives; none is dead-lettered.
	stopStream()
	rig.waitUntil(b2, 90*time.Second, "every alert arrives", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		missing := 0
		for id := range sentTo {
			if arrived[id].IsZero() {
				missing++
			}
		}
		return missing == 0, fmt.Sprintf("%d of %d alerts missing", missing, len(sentTo))
	})
	if dl := h.readAll(h.topics.DeliveriesDLQ); len(dl) != 0 {
		t.Errorf("%d dead letters, want none; first: %s", len(dl), header(dl[0], "exo-last-error"))
	}

	// A static member that stops cleanly leaves its groups: had it not,
	// its partitions would wait for its session to time out.
	if err := b2.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-b2.done:
		if b2.err != nil {
			t.Errorf("the dispatcher exited with %v on SIGTERM; its log ends:\n%s", b2.err, b2.tail())
		}
	case <-time.After(deadline):
		t.Fatalf("the dispatcher did not stop within %v of SIGTERM", deadline)
	}
	d, err = rig.describe(groups)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range groups {
		if n := len(d[g].Members); n != 0 {
			t.Errorf("group %s has %d members after the last dispatcher stopped cleanly, want none", g, n)
		}
	}
	mu.Lock()
	t.Logf("%d alerts streamed, all arrived", len(sentTo))
	mu.Unlock()
}

// sent is an alert of the stream: its partition of the main topic and when
// it was produced.
type sent struct {
	part int32
	at   time.Time
}

func keys(m map[int32]bool) []int32 {
	var out []int32
	for k := range m {
		out = append(out, k)
	}
	return out
}
