package schemas

import (
	"bytes"
	"encoding/binary"
	"strings"
	"time"
)

// Member bits of an event's pass: the required ones are checked at the end,
// and each is set once (a member met twice is a duplicate, which the schema
// path refuses).
const (
	eSpecVersion uint64 = 1 << iota
	eID
	eSource
	eType
	eTime
	eTenantID
	eData
	eSubject
	eContentType
	eWorkflow
	eRun
	eError
	eLabels
	eWorkflowID
	eWorkflowName
	eRunID
	eStatus
	eAttempt
	eDuration
	eStarted
	eFinished
	eErrCode
	eErrMessage
	eErrNode
)

const requiredEventMembers = eSpecVersion | eID | eSource | eType | eTime | eTenantID | eData |
	eWorkflow | eRun | eWorkflowID | eWorkflowName | eRunID

// eventBlock holds a decoded event and the values its pointers point to,
// so that one allocation holds them all.
type eventBlock struct {
	ev       WorkflowEvent
	started  time.Time
	finished time.Time
	duration int64
	errInfo  ErrorInfo
}

// fastWorkflowEvent decodes doc in one pass and reports true only when doc
// certainly satisfies workflow-event.schema.json and the event is what
// encoding/json decodes from it. The pass checks the grammar, the member
// names, null versus absent and the value kinds as it stores the values;
// the stored values are then checked against the schema's lengths, patterns
// and ranges. Whatever it does not vouch for goes to the schema validator.
func fastWorkflowEvent(doc []byte) (*WorkflowEvent, bool) {
	blk := new(eventBlock)
	p := pass{b: doc}
	if !p.event(blk) || !p.end() || p.seen&requiredEventMembers != requiredEventMembers {
		return nil, false
	}
	// p.buf is set once a string with an escape was decoded.
	if !eventValuesValid(&blk.ev, p.seen) || p.buf != nil && !eventNoNUL(&blk.ev) {
		return nil, false
	}
	return &blk.ev, true
}

func (p *pass) event(blk *eventBlock) bool {
	ev := &blk.ev
	var ext nameSet
	return p.members(func(name []byte) bool {
		var ok bool
		switch string(name) {
		case "specversion":
			if !p.set(eSpecVersion) {
				return false
			}
			// The schema's const: anything else is refused.
			raw, escaped, ok := p.str()
			if !ok || escaped || string(raw) != "1.0" {
				return false
			}
			ev.SpecVersion = "1.0"
			return true
		case "id":
			ev.ID, ok = p.string()
			return ok && p.set(eID)
		case "source":
			ev.Source, ok = p.string()
			return ok && p.set(eSource)
		case "type":
			ev.Type, ok = p.known(eventTypes[:])
			return ok && p.set(eType)
		case "tenantid":
			ev.TenantID, ok = p.string()
			return ok && p.set(eTenantID)
		case "subject":
			ev.Subject, ok = p.string()
			return ok && p.set(eSubject)
		case "datacontenttype":
			ev.DataContentType, ok = p.known(contentTypes[:])
			return ok && p.set(eContentType)
		case "time":
			ev.Time, ok = p.time()
			return ok && p.set(eTime)
		case "data":
			return p.set(eData) && p.eventData(blk)
		}
		// Any other CloudEvents attribute: a scalar, named once.
		if !attributeName(name, false) || !ext.add(name) {
			return false
		}
		return p.scalar()
	})
}

// The values known returns without allocating.
var (
	eventTypes   = [...]string{TypeRunFailed, TypeRunSucceeded, TypeRunStarted}
	contentTypes = [...]string{"application/json", "application/cloudevents+json"}
	runStatuses  = [...]string{"failed", "succeeded", "running"}
)

// known is string, returning one of common's strings when the value is one
// of them (no allocation for the usual values).
func (p *pass) known(common []string) (string, bool) {
	raw, escaped, ok := p.str()
	if !ok {
		return "", false
	}
	if !escaped {
		for _, s := range common {
			if string(raw) == s {
				return s, true
			}
		}
	}
	return string(p.text(raw, escaped)), true
}

func (p *pass) eventData(blk *eventBlock) bool {
	d := &blk.ev.Data
	var other nameSet
	return p.members(func(name []byte) bool {
		switch string(name) {
		case "workflow":
			return p.set(eWorkflow) && p.workflow(&d.Workflow)
		case "run":
			return p.set(eRun) && p.run(blk)
		case "error":
			if !p.set(eError) {
				return false
			}
			if p.null() {
				return true
			}
			d.Error = &blk.errInfo
			return p.errorInfo(d.Error)
		case "labels":
			return p.set(eLabels) && p.labels(&d.Labels, &d.labelsKey)
		}
		// Forward compatibility: other members are tolerated and ignored.
		return attributeName(name, true) && other.add(name) && p.skip(0)
	})
}

func (p *pass) workflow(w *Workflow) bool {
	return p.members(func(name []byte) bool {
		var ok bool
		switch string(name) {
		case "id":
			w.ID, ok = p.string()
			return ok && p.set(eWorkflowID)
		case "name":
			w.Name, ok = p.string()
			return ok && p.set(eWorkflowName)
		}
		return false
	})
}

func (p *pass) run(blk *eventBlock) bool {
	r := &blk.ev.Data.Run
	return p.members(func(name []byte) bool {
		var ok bool
		switch string(name) {
		case "id":
			r.ID, ok = p.string()
			return ok && p.set(eRunID)
		case "status":
			r.Status, ok = p.known(runStatuses[:])
			return ok && p.set(eStatus)
		case "attempt":
			var n int64
			n, ok = p.int64()
			r.Attempt = int(n)
			return ok && n >= 1 && n <= 1<<31-1 && p.set(eAttempt)
		case "duration_ms":
			if !p.set(eDuration) {
				return false
			}
			if p.null() {
				return true
			}
			blk.duration, ok = p.int64()
			r.DurationMS = &blk.duration
			return ok
		case "started_at":
			if !p.set(eStarted) {
				return false
			}
			if p.null() {
				return true
			}
			blk.started, ok = p.time()
			r.StartedAt = &blk.started
			return ok
		case "finished_at":
			if !p.set(eFinished) {
				return false
			}
			if p.null() {
				return true
			}
			blk.finished, ok = p.time()
			r.FinishedAt = &blk.finished
			return ok
		}
		return false
	})
}

func (p *pass) errorInfo(e *ErrorInfo) bool {
	return p.members(func(name []byte) bool {
		var ok bool
		switch string(name) {
		case "code":
			e.Code, ok = p.string()
			return ok && p.set(eErrCode)
		case "message":
			e.Message, ok = p.string()
			return ok && p.set(eErrMessage)
		case "node":
			e.Node, ok = p.string()
			return ok && p.set(eErrNode)
		}
		return false
	})
}

// labelOK checks a label against the schema on its decoded text, before
// it is converted: a key of 1-63 code points, a value of at most 256, no
// NUL (which only an escape can write, so plain text is not searched).
func labelOK(p *pass, k []byte, ke bool, v []byte, ve bool) bool {
	if ke {
		// Decoded one at a time: p.buf holds one text.
		kt := p.text(k, true)
		if !runesOf(kt, 1, 63) || bytes.IndexByte(kt, 0) >= 0 {
			return false
		}
	} else if !runesOf(k, 1, 63) {
		return false
	}
	if ve {
		vt := p.text(v, true)
		return runesOf(vt, 0, 256) && bytes.IndexByte(vt, 0) < 0
	}
	return runesOf(v, 0, 256)
}

// maxLabelSpans is how many labels are gathered before their map is made
// (so that it is made at its size); more go into a map that grows.
const maxLabelSpans = 16

// labels decodes the labels object (or null) into *m. Keys may carry
// escapes: they are compared decoded, by the map, so a repeated key (which
// the schema path refuses) shows as a map shorter than the pairs read.
// When no label is escaped and there are at most maxLabelSpans, *key is
// set to the labels in canonical form (WorkflowEventData.LabelsKey).
func (p *pass) labels(m *map[string]string, key *string) bool {
	if p.null() {
		return true
	}
	type span struct {
		k, v   []byte
		ke, ve bool
	}
	var spans [maxLabelSpans]span
	n, pairs := 0, 0
	var out map[string]string
	ok := p.object(func(k []byte, ke bool) bool {
		v, ve, ok := p.str()
		if !ok || !labelOK(p, k, ke, v, ve) {
			return false
		}
		pairs++
		if out == nil && n < len(spans) {
			spans[n] = span{k, v, ke, ve}
			n++
			return true
		}
		if out == nil {
			out = make(map[string]string, 2*len(spans))
			for _, s := range spans[:n] {
				key := string(p.text(s.k, s.ke)) // before p.buf is reused
				out[key] = string(p.text(s.v, s.ve))
			}
		}
		key := string(p.text(k, ke)) // before p.buf is reused
		out[key] = string(p.text(v, ve))
		return true
	})
	if !ok {
		return false
	}
	if out == nil {
		out = make(map[string]string, n)
		// The labels' text, when none is escaped, is copied into one
		// string that the keys and values share: the map holds them all
		// anyway, and one allocation replaces two per label.
		total, escaped := 0, false
		for _, s := range spans[:n] {
			total += len(s.k) + len(s.v)
			escaped = escaped || s.ke || s.ve
		}
		if !escaped {
			// In key order, each key and value after its length: the text
			// is also the labels' canonical form (LabelsKey).
			sorted := spans[:n]
			for i := 1; i < len(sorted); i++ {
				for j := i; j > 0 && bytes.Compare(sorted[j].k, sorted[j-1].k) < 0; j-- {
					sorted[j], sorted[j-1] = sorted[j-1], sorted[j]
				}
			}
			var sb strings.Builder
			sb.Grow(total + 4*n)
			var lenBuf [binary.MaxVarintLen64]byte
			var starts [maxLabelSpans][2]int // where each key and value begin in the text
			for i, s := range sorted {
				sb.Write(binary.AppendUvarint(lenBuf[:0], uint64(len(s.k))))
				starts[i][0] = sb.Len()
				sb.Write(s.k)
				sb.Write(binary.AppendUvarint(lenBuf[:0], uint64(len(s.v))))
				starts[i][1] = sb.Len()
				sb.Write(s.v)
			}
			text := sb.String()
			for i, s := range sorted {
				k, v := starts[i][0], starts[i][1]
				out[text[k:k+len(s.k)]] = text[v : v+len(s.v)]
			}
			*key = text
		} else {
			for _, s := range spans[:n] {
				key := string(p.text(s.k, s.ke)) // before p.buf is reused
				out[key] = string(p.text(s.v, s.ve))
			}
		}
	}
	*m = out
	return len(out) == pairs
}
