package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"unicode/utf8"
)

// DecodeWorkflowEvent validates doc against the workflow-event schema and
// decodes it. Its errors are those of Validate (ErrNotJSON, a
// *ValidationError), or a *DecodeError for a document the schema accepts but
// the Go type cannot hold.
//
// Most events are decoded by a hand-written one-pass decoder
// (fastWorkflowEvent): it reads the bytes once, checking the grammar and the
// schema's rules as it fills the event, without encoding/json or the schema
// validator (about ten times cheaper than the check it replaced, which
// decoded with encoding/json and scanned again). It only ever says "valid":
// whatever it does not vouch for (any invalid event, and a few valid but
// unusual ones: escaped member names or timestamps, invalid UTF-8,
// duplicate member names, nesting deeper than 32) goes through the schema
// validator, so the answers and their messages are exactly Validate's. A
// differential fuzz test (FuzzDecodeWorkflowEventAgreesWithSchema) checks
// that the fast decoder accepts nothing the schema refuses and decodes what
// it accepts as encoding/json does.
func DecodeWorkflowEvent(doc []byte) (*WorkflowEvent, error) {
	ev, err := decode(KindWorkflowEvent, doc, fastWorkflowEvent)
	if err == nil {
		return ev, nil
	}
	var de *DecodeError
	if !errors.As(err, &de) {
		return ev, err
	}
	// Valid by the schema, yet Go's time decoding refused it: it does not
	// read escapes, and some encoders write "+" as \u002B (.NET's default
	// does), so a timestamp with an offset arrives as "…\u002B01:00". The
	// same document with its strings written plainly decodes.
	if plain, ok := unescaped(doc); ok {
		var ev WorkflowEvent
		if json.Unmarshal(plain, &ev) == nil {
			return &ev, nil
		}
	}
	return nil, err
}

// unescaped re-encodes doc with every string written as encoding/json
// writes it (escapes only where JSON needs them); numbers keep their
// literals.
func unescaped(doc []byte) ([]byte, bool) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return nil, false
	}
	out, err := json.Marshal(v)
	return out, err == nil
}

// decode returns what fast vouches for, else what Validate and
// json.Unmarshal make of doc.
func decode[T any](k Kind, doc []byte, fast func([]byte) (*T, bool)) (*T, error) {
	if v, ok := fast(doc); ok {
		return v, nil
	}
	if err := Validate(k, doc); err != nil {
		return nil, err
	}
	var v T
	if err := json.Unmarshal(doc, &v); err != nil {
		return nil, &DecodeError{Err: err}
	}
	return &v, nil
}

// DecodeError: the document matches its schema but does not decode into the
// Go type (e.g. a timestamp Go's time package cannot represent).
type DecodeError struct{ Err error }

func (e *DecodeError) Error() string { return "decode: " + e.Err.Error() }
func (e *DecodeError) Unwrap() error { return e.Err }

// attributeName: 1-64 lower-case ASCII letters and digits (and underscores
// for members of data).
func attributeName(name []byte, underscore bool) bool {
	if len(name) == 0 || len(name) > 64 {
		return false
	}
	for i := range len(name) {
		c := name[i]
		ok := 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || underscore && c == '_'
		if !ok {
			return false
		}
	}
	return true
}

// eventValuesValid checks the decoded values against the schema's lengths
// (in code points, as JSON Schema counts), patterns and ranges. The pass has
// already made sure each member had the right JSON kind; seen says which
// optional members were present (present-but-empty and absent decode alike).
func eventValuesValid(ev *WorkflowEvent, seen uint64) bool {
	d := &ev.Data
	return ev.SpecVersion == "1.0" && runes(ev.ID, 1, 256) && runes(ev.Source, 1, 1024) && runes(ev.Type, 1, 256) &&
		tenantIDValid(ev.TenantID) &&
		(seen&eSubject == 0 || runes(ev.Subject, 1, 256)) &&
		(seen&eContentType == 0 || contentTypeValid(ev.DataContentType)) &&
		runes(d.Workflow.ID, 1, 256) && runes(d.Workflow.Name, 1, 256) &&
		runes(d.Run.ID, 1, 256) &&
		(seen&eStatus == 0 || runes(d.Run.Status, 1, 64)) &&
		(seen&eAttempt == 0 || d.Run.Attempt >= 1 && d.Run.Attempt <= 1<<31-1) &&
		(d.Run.DurationMS == nil || *d.Run.DurationMS >= 0) &&
		errorValid(d)
}

// errorValid checks the error info's lengths; the labels were checked as
// they were read (labelOK).
func errorValid(d *WorkflowEventData) bool {
	e := d.Error
	return e == nil || runes(e.Code, 0, 256) && runes(e.Message, 0, 65536) && runes(e.Node, 0, 256)
}

// eventNoNUL: none of the event's strings that the schema's "^[^\x00]*$"
// covers holds a NUL. Only an escape can write one in valid JSON, so the
// fast decoder asks only when it decoded an escape.
func eventNoNUL(ev *WorkflowEvent) bool {
	d := &ev.Data
	if e := d.Error; e != nil && !noNUL(e.Code, e.Message, e.Node) {
		return false
	}
	return noNUL(ev.ID, ev.Source, ev.Type, ev.Subject, ev.DataContentType,
		d.Workflow.ID, d.Workflow.Name, d.Run.ID, d.Run.Status)
}

// noNUL: none of ss contains U+0000 (the schema's "^[^\\x00]*$"): Postgres
// text and jsonb refuse it, and the event's strings reach both.
func noNUL(ss ...string) bool {
	for _, s := range ss {
		if strings.IndexByte(s, 0) >= 0 {
			return false
		}
	}
	return true
}

func runes(s string, lo, hi int) bool {
	if len(s) < lo {
		return false
	}
	if len(s) <= hi && lo <= 1 {
		return true // bytes ≥ code points, and a non-empty string has one
	}
	n := utf8.RuneCountInString(s)
	return lo <= n && n <= hi
}

// runesOf is runes for a string's text still in bytes.
func runesOf(b []byte, lo, hi int) bool {
	if len(b) < lo {
		return false
	}
	if len(b) <= hi && lo <= 1 {
		return true
	}
	n := utf8.RuneCount(b)
	return lo <= n && n <= hi
}

// tenantIDValid: ^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$
func tenantIDValid[T string | []byte](s T) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-') {
			return false
		}
	}
	return true
}

// contentTypeValid: the schema's datacontenttype pattern, without the
// regular expression for the usual values.
func contentTypeValid(s string) bool {
	switch s {
	case "application/json", "application/cloudevents+json":
		return true
	}
	return contentTypeRE.MatchString(s)
}

// contentTypeRE is the schema's datacontenttype pattern (the validator uses
// Go's regexp too).
var contentTypeRE = regexp.MustCompile(`^application/([A-Za-z0-9.!#$&^_-]+\+)?json(\s*;[^\x00]*)?$`)

// timestampValid checks the schema's timestamp: the pattern
// ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-5][0-9](\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$
// and the date-time format (a real calendar date, hour ≤ 23, minute ≤ 59,
// offset ≤ 23:59).
func timestampValid(b []byte) bool {
	const fixed = len("2006-01-02T15:04:05")
	if len(b) < fixed+1 {
		return false
	}
	for i, c := range b[:fixed] {
		switch i {
		case 4, 7:
			if c != '-' {
				return false
			}
		case 10:
			if c != 'T' {
				return false
			}
		case 13, 16:
			if c != ':' {
				return false
			}
		default:
			if c < '0' || c > '9' {
				return false
			}
		}
	}
	if b[17] > '5' || num2(b[11:]) > 23 || num2(b[14:]) > 59 {
		return false
	}
	if !dateValid(b) {
		return false
	}
	rest := b[fixed:]
	if rest[0] == '.' {
		n := 0
		for n+1 < len(rest) && rest[n+1] >= '0' && rest[n+1] <= '9' {
			n++
		}
		if n < 1 || n > 9 {
			return false
		}
		rest = rest[n+1:]
	}
	if len(rest) == 1 {
		return rest[0] == 'Z'
	}
	if len(rest) != 6 || rest[0] != '+' && rest[0] != '-' || rest[3] != ':' {
		return false
	}
	for _, i := range []int{1, 2, 4, 5} {
		if rest[i] < '0' || rest[i] > '9' {
			return false
		}
	}
	return num2(rest[1:]) <= 23 && num2(rest[4:]) <= 59
}

func num2(b []byte) int { return int(b[0]-'0')*10 + int(b[1]-'0') }

// dateValid: the digits of b's "YYYY-MM-DD" are a real calendar date, as
// Go's time package reads it (years 0000-9999, the Gregorian leap years).
func dateValid(b []byte) bool {
	year := num2(b)*100 + num2(b[2:])
	month, day := num2(b[5:]), num2(b[8:])
	if month < 1 || month > 12 || day < 1 {
		return false
	}
	days := [...]int{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}[month-1]
	if month == 2 && year%4 == 0 && (year%100 != 0 || year%400 == 0) {
		days = 29
	}
	return day <= days
}
