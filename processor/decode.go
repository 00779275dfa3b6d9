package processor

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/schemas"
)

// MaxEventBytes is the default largest record value accepted as an event.
const MaxEventBytes = 256 << 10

// MaxLabelBytes caps the labels of one event (schemas.CheckWorkflowEvent).
const MaxLabelBytes = schemas.MaxLabelBytes

// errInvalid marks an event that is not a valid workflow event.
var errInvalid = errors.New("invalid workflow event")

// invalidError says why a record is not a valid workflow event. problems
// are the schema's, each led by its JSON Pointer, when the schema is why.
type invalidError struct {
	reason   string
	problems []string
}

func (e *invalidError) Error() string { return e.reason }
func (e *invalidError) Unwrap() error { return errInvalid }

func invalid(format string, args ...any) error {
	return &invalidError{reason: fmt.Sprintf(format, args...)}
}

// decodeEvent decodes a record in either CloudEvents Kafka content mode:
// binary (attributes in ce_* headers, data in the value) or structured (the
// whole event as the value). The result is schema-validated.
func decodeEvent(r *kgo.Record, maxBytes int) (*schemas.WorkflowEvent, error) {
	if len(r.Value) > maxBytes {
		return nil, invalid("record of %d bytes is larger than the %d-byte limit", len(r.Value), maxBytes)
	}
	if name := repeatedHeader(r); name != "" {
		return nil, invalid("header %q appears more than once: a CloudEvents attribute (ce_*) or the content-type must be sent once", name)
	}
	doc := r.Value
	if hasHeader(r, "ce_specversion") {
		var err error
		if doc, err = binaryToStructured(r); err != nil {
			return nil, err
		}
	} else if ct := header(r, "content-type"); ct != "" && !strings.HasPrefix(ct, "application/cloudevents+json") && !strings.HasPrefix(ct, "application/json") {
		return nil, invalid("unsupported content-type %q (want application/cloudevents+json, or binary mode with ce_* headers)", ct)
	}
	ev, err := schemas.CheckWorkflowEvent(doc)
	if err != nil {
		var verr *schemas.ValidationError
		if errors.As(err, &verr) {
			return nil, &invalidError{reason: err.Error(), problems: verr.Problems}
		}
		return nil, invalid("%v", err)
	}
	return ev, nil
}

// keyProblem returns why key is not a strict key of ev (one starting with
// "<tenantid>/"), or nil.
func keyProblem(key []byte, ev *schemas.WorkflowEvent) error {
	if bytes.HasPrefix(key, []byte(ev.TenantID+"/")) {
		return nil
	}
	k := key
	if len(k) > 128 {
		k = k[:128]
	}
	return invalid("record key %q does not start with the event's tenant %q followed by / (strict keys: EXO_PROCESSOR_STRICT_KEYS=on)", k, ev.TenantID)
}

// CheckOptions are the settings of the processor that decide whether an
// event is valid.
type CheckOptions struct {
	// MaxEventBytes is the largest record value accepted (0: MaxEventBytes).
	MaxEventBytes int
	// StrictKeys checks the record key as EXO_PROCESSOR_STRICT_KEYS=on does.
	StrictKeys bool
}

// CheckRecord judges r as the processor judges a record of the events
// topic, with the same decoder. It returns the event, or the problems for
// which the processor would put r on the invalid topic: for a schema
// violation each problem is a JSON Pointer (or "(root)") and its reason,
// otherwise there is one. The exo-invalid-reason header the processor
// writes is reason. `exo-alerts validate` uses it.
func CheckRecord(r *kgo.Record, o CheckOptions) (ev *schemas.WorkflowEvent, reason string, problems []string) {
	if o.MaxEventBytes == 0 {
		o.MaxEventBytes = MaxEventBytes
	}
	ev, err := decodeEvent(r, o.MaxEventBytes)
	if err == nil && o.StrictKeys {
		err = keyProblem(r.Key, ev)
	}
	if err == nil {
		return ev, "", nil
	}
	var ie *invalidError
	if errors.As(err, &ie) && len(ie.problems) > 0 {
		return nil, ie.reason, ie.problems
	}
	return nil, err.Error(), []string{err.Error()}
}

// binaryToStructured builds the structured JSON document of a binary-mode event.
func binaryToStructured(r *kgo.Record) ([]byte, error) {
	attrs := make(map[string]string, len(r.Headers))
	for _, h := range r.Headers {
		if name, ok := strings.CutPrefix(h.Key, "ce_"); ok {
			attrs[name] = string(h.Value)
		}
	}
	doc, err := schemas.StructuredFromBinary(attrs, r.Value)
	if err != nil {
		return nil, invalid("%v", err)
	}
	return doc, nil
}

// repeatedHeader returns the name of a CloudEvents attribute header (ce_*)
// or content-type that the record carries more than once (names compared
// case-insensitively, as they are looked up), or "". Such an event is
// ambiguous: one reader takes the first value, another the last (a second
// ce_tenantid would otherwise win here), so it is refused, as structured
// mode refuses a repeated key.
func repeatedHeader(r *kgo.Record) string {
	hs := r.Headers
	for i, h := range hs {
		if !isEventHeader(h.Key) {
			continue
		}
		for _, o := range hs[i+1:] {
			if strings.EqualFold(h.Key, o.Key) {
				return strings.ToLower(h.Key)
			}
		}
	}
	return ""
}

func isEventHeader(k string) bool {
	return strings.EqualFold(k, "content-type") || (len(k) > 3 && strings.EqualFold(k[:3], "ce_"))
}

func header(r *kgo.Record, k string) string {
	for _, h := range r.Headers {
		if strings.EqualFold(h.Key, k) {
			return string(h.Value)
		}
	}
	return ""
}

func hasHeader(r *kgo.Record, k string) bool {
	for _, h := range r.Headers {
		if strings.EqualFold(h.Key, k) {
			return true
		}
	}
	return false
}

type decodedEvent struct {
	ev  *schemas.WorkflowEvent
	err error
}

// decodeAll decodes and validates the event records (those of the events
// topic; the others are left zero) on every core: decoding is
// independent per record and is most of the processor's CPU; the engine
// then consumes the results in order on one goroutine.
func (p *Processor) decodeAll(records []*kgo.Record) []decodedEvent {
	out := make([]decodedEvent, len(records))
	decode := func(i int) {
		if r := records[i]; r.Topic == p.cfg.Topics.Events {
			out[i].ev, out[i].err = decodeEvent(r, p.cfg.MaxEventBytes)
		}
	}
	workers := min(runtime.GOMAXPROCS(0), (len(records)+63)/64)
	if workers <= 1 {
		for i := range records {
			decode(i)
		}
		return out
	}
	var wg sync.WaitGroup
	var nextIdx atomic.Int64
	for range workers {
		wg.Go(func() {
			for {
				i := int(nextIdx.Add(1) - 1)
				if i >= len(records) {
					return
				}
				decode(i)
			}
		})
	}
	wg.Wait()
	return out
}
