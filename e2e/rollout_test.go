package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/controlplane"
	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/internal/workload"
	"github.com/exospherehost/exo-alerts/schemas"
)

// eventReceiver records the event id of every alert it gets.
type eventReceiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	got map[string]int // event id -> alerts
}

func newEventReceiver(t *testing.T) *eventReceiver {
	t.Helper()
	r := &eventReceiver{got: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var p schemas.WebhookPayload
		if json.Unmarshal(body, &p) == nil {
			r.mu.Lock()
			r.got[p.Data.Event.ID]++
			r.mu.Unlock()
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// missing returns the ids of want that have not alerted.
func (r *eventReceiver) missing(want []string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, id := range want {
		if r.got[id] == 0 {
			out = append(out, id)
		}
	}
	return out
}

// received returns the ids of ids that alerted.
func (r *eventReceiver) received(ids []string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, id := range ids {
		if r.got[id] > 0 {
			out = append(out, id)
		}
	}
	return out
}

// stream produces a failed run of each tenant every 50 ms until stopped,
// and remembers when each event was produced.
type stream struct {
	mu       sync.Mutex
	produced map[string][]streamed // tenant -> events in order
	stop     func()
}

type streamed struct {
	id string
	at time.Time // when Kafka acknowledged it
}

func startStream(t *testing.T, s *system, tenants ...string) *stream {
	t.Helper()
	cl, err := kgo.NewClient(kafka.ClientOpts(s.brokers, nil)...)
	if err != nil {
		t.Fatal(err)
	}
	st := &stream{produced: map[string][]streamed{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			for _, tenant := range tenants {
				ev := workload.Event(workload.Spec{Tenant: tenant, Type: schemas.TypeRunFailed, WorkflowName: "etl", Duration: time.Second})
				rec, err := workload.Record(s.topics.Events, ev)
				if err == nil {
					err = workload.Produce(ctx, cl, rec)
				}
				if err != nil {
					if ctx.Err() == nil {
						t.Errorf("produce: %v", err)
					}
					return
				}
				st.mu.Lock()
				st.produced[tenant] = append(st.produced[tenant], streamed{id: ev.ID, at: time.Now()})
				st.mu.Unlock()
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	st.stop = sync.OnceFunc(func() { cancel(); <-done; cl.Close() })
	t.Cleanup(st.stop)
	return st
}

// between returns the ids of tenant's events produced (acknowledged) in
// (from, to].
func (st *stream) between(tenant string, from, to time.Time) []string {
	st.mu.Lock()
	defer st.mu.Unlock()
	var out []string
	for _, e := range st.produced[tenant] {
		if e.at.After(from) && !e.at.After(to) {
			out = append(out, e.id)
		}
	}
	return out
}

// await waits until n events of each tenant were produced after from, and
// returns the time it saw them.
func (st *stream) await(t *testing.T, from time.Time, n int, tenants ...string) time.Time {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		now := time.Now()
		enough := true
		for _, tenant := range tenants {
			if len(st.between(tenant, from, now)) < n {
				enough = false
			}
		}
		if enough {
			return now
		}
		if now.After(deadline) {
			t.Fatalf("fewer than %d events of each of %v streamed within 30s", n, tenants)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// operator sends an operator API request and requires status want.
func (s *system) operator(t *testing.T, key, method, path, body string, want int) map[string]any {
	t.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), method, s.api+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %v, want %d", method, path, resp.StatusCode, out, want)
	}
	return out
}

// processed waits until the processor has committed every event on the
// topic now: their deliveries are then on the deliveries topic (the same
// transactions).
func (s *system) processed(t *testing.T) {
	t.Helper()
	cl, err := kgo.NewClient(kafka.ClientOpts(s.brokers, nil)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, s.topics.Events)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	for {
		committed, err := adm.FetchOffsets(ctx, s.topics.Prefix+"processor")
		behind := []string{}
		if err == nil {
			ends.Each(func(o kadm.ListedOffset) {
				if c, _ := committed.Lookup(o.Topic, o.Partition); c.At < o.Offset {
					behind = append(behind, fmt.Sprintf("p%d at %d of %d", o.Partition, c.At, o.Offset))
				}
			})
		}
		if err == nil && len(behind) == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the processor did not commit the events within 60s: %v %v", err, behind)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// deliveredEvents returns the event ids of the delivery records the
// deliveries topic holds for endpoint now.
func (s *system) deliveredEvents(t *testing.T, endpoint string) map[string]bool {
	t.Helper()
	return topicEventIDs(t, s.brokers, s.topics.Deliveries, endpoint)
}

// waitAlerts waits until r got an alert for every event of ids.
func waitAlerts(t *testing.T, r *eventReceiver, what string, ids []string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		miss := r.missing(ids)
		if len(miss) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d of %d events did not alert within 60s (e.g. %v)", what, len(miss), len(ids), miss[:min(3, len(miss))])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The live rollout flag, on the real broker and Postgres: while failed runs
// of two tenants stream, an operator switches one tenant off through the
// API. No event of it produced after the switch alerts (the processor makes
// no delivery of it, counted tenant_off) while the other tenant keeps
// getting every alert; its API answers 403. Switched back on, its events
// alert again. Both changes are in the audit trail: the rollout's, by the
// operator's key, and the tenant's own. No component restarts.
func TestTenantSwitchedOffWhileEventsFlow(t *testing.T) {
	t.Parallel()
	s := start(t)
	ctx := context.Background()
	opKey := controlplane.NewAPIKey()
	if _, err := controlplane.MintAPIKey(ctx, s.pool, "", "e2e ops", controlplane.RoleOperator, opKey); err != nil {
		t.Fatal(err)
	}
	receivers, endpoints := map[string]*eventReceiver{}, map[string]string{}
	for _, tenant := range []string{"acme", "globex"} {
		receivers[tenant] = newEventReceiver(t)
		wh := s.post(t, tenant, "/v1/webhooks", map[string]any{"name": "ops", "target_url": receivers[tenant].srv.URL + "/hook"})
		endpoints[tenant] = wh["id"].(string)
		s.post(t, tenant, "/v1/alert-rules", map[string]any{"name": "failures", "event_type": schemas.TypeRunFailed, "webhook_endpoint_id": wh["id"]})
	}
	s.waitGauge(t, "exo_processor_rules_active", 2)
	st := startStream(t, s, "acme", "globex")

	// Both tenants get alerts.
	t0 := st.await(t, time.Time{}, 5, "acme", "globex")
	for _, tenant := range []string{"acme", "globex"} {
		waitAlerts(t, receivers[tenant], tenant+" before the switch", st.between(tenant, time.Time{}, t0))
	}

	// acme switched off. The API answers once the change is on Kafka, and
	// the processor catches up with the tenants topic before each batch:
	// every event produced after the answer sees it.
	sent := time.Now()
	if got := s.operator(t, opKey, "PUT", "/v1/rollout/tenants/acme", `{"state":"off"}`, 200); got["served"] != false || got["state"] != "off" {
		t.Fatalf("switch off: %v", got)
	}
	off := time.Now()
	t.Logf("switched off: the API answered (change stored, audited and on Kafka) %v after the request", off.Sub(sent).Round(time.Millisecond))
	if status, _ := s.do(t, "acme", "GET", "/v1/webhooks", ""); status != http.StatusForbidden {
		t.Errorf("acme's API while switched off: %d, want 403", status)
	}
	t1 := st.await(t, off, 20, "acme", "globex") // events keep flowing
	s.processed(t)
	acmeOff, globexOff := st.between("acme", off, t1), st.between("globex", off, t1)
	// globex keeps getting every alert...
	waitAlerts(t, receivers["globex"], "globex while acme is off", globexOff)
	// ...and acme none: the processor made no delivery for its events.
	delivered := s.deliveredEvents(t, endpoints["acme"])
	for _, id := range acmeOff {
		if delivered[id] {
			t.Errorf("event %s of acme, produced after the switch, has a delivery", id)
		}
	}
	if got := receivers["acme"].received(acmeOff); len(got) > 0 {
		t.Errorf("acme got %d alerts of events produced after it was switched off", len(got))
	}
	if n := testenv.Metric(t, s.reg, "exo_processor_events_total", "outcome", "tenant_off"); n < float64(len(acmeOff)) {
		t.Errorf("exo_processor_events_total{outcome=tenant_off} = %v, want at least the %d events of acme while off", n, len(acmeOff))
	}

	// acme switched back on (state ga).
	if got := s.operator(t, opKey, "PUT", "/v1/rollout/tenants/acme", `{"state":"ga"}`, 200); got["served"] != true {
		t.Fatalf("switch on: %v", got)
	}
	on := time.Now()
	t2 := st.await(t, on, 10, "acme", "globex")
	waitAlerts(t, receivers["acme"], "acme once switched back on", st.between("acme", on, t2))
	waitAlerts(t, receivers["globex"], "globex after acme is back", st.between("globex", on, t2))
	st.stop()
	if status, _ := s.do(t, "acme", "GET", "/v1/webhooks", ""); status != http.StatusOK {
		t.Errorf("acme's API once switched back on: %d, want 200", status)
	}

	// The audit trail: the rollout's (operator) and acme's own.
	trail := s.operator(t, opKey, "GET", "/v1/rollout/audit-events", "", 200)
	var changes []string
	for _, it := range trail["items"].([]any) {
		e := it.(map[string]any)
		changes = append(changes, fmt.Sprint(e["action"], " ", e["resource_id"], " ", e["before"], "→", e["after"], " by ", e["actor"]))
	}
	opActor := "by key:"
	if len(changes) != 2 || !strings.HasPrefix(changes[0], "rollout.set acme map[state:off]→map[state:ga] "+opActor) ||
		!strings.HasPrefix(changes[1], "rollout.set acme map[state:<nil>]→map[state:off] "+opActor) || !strings.Contains(changes[0], "(e2e ops)") {
		t.Errorf("rollout trail %q", changes)
	}
	own := s.call(t, "acme", "GET", "/v1/audit-events?resource_type=tenant_rollout", "", 200)
	if n := len(own["items"].([]any)); n != 2 {
		t.Errorf("acme's own trail has %d rollout changes, want 2: %v", n, own)
	}
	t.Logf("acme: %d events while off, none alerted; globex: %d alerted meanwhile", len(acmeOff), len(globexOff))
	s.alive(t)
}
