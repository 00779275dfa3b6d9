package processor

import (
	"encoding/json"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/processor/engine"
	"github.com/exospherehost/exo-alerts/schemas"
)

// recordsOutput is engine output of each kind the processor writes, with
// values encoding/json escapes in its own ways.
func recordsOutput(t testing.TB) engine.Output {
	t.Helper()
	at := time.Date(2026, 11, 28, 10, 0, 0, 123_456_000, time.UTC)
	threshold := int64(60_000)
	payload := schemas.WebhookPayload{Type: schemas.TypeRunFailed, Timestamp: at, Data: schemas.PayloadData{
		AlertID: "alrt_1", TenantID: "acme", Rule: schemas.RuleRef{ID: "rul_1", Name: `<b>"ETL" & co</b>`},
		Event:    schemas.EventRef{ID: "ev_1", Type: schemas.TypeRunFailed, OccurredAt: at},
		Workflow: schemas.Workflow{ID: "wf", Name: "ünïcode \u2028 \xff"},
		Run:      schemas.PayloadRun{ID: "run_1", Status: "failed", StartedAt: &at},
		Error:    &schemas.PayloadError{Code: "E", Message: "line\nbreak\t<script>"},
		Labels:   map[string]string{"z": "1", "a": "&", "é": "\x01"},
	}}
	appended, err := payload.AppendJSON(nil) // as the engine writes it
	if err != nil {
		t.Fatal(err)
	}
	payload.Data.ThresholdMS = &threshold
	marshalled, err := json.Marshal(payload) // as the aggregate stage writes it
	if err != nil {
		t.Fatal(err)
	}
	delivery := func(p []byte) schemas.DeliveryRecord {
		return schemas.DeliveryRecord{AlertID: "alrt_1", TenantID: "acme", RuleID: "rul_<1>", EndpointID: "whk_1",
			EventType: schemas.TypeRunFailed, MaxAttempts: 8, RuleVersion: 3, Severity: "error", CreatedAt: at, Payload: p}
	}
	partition := int32(2)
	return engine.Output{
		Deliveries: []schemas.DeliveryRecord{delivery(appended), delivery(marshalled), delivery(nil)},
		States: []engine.StateChange{
			{Key: "acme/run_1", Value: &schemas.RunState{TenantID: "acme", RunID: "run_1", Workflow: payload.Data.Workflow, Attempt: 2,
				Labels: payload.Data.Labels, StartedAt: &at, Seen: []string{schemas.TypeRunStarted}, Fired: []string{"rul_&"}, LastEventAt: at}},
			{Key: "acme/run_2", Value: &schemas.RunState{TenantID: "acme", RunID: "run_2", Seen: []string{}}},
			{Key: "acme/run_3"}, // a tombstone
		},
		Inputs: []schemas.AggregateInput{
			{Kind: schemas.AggregateInputKindInput, TenantID: "acme", RuleID: "rul_2", Spec: "s", Group: []string{"<g>"}, Outcome: "matched", At: at,
				Event: &schemas.AggregateEvent{ID: "ev_1", Type: schemas.TypeRunFailed, RunID: "run_1", Workflow: payload.Data.Workflow, ErrorCode: "E"}},
			{Kind: schemas.AggregateInputKindWatermark, SourcePartition: &partition, Watermark: at},
		},
		RuleErrors: []schemas.RuleErrorRecord{{TenantID: "acme", RuleID: "rul_3", RuleVersion: 1, Error: "budget <exceeded>", Errors: 2, At: at}},
	}
}

// Every record the processor writes holds json.Marshal's bytes of what the
// engine gave it (the dispatcher, the recorder, stage 2 and receivers
// read the same documents as before the encoders were written by hand).
func TestRecordsAreJSONMarshal(t *testing.T) {
	t.Parallel()
	out := recordsOutput(t)
	p := &Processor{cfg: Config{Topics: kafka.NewTopics(kafka.DefaultPrefix)}, topo: topology{inputs: 3}}
	recs := p.records(1, out)
	var want [][]byte
	for i := range out.Deliveries {
		want = append(want, marshal(t, &out.Deliveries[i]))
	}
	for _, s := range out.States {
		if s.Value == nil {
			want = append(want, nil)
		} else {
			want = append(want, marshal(t, s.Value))
		}
	}
	for i := range out.Inputs {
		want = append(want, marshal(t, &out.Inputs[i]))
	}
	for i := range out.RuleErrors {
		want = append(want, marshal(t, &out.RuleErrors[i]))
	}
	if len(recs) != len(want) {
		t.Fatalf("%d records, want %d", len(recs), len(want))
	}
	for i, r := range recs {
		if string(r.Value) != string(want[i]) || (r.Value == nil) != (want[i] == nil) {
			t.Errorf("record %d on %s:\n%q\njson.Marshal:\n%q", i, r.Topic, r.Value, want[i])
		}
	}
}

func marshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Records carved out of the arena are the records the processor wrote
// when each was allocated on its own: key, headers and value each its own
// bytes, so that appending to one (as a client could) never changes
// another.
func TestArenaRecordsAreIndependent(t *testing.T) {
	t.Parallel()
	out := recordsOutput(t)
	out.Inputs, out.RuleErrors = nil, nil
	p := &Processor{cfg: Config{Topics: kafka.NewTopics(kafka.DefaultPrefix)}}
	recs := p.records(1, out)
	if len(recs) != len(out.Deliveries)+len(out.States) {
		t.Fatalf("%d records, want %d", len(recs), len(out.Deliveries)+len(out.States))
	}
	type snapshot struct{ key, value, alertID, eventType string }
	snap := func() []snapshot {
		var s []snapshot
		for _, r := range recs {
			s = append(s, snapshot{string(r.Key), string(r.Value), kafka.Header(r, schemas.HeaderAlertID), kafka.Header(r, schemas.HeaderEventType)})
		}
		return s
	}
	for i := range out.Deliveries {
		d, r := &out.Deliveries[i], recs[i]
		if string(r.Key) != string(schemas.RecordKey(d.TenantID, d.EndpointID)) || string(r.Value) != string(deliveryJSON(d)) ||
			len(r.Headers) != 2 || kafka.Header(r, schemas.HeaderAlertID) != d.AlertID || kafka.Header(r, schemas.HeaderEventType) != d.EventType {
			t.Errorf("delivery %d: key %q, headers %v, value %q", i, r.Key, r.Headers, r.Value)
		}
	}
	for i, s := range out.States {
		r := recs[len(out.Deliveries)+i]
		if string(r.Key) != s.Key || r.Partition != 1 || (s.Value == nil) != (r.Value == nil) {
			t.Errorf("state %d: key %q, partition %d, value %q", i, r.Key, r.Partition, r.Value)
		}
	}
	before := snap()
	for _, r := range recs {
		_ = append(r.Key, "XXXX"...)
		_ = append(r.Value, "XXXX"...)
		_ = append(r.Headers, kgo.RecordHeader{Key: "x"})
		for _, h := range r.Headers {
			_ = append(h.Value, "XXXX"...)
		}
	}
	if after := snap(); !slices.Equal(before, after) {
		t.Errorf("appending to one record's bytes changed another's:\nbefore %q\nafter  %q", before, after)
	}
}

// Deliveries and run states cost no allocation of their own: records,
// headers and bytes come from the arena's chunks (about one allocation per
// 500 records), the list they are appended to is the batch's. Each was
// five or six allocations.
func TestRecordAllocations(t *testing.T) {
	out := recordsOutput(t)
	out.Inputs, out.RuleErrors = nil, nil
	p := &Processor{cfg: Config{Topics: kafka.NewTopics(kafka.DefaultPrefix)}}
	recs := make([]*kgo.Record, 0, 16)
	allocs := testing.AllocsPerRun(1000, func() { recs = p.appendRecords(recs[:0], 1, out) })
	// recordsOutput's deliveries and states: 3 and 3. Runs that start a
	// chunk allocate, and AllocsPerRun rounds down the average.
	if allocs > 0 {
		t.Errorf("appendRecords: %.1f allocations per call for %d records, budget 0", allocs, len(out.Deliveries)+len(out.States))
	}
}

// A delivery record's value costs one allocation, its buffer (encoding it
// with json.Marshal took 5).
func TestDeliveryJSONAllocations(t *testing.T) {
	out := recordsOutput(t)
	d := &out.Deliveries[0]
	allocs := testing.AllocsPerRun(200, func() { _ = deliveryJSON(d) })
	if allocs > 1 {
		t.Errorf("deliveryJSON: %.1f allocations per record, budget 1", allocs)
	}
}

// deliveryJSONByMarshal is how deliveryJSON was written before the
// hand-written encoders: json.Marshal of the record without its payload,
// and the payload spliced in. It is BenchmarkDeliveryJSON's comparator.
func deliveryJSONByMarshal(d *schemas.DeliveryRecord) []byte {
	if len(d.Payload) == 0 {
		b, _ := json.Marshal(d)
		return b
	}
	head := *d
	head.Payload = nil
	b, _ := json.Marshal(&head)
	const null = `null}`
	b = b[:len(b)-len(null)]
	b = append(b, d.Payload...)
	return append(b, '}')
}

// BenchmarkDeliveryJSON compares, in one run, a typical failed run's
// delivery record encoded as the processor writes it (Hand) with its former
// json.Marshal-based encoding (Marshal), payload included: the engine's
// AppendJSON against json.Marshal of the payload. cpu-ns/op is the
// process's CPU time per op (GC included), steadier than ns/op on a shared
// machine.
func BenchmarkDeliveryJSON(b *testing.B) {
	started := time.Date(2026, 11, 28, 9, 58, 35, 912_000_000, time.UTC)
	finished := time.Date(2026, 11, 28, 10, 0, 0, 123_000_000, time.UTC)
	ms := int64(84211)
	p := schemas.WebhookPayload{Type: schemas.TypeRunFailed, Timestamp: finished, Data: schemas.PayloadData{
		AlertID: "alrt_ca978112ca1bbdcafac231b39a23dc4d", TenantID: "acme",
		Rule:     schemas.RuleRef{ID: "rul_01JD5K", Name: "ETL failures"},
		Event:    schemas.EventRef{ID: "01JDQ8M3Z6X4W2V9T7R5P3N1K0", Type: schemas.TypeRunFailed, OccurredAt: finished},
		Workflow: schemas.Workflow{ID: "wf_9", Name: "nightly-etl"},
		Run:      schemas.PayloadRun{ID: "run_123", Status: "failed", StartedAt: &started, FinishedAt: &finished, DurationMS: &ms},
		Error:    &schemas.PayloadError{Code: "NODE_ERRORED", Message: "node extract failed: connection reset"},
		Labels:   map[string]string{"env": "prod", "team": "data", "region": "eu-west-1"},
	}}
	d := schemas.DeliveryRecord{AlertID: p.Data.AlertID, TenantID: "acme", RuleID: "rul_01JD5K", EndpointID: "whk_01JD5P",
		EventType: schemas.TypeRunFailed, MaxAttempts: 8, RuleVersion: 3, Severity: "error", CreatedAt: finished}
	b.Run("Marshal", func(b *testing.B) {
		b.ReportAllocs()
		cpu := processCPU(b)
		for b.Loop() {
			d.Payload, _ = json.Marshal(&p)
			_ = deliveryJSONByMarshal(&d)
		}
		b.ReportMetric(float64(processCPU(b)-cpu)/float64(b.N), "cpu-ns/op")
	})
	b.Run("Hand", func(b *testing.B) {
		b.ReportAllocs()
		cpu := processCPU(b)
		for b.Loop() {
			d.Payload, _ = p.AppendJSON(make([]byte, 0, 1024))
			_ = deliveryJSON(&d)
		}
		b.ReportMetric(float64(processCPU(b)-cpu)/float64(b.N), "cpu-ns/op")
	})
}

// processCPU returns the CPU time (user + system) of this process so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// The check of an event's record key accepts tenantid/run id and nothing
// else, as comparing with schemas.RecordKey did.
func TestIsRecordKey(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		key, tenant, id string
	}{
		{"acme/run_1", "acme", "run_1"}, {"acme/run_1", "acme", "run_2"}, {"acme/run_1", "acm", "e/run_1"},
		{"acme-run_1", "acme", "run_1"}, {"acme/run_1x", "acme", "run_1"}, {"acme/", "acme", ""}, {"/x", "", "x"},
		{"", "", ""}, {"acme", "acme", ""}, {"acme/run_1", "acme/run", "1"}, {"acmf/run_1", "acme", "run_1"},
	} {
		want := string(schemas.RecordKey(c.tenant, c.id)) == c.key
		if got := isRecordKey([]byte(c.key), c.tenant, c.id); got != want {
			t.Errorf("isRecordKey(%q, %q, %q) = %v, want %v", c.key, c.tenant, c.id, got, want)
		}
	}
}
