package controlplane_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/controlplane"
	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/keyring"
	"github.com/exospherehost/exo-alerts/internal/store"
	"github.com/exospherehost/exo-alerts/internal/testenv"
)

// histEnv is a running control plane (API, outbox relay) on a fresh
// database and fresh topics of the real broker. No recorder runs (it is
// another service): tests that read delivery history store it through the
// store calls the recorder makes (record).
type histEnv struct {
	pool     *pgxpool.Pool
	topics   kafka.Topics
	brokers  []string
	ring     *keyring.Ring
	reg      *prometheus.Registry
	url      string
	adminKey string
	otherKey string
	prod     *kgo.Client
}

// startHistEnv runs a control plane; mod adjusts its config.
func startHistEnv(t *testing.T, mod func(*controlplane.Config)) *histEnv {
	t.Helper()
	ring, err := keyring.Parse(keyring.Generate("k1"))
	if err != nil {
		t.Fatal(err)
	}
	l := &histEnv{pool: testenv.Pool(t), topics: testenv.Topics(t), brokers: testenv.Brokers(t), ring: ring}
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
	l.reg, l.url = l.serve(t, mod)
	for _, k := range []struct {
		dst    *string
		tenant string
	}{{&l.adminKey, "acme"}, {&l.otherKey, "globex"}} {
		*k.dst = controlplane.NewAPIKey()
		if _, err := controlplane.CreateAPIKey(context.Background(), l.pool, k.tenant, "test", controlplane.RoleAdmin, *k.dst); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// serve runs one more control plane on l's database and topics; it stops
// when the test ends.
func (l *histEnv) serve(t *testing.T, mod func(*controlplane.Config)) (*prometheus.Registry, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	ready := make(chan net.Addr, 1)
	cfg := controlplane.Config{
		Listener: ln, Pool: l.pool, Brokers: l.brokers, Topics: l.topics, Keyring: l.ring, Log: testenv.Log(t),
		Registry: reg, OutboxPoll: 200 * time.Millisecond, Allowlist: []string{"127.0.0.1"}, Ready: ready,
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := controlplane.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("control plane: %v", err)
		}
	})
	select {
	case addr := <-ready:
		return reg, "http://" + addr.String()
	case err := <-done:
		t.Fatalf("control plane stopped: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("control plane not ready after 30s")
	}
	return nil, ""
}

func (l *histEnv) do(t *testing.T, method, path, key, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), method, l.url+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

func (l *histEnv) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	if err := l.pool.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// record stores delivery history in one transaction through the store
// calls the recorder makes, as if it had read the records from Kafka.
func (l *histEnv) record(t *testing.T, fn func(ctx context.Context, tx *store.Tx) error) {
	t.Helper()
	ctx := context.Background()
	if err := store.New(l.pool, "").System(ctx, func(tx *store.Tx) error { return fn(ctx, tx) }); err != nil {
		t.Fatalf("record history: %v", err)
	}
}

// createRule creates an endpoint and a rule of tenant acme through the API.
func (l *histEnv) createRule(t *testing.T, target string) (endpointID, ruleID, secret string) {
	t.Helper()
	status, wh := l.do(t, "POST", "/v1/webhooks", l.adminKey, `{"name":"ops","target_url":"`+target+`"}`)
	if status != http.StatusCreated {
		t.Fatalf("create webhook: %d %v", status, wh)
	}
	status, rule := l.do(t, "POST", "/v1/alert-rules", l.adminKey,
		`{"name":"ETL failures","event_type":"workflow.run.failed","webhook_endpoint_id":"`+wh["id"].(string)+`"}`)
	if status != http.StatusCreated {
		t.Fatalf("create rule: %d %v", status, rule)
	}
	return wh["id"].(string), rule["id"].(string), wh["secret"].(string)
}
