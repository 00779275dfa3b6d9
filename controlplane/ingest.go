package controlplane

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/schemas"
)

// Limits of POST /v1/events.
const (
	// MaxIngestBodyBytes is the largest request body (413 past it).
	MaxIngestBodyBytes = 4 << 20
	// MaxIngestBatch is the most events of one batch (413 past it).
	MaxIngestBatch = 1000
	// MaxIngestEventBytes is the largest event, its structured JSON
	// document: the processor's default record limit (processor.MaxEventBytes).
	MaxIngestEventBytes = 256 << 10
	// DefaultIngestRate is the default events per second of one API key
	// (Config.IngestRate, EXO_INGEST_RATE), DefaultIngestBurst the most
	// it may send at once (EXO_INGEST_BURST).
	DefaultIngestRate  = 1000
	DefaultIngestBurst = MaxIngestBatch
	// ingestProduceTimeout bounds the wait for Kafka to take a request's
	// events; past it the request is answered 503 (retry: the processor
	// deduplicates events on their id).
	ingestProduceTimeout = 10 * time.Second
	// ingestBodyReadTimeout bounds the reading of a request's body (the
	// server's ReadTimeout, 30s by default, bounds the whole request).
	ingestBodyReadTimeout = 20 * time.Second
)

// Media types of the CloudEvents HTTP binding.
const (
	ctStructured = "application/cloudevents+json"
	ctBatch      = "application/cloudevents-batch+json"
)

// Per-event outcomes (IngestEventResult.Status and the outcome label of
// exo_controlplane_ingest_events_total).
const (
	ingestAccepted    = "accepted"
	ingestInvalid     = "invalid"
	ingestWrongTenant = "wrong_tenant"
	// Whole-request outcomes, counted per event.
	ingestRateLimited = "rate_limited"
	ingestTooLarge    = "too_large"
	ingestUnavailable = "unavailable"
)

var maxBatch = MaxIngestBatch

var ingestOutcomes = []string{ingestAccepted, ingestInvalid, ingestWrongTenant, ingestRateLimited, ingestTooLarge, ingestUnavailable}

// IngestResult is the answer to POST /v1/events: 202 when every event was
// accepted, 207 when some were and others refused, 422 when none was.
type IngestResult struct {
	Accepted int                 `json:"accepted" doc:"Events now durably on the workflow-events topic"`
	Rejected int                 `json:"rejected" doc:"Events refused; each has its reason in events"`
	Events   []IngestEventResult `json:"events" doc:"One entry per event, in the order sent"`
}

// IngestEventResult is what became of one event of the request.
type IngestEventResult struct {
	Index  int      `json:"index" doc:"Position of the event in the batch (0 for a single event)"`
	ID     string   `json:"id,omitempty" doc:"The event's id, when it has one"`
	Status string   `json:"status" enum:"accepted,invalid,wrong_tenant" doc:"accepted: on Kafka; invalid: not a valid workflow event (as the processor judges it); wrong_tenant: its tenantid is not the API key's tenant"`
	Reason string   `json:"reason,omitempty" doc:"Why the event was refused, as the processor would write it in exo-invalid-reason"`
	Paths  []string `json:"paths,omitempty" doc:"JSON Pointers (within the event) of the fields at fault"`
}

type ingestIn struct {
	ContentType string `header:"Content-Type" doc:"application/cloudevents+json (structured), application/cloudevents-batch+json (batch), or the data's JSON type in binary mode (ce-* headers)"`
	RawBody     []byte `contentType:"application/cloudevents+json"`
	// attrs are the ce-* headers (binary mode), names lower-cased without
	// the prefix, values percent-decoded; repeated names the first
	// attribute header sent more than once.
	attrs    map[string]string
	repeated string
}

// Resolve collects the ce-* headers of binary mode.
func (in *ingestIn) Resolve(ctx huma.Context) []error {
	ctx.EachHeader(func(name, value string) {
		n, ok := strings.CutPrefix(strings.ToLower(name), "ce-")
		if !ok || n == "" {
			return
		}
		if in.attrs == nil {
			in.attrs = map[string]string{}
		}
		if _, dup := in.attrs[n]; dup && in.repeated == "" {
			in.repeated = "ce-" + n
		}
		// The HTTP binding percent-encodes what a header cannot carry.
		if v, err := url.PathUnescape(value); err == nil {
			value = v
		}
		in.attrs[n] = value
	})
	return nil
}

type ingestOut struct {
	Status int
	Body   IngestResult
}

func (s *Server) registerIngest(api huma.API) {
	ref := api.OpenAPI().Components.Schemas.Schema(reflect.TypeFor[IngestResult](), true, "")
	anyEvent := &huma.Schema{Type: "object", Description: "A workflow event (schemas/workflow-event.schema.json)"}
	huma.Register(api, huma.Operation{
		OperationID: "ingest-events", Method: http.MethodPost, Path: "/v1/events", Tags: []string{"Events"},
		Summary: "Send workflow events (CloudEvents over HTTP)",
		Description: "The CloudEvents 1.0 HTTP binding, for a workflow engine that cannot embed a Kafka client: binary mode " +
			"(attributes in ce-* headers, the data object as the body), structured mode (`application/cloudevents+json`) or a batch " +
			"(`application/cloudevents-batch+json`, a JSON array of events, at most 1000). Each event is judged exactly as the " +
			"processor judges a Kafka record (schemas/workflow-event.schema.json); its `tenantid` must be the API key's tenant. " +
			"Accepted events are on the workflow-events topic (key tenant/run, structured JSON) before the answer: 202 all " +
			"accepted, 207 some accepted (the others' reasons in `events`), 422 none. Sending an event again is harmless: the " +
			"processor deduplicates on its id. Needs a key of role ingest or admin; each key may send EXO_INGEST_RATE events " +
			"per second (429 with Retry-After past it). See docs/producers.md#http-ingest.",
		Security:     []map[string][]string{{"ingest": {}}},
		MaxBodyBytes: MaxIngestBodyBytes + 1, // huma refuses a body of exactly MaxBodyBytes
		// The body is judged here (ingestDocuments, schemas.CheckWorkflowEvent),
		// not by huma against the documented schemas.
		SkipValidateBody: true,
		// A 4 MiB batch over a slow link needs more than huma's default 5s.
		BodyReadTimeout: ingestBodyReadTimeout,
		RequestBody: &huma.RequestBody{Content: map[string]*huma.MediaType{
			ctBatch:            {Schema: &huma.Schema{Type: "array", Items: anyEvent, MaxItems: &maxBatch}},
			"application/json": {Schema: &huma.Schema{Type: "object", Description: "Binary mode: the event's data object; its attributes in ce-specversion, ce-id, ce-source, ce-type, ce-time, ce-tenantid (and ce-subject, …) headers"}},
		}},
		DefaultStatus: http.StatusAccepted,
		Responses: map[string]*huma.Response{
			"207": {Description: "Some events accepted, others refused (reasons per event)", Content: map[string]*huma.MediaType{"application/json": {Schema: ref}}},
			"422": {Description: "No event accepted (reasons per event)", Content: map[string]*huma.MediaType{"application/json": {Schema: ref}}},
		},
		Errors: []int{400, 401, 403, 413, 429, 503},
	}, s.ingest)
}

func (s *Server) ingest(ctx context.Context, in *ingestIn) (*ingestOut, error) {
	p := principalFrom(ctx)
	docs, err := ingestDocuments(in)
	if err != nil {
		return nil, err
	}
	n := len(docs)
	if n > MaxIngestBatch {
		s.ingestMetrics.add(ingestTooLarge, n)
		return nil, huma.Error413RequestEntityTooLarge(fmt.Sprintf("a batch of %d events: at most %d per request", n, MaxIngestBatch))
	}
	if wait, ok := s.ingestLimit.take(p.KeyID, n); !ok {
		if wait < 0 {
			s.ingestMetrics.add(ingestTooLarge, n)
			return nil, huma.Error413RequestEntityTooLarge(fmt.Sprintf("a batch of %d events is more than this key may send at once (%d, EXO_INGEST_BURST)", n, s.ingestLimit.burst))
		}
		s.ingestMetrics.add(ingestRateLimited, n)
		secs := int((wait + time.Second - 1) / time.Second)
		return nil, huma.ErrorWithHeaders(
			huma.Error429TooManyRequests(fmt.Sprintf("this API key sends more than %d events per second (EXO_INGEST_RATE); retry in %ds", s.cfg.IngestRate, secs)),
			http.Header{"Retry-After": {strconv.Itoa(secs)}})
	}

	out := &ingestOut{Body: IngestResult{Events: make([]IngestEventResult, n)}}
	var recs []*kgo.Record
	for i, doc := range docs {
		res := &out.Body.Events[i]
		res.Index = i
		rec, err := s.ingestRecord(p.TenantID, doc, res)
		if err != nil {
			out.Body.Rejected++
			continue
		}
		recs = append(recs, rec)
	}
	if len(recs) > 0 {
		if err := s.produceIngested(ctx, recs); err != nil {
			s.ingestMetrics.add(ingestUnavailable, len(recs))
			return nil, err
		}
	}
	for _, r := range out.Body.Events {
		s.ingestMetrics.add(r.Status, 1)
	}
	out.Body.Accepted = len(recs)
	switch {
	case out.Body.Rejected == 0:
		out.Status = http.StatusAccepted
	case out.Body.Accepted == 0:
		out.Status = http.StatusUnprocessableEntity
	default:
		out.Status = http.StatusMultiStatus
	}
	return out, nil
}

// errRefused marks an event ingestRecord refused (its reason is in the result).
var errRefused = errors.New("event refused")

// ingestRecord judges one structured-mode event of tenant and returns its
// workflow-events record, or errRefused with res saying why.
func (s *Server) ingestRecord(tenant string, doc []byte, res *IngestEventResult) (*kgo.Record, error) {
	var head struct {
		ID any `json:"id"`
	}
	if json.Unmarshal(doc, &head) == nil {
		if id, ok := head.ID.(string); ok {
			res.ID = id
		}
	}
	refuse := func(status, reason string, paths []string) (*kgo.Record, error) {
		res.Status, res.Reason, res.Paths = status, reason, paths
		return nil, errRefused
	}
	if len(doc) > MaxIngestEventBytes {
		return refuse(ingestInvalid, fmt.Sprintf("record of %d bytes is larger than the %d-byte limit", len(doc), MaxIngestEventBytes), nil)
	}
	ev, err := schemas.CheckWorkflowEvent(doc)
	if err != nil {
		var ie *schemas.InvalidEventError
		if errors.As(err, &ie) {
			return refuse(ingestInvalid, ie.Reason, ie.Paths)
		}
		return refuse(ingestInvalid, err.Error(), nil)
	}
	if ev.TenantID != tenant {
		return refuse(ingestWrongTenant, fmt.Sprintf("tenantid %q is not this API key's tenant (%q): a key sends only its own tenant's events", ev.TenantID, tenant), []string{"/tenantid"})
	}
	res.Status = ingestAccepted
	return &kgo.Record{
		Topic: s.cfg.Topics.Events, Key: schemas.RecordKey(tenant, ev.Data.Run.ID), Value: bytes.Clone(doc),
		Headers: []kgo.RecordHeader{{Key: "content-type", Value: []byte(ctStructured)}},
	}, nil
}

// produceIngested puts recs on Kafka (idempotent producer, acks=all) and
// returns once every one is written, or a 503 when Kafka does not take
// them in time. Some may then be written, or be written later (a record
// already sent cannot be called back): a retry is safe, the processor
// deduplicates on the event id. It does not wait on ProduceSync, which
// waits for every record's outcome however long Kafka is away.
func (s *Server) produceIngested(ctx context.Context, recs []*kgo.Record) error {
	retry := huma.ErrorWithHeaders(huma.Error503ServiceUnavailable("Kafka did not take the events in time; retry (an event sent twice alerts once)"),
		http.Header{"Retry-After": {"5"}})
	if s.kafka == nil {
		return retry
	}
	pctx, cancel := context.WithTimeout(ctx, ingestProduceTimeout)
	defer cancel()
	done := make(chan error, len(recs)) // never blocks a late callback
	for _, r := range recs {
		s.kafka.Produce(pctx, r, func(_ *kgo.Record, err error) { done <- err })
	}
	for range recs {
		var err error
		select {
		case err = <-done:
		case <-pctx.Done():
			err = pctx.Err()
		}
		if err != nil {
			if !canceled(ctx, err) {
				s.log.Warn("ingest: produce events", "err", err, "events", len(recs))
			}
			return retry
		}
	}
	return nil
}

// ingestDocuments returns the structured JSON document of every event of
// the request, or a 400 when the request is not CloudEvents at all.
func ingestDocuments(in *ingestIn) ([][]byte, error) {
	if in.repeated != "" {
		return nil, huma.Error400BadRequest(fmt.Sprintf("header %s appears more than once: each CloudEvents attribute is sent once", in.repeated))
	}
	mt, _, err := mime.ParseMediaType(in.ContentType)
	if err != nil && in.ContentType != "" {
		return nil, huma.Error400BadRequest(fmt.Sprintf("Content-Type %q cannot be read", in.ContentType))
	}
	// The media type names the structured and batch modes; otherwise a
	// ce-specversion header makes the request a binary-mode event.
	if _, binary := in.attrs["specversion"]; binary && mt != ctStructured && mt != ctBatch {
		// Binary mode: the body is the data, Content-Type its type.
		attrs := in.attrs
		if in.ContentType != "" {
			attrs["datacontenttype"] = in.ContentType
		}
		doc, err := schemas.StructuredFromBinary(attrs, in.RawBody)
		if err != nil {
			return nil, huma.Error400BadRequest("binary mode: the body (the event's data) is not JSON")
		}
		return [][]byte{doc}, nil
	}
	switch mt {
	case ctStructured:
		body := bytes.TrimSpace(in.RawBody)
		if !json.Valid(body) || len(body) == 0 || body[0] != '{' {
			return nil, huma.Error400BadRequest("structured mode: the body is not a JSON object (a CloudEvent)")
		}
		return [][]byte{body}, nil
	case ctBatch:
		var batch []json.RawMessage
		if err := json.Unmarshal(in.RawBody, &batch); err != nil {
			return nil, huma.Error400BadRequest("batch mode: the body is not a JSON array of CloudEvents")
		}
		if len(batch) == 0 {
			return nil, huma.Error400BadRequest("batch mode: the batch holds no event")
		}
		docs := make([][]byte, len(batch))
		for i, d := range batch {
			docs[i] = d
		}
		return docs, nil
	}
	return nil, huma.Error400BadRequest(fmt.Sprintf("Content-Type %q is not CloudEvents: send %s (one event), %s (a JSON array of events) "+
		"or binary mode (ce-specversion, ce-id, … headers and the data as the body)", in.ContentType, ctStructured, ctBatch))
}
