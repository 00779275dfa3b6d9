package schemas

import (
	"encoding/json"
	"path/filepath"
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
