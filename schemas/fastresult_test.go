package schemas

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

func resultSeeds(t testing.TB) [][]byte {
	var docs [][]byte
	for _, dir := range []string{examplesDir, invalidDir} {
		for _, ex := range listExamples(t, dir) {
			if ex.kind == KindResult {
				docs = append(docs, readFile(t, ex.path))
			}
		}
	}
	const head = `{"alert_id":"alrt_0123456789abcdef0123456789abcdef","delivery_id":"d","tenant_id":"t","rule_id":"r","endpoint_id":"e","outcome":"retry","latency_ms":5,"attempted_at":"2026-01-01T00:00:00Z"`
	for _, s := range []string{
		head + `,"attempt":1}`,
		head + `,"attempt":1,"rule_version":1,"status_code":503,"error_class":"http_5xx","error":"x","response_excerpt":"y"}`,
		head + `,"attempt":0}`,
		head + `,"attempt":1.0}`,
		head + `,"attempt":2147483648}`,
		head + `,"attempt":1,"rule_version":0}`,
		head + `,"attempt":1,"rule_version":null}`,
		head + `,"attempt":1,"status_code":0}`,
		head + `,"attempt":1,"status_code":600}`,
		head + `,"attempt":1,"error_class":""}`,
		head + `,"attempt":1,"error":""}`,
		head + `,"attempt":1,"error":null}`,
		head + `,"attempt":1,"response_excerpt":"` + strings.Repeat("é", 4097) + `"}`,
		head + `,"attempt":1,"Attempt":2}`,
		head + `,"attempt":1,"extra":1}`,
		head + `,"attempt":1,"attempt":2}`,
		head + `,"attempt":1,"\u0061ttempt":2}`,
		strings.Replace(head, `"retry"`, `"lost"`, 1) + `,"attempt":1}`,
		strings.Replace(head, `alrt_0123456789abcdef0123456789abcdef`, `alrt_0123456789ABCDEF0123456789abcdef`, 1) + `,"attempt":1}`,
		strings.Replace(head, `"latency_ms":5`, `"latency_ms":-1`, 1) + `,"attempt":1}`,
		strings.Replace(head, `"2026-01-01T00:00:00Z"`, `"2026-13-01T00:00:00Z"`, 1) + `,"attempt":1}`,
		strings.Replace(head, `"tenant_id":"t"`, `"tenant_id":null`, 1) + `,"attempt":1}`,
		`[]`, `null`, `{}`,
	} {
		docs = append(docs, []byte(s))
	}
	return docs
}

// FuzzDecodeResultAgreesWithSchema: see agreesWithSchema.
func FuzzDecodeResultAgreesWithSchema(f *testing.F) {
	for _, doc := range resultSeeds(f) {
		f.Add(doc)
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		agreesWithSchema(t, KindResult, doc, fastResult, DecodeResult)
	})
}

// TestFastCheckTakesOrdinaryResults: see takesExamples.
func TestFastCheckTakesOrdinaryResults(t *testing.T) {
	t.Parallel()
	takesExamples(t, KindResult, fastResult, DecodeResult, 3)
}

func BenchmarkDecodeResult(b *testing.B) {
	doc := readFile(b, filepath.Join(examplesDir, "result.json"))
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := DecodeResult(doc); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("schema+unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := Validate(KindResult, doc); err != nil {
				b.Fatal(err)
			}
			var r ResultRecord
			if err := json.Unmarshal(doc, &r); err != nil {
				b.Fatal(err)
			}
		}
	})
}
