// Hand-written JSON encoders of the records the processor and the dispatcher
// write on every event and every attempt. encoding/json walks each value by
// reflection, which made a delivery's payload cost ~5 µs and a dozen
// allocations (a fifth of the engine's time per event); appending the same
// bytes by hand costs a third or less of the CPU (BenchmarkPayloadAppend
// against BenchmarkPayloadMarshal) and, into a buffer with room, no
// allocation.
//
// Every AppendJSON writes exactly the bytes json.Marshal writes for the same
// value, and fails exactly when it fails: the member order, omitempty and
// omitzero, null for nil pointers, maps and slices, sorted map keys, time.Time
// as RFC 3339 with nanoseconds, and encoding/json's string escaping (HTML
// characters, U+2028 and U+2029, invalid UTF-8 as U+FFFD). The differential
// tests (appendjson_test.go: a table of tricky values and fuzz targets with a
// seed corpus) compare the two byte for byte. A value encoding/json would
// refuse (a time outside the years 0 to 9999 or with a zone offset of a day
// or more) is handed to json.Marshal, for its very error; rare members
// (an aggregate or notice payload's) are encoded by json.Marshal too.
//
// Keep this file in step with types.go: a member added to one of these types
// must be added here (TestAppendJSONKnowsEveryMember fails until the test's
// list of members is updated too).

package schemas

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// AppendJSON appends the JSON encoding of p to dst, the bytes json.Marshal(p)
// writes. On error (a time json.Marshal cannot write) it returns nil and
// json.Marshal's error, like encoding.TextAppender.
func (p *WebhookPayload) AppendJSON(dst []byte) ([]byte, error) {
	b, ok := p.appendJSON(dst, nil)
	if !ok {
		return fallback(dst, *p)
	}
	return b, nil
}

// PayloadParts are members of a payload its sender encoded in advance,
// because many of its payloads share them; a nil part is encoded from the
// payload as AppendJSON does.
type PayloadParts struct {
	// Labels is AppendLabelsJSON's bytes for Data.Labels (the engine: the
	// labels of a run, shared by its alerts and by runs alike).
	Labels []byte
	// TenantRule is AppendTenantRuleJSON's bytes for Data.TenantID and
	// Data.Rule (the engine: constant per rule).
	TenantRule []byte
}

// AppendJSONParts is AppendJSON, writing the parts that are not nil as
// their members. The caller keeps each part in step with the payload's
// fields it stands for.
func (p *WebhookPayload) AppendJSONParts(dst []byte, parts *PayloadParts) ([]byte, error) {
	b, ok := p.appendJSON(dst, parts)
	if !ok {
		return fallback(dst, *p)
	}
	return b, nil
}

// AppendTenantRuleJSON appends a payload's members "tenant_id" and "rule"
// for tenantID and rule as AppendJSON writes them, without the commas
// around them.
func AppendTenantRuleJSON(dst []byte, tenantID string, rule RuleRef) []byte {
	b := append(dst, `"tenant_id":`...)
	b = appendString(b, tenantID)
	b = append(b, `,"rule":{"id":`...)
	b = appendString(b, rule.ID)
	b = append(b, `,"name":`...)
	b = appendString(b, rule.Name)
	return append(b, '}')
}

// AppendLabelsJSON appends labels as a payload's labels are written: an
// object with its keys in byte order; null when labels is nil.
func AppendLabelsJSON(dst []byte, labels map[string]string) []byte {
	return appendStringMap(dst, labels)
}

// appendJSON appends p; parts, when not nil, holds some of its members
// encoded.
func (p *WebhookPayload) appendJSON(b []byte, parts *PayloadParts) ([]byte, bool) {
	w := timeWriter{ok: true}
	b = append(b, `{"type":`...)
	b = appendString(b, p.Type)
	b = append(b, `,"timestamp":`...)
	b = w.append(b, p.Timestamp)
	b = append(b, `,"data":`...)
	b = p.Data.appendJSON(b, &w, parts)
	b = append(b, '}')
	return b, w.ok
}

func (d *PayloadData) appendJSON(b []byte, w *timeWriter, parts *PayloadParts) []byte {
	var labels, tenantRule []byte
	if parts != nil {
		labels, tenantRule = parts.Labels, parts.TenantRule
	}
	b = append(b, `{"alert_id":`...)
	b = appendString(b, d.AlertID)
	b = append(b, ',')
	if tenantRule != nil {
		b = append(b, tenantRule...)
	} else {
		b = AppendTenantRuleJSON(b, d.TenantID, d.Rule)
	}
	b = append(b, `,"event":{"id":`...)
	b = appendString(b, d.Event.ID)
	b = append(b, `,"type":`...)
	b = appendString(b, d.Event.Type)
	b = append(b, `,"occurred_at":`...)
	b = w.append(b, d.Event.OccurredAt)
	b = append(b, `},"workflow":`...)
	b = d.Workflow.appendJSON(b)
	b = append(b, `,"run":`...)
	b = d.Run.appendJSON(b, w)
	b = append(b, `,"threshold_ms":`...)
	b = appendInt64Ptr(b, d.ThresholdMS)
	b = append(b, `,"error":`...)
	if d.Error == nil {
		b = append(b, "null"...)
	} else {
		b = d.Error.appendJSON(b)
	}
	b = append(b, `,"labels":`...)
	if labels != nil {
		b = append(b, labels...)
	} else {
		b = appendStringMap(b, d.Labels)
	}
	if d.Aggregate != nil {
		b = append(b, `,"aggregate":`...)
		b = appendMarshal(b, d.Aggregate, &w.ok)
	}
	if d.Notice != nil {
		b = append(b, `,"notice":`...)
		b = appendMarshal(b, d.Notice, &w.ok)
	}
	return append(b, '}')
}

func (w *Workflow) appendJSON(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, w.ID)
	b = append(b, `,"name":`...)
	b = appendString(b, w.Name)
	return append(b, '}')
}

func (r *PayloadRun) appendJSON(b []byte, w *timeWriter) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, r.ID)
	if r.Status != "" {
		b = append(b, `,"status":`...)
		b = appendString(b, r.Status)
	}
	if r.StartedAt != nil {
		b = append(b, `,"started_at":`...)
		b = w.append(b, *r.StartedAt)
	}
	if r.FinishedAt != nil {
		b = append(b, `,"finished_at":`...)
		b = w.append(b, *r.FinishedAt)
	}
	if r.DurationMS != nil {
		b = append(b, `,"duration_ms":`...)
		b = strconv.AppendInt(b, *r.DurationMS, 10)
	}
	return append(b, '}')
}

func (e *PayloadError) appendJSON(b []byte) []byte {
	b = append(b, '{')
	if e.Code != "" {
		b = append(b, `"code":`...)
		b = appendString(b, e.Code)
	}
	if e.Message != "" {
		if e.Code != "" {
			b = append(b, ',')
		}
		b = append(b, `"message":`...)
		b = appendString(b, e.Message)
	}
	return append(b, '}')
}

// AppendJSON appends the JSON encoding of d to dst, the bytes json.Marshal(d)
// writes, provided d.Payload is compact JSON as json.Marshal or
// WebhookPayload.AppendJSON write it: Payload is copied as it is, where
// json.Marshal would compact it again (the identity for such a payload, at
// a sixth of the processor's encoding time). On error it returns nil and
// json.Marshal's error.
func (d *DeliveryRecord) AppendJSON(dst []byte) ([]byte, error) {
	if d.Payload != nil && len(d.Payload) == 0 {
		return fallback(dst, *d) // json.Marshal refuses an empty raw message
	}
	ok := true
	b := append(dst, `{"alert_id":`...)
	b = appendString(b, d.AlertID)
	b = append(b, `,"tenant_id":`...)
	b = appendString(b, d.TenantID)
	b = append(b, `,"rule_id":`...)
	b = appendString(b, d.RuleID)
	b = append(b, `,"endpoint_id":`...)
	b = appendString(b, d.EndpointID)
	b = append(b, `,"event_type":`...)
	b = appendString(b, d.EventType)
	b = append(b, `,"max_attempts":`...)
	b = strconv.AppendInt(b, int64(d.MaxAttempts), 10)
	if d.RuleVersion != 0 {
		b = append(b, `,"rule_version":`...)
		b = strconv.AppendInt(b, d.RuleVersion, 10)
	}
	if d.Severity != "" {
		b = append(b, `,"severity":`...)
		b = appendString(b, d.Severity)
	}
	b = append(b, `,"created_at":`...)
	b = appendTime(b, d.CreatedAt, &ok)
	b = append(b, `,"payload":`...)
	if d.Payload == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, d.Payload...)
	}
	b = append(b, '}')
	if !ok {
		return fallback(dst, *d)
	}
	return b, nil
}

// AppendJSON appends the JSON encoding of s to dst, the bytes json.Marshal(s)
// writes. On error it returns nil and json.Marshal's error.
func (s *RunState) AppendJSON(dst []byte) ([]byte, error) {
	ok := true
	b := append(dst, `{"tenant_id":`...)
	b = appendString(b, s.TenantID)
	b = append(b, `,"run_id":`...)
	b = appendString(b, s.RunID)
	b = append(b, `,"workflow":`...)
	b = s.Workflow.appendJSON(b)
	if s.Attempt != 0 {
		b = append(b, `,"attempt":`...)
		b = strconv.AppendInt(b, int64(s.Attempt), 10)
	}
	if len(s.Labels) != 0 {
		b = append(b, `,"labels":`...)
		b = appendStringMap(b, s.Labels)
	}
	if s.StartEventID != "" {
		b = append(b, `,"start_event_id":`...)
		b = appendString(b, s.StartEventID)
	}
	if s.StartedAt != nil {
		b = append(b, `,"started_at":`...)
		b = appendTime(b, *s.StartedAt, &ok)
	}
	if s.FinishedAt != nil {
		b = append(b, `,"finished_at":`...)
		b = appendTime(b, *s.FinishedAt, &ok)
	}
	b = append(b, `,"seen":`...)
	b = appendStrings(b, s.Seen)
	if len(s.Fired) != 0 {
		b = append(b, `,"fired":`...)
		b = appendStrings(b, s.Fired)
	}
	b = append(b, `,"last_event_at":`...)
	b = appendTime(b, s.LastEventAt, &ok)
	b = append(b, '}')
	if !ok {
		return fallback(dst, *s)
	}
	return b, nil
}

// AppendJSON appends the JSON encoding of in to dst, the bytes
// json.Marshal(in) writes. On error it returns nil and json.Marshal's error.
func (in *AggregateInput) AppendJSON(dst []byte) ([]byte, error) {
	ok := true
	b := append(dst, `{"kind":`...)
	b = appendString(b, in.Kind)
	if in.TenantID != "" {
		b = append(b, `,"tenant_id":`...)
		b = appendString(b, in.TenantID)
	}
	if in.RuleID != "" {
		b = append(b, `,"rule_id":`...)
		b = appendString(b, in.RuleID)
	}
	if in.Spec != "" {
		b = append(b, `,"spec":`...)
		b = appendString(b, in.Spec)
	}
	if len(in.Group) != 0 {
		b = append(b, `,"group":`...)
		b = appendStrings(b, in.Group)
	}
	if in.Outcome != "" {
		b = append(b, `,"outcome":`...)
		b = appendString(b, in.Outcome)
	}
	if !in.At.IsZero() {
		b = append(b, `,"at":`...)
		b = appendTime(b, in.At, &ok)
	}
	if e := in.Event; e != nil {
		b = append(b, `,"event":{"id":`...)
		b = appendString(b, e.ID)
		b = append(b, `,"type":`...)
		b = appendString(b, e.Type)
		b = append(b, `,"run_id":`...)
		b = appendString(b, e.RunID)
		b = append(b, `,"workflow":`...)
		b = e.Workflow.appendJSON(b)
		if e.ErrorCode != "" {
			b = append(b, `,"error_code":`...)
			b = appendString(b, e.ErrorCode)
		}
		if !e.At.IsZero() {
			b = append(b, `,"at":`...)
			b = appendTime(b, e.At, &ok)
		}
		b = append(b, '}')
	}
	if in.SourcePartition != nil {
		b = append(b, `,"source_partition":`...)
		b = strconv.AppendInt(b, int64(*in.SourcePartition), 10)
	}
	if !in.Watermark.IsZero() {
		b = append(b, `,"watermark":`...)
		b = appendTime(b, in.Watermark, &ok)
	}
	b = append(b, '}')
	if !ok {
		return fallback(dst, *in)
	}
	return b, nil
}

// AppendJSON appends the JSON encoding of r to dst, the bytes json.Marshal(r)
// writes. On error it returns nil and json.Marshal's error.
func (r *ResultRecord) AppendJSON(dst []byte) ([]byte, error) {
	ok := true
	b := append(dst, `{"alert_id":`...)
	b = appendString(b, r.AlertID)
	b = append(b, `,"delivery_id":`...)
	b = appendString(b, r.DeliveryID)
	b = append(b, `,"tenant_id":`...)
	b = appendString(b, r.TenantID)
	b = append(b, `,"rule_id":`...)
	b = appendString(b, r.RuleID)
	b = append(b, `,"endpoint_id":`...)
	b = appendString(b, r.EndpointID)
	b = append(b, `,"attempt":`...)
	b = strconv.AppendInt(b, int64(r.Attempt), 10)
	if r.RuleVersion != 0 {
		b = append(b, `,"rule_version":`...)
		b = strconv.AppendInt(b, r.RuleVersion, 10)
	}
	b = append(b, `,"outcome":`...)
	b = appendString(b, r.Outcome)
	if r.StatusCode != 0 {
		b = append(b, `,"status_code":`...)
		b = strconv.AppendInt(b, int64(r.StatusCode), 10)
	}
	b = append(b, `,"latency_ms":`...)
	b = strconv.AppendInt(b, r.LatencyMS, 10)
	if r.ErrorClass != "" {
		b = append(b, `,"error_class":`...)
		b = appendString(b, r.ErrorClass)
	}
	if r.Error != "" {
		b = append(b, `,"error":`...)
		b = appendString(b, r.Error)
	}
	if r.ResponseExcerpt != "" {
		b = append(b, `,"response_excerpt":`...)
		b = appendString(b, r.ResponseExcerpt)
	}
	b = append(b, `,"attempted_at":`...)
	b = appendTime(b, r.AttemptedAt, &ok)
	b = append(b, '}')
	if !ok {
		return fallback(dst, *r)
	}
	return b, nil
}

// AppendJSON appends the JSON encoding of r to dst, the bytes json.Marshal(r)
// writes. On error it returns nil and json.Marshal's error.
func (r *RuleErrorRecord) AppendJSON(dst []byte) ([]byte, error) {
	ok := true
	b := append(dst, `{"tenant_id":`...)
	b = appendString(b, r.TenantID)
	b = append(b, `,"rule_id":`...)
	b = appendString(b, r.RuleID)
	b = append(b, `,"rule_version":`...)
	b = strconv.AppendInt(b, r.RuleVersion, 10)
	if r.EventID != "" {
		b = append(b, `,"event_id":`...)
		b = appendString(b, r.EventID)
	}
	b = append(b, `,"error":`...)
	b = appendString(b, r.Error)
	b = append(b, `,"errors":`...)
	b = strconv.AppendInt(b, r.Errors, 10)
	b = append(b, `,"at":`...)
	b = appendTime(b, r.At, &ok)
	b = append(b, '}')
	if !ok {
		return fallback(dst, *r)
	}
	return b, nil
}

// fallback appends json.Marshal(&v) to dst, or returns nil and its error.
// It takes v by value so that the appenders' receivers do not escape to the
// heap on the common path (json.Marshal's argument always does).
func fallback[T any](dst []byte, v T) ([]byte, error) {
	b, err := json.Marshal(&v)
	if err != nil {
		return nil, err
	}
	return append(dst, b...), nil
}

// appendMarshal appends json.Marshal(v), clearing *ok if it fails (the
// caller then hands the whole value to fallback, for json.Marshal's error).
func appendMarshal(b []byte, v any, ok *bool) []byte {
	m, err := json.Marshal(v)
	if err != nil {
		*ok = false
		return b
	}
	return append(b, m...)
}

// appendTime appends t as time.Time.MarshalJSON writes it: RFC 3339 with
// nanoseconds (trailing zeros dropped), quoted. It clears *ok where
// MarshalJSON fails: a year outside [0,9999], or a zone offset of 24 hours
// or more.
func appendTime(b []byte, t time.Time, ok *bool) []byte {
	if t.Location() == time.UTC { // the engine's times: no zone to look up
		sec := t.Unix()
		if sec < minZuluSec || sec >= maxZuluSec {
			*ok = false
			return b
		}
		return appendZuluTime(b, sec, t.Nanosecond())
	}
	if y := t.Year(); y < 0 || y > 9999 {
		*ok = false
		return b
	}
	_, off := t.Zone()
	if off == 0 {
		return appendZuluTime(b, t.Unix(), t.Nanosecond())
	}
	zone := off / 60 // minutes, truncated as the formatter does
	if zone < 0 {
		zone = -zone
	}
	if zone/60 >= 24 {
		*ok = false
		return b
	}
	// Formatted aside: the formatter writes nine digits of nanoseconds
	// before it trims their zeros, which would grow a buffer that has room
	// for the result only.
	var buf [len(time.RFC3339Nano) + len(`""`)]byte
	tb := append(buf[:0], '"')
	tb = t.AppendFormat(tb, time.RFC3339Nano)
	tb = append(tb, '"')
	return append(b, tb...)
}

// The Unix seconds of the years a time in JSON may have, [0,9999] in UTC.
const (
	minZuluSec = -62167219200 // 0000-01-01T00:00:00Z
	maxZuluSec = 253402300800 // 10000-01-01T00:00:00Z
)

// appendZuluTime appends the time sec Unix seconds and nsec nanoseconds,
// in [minZuluSec, maxZuluSec), as appendTime writes it in a zone of offset
// 0: "YYYY-MM-DDThh:mm:ss[.fraction]Z", the fraction's trailing zeros
// dropped, quoted. The date is computed from the day number (the civil
// calendar algorithm of H. Hinnant's "chrono-compatible low-level date
// algorithms") and written digit pair by digit pair: a fifth of the general
// formatter's work; the times of the engine's records are all in UTC.
// TestAppendZuluTimeIsMarshalJSON and FuzzAppendTimeIsJSONMarshal hold it
// to time.Time.MarshalJSON.
func appendZuluTime(b []byte, sec int64, nsec int) []byte {
	days := sec / 86400
	if sec%86400 < 0 {
		days--
	}
	sod := int(sec - days*86400)
	z := days + 719468 // days since 0000-03-01
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097                                  // [0, 146096]
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365 // [0, 399]
	doy := doe - (365*yoe + yoe/4 - yoe/100)               // [0, 365], from March 1
	mp := (5*doy + 2) / 153                                // [0, 11], from March
	day := int(doy - (153*mp+2)/5 + 1)
	month := int(mp + 3)
	if month > 12 {
		month -= 12
	}
	year := int(yoe + era*400)
	if month <= 2 {
		year++
	}
	var buf [len(`"2006-01-02T15:04:05.999999999Z"`)]byte
	buf[0] = '"'
	putPair(buf[1:], year/100)
	putPair(buf[3:], year%100)
	buf[5] = '-'
	putPair(buf[6:], month)
	buf[8] = '-'
	putPair(buf[9:], day)
	buf[11] = 'T'
	putPair(buf[12:], sod/3600)
	buf[14] = ':'
	putPair(buf[15:], sod/60%60)
	buf[17] = ':'
	putPair(buf[18:], sod%60)
	n := 20
	if nsec != 0 {
		// The fraction without its trailing zeros: digits digits of v.
		v, digits := nsec, 9
		switch {
		case v%1_000_000 == 0: // milliseconds, as most clocks stamp
			v, digits = v/1_000_000, 3
		case v%1000 == 0:
			v, digits = v/1000, 6
		}
		for v%10 == 0 {
			v, digits = v/10, digits-1
		}
		buf[20] = '.'
		n = 21 + digits
		for i := n - 1; i > 20; i-- {
			buf[i] = byte('0' + v%10)
			v /= 10
		}
	}
	buf[n] = 'Z'
	buf[n+1] = '"'
	return append(b, buf[:n+2]...)
}

// putPair writes v, in [0,99], as two decimal digits.
func putPair(b []byte, v int) {
	const pairs = "00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899"
	b[0], b[1] = pairs[2*v], pairs[2*v+1]
}

// timeWriter appends times as appendTime does, clearing ok where it fails,
// and copies a time equal to the last one it wrote from where it wrote it:
// a payload's timestamp, its event's occurred_at and often its run's
// finished_at are the event's time.
type timeWriter struct {
	ok         bool
	last       time.Time
	start, end int // where last is written in the buffer
}

func (w *timeWriter) append(b []byte, t time.Time) []byte {
	// The same instant in the same location: the same text.
	if w.end > 0 && t.Equal(w.last) && t.Location() == w.last.Location() {
		return append(b, b[w.start:w.end]...)
	}
	start := len(b)
	b = appendTime(b, t, &w.ok)
	if len(b) > start {
		w.last, w.start, w.end = t, start, len(b)
	}
	return b
}

func appendInt64Ptr(b []byte, n *int64) []byte {
	if n == nil {
		return append(b, "null"...)
	}
	return strconv.AppendInt(b, *n, 10)
}

// appendStrings appends ss as a JSON array of strings; null when ss is nil.
func appendStrings(b []byte, ss []string) []byte {
	if ss == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s)
	}
	return append(b, ']')
}

// appendStringMap appends m as a JSON object with its keys in byte order, as
// encoding/json sorts them; null when m is nil.
func appendStringMap(b []byte, m map[string]string) []byte {
	if m == nil {
		return append(b, "null"...)
	}
	var buf [16][2]string // labels are few: sorted on the stack, with their values
	kvs := buf[:0]
	for k, v := range m {
		kvs = append(kvs, [2]string{k, v})
	}
	if len(kvs) > 1 {
		slices.SortFunc(kvs, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	}
	b = append(b, '{')
	for i, kv := range kvs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, kv[0])
		b = append(b, ':')
		b = appendString(b, kv[1])
	}
	return append(b, '}')
}

const hexDigits = "0123456789abcdef"

// htmlSafe holds the ASCII bytes encoding/json writes as they are, with
// HTML escaping on (its default): not control characters, '"', '\\', '<',
// '>' or '&'.
var htmlSafe = func() (set [utf8.RuneSelf]bool) {
	for c := ' '; c < utf8.RuneSelf; c++ {
		switch c {
		case '"', '\\', '<', '>', '&':
		default:
			set[c] = true
		}
	}
	return set
}()

// appendString appends s as a JSON string exactly as encoding/json writes
// it: \" \\ \b \f \n \r \t in short form, other control characters and
// < > & as \u00XX, U+2028 and U+2029 as \u2028 and \u2029, and each byte of
// invalid UTF-8 as \ufffd.
func appendString(b []byte, s string) []byte {
	if plainString(s) { // most strings: ids, names, types
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if i+8 <= len(s) {
			if j := safeRun(s, i); j > i {
				i = j
				continue
			}
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if htmlSafe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// plainString says whether every byte of s is in htmlSafe (encoding/json
// writes s as it is, quoted), 8 bytes per test (plain8): a string of 4 to
// 7 bytes is tested as its first 4 and last 4 bytes (overlapping), one of
// 2 or 3 as its first 2 and last 2, padded with safe bytes; a longer one 8
// bytes at a time, the last test over its last 8 bytes (overlapping ones
// already tested) when it is not a multiple of 8 long.
func plainString(s string) bool {
	const pad = 0x6161616161616161 // "aaaaaaaa"
	n := len(s)
	switch {
	case n >= 8:
		for i := 0; i+8 <= n; i += 8 {
			if !plain8(load8(s[i : i+8])) {
				return false
			}
		}
		return n%8 == 0 || plain8(load8(s[n-8:]))
	case n >= 4:
		return plain8(load4(s[:4]) | load4(s[n-4:])<<32)
	case n >= 2:
		return plain8(load2(s[:2]) | load2(s[n-2:])<<16 | pad&^0xffffffff)
	case n == 1:
		return plain8(uint64(s[0]) | pad&^0xff)
	}
	return true
}

func load8(t string) uint64 {
	_ = t[7]
	return uint64(t[0]) | uint64(t[1])<<8 | uint64(t[2])<<16 | uint64(t[3])<<24 |
		uint64(t[4])<<32 | uint64(t[5])<<40 | uint64(t[6])<<48 | uint64(t[7])<<56
}

func load4(t string) uint64 {
	_ = t[3]
	return uint64(t[0]) | uint64(t[1])<<8 | uint64(t[2])<<16 | uint64(t[3])<<24
}

func load2(t string) uint64 {
	_ = t[1]
	return uint64(t[0]) | uint64(t[1])<<8
}

// plain8 says whether each of the 8 bytes of x is in htmlSafe. SWAR: each
// term below is nonzero exactly when some byte is not ASCII, below 0x20,
// or one of '"' and '&' (the bytes that bit 2 set makes '&'), '<' and '>'
// (those that bit 1 set makes '>'), '\\'.
func plain8(x uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	bad := x & highs
	bad |= (x - ones*0x20) & ^x & highs
	y := (x | ones*0x04) ^ (ones * '&')
	bad |= (y - ones) & ^y & highs
	y = (x | ones*0x02) ^ (ones * '>')
	bad |= (y - ones) & ^y & highs
	y = x ^ (ones * '\\')
	bad |= (y - ones) & ^y & highs
	return bad == 0
}

// safeRun returns the end of the run of bytes in htmlSafe that starts at i,
// tested 8 bytes at a time (plain8): i itself when fewer than 8 bytes are
// left or the next 8 hold one that is not safe (a control character, '"',
// '\\', '<', '>', '&' or not ASCII). So the identifiers and names that make
// most of a record are copied 8 bytes per test.
func safeRun(s string, i int) int {
	for ; i+8 <= len(s) && plain8(load8(s[i:i+8])); i += 8 {
	}
	return i
}
