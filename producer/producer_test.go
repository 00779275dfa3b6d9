package producer_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/producer"
	"github.com/exospherehost/exo-alerts/schemas"
)

// Every event the builders make is valid by the workflow-event schema in
// both content modes, keyed tenant/run, with the run's attempt, status,
// duration and error.
func TestEventsAreValidInBothModes(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 11, 28, 9, 0, 0, 0, time.FixedZone("CET", 3600))
	run := producer.Run{Tenant: "acme", WorkflowID: "wf_1", WorkflowName: "etl", ID: "run_7", Attempt: 3, StartedAt: start, Labels: map[string]string{"team": "data"}}
	cases := []struct {
		ev         schemas.WorkflowEvent
		status     string
		wantError  bool
		wantMillis int64 // -1: no duration
	}{
		{producer.Started(run, start), "running", false, -1},
		{producer.Succeeded(run, start.Add(1500*time.Millisecond)), "succeeded", false, 1500},
		{producer.Failed(run, start.Add(2*time.Second), schemas.ErrorInfo{Code: "X"}), "failed", true, 2000},
		{producer.Failed(producer.Run{Tenant: "acme", WorkflowID: "wf_1", WorkflowName: "etl", ID: "run_8"}, start, schemas.ErrorInfo{}), "failed", true, -1},
	}
	for _, c := range cases {
		for _, mode := range []producer.Mode{producer.Structured, producer.Binary} {
			t.Run(c.ev.Type+"/"+mode.String(), func(t *testing.T) {
				t.Parallel()
				r, err := producer.Record("workflow-events", c.ev, mode)
				if err != nil {
					t.Fatal(err)
				}
				if want := "acme/" + c.ev.Data.Run.ID; string(r.Key) != want {
					t.Errorf("key %q, want %q", r.Key, want)
				}
				doc := r.Value
				if mode == producer.Binary {
					doc = structured(t, r.Headers, r.Value)
				} else if h := header(r.Headers, "content-type"); h != "application/cloudevents+json" {
					t.Errorf("content-type %q", h)
				}
				ev, err := schemas.DecodeWorkflowEvent(doc)
				if err != nil {
					t.Fatalf("invalid event: %v\n%s", err, doc)
				}
				if ev.Data.Run.Status != c.status || ev.Data.Run.Attempt != max(c.ev.Data.Run.Attempt, 1) || ev.TenantID != "acme" {
					t.Errorf("run %+v tenant %q", ev.Data.Run, ev.TenantID)
				}
				if (ev.Data.Error != nil) != c.wantError {
					t.Errorf("error %+v, want one: %v", ev.Data.Error, c.wantError)
				}
				if got := ev.Data.Run.DurationMS; (got == nil) != (c.wantMillis < 0) || (got != nil && *got != c.wantMillis) {
					t.Errorf("duration_ms %v, want %d", got, c.wantMillis)
				}
				if ev.Time.Location() != time.UTC {
					t.Errorf("time %v not UTC", ev.Time)
				}
			})
		}
	}
}

// A retried run's events keep the run id (and key) and change the id only
// by the attempt; the same event built twice has the same id.
func TestEventIDs(t *testing.T) {
	t.Parallel()
	at := time.Now()
	r1 := producer.Run{Tenant: "acme", ID: "run_1", WorkflowID: "w", WorkflowName: "w"}
	r2 := r1
	r2.Attempt = 2
	ids := map[string]bool{}
	for _, ev := range []schemas.WorkflowEvent{
		producer.Started(r1, at), producer.Failed(r1, at, schemas.ErrorInfo{}), producer.Started(r2, at), producer.Succeeded(r2, at),
	} {
		if ids[ev.ID] {
			t.Errorf("id %q twice", ev.ID)
		}
		ids[ev.ID] = true
	}
	if a, b := producer.Failed(r1, at, schemas.ErrorInfo{}).ID, producer.Failed(r1, at.Add(time.Second), schemas.ErrorInfo{Code: "x"}).ID; a != b {
		t.Errorf("the same failure resent has ids %q and %q", a, b)
	}
	if _, err := producer.New(producer.Options{}); !errors.Is(err, producer.ErrNoBrokers) {
		t.Errorf("New without brokers: %v", err)
	}
}

func header(hs []kgo.RecordHeader, k string) string {
	for _, h := range hs {
		if h.Key == k {
			return string(h.Value)
		}
	}
	return ""
}

// structured rebuilds the structured document of a binary-mode record, as
// the CloudEvents Kafka binding defines it.
func structured(t *testing.T, hs []kgo.RecordHeader, value []byte) []byte {
	t.Helper()
	doc := map[string]any{}
	for _, h := range hs {
		if len(h.Key) > 3 && h.Key[:3] == "ce_" {
			doc[h.Key[3:]] = string(h.Value)
		}
	}
	if header(hs, "content-type") != "application/json" {
		t.Errorf("binary content-type %q", header(hs, "content-type"))
	}
	doc["data"] = json.RawMessage(value)
	out, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
