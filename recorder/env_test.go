package recorder_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/keyring"
	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/recorder"
	"github.com/exospherehost/exo-alerts/schemas"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// env is a running recorder on a fresh database and fresh topics of the
// real broker, with a producer that writes what the processor and the
// dispatcher would.
type env struct {
	pool    *pgxpool.Pool
	topics  kafka.Topics
	brokers []string
	group   string // the recorder's consumer group
	reg     *prometheus.Registry
	prod    *kgo.Client
}

// start runs a recorder; mod adjusts its config.
func start(t *testing.T, mod func(*recorder.Config)) *env {
	t.Helper()
	l := &env{pool: testenv.Pool(t), topics: testenv.Topics(t), brokers: testenv.Brokers(t), group: "recorder-" + testenv.HexID(4)}
	prod, err := kgo.NewClient(kgo.SeedBrokers(l.brokers...), kgo.ProducerLinger(0), kgo.UnknownTopicRetries(60))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	l.prod = prod
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := kafka.EnsureTopics(ctx, kadm.NewClient(prod), l.topics.Specs(3)); err != nil {
		t.Fatal(err)
	}
	l.reg = l.run(t, l.group, mod)
	return l
}

// run runs one more recorder on l's database and topics, consuming in
// group; it stops when the test ends.
func (l *env) run(t *testing.T, group string, mod func(*recorder.Config)) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewRegistry()
	ready := make(chan struct{})
	cfg := recorder.Config{Brokers: l.brokers, Topics: l.topics, Group: group, Pool: l.pool, Log: testenv.Log(t), Registerer: reg, Ready: ready}
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- recorder.Run(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("recorder: %v", err)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("recorder stopped: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("recorder not ready after 30s")
	}
	return reg
}

// produce writes one record like the processor or dispatcher would.
func (l *env) produce(t *testing.T, topic string, key, value []byte, headers ...string) {
	t.Helper()
	l.produceAt(t, topic, key, value, headers...)
}

// produceAt writes one record and returns it with its partition and offset.
func (l *env) produceAt(t *testing.T, topic string, key, value []byte, headers ...string) *kgo.Record {
	t.Helper()
	r := &kgo.Record{Topic: topic, Key: key, Value: value}
	for i := 0; i+1 < len(headers); i += 2 {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: headers[i], Value: []byte(headers[i+1])})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res := l.prod.ProduceSync(ctx, r)
	if err := res.FirstErr(); err != nil {
		t.Fatal(err)
	}
	return res[0].Record
}

func (l *env) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	if err := l.pool.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// createRule stores an active endpoint and an active rule (version 1) of
// tenant acme, as the control plane would.
func (l *env) createRule(t *testing.T, target string) (endpointID, ruleID string) {
	t.Helper()
	ring, err := keyring.Parse(keyring.Generate("k1"))
	if err != nil {
		t.Fatal(err)
	}
	endpointID, ruleID = "whk_"+testenv.HexID(8), "rul_"+testenv.HexID(8)
	secret, _ := json.Marshal(ring.Seal("whsec_dGVzdC1zZWNyZXQtYnl0ZXMtMzItbG9uZy4uLi4=", schemas.SecretAAD("acme", endpointID)))
	ctx := context.Background()
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO tenants (id, name) VALUES ('acme', 'acme') ON CONFLICT (id) DO NOTHING`, nil},
		{`INSERT INTO webhook_endpoints (id, tenant_id, name, target_url, secret, secret_hint, created_by)
			VALUES ($1, 'acme', 'ops', $2, $3, '…Li4=', 'test')`, []any{endpointID, target, secret}},
		{`INSERT INTO alert_rules (id, tenant_id, name, event_type, webhook_endpoint_id, created_by)
			VALUES ($1, 'acme', 'ETL failures', 'workflow.run.failed', $2, 'test')`, []any{ruleID, endpointID}},
	} {
		if _, err := l.pool.Exec(ctx, q.sql, q.args...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
	return endpointID, ruleID
}

// caughtUp reports whether group has committed every record of the
// recorder's topics.
func (l *env) caughtUp(t *testing.T, group string) (bool, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	adm := kadm.NewClient(l.prod)
	ends, err := adm.ListEndOffsets(ctx, l.topics.Deliveries, l.topics.DeliveryResults, l.topics.DeliveriesDLQ)
	if err != nil {
		return false, err.Error()
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return false, err.Error()
	}
	ok := true
	var seen []string
	ends.Each(func(o kadm.ListedOffset) {
		c, _ := committed.Lookup(o.Topic, o.Partition)
		if o.Offset > 0 && c.At < o.Offset {
			ok = false
			seen = append(seen, fmt.Sprintf("%s/%d at %d of %d", o.Topic, o.Partition, c.At, o.Offset))
		}
	})
	return ok, strings.Join(seen, ", ")
}
