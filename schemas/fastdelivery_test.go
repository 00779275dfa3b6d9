package schemas

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func deliverySeeds(t testing.TB) [][]byte {
	var docs [][]byte
	for _, dir := range []string{examplesDir, invalidDir} {
		for _, ex := range listExamples(t, dir) {
			switch ex.kind {
			case KindDelivery:
				docs = append(docs, readFile(t, ex.path))
			case KindWebhookPayload:
				// Every payload example, valid or not, inside a valid envelope.
				docs = append(docs, []byte(`{"alert_id":"alrt_ca978112ca1bbdcafac231b39a23dc4d","tenant_id":"acme","rule_id":"r","endpoint_id":"e",`+
					`"event_type":"workflow.run.failed","max_attempts":8,"created_at":"2026-11-28T10:00:00Z","payload":`+string(readFile(t, ex.path))+`}`))
			}
		}
	}
	base := string(readFile(t, filepath.Join(examplesDir, "delivery.json")))
	for _, r := range [][2]string{
		{`"max_attempts": 8`, `"max_attempts": 51`},
		{`"max_attempts": 8`, `"max_attempts": 0`},
		{`"max_attempts": 8`, `"max_attempts": 8.0`},
		{`"rule_version": 3`, `"rule_version": 0`},
		{`"rule_version": 3`, `"rule_version": null`},
		{`"rule_version": 3`, `"severity": "fatal"`},
		{`"rule_version": 3`, `"severity": "critical"`},
		{`"rule_version": 3`, `"severity": ""`},
		{`"event_type": "workflow.run.failed"`, `"event_type": "workflow.run.paused"`},
		{`"event_type": "workflow.run.failed"`, `"event_type": "webhook.test"`},
		{`"threshold_ms": null`, `"threshold_ms": 60000`},
		{`"threshold_ms": null`, `"threshold_ms": 0`},
		{`"threshold_ms": null,`, ``},
		{`"type": "workflow.run.failed",`, `"type": "workflow.run.duration_exceeded",`},
		{`"labels": {`, `"labels": null, "x": {`},
		{`"env": "prod"`, `"env": null`},
		{`"env": "prod"`, `"": "prod"`},
		{`"code": "NODE_ERRORED"`, `"code": "NODE_ERRORED", "node": "n1"`},
		{`"code": "NODE_ERRORED"`, `"code": null`},
		{`"error": {
        "code": "NODE_ERRORED"
      }`, `"error": null`},
		{`"duration_ms": 84211`, `"duration_ms": null`},
		{`"duration_ms": 84211`, `"duration_ms": -1`},
		{`"status": "failed",`, `"status": "",`},
		{`"status": "failed",`, ``},
		{`"started_at": "2026-11-28T09:58:35.912Z"`, `"started_at": null`},
		{`"occurred_at": "2026-11-28T10:00:00.123Z"`, `"occurred_at": "2026-11-28T10:00:00.123z"`},
		{`"name": "ETL failures"`, `"name": ""`},
		{`"name": "ETL failures"`, `"Name": "ETL failures"`},
		{`"alert_id": "alrt_ca978112ca1bbdcafac231b39a23dc4d",
      "tenant_id"`, `"alert_id": "alrt_x", "tenant_id"`},
		{`"payload": {`, `"payload": {"extra": 1,`},
		{`"payload": {`, `"Payload": {`},
		{`"tenant_id": "acme",
  "rule_id"`, `"tenant_id": "acme", "tenant_id": "acme",
  "rule_id"`},
	} {
		if !strings.Contains(base, r[0]) {
			t.Fatalf("delivery.json has no %q", r[0])
		}
		docs = append(docs, []byte(strings.Replace(base, r[0], r[1], 1)))
	}
	// Read by the one-pass decoder itself: escapes, Unicode, offsets,
	// numbers, duplicates and grammar inside the payload it keeps as bytes.
	for _, r := range [][2]string{
		{`"name": "ETL failures"`, `"name": "ETL \u003cfailures\u003e \"q\" caf\u00e9 \ud83d\ude00"`},
		{`"name": "ETL failures"`, `"name": "` + strings.Repeat(`\u00e9`, 256) + `"`},
		{`"name": "ETL failures"`, `"name": "` + strings.Repeat(`\u00e9`, 257) + `"`},
		{`"name": "ETL failures"`, `"name": "\ud800"`},
		{`"name": "ETL failures"`, `"name": "a\x"`},
		{`"code": "NODE_ERRORED"`, `"code": "NODE_ERRORED", "message": "line 1\nline 2\t\u0000"`},
		{`"code": "NODE_ERRORED"`, `"message": "` + strings.Repeat("é", 65537) + `"`},
		{`"env": "prod"`, `"env": "pr\u006fd", "team": "d\"a"`},
		{`"env": "prod"`, `"\u0065nv": "prod"`},
		{`"env": "prod"`, `"env": "prod", "env": "dev"`},
		{`"env": "prod"`, `"env": "a\u0000"`},
		{`"env": "prod"`, `"` + strings.Repeat("k", 63) + `": "v"`},
		{`"env": "prod"`, `"` + strings.Repeat("k", 64) + `": "v"`},
		{`"env": "prod"`, `"` + strings.Repeat("é", 63) + `": "` + strings.Repeat("é", 256) + `"`},
		{`"env": "prod"`, `"env": "` + strings.Repeat("é", 257) + `"`},
		{`"env": "prod"`, manyLabels(16)},
		{`"env": "prod"`, manyLabels(17)},
		{`"labels": {
        "env": "prod"
      }`, `"labels": {}`},
		{`"created_at": "2026-11-28T10:00:00.456Z"`, `"created_at": "2026-11-28T11:00:00.456+01:00"`},
		{`"created_at": "2026-11-28T10:00:00.456Z"`, `"created_at": "2026-11-28T10:00:00.456\u005A"`},
		{`"timestamp": "2026-11-28T10:00:00.456Z"`, `"timestamp": "2026-11-28T10:00:00.456-03:30"`},
		{`"occurred_at": "2026-11-28T10:00:00.123Z"`, `"occurred_at": "2026-02-30T10:00:00.123Z"`},
		{`"rule_id": "rul_01JD5K",`, `"rule_id": "rul_\u0030\u0031JD5K",`},
		{`"tenant_id": "acme",
  "rule_id"`, `"tenant_id": "\u0061cme",
  "rule_id"`},
		{`"event_type": "workflow.run.failed"`, `"event_type": "workflow.run.f\u0061iled"`},
		{`"max_attempts": 8`, `"max_attempts": -0`},
		{`"max_attempts": 8`, `"max_attempts": 08`},
		{`"duration_ms": 84211`, `"duration_ms": 8.4211e4`},
		{`"duration_ms": 84211`, `"duration_ms": 9223372036854775807`},
		{`"duration_ms": 84211`, `"duration_ms": 9223372036854775808`},
		{`"rule_version": 3`, `"rule_version": 9223372036854775807`},
		{`"type": "workflow.run.failed",`, `"type": "workflow.run.failed", "type": "workflow.run.failed",`},
		{`"id": "wf_9",`, `"id": "wf_9", "id": "wf_9",`},
		{`"status": "failed",`, `"status": "failed",,`},
		{`"labels": {`, `"labels": {,`},
		{`"payload": {`, `"payload": {"type": "workflow.run.failed", "timestamp": "2026-11-28T10:00:00.456Z", "data": {}}, "x": {`},
	} {
		if !strings.Contains(base, r[0]) {
			t.Fatalf("delivery.json has no %q", r[0])
		}
		docs = append(docs, []byte(strings.Replace(base, r[0], r[1], 1)))
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, []byte(base)); err != nil {
		t.Fatal(err)
	}
	docs = append(docs, compact.Bytes(), []byte(base+"x"), []byte(base[:len(base)-10]))
	return append(docs, []byte(`{}`), []byte(`[]`), []byte(`{"payload":null}`))
}

// FuzzDecodeDeliveryAgreesWithSchema: see agreesWithSchema.
func FuzzDecodeDeliveryAgreesWithSchema(f *testing.F) {
	for _, doc := range deliverySeeds(f) {
		f.Add(doc)
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		agreesWithSchema(t, KindDelivery, doc, fastDelivery, DecodeDelivery)
	})
}

// TestFastCheckTakesOrdinaryDeliveries: see takesExamples.
func TestFastCheckTakesOrdinaryDeliveries(t *testing.T) {
	t.Parallel()
	takesExamples(t, KindDelivery, fastDelivery, DecodeDelivery, 3)
}

func BenchmarkDecodeDelivery(b *testing.B) {
	doc := readFile(b, filepath.Join(examplesDir, "delivery.json"))
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := DecodeDelivery(doc); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The same record as the processor writes it, without the example's
	// indentation.
	var compact bytes.Buffer
	if err := json.Compact(&compact, doc); err != nil {
		b.Fatal(err)
	}
	b.Run("fast-compact", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := DecodeDelivery(compact.Bytes()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("schema+unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := Validate(KindDelivery, doc); err != nil {
				b.Fatal(err)
			}
			var d DeliveryRecord
			if err := json.Unmarshal(doc, &d); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestFastDeliveryTakesEscapesAndOffsets: deliveries whose payload strings
// carry escapes (json.Marshal writes <, > and & as \u003c, \u003e, \u0026)
// or whose times carry offsets are decoded by the one-pass decoder as
// encoding/json decodes them.
func TestFastDeliveryTakesEscapesAndOffsets(t *testing.T) {
	t.Parallel()
	base := string(readFile(t, filepath.Join(examplesDir, "delivery.json")))
	for _, r := range [][2]string{
		{`"name": "ETL failures"`, `"name": "ETL \u003cfailures\u003e \"q\" caf\u00e9 \ud83d\ude00"`},
		{`"code": "NODE_ERRORED"`, `"code": "NODE_ERRORED", "message": "line 1\nline 2\t\u0026"`},
		{`"env": "prod"`, `"env": "pr\u006fd", "team": "d\"a"`},
		{`"created_at": "2026-11-28T10:00:00.456Z"`, `"created_at": "2026-11-28T11:00:00.456+01:00"`},
		{`"rule_id": "rul_01JD5K",`, `"rule_id": "rul_\u0030\u0031JD5K",`},
		{`"labels": {
        "env": "prod"
      }`, `"labels": {}`},
	} {
		doc := []byte(strings.Replace(base, r[0], r[1], 1))
		got, ok := fastDelivery(doc)
		if !ok {
			t.Errorf("not vouched for by the fast decoder:\n%s", doc)
			continue
		}
		var want DeliveryRecord
		if err := json.Unmarshal(doc, &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(*got, want) {
			t.Errorf("fast decoded\n%+v\nencoding/json decoded\n%+v\nfrom %s", *got, want, doc)
		}
	}
}

// TestDecodeDeliveryAllocs: one allocation for the record, one per string
// that is not an enum's (alert, tenant, rule and endpoint ids) and one for
// the payload's bytes, which the record keeps.
func TestDecodeDeliveryAllocs(t *testing.T) {
	doc := readFile(t, filepath.Join(examplesDir, "delivery.json"))
	const budget = 1 + 4 + 1
	got := testing.AllocsPerRun(100, func() {
		if _, err := DecodeDelivery(doc); err != nil {
			t.Fatal(err)
		}
	})
	if got > budget {
		t.Fatalf("DecodeDelivery of delivery.json: %v allocations, budget %v", got, budget)
	}
}
