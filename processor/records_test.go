package processor

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/processor/engine"
	"github.com/exospherehost/exo-alerts/schemas"
)

// recordsOutput is engine output of each kind the processor writes, with
// values encoding/json escapes in its own ways.
func recordsOutput(t *testing.T) engine.Output {
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

func marshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
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
