package controlplane_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/controlplane"
	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/keyring"
	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/schemas"
)

// --- running control planes ------------------------------------------------

// relayEnv is a migrated database, topics created on the real broker, and an
// admin key of tenant acme.
type relayEnv struct {
	pool    *pgxpool.Pool
	ring    *keyring.Ring
	brokers []string
	topics  kafka.Topics
	key     string
}

func newRelayEnv(t *testing.T) *relayEnv {
	t.Helper()
	e := &relayEnv{pool: testenv.Pool(t), brokers: testenv.Brokers(t), topics: testenv.Topics(t), key: controlplane.NewAPIKey()}
	ring, err := keyring.Parse(keyring.Generate("k1"))
	if err != nil {
		t.Fatal(err)
	}
	e.ring = ring
	if _, err := controlplane.CreateAPIKey(context.Background(), e.pool, "acme", "test", controlplane.RoleAdmin, e.key); err != nil {
		t.Fatal(err)
	}
	e.ensureTopics(t, e.topics)
	return e
}

func (e *relayEnv) ensureTopics(t *testing.T, topics kafka.Topics) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.UnknownTopicRetries(60))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := kafka.EnsureTopics(ctx, kadm.NewClient(cl), topics.Specs(3)); err != nil {
		t.Fatal(err)
	}
}

// config is a control plane configuration over the environment.
func (e *relayEnv) config(t *testing.T) controlplane.Config {
	return controlplane.Config{
		Pool: e.pool, Brokers: e.brokers, Topics: e.topics, Partitions: 3, Keyring: e.ring, Log: testenv.Log(t),
		OutboxPoll: 10 * time.Minute,
	}
}

type runningCP struct {
	url  string
	reg  *prometheus.Registry
	stop func()
}

// startCP runs a control plane (API and outbox relay) until the test ends
// or stop is called; Run must return without error.
func startCP(t *testing.T, cfg controlplane.Config) *runningCP {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listener = ln
	cfg.Registry = prometheus.NewRegistry()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- controlplane.Run(ctx, cfg) }()
	stop := sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("control plane Run: %v", err)
		}
	})
	t.Cleanup(stop)
	return &runningCP{url: "http://" + ln.Addr().String(), reg: cfg.Registry, stop: stop}
}

// call sends an API request and returns the status and the raw answer.
func call(t *testing.T, base, method, path, key, body string, headers ...string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	ct := "application/json"
	if method == http.MethodPatch {
		ct = "application/merge-patch+json"
	}
	req.Header.Set("Content-Type", ct)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, raw
}

// create POSTs a resource and returns its answer; anything but 201 fails.
func create(t *testing.T, base, path, key, body string) map[string]any {
	t.Helper()
	status, _, raw := call(t, base, http.MethodPost, path, key, body)
	if status != http.StatusCreated {
		t.Fatalf("POST %s: %d %s", path, status, raw)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// --- reading topics --------------------------------------------------------

// readTopic reads a topic from the start to its end offsets at the time of
// the call, directly from the broker. Records of one partition (so of one
// key) come in offset order.
func readTopic(t *testing.T, brokers []string, topic string) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.UnknownTopicRetries(60), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var ends kadm.ListedOffsets
	for {
		// A topic created a moment ago may be unknown to the broker for a while.
		ends, err = kadm.NewClient(cl).ListEndOffsets(ctx, topic)
		if err == nil {
			err = ends.Error()
		}
		if err == nil || !errors.Is(err, kerr.UnknownTopicOrPartition) || ctx.Err() != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("end offsets of %s: %v", topic, err)
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	var out []*kgo.Record
	for len(want) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read %s: %v (still waiting for partitions %v)", topic, err, want)
		}
		fs.EachError(func(tp string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", tp, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := want[r.Partition]
			if !ok || r.Offset >= end {
				return
			}
			out = append(out, r)
			if r.Offset+1 >= end {
				delete(want, r.Partition)
			}
		})
	}
	return out
}

// eventually polls cond until it holds, failing with what it last saw when
// the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, seen := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last seen: %s", what, within, seen)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

type snapshot struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Version int64  `json:"version"`
}

// lastByKey maps each key to its last record's snapshot (nil: tombstone),
// and checks that the versions of each key never go back.
func lastByKey(t *testing.T, recs []*kgo.Record) map[string]*snapshot {
	t.Helper()
	last := map[string]*snapshot{}
	for _, r := range recs {
		k := string(r.Key)
		if r.Value == nil {
			last[k] = nil
			continue
		}
		var s snapshot
		if err := json.Unmarshal(r.Value, &s); err != nil {
			t.Fatalf("record %s: %v", k, err)
		}
		if prev := last[k]; prev != nil && s.Version < prev.Version {
			t.Errorf("key %s: version %d published after version %d", k, s.Version, prev.Version)
		}
		last[k] = &s
	}
	return last
}

func countRows(t *testing.T, pool *pgxpool.Pool, query string, args ...any) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func unsent(t *testing.T, pool *pgxpool.Pool) int {
	return countRows(t, pool, `SELECT count(*) FROM outbox WHERE sent_at IS NULL`)
}

// --- tests -----------------------------------------------------------------

// With Kafka unreachable the API keeps accepting changes; they wait in the
// outbox, unsent, and reach the topics once Kafka is back, with each key's
// last record its last version.
func TestOutboxRelayThroughKafkaOutage(t *testing.T) {
	t.Parallel()
	e := newRelayEnv(t)
	gate := testenv.NewKafkaGate(t)
	cfg := e.config(t)
	cfg.KafkaOpts = []kgo.Opt{gate.Opt()}
	cp := startCP(t, cfg)

	wh := create(t, cp.url, "/v1/webhooks", e.key, `{"name":"ops","target_url":"https://hooks.example.com/x"}`)
	whID := wh["id"].(string)
	// The relay is in its loop once the endpoint is on the topic.
	eventually(t, time.Minute, "endpoint published", func() (bool, string) {
		n := len(readTopic(t, e.brokers, e.topics.Endpoints))
		return n > 0 && unsent(t, e.pool) == 0, fmt.Sprintf("%d records, %d unsent", n, unsent(t, e.pool))
	})

	gate.Cut()
	var ids []string
	for i := range 100 {
		r := create(t, cp.url, "/v1/alert-rules", e.key, fmt.Sprintf(`{"name":"rule %d","event_type":"workflow.run.failed","webhook_endpoint_id":%q}`, i, whID))
		ids = append(ids, r["id"].(string))
	}
	changed := ids[17]
	for v, name := range []string{"second", "third"} {
		status, _, raw := call(t, cp.url, http.MethodPatch, "/v1/alert-rules/"+changed, e.key, fmt.Sprintf(`{"name":%q}`, name))
		var got snapshot
		_ = json.Unmarshal(raw, &got)
		if status != http.StatusOK || got.Version != int64(v+2) {
			t.Fatalf("PATCH %d: %d %s", v+1, status, raw)
		}
	}
	// Two failed publish attempts after the last change: the second one
	// started after it, so it claimed every row, and Kafka did not take them.
	failures := "exo_controlplane_outbox_publish_failures_total"
	f0 := testenv.Metric(t, cp.reg, failures)
	eventually(t, 2*time.Minute, "two failed publish attempts", func() (bool, string) {
		f := testenv.Metric(t, cp.reg, failures)
		return f >= f0+2, fmt.Sprintf("%v failures (from %v)", f, f0)
	})
	if n := countRows(t, e.pool, `SELECT count(*) FROM alert_rules WHERE tenant_id = 'acme' AND deleted_at IS NULL`); n != 100 {
		t.Fatalf("%d rules in Postgres, want 100", n)
	}
	if n := unsent(t, e.pool); n != 102 {
		t.Fatalf("%d unsent outbox rows during the outage, want 102 (100 creates, 2 updates)", n)
	}
	// The relay counts the backlog after each failed attempt.
	eventually(t, 2*time.Minute, "the backlog gauge at 102", func() (bool, string) {
		n := testenv.Metric(t, cp.reg, "exo_controlplane_outbox_unsent")
		return n == 102, fmt.Sprintf("exo_controlplane_outbox_unsent = %v", n)
	})
	if recs := readTopic(t, e.brokers, e.topics.Rules); len(recs) != 0 {
		t.Fatalf("%d rule records reached Kafka while it was cut off", len(recs))
	}
	if gate.Refused() == 0 {
		t.Fatal("no dial was refused during the outage: the client did not go through the gate")
	}

	gate.Restore(t)
	var last map[string]*snapshot
	eventually(t, 2*time.Minute, "all 100 rules on the topic", func() (bool, string) {
		last = lastByKey(t, readTopic(t, e.brokers, e.topics.Rules))
		return len(last) == 100 && unsent(t, e.pool) == 0, fmt.Sprintf("%d keys, %d unsent", len(last), unsent(t, e.pool))
	})
	for _, id := range ids {
		s := last["acme/"+id]
		want := int64(1)
		if id == changed {
			want = 3
		}
		if s == nil || s.ID != id || s.Version != want {
			t.Errorf("last record of rule %s: %+v, want version %d", id, s, want)
		}
	}
	if s := last["acme/"+changed]; s == nil || s.Name != "third" {
		t.Errorf("last record of the changed rule: %+v, want name third", s)
	}
	eventually(t, time.Minute, "the backlog gauge back to 0", func() (bool, string) {
		n := testenv.Metric(t, cp.reg, "exo_controlplane_outbox_unsent")
		return n == 0, fmt.Sprintf("exo_controlplane_outbox_unsent = %v", n)
	})
	t.Logf("broker addresses dialed through the gate: %v; refused dials: %d", gate.Hosts(), gate.Refused())
}

// A control plane started while Kafka is away serves the API; what it
// accepts reaches the topics when Kafka comes back.
func TestControlPlaneStartsDuringKafkaOutage(t *testing.T) {
	t.Parallel()
	e := newRelayEnv(t)
	gate := testenv.NewKafkaGate(t)
	gate.Cut()
	cfg := e.config(t)
	cfg.KafkaOpts = []kgo.Opt{gate.Opt()}
	cp := startCP(t, cfg)

	wh := create(t, cp.url, "/v1/webhooks", e.key, `{"name":"ops","target_url":"https://hooks.example.com/x"}`)
	rule := create(t, cp.url, "/v1/alert-rules", e.key, `{"name":"r","event_type":"workflow.run.failed","webhook_endpoint_id":"`+wh["id"].(string)+`"}`)
	if status, _, raw := call(t, cp.url, http.MethodGet, "/readyz", "", ""); status != http.StatusServiceUnavailable || !strings.Contains(string(raw), "kafka") {
		t.Errorf("readyz during the outage: %d %s", status, raw)
	}
	if n := unsent(t, e.pool); n != 2 {
		t.Fatalf("%d unsent outbox rows, want 2", n)
	}
	gate.Restore(t)
	eventually(t, 2*time.Minute, "endpoint and rule published", func() (bool, string) {
		rules := lastByKey(t, readTopic(t, e.brokers, e.topics.Rules))
		ends := lastByKey(t, readTopic(t, e.brokers, e.topics.Endpoints))
		ok := rules["acme/"+rule["id"].(string)] != nil && ends["acme/"+wh["id"].(string)] != nil && unsent(t, e.pool) == 0
		return ok, fmt.Sprintf("rules %v, endpoints %v, %d unsent", rules, ends, unsent(t, e.pool))
	})
	if status, _, raw := call(t, cp.url, http.MethodGet, "/readyz", "", ""); status != http.StatusOK {
		t.Errorf("readyz after the outage: %d %s", status, raw)
	}
}

// A change made while the relay is still starting (creating topics over a
// slow path) is on Kafka when the API answers, as after start: the
// quickstart emits an event right after creating its rule, and the processor
// only sees rules already on the topic.
func TestChangeDuringRelayStartIsPublishedBeforeTheAnswer(t *testing.T) {
	t.Parallel()
	e := newRelayEnv(t)
	slow := testenv.NewKafkaGate(t)
	slow.Latency = 100 * time.Millisecond
	cfg := e.config(t)
	cfg.KafkaOpts = []kgo.Opt{slow.Opt()}
	cfg.PublishWait = time.Minute
	cp := startCP(t, cfg)
	wh := create(t, cp.url, "/v1/webhooks", e.key, `{"name":"ops","target_url":"https://hooks.example.com/x"}`)
	if got := lastByKey(t, readTopic(t, e.brokers, e.topics.Endpoints)); got["acme/"+wh["id"].(string)] == nil {
		t.Fatalf("created endpoint not on Kafka when the API answered; topic holds %v", got)
	}
}

// A control plane starting over an existing database publishes every live
// rule and endpoint again, so topics that were lost converge on Postgres.
func TestOutboxRepublishesLiveRowsAtStart(t *testing.T) {
	t.Parallel()
	e := newRelayEnv(t)
	cp := startCP(t, e.config(t))
	var endpoints, rules []string
	for i := range 2 {
		wh := create(t, cp.url, "/v1/webhooks", e.key, fmt.Sprintf(`{"name":"ops %d","target_url":"https://hooks.example.com/%d"}`, i, i))
		endpoints = append(endpoints, wh["id"].(string))
	}
	for i := range 3 {
		r := create(t, cp.url, "/v1/alert-rules", e.key, fmt.Sprintf(`{"name":"r%d","event_type":"workflow.run.failed","webhook_endpoint_id":%q}`, i, endpoints[i%2]))
		rules = append(rules, r["id"].(string))
	}
	// One rule changes, one is deleted: the new start publishes the
	// current version of the one and nothing of the other.
	if status, _, raw := call(t, cp.url, http.MethodPatch, "/v1/alert-rules/"+rules[0], e.key, `{"name":"renamed"}`); status != http.StatusOK {
		t.Fatalf("PATCH: %d %s", status, raw)
	}
	if status, _, raw := call(t, cp.url, http.MethodDelete, "/v1/alert-rules/"+rules[2], e.key, ""); status != http.StatusNoContent && status != http.StatusOK {
		t.Fatalf("DELETE: %d %s", status, raw)
	}
	eventually(t, time.Minute, "first control plane publishes", func() (bool, string) {
		n := unsent(t, e.pool)
		return n == 0, fmt.Sprintf("%d unsent", n)
	})
	cp.stop()

	// The topics are lost: a new control plane over the same database
	// publishes to new, empty ones (it creates them).
	cfg := e.config(t)
	cfg.Topics = testenv.Topics(t)
	startCP(t, cfg)
	eventually(t, time.Minute, "second control plane republishes", func() (bool, string) {
		n := countRows(t, e.pool, `SELECT count(*) FROM outbox WHERE topic LIKE $1 || '%'`, cfg.Topics.Prefix)
		return n > 0 && unsent(t, e.pool) == 0, fmt.Sprintf("%d outbox rows for the new topics, %d unsent", n, unsent(t, e.pool))
	})
	gotEndpoints := lastByKey(t, readTopic(t, e.brokers, cfg.Topics.Endpoints))
	gotRules := lastByKey(t, readTopic(t, e.brokers, cfg.Topics.Rules))
	if len(gotEndpoints) != 2 || gotEndpoints["acme/"+endpoints[0]] == nil || gotEndpoints["acme/"+endpoints[1]] == nil {
		t.Errorf("republished endpoints: %v", gotEndpoints)
	}
	if len(gotRules) != 2 {
		t.Errorf("republished rules: %v, want the 2 live ones", gotRules)
	}
	if s := gotRules["acme/"+rules[0]]; s == nil || s.Version != 2 || s.Name != "renamed" {
		t.Errorf("republished changed rule: %+v, want version 2 named renamed", s)
	}
	if s := gotRules["acme/"+rules[1]]; s == nil || s.Version != 1 {
		t.Errorf("republished rule: %+v", s)
	}
	if _, ok := gotRules["acme/"+rules[2]]; ok {
		t.Errorf("the deleted rule was republished")
	}
}

// NOTIFY wakes the relay: with a fallback poll of ten minutes a new rule is
// on its topic within a minute.
func TestOutboxNotifyWakesRelay(t *testing.T) {
	t.Parallel()
	e := newRelayEnv(t)
	cp := startCP(t, e.config(t)) // OutboxPoll: 10 minutes
	wh := create(t, cp.url, "/v1/webhooks", e.key, `{"name":"ops","target_url":"https://hooks.example.com/x"}`)
	eventually(t, time.Minute, "endpoint published", func() (bool, string) {
		n := unsent(t, e.pool)
		return n == 0, fmt.Sprintf("%d unsent", n)
	})
	// The relay now waits for a notification (it listens before it drains).
	r := create(t, cp.url, "/v1/alert-rules", e.key, `{"name":"r","event_type":"workflow.run.failed","webhook_endpoint_id":"`+wh["id"].(string)+`"}`)
	eventually(t, time.Minute, "rule published long before the poll", func() (bool, string) {
		last := lastByKey(t, readTopic(t, e.brokers, e.topics.Rules))
		return last["acme/"+r["id"].(string)] != nil, fmt.Sprintf("%v", last)
	})
	if f := testenv.Metric(t, cp.reg, "exo_controlplane_outbox_publish_failures_total"); f != 0 {
		t.Errorf("%v failed publishes: the rule may have ridden a retry, not the notification", f)
	}
}

// Several control planes over one database (a rolling deploy, replicas):
// every outbox row is published at least once, and each key's records are in
// the order of its rows, though the relays wake together.
func TestOutboxTwoRelaysKeepOrderPerKey(t *testing.T) {
	t.Parallel()
	e := newRelayEnv(t)
	ctx := context.Background()
	// An endpoint every relay republishes at start: once all copies are
	// sent (one create, one republish per relay), all relays are in their loops.
	// The first reaches Kafka over a slow path: without coordination the
	// others would overtake the batch it holds.
	const relays = 3
	slow := testenv.NewKafkaGate(t)
	slow.Latency = 50 * time.Millisecond
	cfg := e.config(t)
	cfg.KafkaOpts = []kgo.Opt{slow.Opt()}
	first := startCP(t, cfg)
	create(t, first.url, "/v1/webhooks", e.key, `{"name":"ops","target_url":"https://hooks.example.com/x"}`)
	for range relays - 1 {
		startCP(t, e.config(t))
	}
	eventually(t, time.Minute, "all relays running", func() (bool, string) {
		n := countRows(t, e.pool, `SELECT count(*) FROM outbox WHERE sent_at IS NOT NULL`)
		return n >= relays && unsent(t, e.pool) == 0, fmt.Sprintf("%d sent, %d unsent", n, unsent(t, e.pool))
	})

	// Each version of every key commits on its own, so the relays are woken
	// again and again while they publish.
	const keys, versions = 10, 300
	for v := 1; v <= versions; v++ {
		tx, err := e.pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for k := range keys {
			val, _ := json.Marshal(schemas.RuleRecord{TenantID: "acme", ID: fmt.Sprintf("rul_order%02d", k), Name: "order",
				EventType: schemas.TypeRunFailed, WebhookEndpointID: "whk_order", IsActive: true, MaxAttempts: 8,
				Severity: "error", Version: int64(v), UpdatedAt: time.Now().UTC()})
			if _, err := tx.Exec(ctx, `INSERT INTO outbox (topic, key, value) VALUES ($1, $2, $3)`,
				e.topics.Rules, fmt.Sprintf("acme/rul_order%02d", k), val); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 2*time.Minute, "all rows sent", func() (bool, string) {
		n := unsent(t, e.pool)
		return n == 0, fmt.Sprintf("%d unsent", n)
	})
	seen := map[string]map[int64]bool{}
	last := map[string]int64{}
	for _, r := range readTopic(t, e.brokers, e.topics.Rules) {
		var s snapshot
		if err := json.Unmarshal(r.Value, &s); err != nil {
			t.Fatal(err)
		}
		k := string(r.Key)
		if s.Version < last[k] {
			t.Errorf("key %s: version %d after version %d", k, s.Version, last[k])
		}
		last[k] = s.Version
		if seen[k] == nil {
			seen[k] = map[int64]bool{}
		}
		seen[k][s.Version] = true
	}
	if len(seen) != keys {
		t.Fatalf("%d keys on the topic, want %d", len(seen), keys)
	}
	for k, vs := range seen {
		if len(vs) != versions || last[k] != versions {
			t.Errorf("key %s: %d distinct versions, last %d; want %d and %d", k, len(vs), last[k], versions, versions)
		}
	}
}

// When the API answers a change, the change is on Kafka: the processor,
// which catches up with the rules topic before each batch, applies a new rule
// to every event produced after the answer. While Kafka is away the API
// answers without waiting (the outage test creates 100 rules then).
func TestChangeIsOnKafkaWhenTheAPIAnswers(t *testing.T) {
	t.Parallel()
	e := newRelayEnv(t)
	cp := startCP(t, e.config(t))
	unsent := func(key string) int {
		var n int
		if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM outbox WHERE sent_at IS NULL AND key = $1`, key).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// The relay must have published once before requests wait for it.
	first := create(t, cp.url, "/v1/webhooks", e.key, `{"name":"warm-up","target_url":"https://hooks.example.com/a"}`)
	for deadline := time.Now().Add(30 * time.Second); unsent("acme/"+first["id"].(string)) > 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the relay published nothing within 30 s")
		}
	}
	ep := create(t, cp.url, "/v1/webhooks", e.key, `{"name":"hook","target_url":"https://hooks.example.com/b"}`)
	if n := unsent("acme/" + ep["id"].(string)); n != 0 {
		t.Fatalf("the endpoint's snapshot is not on Kafka when the API answered (%d unsent)", n)
	}
	var ids []string
	for i := range 10 {
		r := create(t, cp.url, "/v1/alert-rules", e.key, fmt.Sprintf(`{"name":"r%d","event_type":"workflow.run.failed","webhook_endpoint_id":%q}`, i, ep["id"]))
		id := r["id"].(string)
		if n := unsent("acme/" + id); n != 0 {
			t.Fatalf("rule %d: its snapshot is not on Kafka when the API answered (%d unsent)", i, n)
		}
		ids = append(ids, id)
	}
	onTopic := map[string]bool{}
	for _, r := range readTopic(t, e.brokers, e.topics.Rules) {
		onTopic[string(r.Key)] = true
	}
	for _, id := range ids {
		if !onTopic["acme/"+id] {
			t.Errorf("rule %s is not on %s", id, e.topics.Rules)
		}
	}
}

// An outbox row Kafka can never accept (larger than a message may be) and
// one whose value is not its topic's schema are quarantined with their
// reason and counted; the rows after them are published.
func TestOutboxQuarantinesPoisonRows(t *testing.T) {
	t.Parallel()
	e := newRelayEnv(t)
	ctx := context.Background()
	// Queued before the relay starts: the first rows it meets.
	if _, err := e.pool.Exec(ctx, `INSERT INTO outbox (topic, key, value) VALUES ($1, 'acme/huge', $2), ($3, 'acme/rul_bad', $4)`,
		e.topics.RunState, bytes.Repeat([]byte("x"), 2<<20), e.topics.Rules, []byte(`{"id":"rul_bad"}`)); err != nil {
		t.Fatal(err)
	}
	cp := startCP(t, e.config(t))
	wh := create(t, cp.url, "/v1/webhooks", e.key, `{"name":"ops","target_url":"https://hooks.example.com/x"}`)
	eventually(t, time.Minute, "the webhook published past the poison", func() (bool, string) {
		n := countRows(t, e.pool, `SELECT count(*) FROM outbox WHERE key = $1 AND sent_at IS NOT NULL`, "acme/"+wh["id"].(string))
		return n >= 1, fmt.Sprintf("%d sent rows of the webhook, %d unsent rows", n, unsent(t, e.pool))
	})
	for key, reason := range map[string]string{"acme/huge": "MESSAGE_TOO_LARGE", "acme/rul_bad": "not a valid rule"} {
		var got string
		if err := e.pool.QueryRow(ctx, `SELECT quarantine_reason FROM outbox WHERE key = $1 AND quarantined_at IS NOT NULL AND sent_at IS NULL`,
			key).Scan(&got); err != nil {
			t.Fatalf("%s not quarantined: %v", key, err)
		}
		if !strings.Contains(got, reason) {
			t.Errorf("%s quarantined for %q, want a reason with %q", key, got, reason)
		}
	}
	if n := testenv.Metric(t, cp.reg, "exo_controlplane_outbox_quarantined_total"); n != 2 {
		t.Errorf("quarantined counter = %v, want 2", n)
	}
	if last := lastByKey(t, readTopic(t, e.brokers, e.topics.Endpoints))["acme/"+wh["id"].(string)]; last == nil {
		t.Error("the webhook's snapshot is not on its topic")
	}
	eventually(t, 10*time.Second, "backlog gauge without the quarantined rows", func() (bool, string) {
		n := testenv.Metric(t, cp.reg, "exo_controlplane_outbox_unsent")
		return n == 0, fmt.Sprintf("exo_controlplane_outbox_unsent = %v", n)
	})
}
