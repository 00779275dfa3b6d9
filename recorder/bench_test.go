package recorder_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/recorder"
	"github.com/exospherehost/exo-alerts/schemas"
)

// Workload of the recorder benchmark.
const (
	benchResultRecords = 50_000 // delivery results recorded
	benchPartitions    = 3
	benchPollEvery     = 10 * time.Millisecond
	benchOpDeadline    = 3 * time.Minute
)

// BenchmarkRecorder measures the recorder catching up: 50,000 delivery
// results (outcome delivered, about 330 bytes each) are produced to
// delivery-results (not timed), then a recorder starts (a fresh consumer
// group, from the start) and writes them to delivery_attempts, at most
// 1,000 records per transaction (schema validation, a
// jsonb_populate_recordset INSERT … ON CONFLICT DO NOTHING, offset commit).
// ns/op and records/s run from calling Run until
// `SELECT count(*) FROM delivery_attempts` is 50,000 (polled every 10 ms);
// steady_records/s counts from the first poll that saw any.
//
//	go test -run '^$' -bench BenchmarkRecorder -benchtime 1x -count 3 ./recorder/
func BenchmarkRecorder(b *testing.B) {
	var total, steady time.Duration
	var steadyRecords int
	b.StopTimer()
	b.ResetTimer()
	for range b.N {
		ctx, cancel := context.WithTimeout(context.Background(), benchOpDeadline)
		brokers := testenv.Brokers(b)
		if !testenv.RealKafka(b) {
			b.Skip("needs a real Kafka broker: eval \"$(deploy/local/services.sh env)\"")
		}
		pool, topics := testenv.Pool(b), testenv.Topics(b)
		cl, err := kgo.NewClient(kafka.ClientOpts(brokers, nil)...)
		if err != nil {
			b.Fatal(err)
		}
		if err := kafka.EnsureTopics(ctx, kadm.NewClient(cl), topics.Specs(benchPartitions)); err != nil {
			b.Fatal(err)
		}
		now := time.Now().UTC()
		recs := make([]*kgo.Record, 0, benchResultRecords)
		for i := range benchResultRecords {
			tenant, rule := fmt.Sprintf("tenant_%03d", i%100), fmt.Sprintf("rul_bench%03d", i%1000)
			v, err := json.Marshal(schemas.ResultRecord{
				AlertID: fmt.Sprintf("alrt_%032x", i), DeliveryID: fmt.Sprintf("dlv_bench%08d", i), TenantID: tenant, RuleID: rule,
				EndpointID: "whk_bench", Attempt: 1, RuleVersion: 1, Outcome: schemas.OutcomeDelivered, StatusCode: 204, LatencyMS: 12,
				AttemptedAt: now.Add(-time.Duration(benchResultRecords-i) * time.Millisecond),
			})
			if err != nil {
				b.Fatal(err)
			}
			if i == 0 {
				if err := schemas.Validate(schemas.KindResult, v); err != nil {
					b.Fatalf("bench result does not validate: %v", err)
				}
			}
			recs = append(recs, &kgo.Record{Topic: topics.DeliveryResults, Key: schemas.RecordKey(tenant, rule), Value: v})
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			b.Fatalf("produce: %v", err)
		}
		cl.Close()
		b.StartTimer()
		began := time.Now()
		rctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			done <- recorder.Run(rctx, recorder.Config{Brokers: brokers, Topics: topics, Pool: pool, Registerer: prometheus.NewRegistry()})
		}()
		var first, last time.Time
		var seen int
		for n := 0; n != benchResultRecords; {
			if err := pool.QueryRow(ctx, `SELECT count(*) FROM delivery_attempts`).Scan(&n); err != nil {
				b.Fatalf("count attempts: %v (last seen %d, want %d)", err, n, benchResultRecords)
			}
			if n != 0 && first.IsZero() {
				first, seen = time.Now(), n
			}
			if n == benchResultRecords {
				last = time.Now()
				break
			}
			select {
			case <-ctx.Done():
				b.Fatalf("%d attempts recorded before the deadline, want %d", n, benchResultRecords)
			case err := <-done:
				b.Fatalf("recorder stopped: %v", err)
			case <-time.After(benchPollEvery):
			}
		}
		b.StopTimer()
		total += last.Sub(began)
		// Records written by the first poll that saw progress are not in the steady rate.
		if seen < benchResultRecords {
			steady += last.Sub(first)
			steadyRecords += benchResultRecords - seen
		}
		stop()
		if err := <-done; err != nil {
			b.Errorf("recorder: %v", err)
		}
		cancel()
	}
	b.ReportMetric(float64(b.N*benchResultRecords)/total.Seconds(), "records/s")
	if steady > 0 {
		b.ReportMetric(float64(steadyRecords)/steady.Seconds(), "steady_records/s")
	}
}
