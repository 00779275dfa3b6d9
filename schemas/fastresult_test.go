package schemas

import (
	"encoding/json"
	"path/filepath"
	"reflect"
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
		// Read by the one-pass decoder itself: escapes, offsets, spacing.
		head + `,"attempt":1,"response_excerpt":"{\"ok\":true,\"msg\":\"caf\u00e9 \ud83d\ude00 \u003c\/b\u003e\n\"}"}`,
		head + `,"attempt":1,"error":"dial tcp: \u0000"}`,
		head + `,"attempt":1,"error_class":"\ud800"}`,
		strings.Replace(head, `"2026-01-01T00:00:00Z"`, `"2026-01-01T01:00:00.000001+01:00"`, 1) + `,"attempt":1}`,
		strings.Replace(head, `"2026-01-01T00:00:00Z"`, `"2026-01-01T00:00:00\u002B01:00"`, 1) + `,"attempt":1}`,
		" \n" + strings.ReplaceAll(head, `,`, " ,\t") + ` , "attempt" : 1 } ` + "\r\n",
		head + `,"attempt":1,"status_code":-0}`,
		head + `,"attempt":1,"status_code":2e2}`,
		head + `,"attempt":1,"latency_ms":9223372036854775808}`,
		head + `,"attempt":1}x`,
		head + `,"attempt":1,}`,
		head + `,"attempt":01}`,
		head + `,"attempt":1`,
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

// TestFastResultTakesEscapesAndOffsets: results as the recorder reads them
// (an answer excerpt is often JSON, full of escaped quotes) are decoded by
// the one-pass decoder as encoding/json decodes them.
func TestFastResultTakesEscapesAndOffsets(t *testing.T) {
	t.Parallel()
	const head = `{"alert_id":"alrt_0123456789abcdef0123456789abcdef","delivery_id":"d","tenant_id":"t","rule_id":"r","endpoint_id":"e","outcome":"retry","latency_ms":5,"attempt":3`
	for _, doc := range []string{
		head + `,"attempted_at":"2026-01-01T00:00:00Z","response_excerpt":"{\"ok\":false,\"msg\":\"caf\u00e9 \ud83d\ude00 \u003c\/b\u003e\n\"}","status_code":503,"error_class":"http_5xx","error":"x","rule_version":7}`,
		head + `,"attempted_at":"2026-01-01T01:00:00.000001+01:00"}`,
		head + `,"attempted_at":"2026-01-01T00:00:00.5-00:30"}`,
	} {
		got, ok := fastResult([]byte(doc))
		if !ok {
			t.Errorf("not vouched for by the fast decoder:\n%s", doc)
			continue
		}
		var want ResultRecord
		if err := json.Unmarshal([]byte(doc), &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(*got, want) {
			t.Errorf("fast decoded\n%+v\nencoding/json decoded\n%+v\nfrom %s", *got, want, doc)
		}
	}
}

// TestDecodeResultAllocs: one allocation for the record, one per string
// (six in the example) and one buffer for the escaped excerpt's text.
func TestDecodeResultAllocs(t *testing.T) {
	doc := readFile(t, filepath.Join(examplesDir, "result.json"))
	const budget = 1 + 6 + 1
	got := testing.AllocsPerRun(100, func() {
		if _, err := DecodeResult(doc); err != nil {
			t.Fatal(err)
		}
	})
	if got > budget {
		t.Fatalf("DecodeResult of result.json: %v allocations, budget %v", got, budget)
	}
}
