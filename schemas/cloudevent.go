package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// MaxLabelBytes caps the labels of one event (keys and values, in bytes).
// Labels are copied into the run state and into every alert, and JSON
// escaping can make them six times longer ("<" is written \u003c): past
// this cap a run-state or delivery record could exceed what the broker
// takes, and a transaction that cannot be written would be retried forever.
const MaxLabelBytes = 32 << 10

// InvalidEventError says why a document is not a usable workflow event, in
// the words the processor writes in the exo-invalid-reason header of its
// copy on the invalid-events topic. Paths are the JSON Pointers of the
// fields at fault (empty when the fault is the whole document).
type InvalidEventError struct {
	Reason string
	Paths  []string
	Err    error
}

func (e *InvalidEventError) Error() string { return e.Reason }
func (e *InvalidEventError) Unwrap() error { return e.Err }

// CheckWorkflowEvent decodes a workflow event in structured mode (the whole
// CloudEvent as one JSON document) and judges it as the processor does: the
// schema (DecodeWorkflowEvent), then the labels cap. The processor, the
// control plane's HTTP ingest and the CLI share it, so an event is valid for
// one exactly when it is for the others. A refusal is an
// *InvalidEventError.
func CheckWorkflowEvent(doc []byte) (*WorkflowEvent, error) {
	ev, err := DecodeWorkflowEvent(doc)
	var verr *ValidationError
	switch {
	case err == nil:
		n := 0
		for k, v := range ev.Data.Labels {
			n += len(k) + len(v)
		}
		if n > MaxLabelBytes {
			return nil, &InvalidEventError{Reason: fmt.Sprintf("labels of %d bytes in all, more than the %d-byte limit", n, MaxLabelBytes), Paths: []string{"/data/labels"}}
		}
		return ev, nil
	case errors.Is(err, ErrNotJSON):
		return nil, &InvalidEventError{Reason: "value is not JSON", Err: err}
	case errors.As(err, &verr):
		return nil, &InvalidEventError{Reason: "schema: " + err.Error(), Paths: problemPaths(verr), Err: err}
	}
	return nil, &InvalidEventError{Reason: err.Error(), Err: err} // "decode: ..."
}

// problemPaths returns the JSON Pointers the problems of verr start with.
func problemPaths(verr *ValidationError) []string {
	var out []string
	seen := map[string]bool{}
	for _, p := range verr.Problems {
		path, _, ok := strings.Cut(p, ": ")
		if !ok || seen[path] {
			continue
		}
		if path == "(root)" {
			path = ""
		}
		seen[path] = true
		out = append(out, path)
	}
	return out
}

// StructuredFromBinary builds the structured JSON document of a
// binary-mode event: its attributes (name without the ce_ or ce- prefix,
// value as a string; "data" is ignored) and its data, which must be JSON.
func StructuredFromBinary(attrs map[string]string, data []byte) ([]byte, error) {
	if !json.Valid(data) {
		return nil, &InvalidEventError{Reason: "data is not JSON", Paths: []string{"/data"}}
	}
	doc := make(map[string]json.RawMessage, len(attrs)+1)
	for name, value := range attrs {
		if name == "data" {
			continue
		}
		v, _ := json.Marshal(value)
		doc[name] = v
	}
	doc["data"] = bytes.TrimSpace(data)
	out, err := json.Marshal(doc)
	if err != nil {
		return nil, &InvalidEventError{Reason: "binary mode: " + err.Error(), Err: err}
	}
	return out, nil
}
