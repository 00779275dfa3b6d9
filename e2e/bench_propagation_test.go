package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/exospherehost/exo-alerts/controlplane"
	"github.com/exospherehost/exo-alerts/e2e/harness"
	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/schemas"
)

// propagationPoll is how often BenchmarkRulePropagation reads the
// processor's rule count: the resolution of its figures.
const propagationPoll = time.Millisecond

// BenchmarkRulePropagation measures how long a rule created through the
// API takes to come into force: from the API's answer (201 Created) until
// the processor's rule table holds it (its exo_processor_rules_active gauge
// counts it, read every millisecond). The whole system runs
// (harness.Start, real Postgres and Kafka); one op is one create, one at a
// time. Since the API answers only once the rule is on Kafka (read your
// writes), this is the processor's side: consuming the alert-rules topic
// and compiling the rule.
//
// p50_ms and p99_ms are that propagation; create_p50_ms and create_p99_ms
// are the API's own latency for the same creates (request sent → answer),
// the comparator measured in the same run. in_force_at_answer is the
// fraction of rules the processor already held at the first look after
// the answer.
//
//	go test -run '^$' -bench BenchmarkRulePropagation -benchtime 200x ./e2e/
func BenchmarkRulePropagation(b *testing.B) {
	if !testenv.RealKafka(b) {
		b.Skip("needs a real Kafka broker: eval \"$(deploy/local/services.sh env)\"")
	}
	// The processor and the dispatcher register on a registry of their
	// own, so reading the gauge gathers only their metrics.
	procReg := prometheus.NewRegistry()
	h := harness.Start(b, harness.Options{Registerer: func(*prometheus.Registry) prometheus.Registerer { return procReg }})
	ctx := context.Background()
	key := controlplane.NewAPIKey()
	if _, err := controlplane.CreateAPIKey(ctx, h.Pool, "acme", "bench", controlplane.RoleAdmin, key); err != nil {
		b.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	b.Cleanup(client.CloseIdleConnections)
	post := func(path, body string) (map[string]any, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.API+path, strings.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		defer func() { _ = resp.Body.Close() }()
		raw, err := io.ReadAll(resp.Body)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusCreated {
			return nil, fmt.Errorf("POST %s: %d %s", path, resp.StatusCode, raw)
		}
		var out map[string]any
		return out, json.Unmarshal(raw, &out)
	}
	wh, err := post("/v1/webhooks", `{"name":"ops","target_url":"https://hooks.example.com/ops"}`)
	if err != nil {
		b.Fatal(err)
	}
	// The API waits for publication once its relay has published (here:
	// the endpoint's snapshot); until then an answer would come before the
	// rule is on Kafka.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var unsent int
		if err := h.Pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE sent_at IS NULL`).Scan(&unsent); err != nil {
			b.Fatal(err)
		}
		if unsent == 0 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("the relay published nothing within 30 s")
		}
	}
	body := `{"name":"failures","event_type":"` + schemas.TypeRunFailed + `","condition":"labels.env == \"prod\"","webhook_endpoint_id":"` + wh["id"].(string) + `"}`
	active := func() float64 { return testenv.Metric(b, procReg, "exo_processor_rules_active") }
	base := active()
	created := make([]time.Duration, 0, b.N)
	applied := make([]time.Duration, 0, b.N)
	atAnswer := 0 // rules the processor held already when the API answered
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		if _, err := post("/v1/alert-rules", body); err != nil {
			b.Fatal(err)
		}
		answered := time.Now()
		created = append(created, answered.Sub(t0))
		if active() >= base+float64(i+1) {
			atAnswer++
		}
		for want, deadline := base+float64(i+1), answered.Add(30*time.Second); active() < want; time.Sleep(propagationPoll) {
			h.Alive(b)
			if time.Now().After(deadline) {
				b.Fatalf("rule %d of %d: the processor holds %v rules 30 s after the API answered, want %v", i+1, b.N, active(), want)
			}
		}
		applied = append(applied, time.Since(answered))
	}
	b.StopTimer()
	pct := func(ds []time.Duration, p float64) float64 {
		slices.Sort(ds)
		return float64(ds[min(len(ds)-1, int(p*float64(len(ds))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(applied, 0.50), "p50_ms")
	b.ReportMetric(pct(applied, 0.99), "p99_ms")
	b.ReportMetric(pct(created, 0.50), "create_p50_ms")
	b.ReportMetric(pct(created, 0.99), "create_p99_ms")
	b.ReportMetric(float64(atAnswer)/float64(b.N), "in_force_at_answer")
}
