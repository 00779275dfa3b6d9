package producer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/schemas"
)

// DefaultTopic is the topic the processor reads events from (without the
// deployment's EXO_TOPIC_PREFIX).
const DefaultTopic = "workflow-events"

// DefaultSource is the CloudEvents source of events whose Run sets none.
const DefaultSource = "workflow-engine"

// Mode is a CloudEvents Kafka content mode.
type Mode int

const (
	// Structured puts the whole event in the record value as JSON
	// (content-type application/cloudevents+json). The default.
	Structured Mode = iota
	// Binary puts the attributes in ce_* headers and the data object in
	// the value (content-type application/json).
	Binary
)

func (m Mode) String() string {
	if m == Binary {
		return "binary"
	}
	return "structured"
}

// Run is one attempt of one workflow run, as the engine knows it.
type Run struct {
	// Tenant is the tenant (an Exosphere namespace) the run belongs to:
	// the event's tenantid and the first part of the record key.
	Tenant string
	// WorkflowID and WorkflowName identify the workflow (a graph).
	WorkflowID, WorkflowName string
	// ID is the run id; with the tenant it is the record key.
	ID string
	// Attempt numbers the run's retries from 1 (0 means 1). A retried run
	// keeps its id and sends its events again with Attempt+1.
	Attempt int
	// StartedAt is when the attempt started; Succeeded and Failed derive
	// the duration from it. Zero: unknown (no duration is sent).
	StartedAt time.Time
	// Labels are free-form strings rules can match on (env, team, ...).
	Labels map[string]string
	// Source is the CloudEvents source; "" means DefaultSource.
	Source string
}

// Started is the event of r starting at at.
func Started(r Run, at time.Time) schemas.WorkflowEvent {
	ev := r.event(schemas.TypeRunStarted, at)
	ev.Data.Run.Status = "running"
	if r.StartedAt.IsZero() {
		ev.Data.Run.StartedAt = &ev.Time
	}
	return ev
}

// Succeeded is the event of r succeeding at at.
func Succeeded(r Run, at time.Time) schemas.WorkflowEvent {
	ev := r.event(schemas.TypeRunSucceeded, at)
	ev.Data.Run.Status = "succeeded"
	r.finish(&ev)
	return ev
}

// Failed is the event of r failing at at, for the reason e (its code,
// message and the node that failed; all optional).
func Failed(r Run, at time.Time, e schemas.ErrorInfo) schemas.WorkflowEvent {
	ev := r.event(schemas.TypeRunFailed, at)
	ev.Data.Run.Status = "failed"
	r.finish(&ev)
	ev.Data.Error = &e
	return ev
}

// EventID is the id the builders give the event of type typ of r: the
// same state change of the same attempt always gets the same id
// ("run/attempt/type"), so an event sent again after a timeout or a crash
// is recognisably the same event, and the processor alerts on it once.
func EventID(r Run, typ string) string {
	return r.ID + "/" + strconv.Itoa(max(r.Attempt, 1)) + "/" + strings.TrimPrefix(typ, "workflow.run.")
}

func (r Run) event(typ string, at time.Time) schemas.WorkflowEvent {
	at = at.UTC()
	src := r.Source
	if src == "" {
		src = DefaultSource
	}
	ev := schemas.WorkflowEvent{
		SpecVersion: "1.0", ID: EventID(r, typ), Source: src, Type: typ, Time: at,
		Subject: r.ID, TenantID: r.Tenant, DataContentType: "application/json",
		Data: schemas.WorkflowEventData{
			Workflow: schemas.Workflow{ID: r.WorkflowID, Name: r.WorkflowName},
			Run:      schemas.Run{ID: r.ID, Attempt: max(r.Attempt, 1)},
			Labels:   r.Labels,
		},
	}
	if !r.StartedAt.IsZero() {
		s := r.StartedAt.UTC()
		ev.Data.Run.StartedAt = &s
	}
	return ev
}

func (r Run) finish(ev *schemas.WorkflowEvent) {
	ev.Data.Run.FinishedAt = &ev.Time
	if s := ev.Data.Run.StartedAt; s != nil && !ev.Time.Before(*s) {
		ms := ev.Time.Sub(*s).Milliseconds()
		ev.Data.Run.DurationMS = &ms
	}
}

// Record returns the Kafka record of ev for topic in content mode m,
// keyed "tenant/run" (schemas.RecordKey).
func Record(topic string, ev schemas.WorkflowEvent, m Mode) (*kgo.Record, error) {
	key := schemas.RecordKey(ev.TenantID, ev.Data.Run.ID)
	if m != Binary {
		v, err := json.Marshal(ev)
		if err != nil {
			return nil, fmt.Errorf("producer: marshal: %w", err)
		}
		return &kgo.Record{Topic: topic, Key: key, Value: v,
			Headers: []kgo.RecordHeader{{Key: "content-type", Value: []byte("application/cloudevents+json")}}}, nil
	}
	data, err := json.Marshal(ev.Data)
	if err != nil {
		return nil, fmt.Errorf("producer: marshal: %w", err)
	}
	h := func(k, v string) kgo.RecordHeader { return kgo.RecordHeader{Key: k, Value: []byte(v)} }
	hs := []kgo.RecordHeader{
		h("ce_specversion", ev.SpecVersion), h("ce_id", ev.ID), h("ce_source", ev.Source), h("ce_type", ev.Type),
		h("ce_time", ev.Time.Format(time.RFC3339Nano)), h("ce_tenantid", ev.TenantID),
	}
	if ev.Subject != "" {
		hs = append(hs, h("ce_subject", ev.Subject))
	}
	return &kgo.Record{Topic: topic, Key: key, Value: data, Headers: append(hs, h("content-type", "application/json"))}, nil
}

// Options configure a Producer.
type Options struct {
	// Brokers are the seed brokers (host:port). Required.
	Brokers []string
	// Topic is the events topic; "" means DefaultTopic. Prefix it with the
	// deployment's EXO_TOPIC_PREFIX if it has one.
	Topic string
	// Mode is the content mode of every record; Structured by default.
	Mode Mode
	// KafkaOpts are added to the client's options (TLS, SASL, a logger).
	// They must not turn off idempotency or acks=all.
	KafkaOpts []kgo.Opt
}

// Producer produces workflow events. It is safe for concurrent use.
type Producer struct {
	cl    *kgo.Client
	topic string
	mode  Mode
}

// ErrNoBrokers is returned by New when Options.Brokers is empty.
var ErrNoBrokers = errors.New("producer: no brokers")

// New returns a Producer; it connects lazily, on the first Send.
func New(o Options) (*Producer, error) {
	if len(o.Brokers) == 0 {
		return nil, ErrNoBrokers
	}
	topic := o.Topic
	if topic == "" {
		topic = DefaultTopic
	}
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(o.Brokers...),
		kgo.RequiredAcks(kgo.AllISRAcks()), // idempotency needs acks=all; said explicitly
		kgo.ProducerLinger(5 * time.Millisecond),
	}, o.KafkaOpts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("producer: new client: %w", err)
	}
	return &Producer{cl: cl, topic: topic, mode: o.Mode}, nil
}

// Send produces events and returns once the broker has acknowledged every
// one of them (or ctx ends, or one fails: the first error is returned and
// the others may have been written). Events of one run are written in the
// order given. Sending an event again after an error is safe: it keeps
// its id, and the processor alerts on a run's state change once.
func (p *Producer) Send(ctx context.Context, events ...schemas.WorkflowEvent) error {
	recs := make([]*kgo.Record, 0, len(events))
	for _, ev := range events {
		r, err := Record(p.topic, ev, p.mode)
		if err != nil {
			return err
		}
		recs = append(recs, r)
	}
	if err := p.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("producer: produce: %w", err)
	}
	return nil
}

// Close flushes nothing (Send is synchronous) and closes the client.
func (p *Producer) Close() { p.cl.Close() }
