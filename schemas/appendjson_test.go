package schemas

import (
	"encoding/binary"
	"encoding/json"
	"math/rand/v2"
	"os"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"
)

// appender is a record with a hand-written encoder (appendjson.go).
type appender interface {
	AppendJSON(dst []byte) ([]byte, error)
}

// sameAsMarshal fails t unless v.AppendJSON writes what json.Marshal(v)
// writes, after what dst held already, or fails with json.Marshal's error
// (and returns nil) where json.Marshal fails.
func sameAsMarshal(t testing.TB, name string, v appender) {
	t.Helper()
	want, wantErr := json.Marshal(v)
	dst := []byte("prefix ")
	got, err := v.AppendJSON(dst)
	switch {
	case wantErr != nil:
		if err == nil || err.Error() != wantErr.Error() || got != nil {
			t.Fatalf("%s: AppendJSON = %q, %v; json.Marshal failed with %v", name, got, err, wantErr)
		}
	case err != nil:
		t.Fatalf("%s: AppendJSON failed with %v; json.Marshal = %s", name, err, want)
	case string(got) != "prefix "+string(want):
		t.Fatalf("%s:\nAppendJSON:   %q\njson.Marshal: %q", name, got, "prefix "+string(want))
	}
	if p, ok := v.(*WebhookPayload); ok { // and with its parts encoded aside, each and both
		labels := AppendLabelsJSON(nil, p.Data.Labels)
		tenantRule := AppendTenantRuleJSON(nil, p.Data.TenantID, p.Data.Rule)
		for _, parts := range []PayloadParts{{Labels: labels}, {TenantRule: tenantRule}, {Labels: labels, TenantRule: tenantRule}} {
			got, err := p.AppendJSONParts([]byte("prefix "), &parts)
			if (err == nil) != (wantErr == nil) || (err == nil && string(got) != "prefix "+string(want)) {
				t.Fatalf("%s:\nAppendJSONParts: %q, %v\njson.Marshal:    %q, %v", name, got, err, "prefix "+string(want), wantErr)
			}
		}
	}
}

// trickyStrings are the strings encoding/json escapes in its own ways.
var trickyStrings = func() []string {
	var ascii strings.Builder
	for c := range utf8.RuneSelf {
		ascii.WriteByte(byte(c))
	}
	return []string{
		"", "acme", ascii.String(),
		`<b>"ETL" & co</b>`, `back\slash`, "line\nbreak\r\ttab\b\f\x00\x1f\x7f",
		"\u2028 \u2029 \u2027 \u202a", "ünïcode ✓ 日本 \U0001F600 \U0010FFFF",
		"\xff", "a\xffb", "\xe2\x80", "\xe2\x80\xa8\xe2", "\xed\xa0\x80", "\xc0\xaf", "\xf4\x90\x80\x80",
		"\uFFFD", strings.Repeat("x", 300) + "<",
	}
}()

// trickyTimes are times json.Marshal writes in all its ways, and refuses.
var trickyTimes = []time.Time{
	{},
	time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC),
	time.Date(2026, 11, 28, 10, 0, 0, 123, time.UTC),
	time.Date(2026, 11, 28, 10, 0, 0, 456_000_000, time.UTC),
	time.Date(2026, 11, 28, 10, 0, 0, 999_999_999, time.UTC),
	time.Date(2026, 11, 28, 10, 0, 0, 1, time.FixedZone("IST", 5*3600+1800)),
	time.Date(2026, 11, 28, 10, 0, 0, 0, time.FixedZone("", -30)), // offset in seconds only
	time.Date(2026, 11, 28, 10, 0, 0, 0, time.FixedZone("", -(23*3600+59*60))),
	time.Date(2026, 11, 28, 10, 0, 0, 0, time.FixedZone("", 24*3600)),   // refused
	time.Date(2026, 11, 28, 10, 0, 0, 0, time.FixedZone("", -100*3600)), // refused
	time.Date(2026, 11, 28, 10, 0, 0, 0, time.FixedZone("ZERO", 0)),
	time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC),
	time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
	time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), // refused
	time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),    // refused
	time.Date(9999, 12, 31, 23, 0, 0, 0, time.FixedZone("", -3600)),
	time.Now(), // with a monotonic reading
}

// failedPayload is the typical payload of a per-event alert on a failed run.
func failedPayload() *WebhookPayload {
	started := time.Date(2026, 11, 28, 9, 58, 35, 912_000_000, time.UTC)
	finished := time.Date(2026, 11, 28, 10, 0, 0, 123_000_000, time.UTC)
	ms := int64(84211)
	return &WebhookPayload{
		Type: TypeRunFailed, Timestamp: finished,
		Data: PayloadData{
			AlertID: "alrt_ca978112ca1bbdcafac231b39a23dc4d", TenantID: "acme",
			Rule:     RuleRef{ID: "rul_01JD5K", Name: "ETL failures"},
			Event:    EventRef{ID: "01JDQ8M3Z6X4W2V9T7R5P3N1K0", Type: TypeRunFailed, OccurredAt: finished},
			Workflow: Workflow{ID: "wf_9", Name: "nightly-etl"},
			Run:      PayloadRun{ID: "run_123", Status: "failed", StartedAt: &started, FinishedAt: &finished, DurationMS: &ms},
			Error:    &PayloadError{Code: "NODE_ERRORED", Message: "node extract failed: connection reset"},
			Labels:   map[string]string{"env": "prod", "team": "data", "region": "eu-west-1"},
		},
	}
}

func typicalDelivery(tb testing.TB) *DeliveryRecord {
	body, err := failedPayload().AppendJSON(nil)
	if err != nil {
		tb.Fatal(err)
	}
	return &DeliveryRecord{
		AlertID: "alrt_ca978112ca1bbdcafac231b39a23dc4d", TenantID: "acme", RuleID: "rul_01JD5K", EndpointID: "whk_01JD5P",
		EventType: TypeRunFailed, MaxAttempts: 8, RuleVersion: 3, Severity: "error",
		CreatedAt: time.Date(2026, 11, 28, 10, 0, 0, 123_000_000, time.UTC), Payload: body,
	}
}

func typicalRunState() *RunState {
	started := time.Date(2026, 11, 28, 9, 58, 35, 912_000_000, time.UTC)
	return &RunState{
		TenantID: "acme", RunID: "run_123", Workflow: Workflow{ID: "wf_9", Name: "nightly-etl"}, Attempt: 1,
		Labels: map[string]string{"env": "prod", "team": "data"}, StartEventID: "01JDQ7Z1A2B3C4D5E6F7G8H9J0",
		StartedAt: &started, Seen: []string{TypeRunStarted}, Fired: []string{"rul_01JD5M"}, LastEventAt: started,
	}
}

func typicalResult() *ResultRecord {
	return &ResultRecord{
		AlertID: "alrt_ca978112ca1bbdcafac231b39a23dc4d", DeliveryID: "dlv_ca978112ca1bbdcafac231b39a23dc4d_1", TenantID: "acme",
		RuleID: "rul_01JD5K", EndpointID: "whk_01JD5P", Attempt: 1, RuleVersion: 3, Outcome: OutcomeDelivered, StatusCode: 200,
		LatencyMS: 12, AttemptedAt: time.Date(2026, 11, 28, 10, 0, 1, 234_567_000, time.UTC),
	}
}

func typicalInput() *AggregateInput {
	at := time.Date(2026, 11, 28, 10, 0, 0, 123_000_000, time.UTC)
	return &AggregateInput{
		Kind: AggregateInputKindInput, TenantID: "acme", RuleID: "rul_count", Spec: "count/300000/5", Group: []string{"nightly-etl", "prod"},
		Outcome: "matched", At: at,
		Event: &AggregateEvent{ID: "01JDQ8M3Z6X4W2V9T7R5P3N1K0", Type: TypeRunFailed, RunID: "run_123", Workflow: Workflow{ID: "wf_9", Name: "nightly-etl"}, ErrorCode: "NODE_ERRORED"},
	}
}

// Every encoder writes json.Marshal's bytes for strings, times, maps,
// slices and pointers in each of the forms encoding/json has for them.
func TestAppendJSONIsJSONMarshal(t *testing.T) {
	t.Parallel()
	threshold, ms := int64(60000), int64(-1)
	partition := int32(-7)
	ratio, minRuns, count := 0.95, 10, 5
	matched := int64(7)
	ruleID, reason := "rul_<1>", ResolveReasonConditionFalse
	t.Run("strings", func(t *testing.T) {
		t.Parallel()
		for _, s := range trickyStrings {
			sameAsMarshal(t, "workflow "+s, &RunState{Workflow: Workflow{ID: s, Name: s}, Seen: []string{s}})
			sameAsMarshal(t, "labels "+s, &RunState{Labels: map[string]string{s: s, s + "x": "", "\x00" + s: s}})
			sameAsMarshal(t, "result "+s, &ResultRecord{Error: s, ResponseExcerpt: s, ErrorClass: s, Outcome: s})
			sameAsMarshal(t, "payload "+s, &WebhookPayload{Type: s, Data: PayloadData{TenantID: s, Rule: RuleRef{ID: s, Name: s + "x"}, Error: &PayloadError{Message: s}}})
		}
	})
	t.Run("times", func(t *testing.T) {
		t.Parallel()
		for _, ts := range trickyTimes {
			name := ts.String()
			sameAsMarshal(t, "payload "+name, &WebhookPayload{Timestamp: ts})
			sameAsMarshal(t, "payload event "+name, &WebhookPayload{Data: PayloadData{Event: EventRef{OccurredAt: ts}}})
			sameAsMarshal(t, "payload run "+name, &WebhookPayload{Data: PayloadData{Run: PayloadRun{StartedAt: &ts, FinishedAt: &ts}}})
			sameAsMarshal(t, "delivery "+name, &DeliveryRecord{CreatedAt: ts})
			sameAsMarshal(t, "run state "+name, &RunState{StartedAt: &ts, FinishedAt: &ts, LastEventAt: ts})
			sameAsMarshal(t, "input "+name, &AggregateInput{At: ts, Watermark: ts, Event: &AggregateEvent{At: ts}})
			sameAsMarshal(t, "result "+name, &ResultRecord{AttemptedAt: ts})
			sameAsMarshal(t, "rule error "+name, &RuleErrorRecord{At: ts})
			sameAsMarshal(t, "aggregate "+name, &WebhookPayload{Data: PayloadData{Aggregate: &PayloadAggregate{FiringSince: ts, ResolvedAt: &ts}}})
			sameAsMarshal(t, "notice "+name, &WebhookPayload{Data: PayloadData{Notice: &PayloadNotice{CreatedAt: ts}}})
		}
	})
	for _, tc := range []struct {
		name string
		v    appender
	}{
		{"zero payload", &WebhookPayload{}},
		{"failed payload", failedPayload()},
		{"duration payload", &WebhookPayload{Type: TypeRunDurationExceeded, Data: PayloadData{
			ThresholdMS: &threshold, Run: PayloadRun{ID: "r", Status: "running", DurationMS: &ms}, Labels: map[string]string{},
		}}},
		{"empty error", &WebhookPayload{Data: PayloadData{Error: &PayloadError{}}}},
		{"error message only", &WebhookPayload{Data: PayloadData{Error: &PayloadError{Message: "m"}}}},
		{"error code only", &WebhookPayload{Data: PayloadData{Error: &PayloadError{Code: "c"}}}},
		{"many labels", &WebhookPayload{Data: PayloadData{Labels: labelsMap(40)}}},
		{"firing", &WebhookPayload{Type: TypeAlertFiring, Data: PayloadData{Aggregate: &PayloadAggregate{
			IncidentID: "inc", Kind: RuleKindRate, State: AggregateStateFiring, Group: map[string]string{"b": "<", "a": "&"},
			WindowMS: 300000, SuccessRatioBelow: &ratio, MinRuns: &minRuns, Value: PayloadAggregateValue{Matched: &matched, Ratio: &ratio},
			ResolveReason: &reason, Threshold: &count,
		}}}},
		{"notice", &WebhookPayload{Type: TypeTenantNotice, Data: PayloadData{Notice: &PayloadNotice{ID: "n", Kind: "rule_disabled", RuleID: &ruleID}}}},
		{"zero delivery", &DeliveryRecord{}},
		{"typical delivery", typicalDelivery(t)},
		{"delivery without payload", &DeliveryRecord{AlertID: "a", RuleVersion: -1, Severity: "critical"}},
		{"delivery with an empty payload", &DeliveryRecord{Payload: json.RawMessage{}}}, // refused
		{"delivery with an HTML payload", &DeliveryRecord{Payload: json.RawMessage(`{"a":"\u003c\u0026\u2028"}`)}},
		{"zero run state", &RunState{}},
		{"typical run state", typicalRunState()},
		{"run state with empty slices and map", &RunState{Seen: []string{}, Fired: []string{}, Labels: map[string]string{}}},
		{"run state with negative attempt", &RunState{Attempt: -2, Seen: []string{"", "a"}}},
		{"zero input", &AggregateInput{}},
		{"typical input", typicalInput()},
		{"watermark", &AggregateInput{Kind: AggregateInputKindWatermark, SourcePartition: &partition, Watermark: time.Unix(1_764_324_000, 5).UTC()}},
		{"input with empty group", &AggregateInput{Group: []string{}, Event: &AggregateEvent{}}},
		{"zero result", &ResultRecord{}},
		{"typical result", typicalResult()},
		{"failed result", &ResultRecord{Outcome: OutcomeRetry, StatusCode: 503, LatencyMS: -3, ErrorClass: "http_5xx", Error: "503 Service Unavailable", ResponseExcerpt: "<html>oops</html>"}},
		{"zero rule error", &RuleErrorRecord{}},
		{"rule error", &RuleErrorRecord{TenantID: "t", RuleID: "r", RuleVersion: 4, EventID: "e", Error: "budget exceeded", Errors: 12}},
	} {
		sameAsMarshal(t, tc.name, tc.v)
	}
}

func labelsMap(n int) map[string]string {
	m := make(map[string]string, n)
	for i := range n {
		k := string(rune('a'+i%26)) + strings.Repeat("é", i/26) + string(rune('<'+i%3))
		m[k] = k
	}
	m["Z"], m["é"], m[""] = "upper", "accent", "empty"
	return m
}

// The hand-written encoders write these members of these types, in this
// order, with these options: a member added to a type in types.go fails
// this test until it is added to appendjson.go and here (the differential
// tests would miss an omitempty member the generators do not set).
func TestAppendJSONKnowsEveryMember(t *testing.T) {
	t.Parallel()
	for typ, want := range map[reflect.Type]string{
		reflect.TypeFor[WebhookPayload]():  "type timestamp data",
		reflect.TypeFor[PayloadData]():     "alert_id tenant_id rule event workflow run threshold_ms error labels aggregate,omitempty notice,omitempty",
		reflect.TypeFor[RuleRef]():         "id name",
		reflect.TypeFor[EventRef]():        "id type occurred_at",
		reflect.TypeFor[Workflow]():        "id name",
		reflect.TypeFor[PayloadRun]():      "id status,omitempty started_at,omitempty finished_at,omitempty duration_ms,omitempty",
		reflect.TypeFor[PayloadError]():    "code,omitempty message,omitempty",
		reflect.TypeFor[DeliveryRecord]():  "alert_id tenant_id rule_id endpoint_id event_type max_attempts rule_version,omitempty severity,omitempty created_at payload",
		reflect.TypeFor[RunState]():        "tenant_id run_id workflow attempt,omitempty labels,omitempty start_event_id,omitempty started_at,omitempty finished_at,omitempty seen fired,omitempty last_event_at",
		reflect.TypeFor[AggregateInput]():  "kind tenant_id,omitempty rule_id,omitempty spec,omitempty group,omitempty outcome,omitempty at,omitzero event,omitempty source_partition,omitempty watermark,omitzero",
		reflect.TypeFor[AggregateEvent]():  "id type run_id workflow error_code,omitempty at,omitzero",
		reflect.TypeFor[ResultRecord]():    "alert_id delivery_id tenant_id rule_id endpoint_id attempt rule_version,omitempty outcome status_code,omitempty latency_ms error_class,omitempty error,omitempty response_excerpt,omitempty attempted_at",
		reflect.TypeFor[RuleErrorRecord](): "tenant_id rule_id rule_version event_id,omitempty error errors at",
	} {
		tags := make([]string, typ.NumField())
		for i := range typ.NumField() {
			tags[i] = typ.Field(i).Tag.Get("json")
		}
		if got := strings.Join(tags, " "); got != want {
			t.Errorf("%s has members %q; appendjson.go writes %q", typ.Name(), got, want)
		}
	}
}

// The example documents decode into records that encode as json.Marshal
// encodes them.
func TestAppendJSONOfExamples(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		file string
		v    appender
	}{
		{"webhook-payload-v1.json", &WebhookPayload{}},
		{"webhook-payload-v1.duration-exceeded.json", &WebhookPayload{}},
		{"webhook-payload-v1.succeeded.json", &WebhookPayload{}},
		{"webhook-payload-v1.firing.json", &WebhookPayload{}},
		{"webhook-payload-v1.resolved.json", &WebhookPayload{}},
		{"webhook-payload-v1.notice.json", &WebhookPayload{}},
		{"webhook-payload-v1.test.json", &WebhookPayload{}},
		{"run-state.json", &RunState{}},
		{"run-state.finished.json", &RunState{}},
		{"aggregate-input.json", &AggregateInput{}},
		{"aggregate-input.watermark.json", &AggregateInput{}},
		{"result.json", &ResultRecord{}},
		{"result.dead.json", &ResultRecord{}},
		{"result.retry.json", &ResultRecord{}},
		{"result.endpoint-gone.json", &ResultRecord{}},
		{"rule-error.json", &RuleErrorRecord{}},
	} {
		doc, err := os.ReadFile("examples/" + tc.file)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(doc, tc.v); err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		sameAsMarshal(t, tc.file, tc.v)
	}
	for _, file := range []string{"delivery.json", "delivery.duration-exceeded.json", "delivery.firing.json", "delivery.notice.json", "delivery.resolved.json", "delivery.test.json"} {
		doc, err := os.ReadFile("examples/" + file)
		if err != nil {
			t.Fatal(err)
		}
		var d DeliveryRecord
		if err := json.Unmarshal(doc, &d); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		var p WebhookPayload // the payload as the processor writes it: compact
		if err := json.Unmarshal(d.Payload, &p); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		sameAsMarshal(t, file+" payload", &p)
		if d.Payload, err = p.AppendJSON(nil); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		sameAsMarshal(t, file, &d)
	}
}

// gen makes values of the records' member types from fuzz input: each
// choice takes bytes from the input (zeros when it is used up), so the
// fuzzer steers which strings, times, nils and empties each member gets.
type gen struct{ b []byte }

func (g *gen) byte() byte {
	if len(g.b) == 0 {
		return 0
	}
	c := g.b[0]
	g.b = g.b[1:]
	return c
}

func (g *gen) bytes(n int) []byte {
	n = min(n, len(g.b))
	s := g.b[:n]
	g.b = g.b[n:]
	return s
}

func (g *gen) int64() int64 {
	switch g.byte() % 4 {
	case 0:
		return 0
	case 1:
		return int64(int8(g.byte()))
	case 2:
		return int64(binary.LittleEndian.Uint32(append(g.bytes(4), 0, 0, 0, 0)))
	default:
		return int64(binary.LittleEndian.Uint64(append(g.bytes(8), 0, 0, 0, 0, 0, 0, 0, 0)))
	}
}

func (g *gen) int64Ptr() *int64 {
	if g.byte()%2 == 0 {
		return nil
	}
	n := g.int64()
	return &n
}

func (g *gen) str() string {
	c := g.byte()
	switch {
	case c < 64:
		return trickyStrings[int(c)%len(trickyStrings)]
	case c < 128:
		return string(g.bytes(int(c - 64)))
	default:
		return []string{"acme", "run_123", "workflow.run.failed", "nightly-etl", "prod"}[int(c)%5]
	}
}

func (g *gen) strs() []string {
	c := g.byte()
	switch c % 4 {
	case 0:
		return nil
	case 1:
		return []string{}
	}
	ss := make([]string, int(c>>2)%6+1)
	for i := range ss {
		ss[i] = g.str()
	}
	return ss
}

func (g *gen) labels() map[string]string {
	c := g.byte()
	switch c % 4 {
	case 0:
		return nil
	case 1:
		return map[string]string{}
	}
	m := map[string]string{}
	for range int(c>>2) % 24 {
		m[g.str()] = g.str()
	}
	return m
}

func (g *gen) time() time.Time {
	c := g.byte()
	if c < 16 {
		return trickyTimes[int(c)%len(trickyTimes)]
	}
	var sec int64
	switch c % 3 {
	case 0: // this century
		sec = 1_700_000_000 + int64(int32(binary.LittleEndian.Uint32(append(g.bytes(4), 0, 0, 0, 0))))
	case 1: // within the years 0 to 9999, or a little outside
		sec = int64(binary.LittleEndian.Uint64(append(g.bytes(8), 0, 0, 0, 0, 0, 0, 0, 0))) % 320_000_000_000
	default: // anything
		sec = int64(binary.LittleEndian.Uint64(append(g.bytes(8), 0, 0, 0, 0, 0, 0, 0, 0)))
	}
	nsec := int64(0)
	switch g.byte() % 4 {
	case 1:
		nsec = int64(binary.LittleEndian.Uint32(append(g.bytes(4), 0, 0, 0, 0)) % 1_000_000_000)
	case 2:
		nsec = int64(g.byte()) * 1_000_000
	}
	t := time.Unix(sec, nsec).UTC()
	switch z := g.byte(); {
	case z < 128:
	case z < 192:
		t = t.In(time.FixedZone("", int(int16(binary.LittleEndian.Uint16(append(g.bytes(2), 0, 0))))*60))
	default:
		t = t.In(time.FixedZone("", int(int32(binary.LittleEndian.Uint32(append(g.bytes(4), 0, 0, 0, 0))))))
	}
	return t
}

func (g *gen) timePtr() *time.Time {
	if g.byte()%2 == 0 {
		return nil
	}
	t := g.time()
	return &t
}

func (g *gen) payload() *WebhookPayload {
	p := &WebhookPayload{
		Type: g.str(), Timestamp: g.time(),
		Data: PayloadData{
			AlertID: g.str(), TenantID: g.str(),
			Rule:     RuleRef{ID: g.str(), Name: g.str()},
			Event:    EventRef{ID: g.str(), Type: g.str(), OccurredAt: g.time()},
			Workflow: Workflow{ID: g.str(), Name: g.str()},
			Run: PayloadRun{ID: g.str(), Status: g.str(), StartedAt: g.timePtr(), FinishedAt: g.timePtr(),
				DurationMS: g.int64Ptr()},
			ThresholdMS: g.int64Ptr(),
			Labels:      g.labels(),
		},
	}
	if g.byte()%2 == 1 {
		p.Data.Error = &PayloadError{Code: g.str(), Message: g.str()}
	}
	switch g.byte() % 8 {
	case 1:
		threshold := int(g.int64())
		p.Data.Aggregate = &PayloadAggregate{IncidentID: g.str(), Group: g.labels(), Threshold: &threshold, FiringSince: g.time(), ResolvedAt: g.timePtr()}
	case 2:
		p.Data.Notice = &PayloadNotice{ID: g.str(), Title: g.str(), Count: g.int64(), CreatedAt: g.time()}
	}
	return p
}

func (g *gen) delivery() *DeliveryRecord {
	d := &DeliveryRecord{
		AlertID: g.str(), TenantID: g.str(), RuleID: g.str(), EndpointID: g.str(), EventType: g.str(),
		MaxAttempts: int(g.int64()), RuleVersion: g.int64(), Severity: g.str(), CreatedAt: g.time(),
	}
	if g.byte()%4 != 0 {
		d.Payload, _ = g.payload().AppendJSON(nil) // nil where it fails
	}
	return d
}

func (g *gen) runState() *RunState {
	return &RunState{
		TenantID: g.str(), RunID: g.str(), Workflow: Workflow{ID: g.str(), Name: g.str()}, Attempt: int(g.int64()),
		Labels: g.labels(), StartEventID: g.str(), StartedAt: g.timePtr(), FinishedAt: g.timePtr(),
		Seen: g.strs(), Fired: g.strs(), LastEventAt: g.time(),
	}
}

func (g *gen) input() *AggregateInput {
	in := &AggregateInput{
		Kind: g.str(), TenantID: g.str(), RuleID: g.str(), Spec: g.str(), Group: g.strs(), Outcome: g.str(),
		At: g.time(), Watermark: g.time(),
	}
	if g.byte()%2 == 1 {
		in.Event = &AggregateEvent{ID: g.str(), Type: g.str(), RunID: g.str(), Workflow: Workflow{ID: g.str(), Name: g.str()},
			ErrorCode: g.str(), At: g.time()}
	}
	if g.byte()%2 == 1 {
		p := int32(g.int64())
		in.SourcePartition = &p
	}
	return in
}

func (g *gen) result() *ResultRecord {
	return &ResultRecord{
		AlertID: g.str(), DeliveryID: g.str(), TenantID: g.str(), RuleID: g.str(), EndpointID: g.str(),
		Attempt: int(g.int64()), RuleVersion: g.int64(), Outcome: g.str(), StatusCode: int(g.int64()), LatencyMS: g.int64(),
		ErrorClass: g.str(), Error: g.str(), ResponseExcerpt: g.str(), AttemptedAt: g.time(),
	}
}

func (g *gen) ruleError() *RuleErrorRecord {
	return &RuleErrorRecord{
		TenantID: g.str(), RuleID: g.str(), RuleVersion: g.int64(), EventID: g.str(), Error: g.str(), Errors: g.int64(), At: g.time(),
	}
}

// Records made from fuzz input encode as json.Marshal encodes them. The
// seed corpus (random inputs from a fixed seed) runs with every go test;
// `go test -fuzz FuzzAppendJSONIsJSONMarshal ./schemas/` searches further.
func FuzzAppendJSONIsJSONMarshal(f *testing.F) {
	rnd := rand.New(rand.NewPCG(13, 13))
	for range 300 {
		seed := make([]byte, rnd.IntN(600))
		for i := range seed {
			seed[i] = byte(rnd.Uint32())
		}
		f.Add(seed)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		g := &gen{b: data}
		sameAsMarshal(t, "payload", g.payload())
		sameAsMarshal(t, "delivery", g.delivery())
		sameAsMarshal(t, "run state", g.runState())
		sameAsMarshal(t, "input", g.input())
		sameAsMarshal(t, "result", g.result())
		sameAsMarshal(t, "rule error", g.ruleError())
	})
}

// Any string, as a member and as a label's key and value, encodes as
// json.Marshal encodes it.
func FuzzAppendStringIsJSONMarshal(f *testing.F) {
	for _, s := range trickyStrings {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sameAsMarshal(t, "result", &ResultRecord{Error: s})
		sameAsMarshal(t, "run state", &RunState{Labels: map[string]string{s: s, "k": s}, Seen: []string{s, s}})
	})
}

// Any time encodes as json.Marshal encodes it, and fails where it fails.
func FuzzAppendTimeIsJSONMarshal(f *testing.F) {
	for _, ts := range trickyTimes {
		_, off := ts.Zone()
		f.Add(ts.Unix(), int64(ts.Nanosecond()), int32(off))
	}
	f.Add(int64(-62135596801), int64(0), int32(0))  // a second before the year 1
	f.Add(int64(253402300800), int64(0), int32(-1)) // the year 10000 in UTC, 9999 in the zone
	f.Fuzz(func(t *testing.T, sec, nsec int64, offset int32) {
		ts := time.Unix(sec, nsec).In(time.FixedZone("", int(offset)))
		sameAsMarshal(t, "result", &ResultRecord{AttemptedAt: ts})
		sameAsMarshal(t, "input", &AggregateInput{At: ts}) // omitzero
	})
}

// Appending into a buffer with room for the result allocates nothing (not
// even where the time formatter writes nine digits of nanoseconds before it
// trims them): the processor's and the dispatcher's output records cost no
// garbage of their own.
func TestAppendJSONAllocations(t *testing.T) {
	delivery := typicalDelivery(t)
	durationMS := int64(60_000)
	for _, tc := range []struct {
		name string
		v    appender
	}{
		{"failed payload", failedPayload()},
		{"duration payload", &WebhookPayload{Type: TypeRunDurationExceeded, Data: PayloadData{ThresholdMS: &durationMS, Labels: map[string]string{}}}},
		{"delivery", delivery},
		{"run state", typicalRunState()},
		{"input", typicalInput()},
		{"result", typicalResult()},
		{"rule error", &RuleErrorRecord{TenantID: "acme", RuleID: "rul_1", Error: "budget exceeded", Errors: 3, At: time.Now()}},
	} {
		want, err := json.Marshal(tc.v)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 0, len(want)) // room for the result only
		allocs := testing.AllocsPerRun(200, func() {
			if _, err := tc.v.AppendJSON(buf[:0:len(want)]); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %.1f allocations per AppendJSON into a buffer with room, budget 0", tc.name, allocs)
		}
	}
}

// The benchmarks compare json.Marshal with AppendJSON, in one run, for the
// records the processor writes per event and the dispatcher per attempt:
// go test -run '^$' -bench 'Append|Marshal' -benchmem ./schemas/
func BenchmarkPayloadMarshal(b *testing.B) { benchMarshal(b, failedPayload()) }
func BenchmarkPayloadAppend(b *testing.B)  { benchAppend(b, failedPayload()) }
func BenchmarkDeliveryMarshal(b *testing.B) {
	benchMarshal(b, typicalDelivery(b))
}
func BenchmarkDeliveryAppend(b *testing.B)  { benchAppend(b, typicalDelivery(b)) }
func BenchmarkRunStateMarshal(b *testing.B) { benchMarshal(b, typicalRunState()) }
func BenchmarkRunStateAppend(b *testing.B)  { benchAppend(b, typicalRunState()) }
func BenchmarkResultMarshal(b *testing.B)   { benchMarshal(b, typicalResult()) }
func BenchmarkResultAppend(b *testing.B)    { benchAppend(b, typicalResult()) }

func benchMarshal(b *testing.B, v any) {
	b.ReportAllocs()
	cpu := processCPU(b)
	for b.Loop() {
		if _, err := json.Marshal(v); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu)
}

// benchAppend appends into a fresh buffer of the size the call sites
// allocate, as they do (the record keeps its value).
func benchAppend(b *testing.B, v appender) {
	b.ReportAllocs()
	want, _ := json.Marshal(v)
	cpu := processCPU(b)
	for b.Loop() {
		if _, err := v.AppendJSON(make([]byte, 0, len(want))); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu)
}

// processCPU returns the CPU time (user + system) of this process so far.
// On a machine shared with other work, a benchmark's CPU time per op (GC
// included) varies less than its wall time per op, which counts the time
// the benchmark waited for a core.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the process's CPU time per op since since as cpu-ns/op.
func reportCPU(b *testing.B, since time.Duration) {
	b.ReportMetric(float64(processCPU(b)-since)/float64(b.N), "cpu-ns/op")
}

// Times in a zone of offset 0 (written digit pair by digit pair) encode as
// time.Time.MarshalJSON encodes them, over the years a record can hold and
// fractions of every length.
func TestAppendZuluTimeIsMarshalJSON(t *testing.T) {
	rnd := rand.New(rand.NewPCG(7, 7))
	zones := []*time.Location{time.UTC, time.FixedZone("", 0), time.FixedZone("GMT", 0)}
	minSec := time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	maxSec := time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC).Unix()
	var edges []time.Time
	for _, y := range []int{0, 1, 4, 99, 100, 400, 1600, 1899, 1900, 1969, 1970, 2000, 2024, 2100, 9999} {
		for _, md := range [][2]int{{1, 1}, {2, 28}, {2, 29}, {3, 1}, {12, 31}} {
			d := time.Date(y, time.Month(md[0]), md[1], 0, 0, 0, 0, time.UTC)
			edges = append(edges, d, d.Add(-time.Nanosecond), d.Add(time.Second), d.Add(86399*time.Second+999_999_999))
		}
	}
	for _, ts := range edges {
		want, err := ts.MarshalJSON()
		ok := true
		if got := appendTime(nil, ts, &ok); (err == nil) != ok || (ok && string(got) != string(want)) {
			t.Fatalf("%v: appendTime %s (ok %v), MarshalJSON %s (%v)", ts, got, ok, want, err)
		}
	}
	for i := range 20000 {
		ns := rnd.Int64N(1e9)
		ns -= ns % [...]int64{1, 10, 1000, 1e6, 1e8, 1e9}[i%6] // trailing zeros, or none at all
		ts := time.Unix(minSec+rnd.Int64N(maxSec-minSec+1), ns).In(zones[i%len(zones)])
		want, err := ts.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		ok := true
		if got := appendTime(nil, ts, &ok); !ok || string(got) != string(want) {
			t.Fatalf("%v: appendTime %s (ok %v), MarshalJSON %s", ts, got, ok, want)
		}
	}
}

// safeRun passes a block of 8 bytes exactly when each is one encoding/json
// writes as it is: every byte value, at every position of the block.
func TestSafeRunEveryByte(t *testing.T) {
	for c := range 256 {
		want := c < utf8.RuneSelf && htmlSafe[c]
		for p := range 8 {
			b := []byte("abcdefgh")
			b[p] = byte(c)
			if got := safeRun(string(b), 0) == 8; got != want {
				t.Fatalf("byte %#x at %d: passed %v, want %v", c, p, got, want)
			}
		}
	}
}

// plainString says a string is written as it is exactly when each of its
// bytes is: every byte value at every position of strings of every length
// to 40.
func TestPlainEveryPosition(t *testing.T) {
	for n := range 41 {
		s := []byte(strings.Repeat("abcdefgh", 6)[:n])
		if !plainString(string(s)) {
			t.Fatalf("%q: not plain", s)
		}
		for p := range n {
			for c := range 256 {
				b := append([]byte(nil), s...)
				b[p] = byte(c)
				if want := c < utf8.RuneSelf && htmlSafe[c]; plainString(string(b)) != want {
					t.Fatalf("%q (byte %#x at %d of %d): plain %v, want %v", b, c, p, n, !want, want)
				}
			}
		}
	}
}
