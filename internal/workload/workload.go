package workload

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/producer"
	"github.com/exospherehost/exo-alerts/schemas"
)

// Spec describes one event.
type Spec struct {
	Tenant       string
	Type         string
	WorkflowID   string
	WorkflowName string
	RunID        string
	EventID      string
	Attempt      int
	Duration     time.Duration
	ErrorCode    string
	ErrorMessage string
	Labels       map[string]string
	Time         time.Time
}

// NewID returns a random event id.
func NewID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return "ev_" + hex.EncodeToString(b)
}

// Event builds the CloudEvent of s, filling defaults.
func Event(s Spec) schemas.WorkflowEvent {
	if s.Time.IsZero() {
		s.Time = time.Now().UTC().Truncate(time.Millisecond)
	}
	if s.EventID == "" {
		s.EventID = NewID()
	}
	if s.RunID == "" {
		s.RunID = "run_" + NewID()[3:15]
	}
	if s.WorkflowID == "" {
		s.WorkflowID = "wf_" + s.WorkflowName
	}
	if s.Attempt == 0 {
		s.Attempt = 1
	}
	ev := schemas.WorkflowEvent{
		SpecVersion: "1.0", ID: s.EventID, Source: "exosphere/state-manager", Type: s.Type, Time: s.Time,
		Subject: s.RunID, TenantID: s.Tenant, DataContentType: "application/json",
		Data: schemas.WorkflowEventData{
			Workflow: schemas.Workflow{ID: s.WorkflowID, Name: s.WorkflowName},
			Run:      schemas.Run{ID: s.RunID, Attempt: s.Attempt},
			Labels:   s.Labels,
		},
	}
	switch s.Type {
	case schemas.TypeRunStarted:
		ev.Data.Run.Status = "running"
		ev.Data.Run.StartedAt = &s.Time
	case schemas.TypeRunSucceeded, schemas.TypeRunFailed:
		ev.Data.Run.Status = map[string]string{schemas.TypeRunSucceeded: "succeeded", schemas.TypeRunFailed: "failed"}[s.Type]
		started := s.Time.Add(-s.Duration)
		ms := s.Duration.Milliseconds()
		ev.Data.Run.StartedAt, ev.Data.Run.FinishedAt, ev.Data.Run.DurationMS = &started, &s.Time, &ms
		if s.Type == schemas.TypeRunFailed {
			code := s.ErrorCode
			if code == "" {
				code = "NODE_ERRORED"
			}
			ev.Data.Error = &schemas.ErrorInfo{Code: code, Message: s.ErrorMessage}
		}
	}
	return ev
}

// Record returns the Kafka record of ev in structured content mode, keyed
// tenant/run (schemas.RecordKey), which keeps a run on one partition: the
// public producer package's record.
func Record(topic string, ev schemas.WorkflowEvent) (*kgo.Record, error) {
	return producer.Record(topic, ev, producer.Structured)
}

// BinaryRecord returns the record of ev in binary content mode: attributes
// in ce_* headers, data as the value.
func BinaryRecord(topic string, ev schemas.WorkflowEvent) (*kgo.Record, error) {
	return producer.Record(topic, ev, producer.Binary)
}

// Produce produces records synchronously.
func Produce(ctx context.Context, cl *kgo.Client, recs ...*kgo.Record) error {
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("workload: produce: %w", err)
	}
	return nil
}
