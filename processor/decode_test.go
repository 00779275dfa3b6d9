package processor

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/workload"
	"github.com/exospherehost/exo-alerts/schemas"
)

func TestDecodeEvent(t *testing.T) {
	t.Parallel()
	ev := workload.Event(workload.Spec{Tenant: "acme", Type: schemas.TypeRunFailed, WorkflowName: "etl", RunID: "run_1",
		Duration: time.Minute, Labels: map[string]string{"env": "prod"}})
	structured, _ := workload.Record("events", ev)
	binary, _ := workload.BinaryRecord("events", ev)
	for name, r := range map[string]*kgo.Record{"structured": structured, "binary": binary} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := decodeEvent(r, MaxEventBytes)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if got.ID != ev.ID || got.TenantID != "acme" || got.Type != ev.Type || got.Data.Run.ID != "run_1" ||
				got.Data.Labels["env"] != "prod" || !got.Time.Equal(ev.Time) {
				t.Fatalf("decoded %+v, want %+v", got, ev)
			}
		})
	}
}

func TestDecodeEventRejects(t *testing.T) {
	t.Parallel()
	ev := workload.Event(workload.Spec{Tenant: "acme", Type: schemas.TypeRunFailed, WorkflowName: "etl", Duration: time.Minute})
	good, _ := workload.Record("events", ev)
	bin, _ := workload.BinaryRecord("events", ev)
	with := func(value string, headers ...kgo.RecordHeader) *kgo.Record {
		return &kgo.Record{Value: []byte(value), Headers: headers}
	}
	cases := map[string]struct {
		rec    *kgo.Record
		reason string
	}{
		"not json":         {with("{nope"), "not JSON"},
		"empty":            {with(""), "not JSON"},
		"json array":       {with("[1,2]"), "schema"},
		"missing tenant":   {with(strings.Replace(string(good.Value), `"tenantid":"acme",`, "", 1)), "tenantid"},
		"spec version 0.3": {with(strings.Replace(string(good.Value), `"specversion":"1.0"`, `"specversion":"0.3"`, 1)), "specversion"},
		"oversized":        {with(`{"x":"` + strings.Repeat("a", MaxEventBytes) + `"}`), "larger than"},
		"xml content type": {with(string(good.Value), kgo.RecordHeader{Key: "content-type", Value: []byte("application/xml")}), "content-type"},
		"binary bad data":  {&kgo.Record{Value: []byte("{"), Headers: bin.Headers}, "not JSON"},
		"binary no tenant": {&kgo.Record{Value: bin.Value, Headers: dropHeader(bin.Headers, "ce_tenantid")}, "tenantid"},
		"run attempt zero": {with(strings.Replace(string(good.Value), `"attempt":1`, `"attempt":0`, 1)), "attempt"},
		"duplicate key":    {with(strings.Replace(string(good.Value), `"specversion":"1.0"`, `"specversion":"1.0","specversion":"1.0"`, 1)), "duplicate"},
		"labels too large": {hugeLabels(t, ev), "labels of"},
		// A repeated CloudEvents attribute is ambiguous (first or last
		// wins, depending on the reader), like a repeated JSON key.
		"binary repeated tenant": {&kgo.Record{Value: bin.Value, Headers: append(dropHeader(bin.Headers, "x"),
			kgo.RecordHeader{Key: "ce_tenantid", Value: []byte("globex")})}, `"ce_tenantid" appears more than once`},
		"binary repeated tenant, other case": {&kgo.Record{Value: bin.Value, Headers: append(dropHeader(bin.Headers, "x"),
			kgo.RecordHeader{Key: "CE_TenantID", Value: []byte("acme")})}, `"ce_tenantid" appears more than once`},
		"binary repeated type": {&kgo.Record{Value: bin.Value, Headers: append(dropHeader(bin.Headers, "x"),
			kgo.RecordHeader{Key: "ce_type", Value: []byte(schemas.TypeRunSucceeded)})}, `"ce_type" appears more than once`},
		"binary repeated content type": {&kgo.Record{Value: bin.Value, Headers: append(dropHeader(bin.Headers, "x"),
			kgo.RecordHeader{Key: "Content-Type", Value: []byte("application/json")})}, `"content-type" appears more than once`},
		"structured repeated content type": {with(string(good.Value),
			kgo.RecordHeader{Key: "content-type", Value: []byte("application/cloudevents+json")},
			kgo.RecordHeader{Key: "content-type", Value: []byte("application/xml")}), `"content-type" appears more than once`},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := decodeEvent(c.rec, MaxEventBytes)
			if !errors.Is(err, errInvalid) {
				t.Fatalf("err = %v, want an invalid-event error", err)
			}
			if !strings.Contains(err.Error(), c.reason) {
				t.Errorf("reason %q does not mention %q", err, c.reason)
			}
		})
	}
}

// hugeLabels is ev with 200 labels of 200 "<" each: valid by the schema and
// within MaxEventBytes, but six times longer once JSON-escaped in a run
// state or an alert (1.2 MB: more than the broker takes).
func hugeLabels(t *testing.T, ev schemas.WorkflowEvent) *kgo.Record {
	ev.Data.Labels = map[string]string{}
	for i := range 200 {
		ev.Data.Labels[fmt.Sprintf("k%03d", i)] = strings.Repeat("<", 200)
	}
	r, err := workload.Record("events", ev)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Value) > MaxEventBytes {
		t.Fatalf("the event is %d bytes, more than MaxEventBytes", len(r.Value))
	}
	return r
}

// The copy of an oversized record on the invalid topic is cut to
// MaxEventBytes and says from what size: with its headers it must still fit
// in what the broker takes, or the transaction would fail forever.
func TestInvalidCopyOfOversizedRecordIsCut(t *testing.T) {
	t.Parallel()
	p := &Processor{cfg: Config{MaxEventBytes: 1024, Topics: kafka.NewTopics("t.")}}
	r := &kgo.Record{Topic: "t.workflow-events", Value: []byte(strings.Repeat("x", 5000)), Offset: 7}
	got := p.invalidRecord(r, invalid("record of 5000 bytes is larger than the 1024-byte limit"))
	if len(got.Value) != 1024 || kafka.Header(got, "exo-invalid-truncated-from") != "5000" || kafka.Header(got, "exo-original-offset") != "7" {
		t.Fatalf("copy of %d bytes, headers %v", len(got.Value), got.Headers)
	}
	small := &kgo.Record{Topic: "t.workflow-events", Value: []byte("{nope")}
	if got := p.invalidRecord(small, invalid("not JSON")); string(got.Value) != "{nope" || kafka.Header(got, "exo-invalid-truncated-from") != "" {
		t.Fatalf("a small record's copy changed: %q %v", got.Value, got.Headers)
	}
}

func dropHeader(hs []kgo.RecordHeader, key string) []kgo.RecordHeader {
	var out []kgo.RecordHeader
	for _, h := range hs {
		if h.Key != key {
			out = append(out, h)
		}
	}
	return out
}

func FuzzDecodeEvent(f *testing.F) {
	ev := workload.Event(workload.Spec{Tenant: "acme", Type: schemas.TypeRunFailed, WorkflowName: "etl", Duration: time.Minute})
	good, _ := workload.Record("events", ev)
	f.Add(good.Value, false)
	f.Add([]byte(`{"data":{}}`), true)
	f.Add([]byte("{"), false)
	bin, _ := workload.BinaryRecord("events", ev)
	f.Fuzz(func(t *testing.T, value []byte, binary bool) {
		r := &kgo.Record{Value: value}
		if binary {
			r.Headers = bin.Headers
		}
		got, err := decodeEvent(r, MaxEventBytes)
		if err != nil {
			if !errors.Is(err, errInvalid) {
				t.Fatalf("error not classified invalid: %v", err)
			}
			return
		}
		if got.TenantID == "" || got.ID == "" || got.Type == "" {
			t.Fatalf("accepted an event without tenant, id or type: %s", value)
		}
	})
}

// deliveryJSON writes the bytes json.Marshal writes (the dispatcher, the
// recorder and receivers see the same record), for payloads with HTML
// characters, non-ASCII text and none at all.
func TestDeliveryJSONIsJSONMarshal(t *testing.T) {
	t.Parallel()
	threshold := int64(60000)
	for _, p := range []*schemas.WebhookPayload{
		nil,
		{Type: schemas.TypeRunFailed, Timestamp: time.Date(2026, 11, 28, 10, 0, 0, 123, time.UTC), Data: schemas.PayloadData{
			AlertID: "alrt_0123456789abcdef0123456789abcdef", TenantID: "acme",
			Rule:     schemas.RuleRef{ID: "rul_1", Name: `<b>"ETL" & co</b>`},
			Workflow: schemas.Workflow{ID: "wf", Name: "ünïcode \u2028 ✓"},
			Run:      schemas.PayloadRun{ID: "run_1"},
			Error:    &schemas.PayloadError{Code: "E", Message: "line\nbreak\t<script>"},
			Labels:   map[string]string{"z": "1", "a": "&"},
		}},
		{Type: schemas.TypeRunDurationExceeded, Data: schemas.PayloadData{ThresholdMS: &threshold}},
	} {
		d := schemas.DeliveryRecord{
			AlertID: "alrt_0123456789abcdef0123456789abcdef", TenantID: "acme", RuleID: "rul_<1>", EndpointID: "whk_1",
			EventType: schemas.TypeRunFailed, MaxAttempts: 8, RuleVersion: 3, Severity: "error", CreatedAt: time.Now(),
		}
		if p != nil {
			d.Payload, _ = json.Marshal(p)
		}
		want, err := json.Marshal(&d)
		if err != nil {
			t.Fatal(err)
		}
		if got := deliveryJSON(&d); string(got) != string(want) {
			t.Errorf("deliveryJSON:\n%s\njson.Marshal:\n%s", got, want)
		}
	}
}

// Only CloudEvents attributes and the content-type must be unique: other
// headers (tracing, say) may repeat without making the event invalid.
func TestDecodeEventAllowsOtherRepeatedHeaders(t *testing.T) {
	t.Parallel()
	ev := workload.Event(workload.Spec{Tenant: "acme", Type: schemas.TypeRunFailed, WorkflowName: "etl"})
	bin, _ := workload.BinaryRecord("events", ev)
	r := &kgo.Record{Value: bin.Value, Headers: append(dropHeader(bin.Headers, "x"),
		kgo.RecordHeader{Key: "baggage", Value: []byte("a=1")}, kgo.RecordHeader{Key: "baggage", Value: []byte("b=2")})}
	if got, err := decodeEvent(r, MaxEventBytes); err != nil || got.TenantID != "acme" {
		t.Fatalf("decode = %+v, %v; want the event", got, err)
	}
}
