package e2e_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/internal/workload"
	"github.com/exospherehost/exo-alerts/processor"
	"github.com/exospherehost/exo-alerts/schemas"
)

// countingReceiver counts the POSTs of each alert (by webhook-id).
type countingReceiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	got map[string]int
}

func newCountingReceiver(t *testing.T) *countingReceiver {
	r := &countingReceiver{got: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.got[req.Header.Get("webhook-id")]++
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// distinct returns how many of want arrived, the ids that arrived but are
// not in want, and how many POSTs repeated an alert already received.
func (r *countingReceiver) distinct(want map[string]bool) (arrived int, unexpected []string, repeats int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, n := range r.got {
		if want[id] {
			arrived++
		} else {
			unexpected = append(unexpected, id)
		}
		repeats += n - 1
	}
	sort.Strings(unexpected)
	return arrived, unexpected, repeats
}

// TestEveryComponentRidesOutKafkaOutage streams failed runs through the
// whole system and cuts every component (control plane with its outbox
// relay and recorder, processor, dispatcher) off Kafka for 60 s: no Run
// returns, and once Kafka is back every alert reaches the receiver (no
// alert missing, none produced twice by the processor), the recorder
// records each delivery, and a rule created through the API during the
// outage is published by the relay and alerts.
func TestEveryComponentRidesOutKafkaOutage(t *testing.T) {
	t.Parallel()
	gate := testenv.NewKafkaGate(t)
	s := startWith(t, gate.Opt())
	// A test failing during the outage stops the components with Kafka
	// back, not in the middle of the outage.
	t.Cleanup(func() { gate.Restore(t) })
	recv := newCountingReceiver(t)
	wh := s.post(t, "acme", "/v1/webhooks", map[string]any{"name": "ops", "target_url": recv.srv.URL + "/hook"})
	rule := s.post(t, "acme", "/v1/alert-rules", map[string]any{"name": "failures", "event_type": schemas.TypeRunFailed, "webhook_endpoint_id": wh["id"]})
	s.waitGauge(t, "exo_processor_rules_active", 1)

	// The test's producer does not go through the gate: events keep
	// arriving during the outage.
	cl, err := kgo.NewClient(append(kafka.ClientOpts(s.brokers, nil), kgo.ProducerLinger(0))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	var (
		mu   sync.Mutex
		want = map[string]bool{}
	)
	snapshot := func() map[string]bool {
		mu.Lock()
		defer mu.Unlock()
		out := make(map[string]bool, len(want))
		for id := range want {
			out[id] = true
		}
		return out
	}
	stop, streamed := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(streamed)
		for {
			select {
			case <-stop:
				return
			case <-time.After(25 * time.Millisecond): // pacing the stream, not synchronisation
			}
			ev := workload.Event(workload.Spec{Tenant: "acme", Type: schemas.TypeRunFailed, WorkflowName: "etl"})
			rec, _ := workload.Record(s.topics.Events, ev)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err := workload.Produce(ctx, cl, rec)
			cancel()
			if err != nil {
				t.Errorf("the test's producer: %v", err)
				return
			}
			mu.Lock()
			want[processor.AlertID("acme", rule["id"].(string), ev.ID)] = true
			mu.Unlock()
		}
	}()
	var once sync.Once
	end := func() { once.Do(func() { close(stop); <-streamed }) }
	t.Cleanup(end)

	waitFor := func(timeout time.Duration, what string, cond func() (bool, string)) {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for {
			s.alive(t)
			ok, state := cond()
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out after %v waiting for %s: %s", timeout, what, state)
			}
			time.Sleep(100 * time.Millisecond) // polling with a deadline
		}
	}
	waitFor(time.Minute, "50 alerts before the outage", func() (bool, string) {
		n, _, _ := recv.distinct(snapshot())
		return n >= 50, fmt.Sprintf("%d alerts", n)
	})

	// A backlog of another tenant's events (no rule: run states only), so
	// the processor is in the middle of its transactions, with records
	// fetched and not processed yet, when Kafka goes away: the cut lands
	// in a transaction, not in an idle poll.
	const burst = 20000
	var recs []*kgo.Record
	for range burst {
		rec, _ := workload.Record(s.topics.Events, workload.Event(workload.Spec{Tenant: "globex", Type: schemas.TypeRunFailed, WorkflowName: "etl"}))
		recs = append(recs, rec)
	}
	if err := workload.Produce(context.Background(), cl, recs...); err != nil {
		t.Fatal(err)
	}
	unmatched := func() float64 { return testenv.Metric(t, s.reg, "exo_processor_events_total", "outcome", "unmatched") }
	waitFor(time.Minute, "the processor into the backlog", func() (bool, string) {
		return unmatched() > 0, "no unmatched event committed"
	})
	gate.Cut()
	if n := unmatched(); n >= burst {
		t.Fatalf("precondition: the processor finished the %d-event backlog before the cut", burst)
	}
	// A rule created while Kafka is away waits in the outbox.
	later := s.post(t, "acme", "/v1/alert-rules", map[string]any{"name": "successes", "event_type": schemas.TypeRunSucceeded, "webhook_endpoint_id": wh["id"]})
	<-time.After(60 * time.Second) // the outage
	s.alive(t)
	if gate.Refused() == 0 {
		t.Fatal("no dial was refused during the outage: the components did not go through the gate")
	}
	gate.Restore(t)

	// The stream goes on a little past the restore, then stops.
	n0 := len(snapshot())
	waitFor(time.Minute, "50 more events sent after the outage", func() (bool, string) {
		n := len(snapshot())
		return n >= n0+50, fmt.Sprintf("%d sent", n-n0)
	})
	end()
	all := snapshot()

	// The rule created during the outage reaches the processor and alerts.
	s.waitGauge(t, "exo_processor_rules_active", 2)
	ok := workload.Event(workload.Spec{Tenant: "acme", Type: schemas.TypeRunSucceeded, WorkflowName: "etl", Duration: time.Second})
	rec, _ := workload.Record(s.topics.Events, ok)
	if err := workload.Produce(context.Background(), cl, rec); err != nil {
		t.Fatal(err)
	}
	all[processor.AlertID("acme", later["id"].(string), ok.ID)] = true

	waitFor(3*time.Minute, "every alert at the receiver", func() (bool, string) {
		n, unexpected, _ := recv.distinct(all)
		return n == len(all), fmt.Sprintf("%d of %d alerts arrived; unexpected %v", n, len(all), unexpected)
	})
	waitFor(time.Minute, "every delivery in the history", func() (bool, string) {
		var n int
		if err := s.pool.QueryRow(context.Background(),
			`SELECT count(DISTINCT alert_id) FROM delivery_attempts WHERE outcome = 'delivered'`).Scan(&n); err != nil {
			return false, err.Error()
		}
		return n == len(all), fmt.Sprintf("%d of %d alerts recorded as delivered", n, len(all))
	})
	if _, unexpected, _ := recv.distinct(all); len(unexpected) > 0 {
		t.Errorf("%d alerts nobody expected arrived: %v", len(unexpected), unexpected)
	}
	// The processor produced each alert once: its deliveries topic holds
	// every alert id exactly once.
	deliveries := readToEnd(t, s.brokers, s.topics.Deliveries)
	perAlert := map[string]int{}
	for _, r := range deliveries {
		perAlert[kafka.Header(r, "exo-alert-id")]++
	}
	dups := 0
	for id, n := range perAlert {
		if n > 1 {
			dups += n - 1
			t.Errorf("alert %s is on the deliveries topic %d times", id, n)
		}
	}
	s.alive(t)
	if n := testenv.Metric(t, s.reg, "exo_processor_kafka_session_restarts_total"); n < 1 {
		t.Errorf("exo_processor_kafka_session_restarts_total = %v: the outage did not end a transaction session", n)
	}
	_, _, repeats := recv.distinct(all)
	t.Logf("60 s outage: %d alerts expected, all received; processor duplicates %d; dispatcher redeliveries (same webhook-id) %d; dials refused %d",
		len(all), dups, repeats, gate.Refused())
}

// readToEnd reads every committed record of topic up to its current end.
func readToEnd(t *testing.T, brokers []string, topic string) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(append(kafka.ClientOpts(brokers, nil), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatalf("end offsets of %s: %v", topic, err)
	}
	next := map[int32]int64{}
	behind := func() bool {
		b := false
		ends.Each(func(o kadm.ListedOffset) { b = b || next[o.Partition] < o.Offset })
		return b
	}
	var out []*kgo.Record
	for behind() {
		f := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %s to %v of %v", topic, next, ends.Offsets())
		}
		f.EachRecord(func(r *kgo.Record) {
			next[r.Partition] = r.Offset + 1
			if !r.Attrs.IsControl() {
				out = append(out, r)
			}
		})
	}
	return out
}
