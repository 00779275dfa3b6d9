package controlplane_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/controlplane"
	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/keyring"
	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/schemas"
)

// Workload sizes of the control plane benchmarks.
const (
	benchListRules      = 10_000 // rules of each of the two tenants listed
	benchOutboxRows     = 20_000 // rule snapshots queued in the outbox
	benchPartitions     = 3
	benchPollEvery      = 10 * time.Millisecond
	benchOpDeadline     = 3 * time.Minute
	benchRuleConditions = `labels.env == \"prod\"`
)

// benchAPI is the HTTP API alone (controlplane.New, no Run: no relay) over a fresh database, with an admin key for tenants acme and
// globex and a client that keeps enough idle connections for RunParallel.
type benchAPI struct {
	pool   *pgxpool.Pool
	url    string
	keys   map[string]string // tenant → admin key
	client *http.Client
}

func newBenchAPI(b *testing.B, pool *pgxpool.Pool, appRole string) *benchAPI {
	b.Helper()
	ring, err := keyring.Parse(keyring.Generate("k1"))
	if err != nil {
		b.Fatal(err)
	}
	s, err := controlplane.New(controlplane.Config{
		Pool: pool, Brokers: []string{"127.0.0.1:1"}, Topics: kafka.NewTopics("t."), Keyring: ring, AppRole: appRole,
	})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	b.Cleanup(srv.Close)
	tr := &http.Transport{MaxIdleConns: 64, MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second}
	b.Cleanup(tr.CloseIdleConnections)
	a := &benchAPI{pool: pool, url: srv.URL, keys: map[string]string{}, client: &http.Client{Transport: tr}}
	for _, tenant := range []string{"acme", "globex"} {
		key := controlplane.NewAPIKey()
		if _, err := controlplane.CreateAPIKey(context.Background(), pool, tenant, "bench", controlplane.RoleAdmin, key); err != nil {
			b.Fatal(err)
		}
		a.keys[tenant] = key
	}
	return a
}

// do sends one request and decodes the answer; it never calls b.Fatal, so
// it is safe in RunParallel's goroutines.
func (a *benchAPI) do(method, path, key, body string, out any) (int, error) {
	req, err := http.NewRequestWithContext(context.Background(), method, a.url+path, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decode %s %s answer: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

// endpoint creates a webhook endpoint of tenant through the API.
func (a *benchAPI) endpoint(b *testing.B, tenant string) string {
	b.Helper()
	var wh struct {
		ID string `json:"id"`
	}
	status, err := a.do(http.MethodPost, "/v1/webhooks", a.keys[tenant], `{"name":"bench","target_url":"https://hooks.example.com/bench"}`, &wh)
	if err != nil || status != http.StatusCreated {
		b.Fatalf("create webhook: %d %v", status, err)
	}
	return wh.ID
}

// latencies collects request latencies from several goroutines.
type latencies struct {
	mu  sync.Mutex
	all []time.Duration
}

func (l *latencies) add(d []time.Duration) {
	l.mu.Lock()
	l.all = append(l.all, d...)
	l.mu.Unlock()
}

// report reports ops/s over elapsed as unit, and the 50th and 99th
// percentile latencies in ms.
func (l *latencies) report(b *testing.B, elapsed time.Duration, unit string) {
	b.Helper()
	if len(l.all) == 0 {
		return
	}
	slices.Sort(l.all)
	pct := func(p float64) float64 {
		return float64(l.all[min(len(l.all)-1, int(p*float64(len(l.all))))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(len(l.all))/elapsed.Seconds(), unit)
	b.ReportMetric(pct(0.50), "p50_ms")
	b.ReportMetric(pct(0.99), "p99_ms")
}

// BenchmarkCreateRule creates alert rules through the HTTP API (POST
// /v1/alert-rules), all on one webhook endpoint of one tenant: API key
// lookup, then one transaction under row-level security (tenantTx: SET
// LOCAL ROLE exo_app and exo.tenant_id) that share-locks the endpoint,
// inserts the rule, its audit row and its outbox row. The outbox relay does
// not run, so nothing is published. sequential: one client; parallel:
// b.RunParallel with 4 goroutines per GOMAXPROCS, against the pool's
// default 4 connections. sql_sequential and sql_parallel are the
// comparator: the same rows inserted by SQL alone on a pool of the same
// size (benchInserts).
//
//	go test -run '^$' -bench BenchmarkCreateRule -benchtime 2000x -count 3 ./controlplane/
func BenchmarkCreateRule(b *testing.B) {
	create := func(b *testing.B) (*benchAPI, string) {
		b.Helper()
		a := newBenchAPI(b, testenv.Pool(b), "")
		body := `{"name":"ETL failures","event_type":"workflow.run.failed","condition":"` + benchRuleConditions +
			`","webhook_endpoint_id":"` + a.endpoint(b, "acme") + `"}`
		return a, body
	}
	check := func(b *testing.B, a *benchAPI) {
		b.Helper()
		var rules, audits, outbox int
		if err := a.pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM alert_rules), (SELECT count(*) FROM audit_events WHERE action = 'alert_rule.create'),
			(SELECT count(*) FROM outbox WHERE topic LIKE '%alert-rules')`).Scan(&rules, &audits, &outbox); err != nil {
			b.Fatal(err)
		}
		if rules != b.N || audits != b.N || outbox != b.N {
			b.Errorf("after %d creates: %d rules, %d audit rows, %d outbox rows", b.N, rules, audits, outbox)
		}
	}
	apiCreate := func(a *benchAPI, body string) func() error {
		return func() error {
			status, err := a.do(http.MethodPost, "/v1/alert-rules", a.keys["acme"], body, nil)
			if err == nil && status != http.StatusCreated {
				err = fmt.Errorf("status %d", status)
			}
			return err
		}
	}
	b.Run("sequential", func(b *testing.B) {
		a, body := create(b)
		timeCreates(b, false, apiCreate(a, body))
		check(b, a)
	})
	b.Run("parallel", func(b *testing.B) {
		a, body := create(b)
		timeCreates(b, true, apiCreate(a, body))
		check(b, a)
	})
	// The comparator: the rows one create writes (rule, audit, outbox),
	// inserted in one transaction straight on a pool of the same size, as
	// the tables' owner: no HTTP, JSON, key lookup, row-level security or
	// endpoint lock. What the API adds is the ratio to it.
	b.Run("sql_sequential", func(b *testing.B) {
		ins := newBenchInserts(b)
		timeCreates(b, false, ins.create)
		check(b, ins.api)
	})
	b.Run("sql_parallel", func(b *testing.B) {
		ins := newBenchInserts(b)
		timeCreates(b, true, ins.create)
		check(b, ins.api)
	})
}

// timeCreates runs create b.N times — from one goroutine, or with
// b.RunParallel and 4 goroutines per GOMAXPROCS when parallel — and reports
// creates per second and latency percentiles (rules/s, p50_ms, p99_ms). A
// failed create fails the benchmark.
func timeCreates(b *testing.B, parallel bool, create func() error) {
	b.Helper()
	var l latencies
	var failed sync.Once
	var failure error
	loop := func(next func() bool) {
		var lat []time.Duration
		for next() {
			t0 := time.Now()
			if err := create(); err != nil {
				failed.Do(func() { failure = err })
				continue
			}
			lat = append(lat, time.Since(t0))
		}
		l.add(lat)
	}
	b.SetParallelism(4)
	b.ResetTimer()
	began := time.Now()
	if parallel {
		b.RunParallel(func(pb *testing.PB) { loop(pb.Next) })
	} else {
		n := 0
		loop(func() bool { n++; return n <= b.N })
	}
	elapsed := time.Since(began)
	b.StopTimer()
	if failure != nil {
		b.Fatalf("create rule: %v", failure)
	}
	l.report(b, elapsed, "rules/s")
}

// benchInserts writes the rows of a rule create by SQL alone, for
// BenchmarkCreateRule's comparator: the outbox snapshot is built once, as
// the API builds it, and the audit row carries it too (about the size of
// the API's audit payload).
type benchInserts struct {
	api             *benchAPI
	endpoint, topic string
	snapshot        []byte // the outbox value, also the audit row's after
	next            atomic.Int64
}

func newBenchInserts(b *testing.B) *benchInserts {
	b.Helper()
	a := newBenchAPI(b, testenv.Pool(b), "")
	ins := &benchInserts{api: a, endpoint: a.endpoint(b, "acme"), topic: kafka.NewTopics("t.").Rules}
	var err error
	rec := schemas.RuleRecord{
		TenantID: "acme", ID: "rul_sql000000000000000000", Name: "ETL failures", EventType: schemas.TypeRunFailed, Condition: `labels.env == "prod"`,
		WebhookEndpointID: ins.endpoint, IsActive: true, MaxAttempts: 8, Severity: "error", Version: 1, UpdatedAt: time.Now().UTC(),
	}
	if ins.snapshot, err = json.Marshal(rec); err != nil {
		b.Fatal(err)
	}
	return ins
}

// create inserts one rule, its audit row and its outbox row in one
// transaction; it never calls b.Fatal, so it is safe in RunParallel.
func (ins *benchInserts) create() error {
	ctx := context.Background()
	id := fmt.Sprintf("rul_sql%018d", ins.next.Add(1))
	tx, err := ins.api.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `INSERT INTO alert_rules (id, tenant_id, name, event_type, condition, webhook_endpoint_id, created_by)
		VALUES ($1, 'acme', 'ETL failures', 'workflow.run.failed', 'labels.env == "prod"', $2, 'key:bench')`, id, ins.endpoint); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO audit_events (tenant_id, actor, action, resource_type, resource_id, after, request_id)
		VALUES ('acme', 'key:bench', 'alert_rule.create', 'alert_rule', $1, $2, 'req_bench')`, id, ins.snapshot); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO outbox (topic, key, value) VALUES ($1, $2, $3)`, ins.topic, "acme/"+id, ins.snapshot); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// BenchmarkListRules reads GET /v1/alert-rules?limit=50 of tenant acme,
// which has 10,000 rules, while tenant globex has 10,000 more in the same
// table: the page is found through alert_rules_tenant_idx (tenant_id,
// created_at, id) and filtered again by the row-level security policy.
// The rules are inserted by SQL (not timed). first_page: always the first
// page; walk: each op follows next_cursor, starting over after the last
// page (200 pages), so it covers every depth of the keyset pagination;
// first_page_rls_off: the first page with AppRole "off" (the connecting
// role, the tables' owner, which bypasses row-level security).
//
//	go test -run '^$' -bench BenchmarkListRules -benchtime 2000x -count 3 ./controlplane/
func BenchmarkListRules(b *testing.B) {
	pool := testenv.Pool(b)
	a := newBenchAPI(b, pool, "")
	off := newBenchAPI(b, pool, "off")
	ctx := context.Background()
	for _, tenant := range []string{"acme", "globex"} {
		ep := a.endpoint(b, tenant)
		// Distinct created_at per rule, a second apart, as if made over time.
		if _, err := pool.Exec(ctx, `INSERT INTO alert_rules (id, tenant_id, name, event_type, condition, webhook_endpoint_id, created_by, created_at, updated_at)
			SELECT 'rul_bench' || $1 || lpad(g::text, 6, '0'), $1, 'rule ' || g, 'workflow.run.failed', 'labels.env == "prod"', $2, 'bench',
				now() - (g * interval '1 second'), now() - (g * interval '1 second')
			FROM generate_series(1, $3::int) g`, tenant, ep, benchListRules); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, `ANALYZE alert_rules`); err != nil {
		b.Fatal(err)
	}
	type page struct {
		Items      []json.RawMessage `json:"items"`
		NextCursor string            `json:"next_cursor"`
	}
	run := func(b *testing.B, api *benchAPI, walk bool) {
		key := api.keys["acme"]
		lat := make([]time.Duration, 0, b.N)
		cursor, pages := "", 0
		b.ResetTimer()
		began := time.Now()
		for range b.N {
			path := "/v1/alert-rules?limit=50"
			if cursor != "" {
				path += "&cursor=" + cursor
			}
			var p page
			t0 := time.Now()
			status, err := api.do(http.MethodGet, path, key, "", &p)
			if err != nil || status != http.StatusOK {
				b.Fatalf("list rules: %d %v", status, err)
			}
			lat = append(lat, time.Since(t0))
			if len(p.Items) != 50 {
				b.Fatalf("page %d of acme's rules has %d items, want 50", pages, len(p.Items))
			}
			pages++
			if walk {
				cursor = p.NextCursor
				if cursor == "" && pages != benchListRules/50 {
					b.Fatalf("walked %d pages of acme's rules, want %d", pages, benchListRules/50)
				}
				if cursor == "" {
					pages = 0
				}
			}
		}
		elapsed := time.Since(began)
		b.StopTimer()
		l := &latencies{all: lat}
		l.report(b, elapsed, "pages/s")
	}
	b.Run("first_page", func(b *testing.B) { run(b, a, false) })
	b.Run("walk", func(b *testing.B) { run(b, a, true) })
	b.Run("first_page_rls_off", func(b *testing.B) { run(b, off, false) })
}

// benchPlane is a running control plane (controlplane.New + Run: API,
// outbox relay) on a fresh database and fresh topics of the real
// broker, whose topics exist before it starts.
type benchPlane struct {
	pool    *pgxpool.Pool
	topics  kafka.Topics
	brokers []string
	cl      *kgo.Client
	adm     *kadm.Client
	ring    *keyring.Ring
}

func newBenchPlane(ctx context.Context, b *testing.B) *benchPlane {
	b.Helper()
	brokers := testenv.Brokers(b)
	if !testenv.RealKafka(b) {
		b.Skip("needs a real Kafka broker: eval \"$(deploy/local/services.sh env)\"")
	}
	ring, err := keyring.Parse(keyring.Generate("k1"))
	if err != nil {
		b.Fatal(err)
	}
	p := &benchPlane{pool: testenv.Pool(b), topics: testenv.Topics(b), brokers: brokers, ring: ring}
	if p.cl, err = kgo.NewClient(kafka.ClientOpts(brokers, nil)...); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(p.cl.Close)
	p.adm = kadm.NewClient(p.cl)
	if err := kafka.EnsureTopics(ctx, p.adm, p.topics.Specs(benchPartitions)); err != nil {
		b.Fatal(err)
	}
	return p
}

// start runs the control plane until the returned stop is called; stop
// fails the benchmark if Run returned an error.
func (p *benchPlane) start(ctx context.Context, b *testing.B) (stop func()) {
	b.Helper()
	_, stop = p.startURL(ctx, b)
	return stop
}

// startURL is start, also returning the API's base URL.
func (p *benchPlane) startURL(ctx context.Context, b *testing.B) (url string, stop func()) {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s, err := controlplane.New(controlplane.Config{
		Listener: ln, Pool: p.pool, Brokers: p.brokers, Topics: p.topics, Partitions: benchPartitions, Keyring: p.ring,
		Registry: prometheus.NewRegistry(), OutboxPoll: 200 * time.Millisecond,
	})
	if err != nil {
		b.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(rctx) }()
	return "http://" + ln.Addr().String(), func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("control plane: %v", err)
		}
	}
}

// BenchmarkCreateRulePublished measures rule creates through a running
// control plane (API, outbox relay) on the real broker, one client
// at a time: each answer waits until the rule is on Kafka (the publish wait,
// read your writes). Compare with BenchmarkCreateRule, whose server runs no
// relay and so never waits.
//
//	go test -run '^$' -bench BenchmarkCreateRulePublished -benchtime 500x -count 3 ./controlplane/
func BenchmarkCreateRulePublished(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), benchOpDeadline)
	defer cancel()
	p := newBenchPlane(ctx, b)
	url, stop := p.startURL(ctx, b)
	defer stop()
	tr := &http.Transport{MaxIdleConnsPerHost: 4}
	b.Cleanup(tr.CloseIdleConnections)
	a := &benchAPI{pool: p.pool, url: url, keys: map[string]string{"acme": controlplane.NewAPIKey()}, client: &http.Client{Transport: tr}}
	if _, err := controlplane.CreateAPIKey(ctx, p.pool, "acme", "bench", controlplane.RoleAdmin, a.keys["acme"]); err != nil {
		b.Fatal(err)
	}
	// Until the relay has published once, requests do not wait for it.
	ep := a.endpoint(b, "acme")
	p.waitCount(ctx, b, `SELECT count(*) FROM outbox WHERE sent_at IS NULL`, -1, 0)
	body := `{"name":"ETL failures","event_type":"workflow.run.failed","condition":"` + benchRuleConditions + `","webhook_endpoint_id":"` + ep + `"}`
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	began := time.Now()
	for range b.N {
		t0 := time.Now()
		if status, err := a.do(http.MethodPost, "/v1/alert-rules", a.keys["acme"], body, nil); err != nil || status != http.StatusCreated {
			b.Fatalf("create rule: %d %v", status, err)
		}
		lat = append(lat, time.Since(t0))
	}
	elapsed := time.Since(began)
	b.StopTimer()
	(&latencies{all: lat}).report(b, elapsed, "rules/s")
	var unsent int
	if err := p.pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE sent_at IS NULL`).Scan(&unsent); err != nil || unsent != 0 {
		b.Errorf("%d outbox rows unsent after the last answer (%v)", unsent, err)
	}
}

// waitCount polls query (a count) every benchPollEvery until it returns
// want. It returns when it first saw a value other than from (the first
// progress), that value, and when it saw want.
func (p *benchPlane) waitCount(ctx context.Context, b *testing.B, query string, from, want int) (first time.Time, firstN int, last time.Time) {
	b.Helper()
	n := from
	for {
		if err := p.pool.QueryRow(ctx, query).Scan(&n); err != nil {
			b.Fatalf("%s: %v (last seen %d, want %d)", query, err, n, want)
		}
		if n != from && first.IsZero() {
			first, firstN = time.Now(), n
		}
		if n == want {
			return first, firstN, time.Now()
		}
		select {
		case <-ctx.Done():
			b.Fatalf("%s = %d before the deadline, want %d", query, n, want)
		case <-time.After(benchPollEvery):
		}
	}
}

// topicRecords is the number of records in topic (sum of its end offsets).
func (p *benchPlane) topicRecords(ctx context.Context, b *testing.B, topic string) int64 {
	b.Helper()
	ends, err := p.adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		b.Fatal(err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

// BenchmarkOutboxRelay measures the outbox relay draining a backlog: 20,000
// rule snapshots (about 330 bytes each, 100 tenants × 200 rules) are
// inserted into the outbox by COPY (not timed), then a control plane starts
// (controlplane.New + Run) and publishes them to the alert-rules topic in
// batches of 500 (one transaction each: claim, ProduceSync with acks=all,
// mark sent). ns/op and rows/s run from calling Run until
// `SELECT count(*) FROM outbox WHERE sent_at IS NULL` is 0 (polled every
// 10 ms); steady_rows/s counts from the first poll that saw rows sent.
//
//	go test -run '^$' -bench BenchmarkOutboxRelay -benchtime 1x -count 3 ./controlplane/
func BenchmarkOutboxRelay(b *testing.B) {
	var total, steady time.Duration
	var steadyRows int
	b.StopTimer()
	b.ResetTimer()
	for range b.N {
		ctx, cancel := context.WithTimeout(context.Background(), benchOpDeadline)
		p := newBenchPlane(ctx, b)
		now := time.Now().UTC()
		rows := make([][]any, 0, benchOutboxRows)
		for i := range benchOutboxRows {
			tenant, id := fmt.Sprintf("tenant_%03d", i%100), fmt.Sprintf("rul_bench%06d", i)
			v, err := json.Marshal(schemas.RuleRecord{
				TenantID: tenant, ID: id, Name: "ETL failures " + id, EventType: schemas.TypeRunFailed, Condition: `labels.env == "prod"`,
				WebhookEndpointID: "whk_bench", IsActive: true, MaxAttempts: 8, Severity: "error", Version: 1, UpdatedAt: now,
			})
			if err != nil {
				b.Fatal(err)
			}
			rows = append(rows, []any{p.topics.Rules, tenant + "/" + id, v})
		}
		if _, err := p.pool.CopyFrom(ctx, pgx.Identifier{"outbox"}, []string{"topic", "key", "value"}, pgx.CopyFromRows(rows)); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		began := time.Now()
		stop := p.start(ctx, b)
		first, unsent, last := p.waitCount(ctx, b, `SELECT count(*) FROM outbox WHERE sent_at IS NULL`, benchOutboxRows, 0)
		b.StopTimer()
		total += last.Sub(began)
		// Rows sent by the first poll that saw progress are not in the steady rate.
		if unsent > 0 {
			steady += last.Sub(first)
			steadyRows += unsent
		}
		stop()
		if n := p.topicRecords(ctx, b, p.topics.Rules); n != benchOutboxRows {
			b.Errorf("alert-rules topic has %d records, want %d", n, benchOutboxRows)
		}
		cancel()
	}
	b.ReportMetric(float64(b.N*benchOutboxRows)/total.Seconds(), "rows/s")
	if steady > 0 {
		b.ReportMetric(float64(steadyRows)/steady.Seconds(), "steady_rows/s")
	}
}
