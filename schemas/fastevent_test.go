package schemas

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// fastEventSeeds are documents aimed at the fast check's shortcuts: members
// that decode to the same Go value whether absent, null or empty, value
// kinds encoding/json tolerates, names compared raw.
func fastEventSeeds() [][]byte {
	const head = `{"specversion":"1.0","id":"a","source":"b","type":"c","tenantid":"t","time":"2026-01-01T00:00:00Z",`
	const wf = `"workflow":{"id":"w","name":"n"}`
	var docs [][]byte
	for _, s := range []string{
		head + `"data":{` + wf + `,"run":{"id":"r"}}}`,
		head + `"subject":"","data":{` + wf + `,"run":{"id":"r"}}}`,
		head + `"subject":null,"data":{` + wf + `,"run":{"id":"r"}}}`,
		head + `"datacontenttype":"","data":{` + wf + `,"run":{"id":"r"}}}`,
		head + `"datacontenttype":"application/cloudevents+json; charset=utf-8","data":{` + wf + `,"run":{"id":"r"}}}`,
		head + `"datacontenttype":"text/plain","data":{` + wf + `,"run":{"id":"r"}}}`,
		head + `"data":{` + wf + `,"run":{"id":"r","status":""}}}`,
		head + `"data":{` + wf + `,"run":{"id":"r","status":null}}}`,
		head + `"data":{` + wf + `,"run":{"id":"r","attempt":0}}}`,
		head + `"data":{` + wf + `,"run":{"id":"r","attempt":null}}}`,
		head + `"data":{` + wf + `,"run":{"id":"r","attempt":2147483648}}}`,
		head + `"data":{` + wf + `,"run":{"id":"r","attempt":2147483647,"duration_ms":9223372036854775807}}}`,
		head + `"data":{` + wf + `,"run":{"id":"r","duration_ms":-1}}}`,
		head + `"data":{` + wf + `,"run":{"id":null}}}`,
		head + `"data":{"workflow":{"id":"w","name":null},"run":{"id":"r"}}}`,
		head + `"data":{"workflow":{"id":"w"},"run":{"id":"r"}}}`,
		head + `"data":{"workflow":null,"run":{"id":"r"}}}`,
		head + `"data":{` + wf + `,"run":{"id":"r","started_at":"2026-02-29T00:00:00Z"}}}`,
		head + `"data":{` + wf + `,"run":{"id":"r","started_at":"2028-02-29T00:00:00.123456789+05:30","finished_at":null}}}`,
		head + `"data":{` + wf + `,"run":{"id":"r","started_at":"2026-01-01t00:00:00z"}}}`,
		head + `"data":{` + wf + `,"run":{"id":"r","started_at":"2026-01-01T00:00:00.1234567890Z"}}}`,
		head + `"data":{` + wf + `,"run":{"id":"r","finished_at":"2026-01-01T00:00:60Z"}}}`,
		head + `"data":{` + wf + `,"run":{"id":"r","finished_at":"2026-01-01T00:00:00\u005a"}}}`,
		head + `"data":{` + wf + `,"run":{"id":"r"},"error":{"code":null}}}`,
		head + `"data":{` + wf + `,"run":{"id":"r"},"error":{"code":"","message":"","node":""}}}`,
		head + `"data":{` + wf + `,"run":{"id":"r"},"error":{"stack":"x"}}}`,
		head + `"data":{` + wf + `,"run":{"id":"r"},"labels":{"env":null}}}`,
		head + `"data":{` + wf + `,"run":{"id":"r"},"labels":{"":"x"}}}`,
		head + `"data":{` + wf + `,"run":{"id":"r"},"labels":{"\u0065nv":"prod","e\"nv":"x"}}}`,
		head + `"data":{` + wf + `,"run":{"id":"r"},"labels":{"env":"` + strings.Repeat("é", 256) + `"}}}`,
		head + `"data":{` + wf + `,"run":{"id":"r"},"labels":{"env":"` + strings.Repeat("é", 257) + `"}}}`,
		head + `"data":{` + wf + `,"run":{"id":"r"},"labels":{"` + strings.Repeat("k", 63) + `":"v"}}}`,
		head + `"data":{` + wf + `,"run":{"id":"r"},"labels":[]}}`,
		head + `"data":{` + wf + `,"run":{"id":"r"},"future_field":{"x":[1,{"y":"}"}]},"_x":1}}`,
		head + `"data":{` + wf + `,"run":{"id":"r"},"Future":1}}`,
		head + `"traceparent":"00-x","partitionkey":7,"flag":true,"none":null,"data":{` + wf + `,"run":{"id":"r"}}}`,
		head + `"extension":[1],"data":{` + wf + `,"run":{"id":"r"}}}`,
		head + `"extension":{},"data":{` + wf + `,"run":{"id":"r"}}}`,
		head + `"ext_ension":"x","data":{` + wf + `,"run":{"id":"r"}}}`,
		head + `"\u0064ata2":"x","data":{` + wf + `,"run":{"id":"r"}}}`,
		head + `"` + strings.Repeat("x", 65) + `":"x","data":{` + wf + `,"run":{"id":"r"}}}`,
		`{"specversion":"1.0","id":"a","source":"b","type":"c","tenantid":"-t","time":"2026-01-01T00:00:00Z","data":{` + wf + `,"run":{"id":"r"}}}`,
		`{"specversion":"1.0","id":"a","source":"b","type":"c","tenantid":"t","time":null,"data":{` + wf + `,"run":{"id":"r"}}}`,
		`{"specversion":"1.0","id":"a","source":"b","type":"c","tenantid":"t","data":{` + wf + `,"run":{"id":"r"}}}`,
		" \n" + head + "\t\"data\" : {\r\n" + wf + ` , "run" : { "id" : "r" , "attempt" : 3 } } } ` + "\n",
		head + `"data":{` + wf + `,"run":{"id":"r"}}} {}`,
		// The one-pass decoder reads strings, numbers and times itself:
		// escapes, Unicode, surrogates, offsets and fractions, as
		// encoding/json reads them.
		head + `"subject":"a\"b\\c\/d\b\f\n\r\t\u00e9\u20AC\ud83d\ude00","data":{` + wf + `,"run":{"id":"r"}}}`,
		head + `"subject":"\ud83d","data":{` + wf + `,"run":{"id":"r"}}}`,
		head + `"subject":"\ude00\ud83d","data":{` + wf + `,"run":{"id":"r"}}}`,
		head + `"subject":"\ud83d\u0041","data":{` + wf + `,"run":{"id":"r"}}}`,
		head + `"subject":"\ud83dx","data":{` + wf + `,"run":{"id":"r"}}}`,
		head + `"subject":"é€😀","data":{"workflow":{"id":"w\u0000","name":"n"},"run":{"id":"r"}}}`,
		head + `"subject":"a\x","data":{` + wf + `,"run":{"id":"r"}}}`,
		head + `"subject":"a\u12","data":{` + wf + `,"run":{"id":"r"}}}`,
		head + `"subject":"a` + "\t\x01" + `","data":{` + wf + `,"run":{"id":"r"}}}`,
		head + `"subject":"a` + "\xff\xfe" + `","data":{` + wf + `,"run":{"id":"r"}}}`,
		head + `"subject":"a` + "\xed\xa0\x80" + `","data":{` + wf + `,"run":{"id":"r"}}}`,
		head + `"subject":"` + strings.Repeat("é", 256) + `","data":{` + wf + `,"run":{"id":"r"}}}`,
		head + `"subject":"` + strings.Repeat("\u00e9", 257) + `","data":{` + wf + `,"run":{"id":"r"}}}`,
		head + `"type":"workflow.run.failed","data":{` + wf + `,"run":{"id":"r","status":"failed"}}}`,
		head + `"type":"workflow.run.\u0066ailed","data":{` + wf + `,"run":{"id":"r","status":"f\u0061iled"}}}`,
		head + `"datacontenttype":"application/json","data":{` + wf + `,"run":{"id":"r"}}}`,
		head + `"datacontenttype":"application/json; charset=\"utf-8\"","data":{` + wf + `,"run":{"id":"r"}}}`,
		`{"specversion":"1.0","id":"a","source":"b","type":"c","tenantid":"t","time":"2026-01-01T00:00:00.5+01:00","data":{` + wf + `,"run":{"id":"r"}}}`,
		`{"specversion":"1.0","id":"a","source":"b","type":"c","tenantid":"t","time":"2026-01-01T00:00:00-00:00","data":{` + wf + `,"run":{"id":"r"}}}`,
		`{"specversion":"1.0","id":"a","source":"b","type":"c","tenantid":"t","time":"2026-01-01T00:00:00+00:00","data":{` + wf + `,"run":{"id":"r"}}}`,
		`{"specversion":"1.0","id":"a","source":"b","type":"c","tenantid":"t","time":"2026-07-01T00:00:00.000000001-04:30","data":{` + wf + `,"run":{"id":"r"}}}`,
		`{"specversion":"1.0","id":"a","source":"b","type":"c","tenantid":"t","time":"2024-02-29T23:59:59.999999999Z","data":{` + wf + `,"run":{"id":"r"}}}`,
		`{"specversion":"1.0","id":"a","source":"b","type":"c","tenantid":"t","time":"2100-02-29T00:00:00Z","data":{` + wf + `,"run":{"id":"r"}}}`,
		`{"specversion":"1.0","id":"a","source":"b","type":"c","tenantid":"t","time":"2000-02-29T00:00:00Z","data":{` + wf + `,"run":{"id":"r"}}}`,
		`{"specversion":"1.0","id":"a","source":"b","type":"c","tenantid":"t","time":"2026-04-31T00:00:00Z","data":{` + wf + `,"run":{"id":"r"}}}`,
		`{"specversion":"1.0","id":"a","source":"b","type":"c","tenantid":"t","time":"2026-13-01T00:00:00Z","data":{` + wf + `,"run":{"id":"r"}}}`,
		`{"specversion":"1.0","id":"a","source":"b","type":"c","tenantid":"t","time":"2026-00-00T00:00:00Z","data":{` + wf + `,"run":{"id":"r"}}}`,
		`{"specversion":"1.0","id":"a","source":"b","type":"c","tenantid":"t","time":"0000-01-01T00:00:00Z","data":{` + wf + `,"run":{"id":"r"}}}`,
		`{"specversion":"1.0","id":"a","source":"b","type":"c","tenantid":"t","time":"2026-01-01T00:00:00\u002B01:00","data":{` + wf + `,"run":{"id":"r"}}}`,
		`{"specversion":"1.0","id":"a","source":"b","type":"c","tenantid":"t","time":"2026-01-01T00:00:00.Z","data":{` + wf + `,"run":{"id":"r"}}}`,
		`{"specversion":"\u0031.0","id":"a","source":"b","type":"c","tenantid":"t","time":"2026-01-01T00:00:00Z","data":{` + wf + `,"run":{"id":"r"}}}`,
		`{"specversion":"1.0","id":"a","source":"b","type":"c","tenantid":"t","time":"2026-01-01T00:00:00Z","data":{` + wf + `,"run":{"id":"r","attempt":1,"status":"running","duration_ms":null,"started_at":null,"finished_at":null},"error":null,"labels":null}}`,
		`{"specversion":"1.0","id":"a","source":"b","type":"c","tenantid":"t","time":"2026-01-01T00:00:00Z","data":{` + wf + `,"run":{"id":"r"},"error":{},"labels":{}}}`,
		// Numbers.
		head + `"data":{` + wf + `,"run":{"id":"r","attempt":01}}}`,
		head + `"data":{` + wf + `,"run":{"id":"r","attempt":1.}}}`,
		head + `"data":{` + wf + `,"run":{"id":"r","attempt":-}}}`,
		head + `"data":{` + wf + `,"run":{"id":"r","attempt":+1}}}`,
		head + `"data":{` + wf + `,"run":{"id":"r","duration_ms":9223372036854775808}}}`,
		head + `"data":{` + wf + `,"run":{"id":"r","duration_ms":18446744073709551616}}}`,
		head + `"data":{` + wf + `,"run":{"id":"r","duration_ms":00}}}`,
		head + `"seq":-0.5e+3,"big":1E400,"data":{` + wf + `,"run":{"id":"r"}}}`,
		head + `"seq":1e,"data":{` + wf + `,"run":{"id":"r"}}}`,
		head + `"seq":tru,"data":{` + wf + `,"run":{"id":"r"}}}`,
		head + `"seq":nul,"data":{` + wf + `,"run":{"id":"r"}}}`,
		// Duplicates, which the schema path refuses, wherever they are.
		head + `"id":"a","data":{` + wf + `,"run":{"id":"r"}}}`,
		head + `"trace":"x","trace":"y","data":{` + wf + `,"run":{"id":"r"}}}`,
		head + `"data":{` + wf + `,"run":{"id":"r","id":"s"}}}`,
		head + `"data":{` + wf + `,"run":{"id":"r","started_at":null,"started_at":"2026-01-01T00:00:00Z"}}}`,
		head + `"data":{` + wf + `,"run":{"id":"r"},"labels":{"a":"1","a":"2"}}}`,
		head + `"data":{` + wf + `,"run":{"id":"r"},"labels":{"a":"1","\u0061":"2"}}}`,
		head + `"data":{` + wf + `,"run":{"id":"r"},"x":1,"x":2}}`,
		head + `"data":{` + wf + `,"run":{"id":"r"},"x":{"y":1,"y":2}}}`,
		head + `"data":{` + wf + `,"run":{"id":"r"},"x":[{"y":1},{"y":2}]}}`,
		head + `"data":{` + wf + `,"run":{"id":"r"},"x":{"\u0079":1,"y":2}}}`,
		head + `"data":{` + wf + `,"workflow":{"id":"w","name":"n"},"run":{"id":"r"}}}`,
		head + `"data":{` + wf + `,"run":{"id":"r"},"error":null,"error":{}}}`,
		head + `"data":{` + wf + `,"run":{"id":"r"},"error":{"code":"a","code":"b"}}}`,
		head + `"data":{` + wf + `,"run":{"id":"r"},"labels":{` + manyLabels(40) + `}}}`,
		head + `"data":{` + wf + `,"run":{"id":"r"},"labels":{` + manyLabels(40) + `,"k7":"v"}}}`,
		head + `"data":{` + wf + `,"run":{"id":"r"},"labels":{` + manyLabels(16) + `}}}`,
		head + `"data":{` + wf + `,"run":{"id":"r"},"labels":{` + manyLabels(17) + `}}}`,
		head + manyMembers(20, `"x%d":1`) + `,"data":{` + wf + `,"run":{"id":"r"}}}`,
		head + `"data":{` + wf + `,"run":{"id":"r"},` + manyMembers(20, `"x%d":1`) + `}}`,
		head + `"data":{` + wf + `,"run":{"id":"r"},"x":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}}`,
		head + `"data":{` + wf + `,"run":{"id":"r"},"x":` + strings.Repeat("[", 20) + strings.Repeat("]", 20) + `}}`,
		// Grammar.
		head + `"data":{` + wf + `,"run":{"id":"r"},}}`,
		head + `"data":{` + wf + `,"run":{"id":"r"}},}`,
		head + `"data":{` + wf + `,"run":{"id":"r"},"x":[1,]}}`,
		head + `"data":{` + wf + `,"run":{"id":"r"},"x":[1 2]}}`,
		head + `"data":{` + wf + `,"run":{"id":"r"},"x":{"a" 1}}}`,
		head + `"data":{` + wf + `,"run":{"id":"r"}}`,
		head + `"data":{` + wf + `,"run":{"id":"r"}}}}`,
		head + `"data":{` + wf + `,"run":{"id":"r"`,
		head + `"data":{` + wf + `,"run":{"id":"r"}}}` + "\x00",
		"\xef\xbb\xbf" + head + `"data":{` + wf + `,"run":{"id":"r"}}}`,
	} {
		docs = append(docs, []byte(s))
	}
	return docs
}

// manyLabels returns n labels "k0":"v0", ...
func manyLabels(n int) string {
	return manyMembers(n, `"k%d":"v"`)
}

// manyMembers returns n members written by format (with their index).
func manyMembers(n int, format string) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(format, i)
	}
	return strings.Join(parts, ",")
}

// agreesWithSchema checks one document against the fast checks' contract:
// fast accepts nothing the schema refuses and decodes what it accepts exactly
// as encoding/json does; decode answers as Validate + json.Unmarshal do.
func agreesWithSchema[T any](t *testing.T, k Kind, doc []byte, fast func([]byte) (*T, bool), decode func([]byte) (*T, error)) {
	t.Helper()
	verr := Validate(k, doc)
	if got, ok := fast(doc); ok {
		if verr != nil {
			t.Fatalf("fast check accepted a %s the schema refuses (%v):\n%s", k, verr, doc)
		}
		var want T
		if err := json.Unmarshal(doc, &want); err != nil {
			t.Fatalf("fast check accepted a %s encoding/json cannot decode (%v):\n%s", k, err, doc)
		}
		if ev, ok := any(got).(*WorkflowEvent); ok {
			// The labels' canonical form is the decoder's own: it must be
			// the labels' (or not made), then it is left out of the
			// comparison.
			if key := ev.Data.LabelsKey(); key != "" && key != canonicalLabels(ev.Data.Labels) {
				t.Fatalf("LabelsKey %q is not the canonical form %q of %v\nfrom %s", key, canonicalLabels(ev.Data.Labels), ev.Data.Labels, doc)
			}
			cp := *ev
			cp.Data.labelsKey = ""
			got = any(&cp).(*T)
		}
		if !reflect.DeepEqual(*got, want) {
			t.Fatalf("fast check decoded\n%+v\nencoding/json decoded\n%+v\nfrom %s", *got, want, doc)
		}
	}
	v, err := decode(doc)
	switch {
	case verr != nil:
		if err == nil || err.Error() != verr.Error() {
			t.Fatalf("decode: %v, Validate: %v\n%s", err, verr, doc)
		}
	case err != nil:
		var de *DecodeError
		if !errors.As(err, &de) {
			t.Fatalf("schema-valid %s refused with %T %v\n%s", k, err, err, doc)
		}
		var want T
		if json.Unmarshal(doc, &want) == nil {
			t.Fatalf("DecodeError for a %s encoding/json decodes: %v\n%s", k, err, doc)
		}
	case v == nil:
		t.Fatalf("no value and no error for\n%s", doc)
	}
}

// takesExamples checks that every valid example of k, and its re-encoding
// (what our own components write), takes the fast path — if the fast check
// stopped vouching for them, the hot path would silently fall back to the
// slow validator — and that every invalid example gets Validate's answer.
// It returns the decode errors of the invalid examples by name.
// schemaOnly names the valid examples the fast checks leave to the schema
// on purpose: deliveries of aggregate episodes and notices are rare (one per
// episode, not per event), so the fast path covers per-event alerts only.
// DecodeDelivery still takes them (TestExamplesValidate).
var schemaOnly = map[string]bool{"delivery.firing": true, "delivery.resolved": true, "delivery.notice": true}

func takesExamples[T any](t *testing.T, k Kind, fast func([]byte) (*T, bool), decode func([]byte) (*T, error), atLeast int) map[string]error {
	t.Helper()
	n := 0
	for _, ex := range listExamples(t, examplesDir) {
		if ex.kind != k || schemaOnly[ex.name] {
			continue
		}
		v, ok := fast(readFile(t, ex.path))
		if !ok {
			t.Errorf("%s: not vouched for by the fast check", ex.name)
			continue
		}
		out, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := fast(out); !ok {
			t.Errorf("%s: re-encoded, not vouched for: %s", ex.name, out)
		}
		n++
	}
	if n < atLeast {
		t.Fatalf("only %d valid %s examples", n, k)
	}
	errs := map[string]error{}
	for _, ex := range listExamples(t, invalidDir) {
		if ex.kind != k {
			continue
		}
		doc := readFile(t, ex.path)
		if _, ok := fast(doc); ok {
			t.Errorf("%s: fast check accepted an invalid example", ex.name)
		}
		_, err := decode(doc)
		if verr := Validate(k, doc); err == nil || err.Error() != verr.Error() {
			t.Errorf("%s: got %v, want %v", ex.name, err, verr)
		}
		errs[ex.name] = err
	}
	return errs
}

// FuzzDecodeWorkflowEventAgreesWithSchema: see agreesWithSchema.
func FuzzDecodeWorkflowEventAgreesWithSchema(f *testing.F) {
	for _, doc := range workflowEventSeeds(f) {
		f.Add(doc)
	}
	for _, doc := range fastEventSeeds() {
		f.Add(doc)
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		agreesWithSchema(t, KindWorkflowEvent, doc, fastWorkflowEvent, DecodeWorkflowEvent)
	})
}

// TestFastCheckTakesOrdinaryEvents: see takesExamples; the invalid examples'
// errors name the field at fault.
func TestFastCheckTakesOrdinaryEvents(t *testing.T) {
	t.Parallel()
	for name, err := range takesExamples(t, KindWorkflowEvent, fastWorkflowEvent, DecodeWorkflowEvent, 4) {
		var ve *ValidationError
		if !errors.As(err, &ve) {
			if !errors.Is(err, ErrNotJSON) {
				t.Errorf("%s: got %v, want a ValidationError", name, err)
			}
			continue
		}
		if want := invalidWant[name]; want != "" && !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v does not name %s", name, err, want)
		}
	}
}

func TestDecodeWorkflowEventNotJSON(t *testing.T) {
	t.Parallel()
	for _, doc := range []string{``, `{`, `{"a":1}x`, "\xff"} {
		if _, err := DecodeWorkflowEvent([]byte(doc)); !errors.Is(err, ErrNotJSON) {
			t.Errorf("%q: got %v, want ErrNotJSON", doc, err)
		}
	}
}

func BenchmarkDecodeWorkflowEvent(b *testing.B) {
	doc := readFile(b, filepath.Join(examplesDir, "workflow-event.json"))
	b.Run("fast", func(b *testing.B) {
		b.SetBytes(int64(len(doc)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := DecodeWorkflowEvent(doc); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The same event as producers send it, without the example's
	// indentation (564 bytes instead of 699).
	var compact bytes.Buffer
	if err := json.Compact(&compact, doc); err != nil {
		b.Fatal(err)
	}
	b.Run("fast-compact", func(b *testing.B) {
		b.SetBytes(int64(compact.Len()))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := DecodeWorkflowEvent(compact.Bytes()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("schema+unmarshal", func(b *testing.B) {
		b.SetBytes(int64(len(doc)))
		b.ReportAllocs()
		for b.Loop() {
			if err := Validate(KindWorkflowEvent, doc); err != nil {
				b.Fatal(err)
			}
			var ev WorkflowEvent
			if err := json.Unmarshal(doc, &ev); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// An encoder that escapes "+" (as .NET's does by default) writes a
// timestamp's offset as \u002B: valid JSON, valid by the schema, and the
// event decodes like its plain twin.
func TestDecodeWorkflowEventWithEscapedTimestamps(t *testing.T) {
	t.Parallel()
	const head = `{"specversion":"1.0","id":"a","source":"b","type":"workflow.run.failed","tenantid":"t","data":{"workflow":{"id":"w","name":"n"},"run":{"id":"r","started_at":"2026-01-01T09:59:00`
	plain := head + `+01:00","duration_ms":9223372036854775807}},"time":"2026-01-01T10:00:00+01:00"}`
	escaped := head + `\u002B01:00","duration_ms":9223372036854775807}},"time":"2026-01-01T10:00:00\u002b01:00"}`
	want, err := DecodeWorkflowEvent([]byte(plain))
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeWorkflowEvent([]byte(escaped))
	if err != nil {
		t.Fatalf("escaped timestamps: %v", err)
	}
	if !got.Time.Equal(want.Time) || !got.Data.Run.StartedAt.Equal(*want.Data.Run.StartedAt) || *got.Data.Run.DurationMS != *want.Data.Run.DurationMS {
		t.Fatalf("decoded %+v, want %+v", got, want)
	}
}

// TestFastEventTakesOrdinaryVariety: events as other encoders write them —
// escapes (Python's json escapes every non-ASCII character, Go's escapes
// <, > and &), offsets and fractions, null and absent optional members,
// many labels — are decoded by the one-pass decoder, not left to the slow
// validator, and decoded as encoding/json decodes them.
func TestFastEventTakesOrdinaryVariety(t *testing.T) {
	t.Parallel()
	const head = `{"specversion":"1.0","id":"a","source":"b","type":"workflow.run.failed","tenantid":"t",`
	const wf = `"workflow":{"id":"w","name":"n"}`
	for _, doc := range []string{
		head + `"time":"2026-01-01T00:00:00Z","subject":"caf\u00e9 \ud83d\ude00 \u003cb\u003e \"q\" \\ \/ \n\t","data":{` + wf + `,"run":{"id":"r"}}}`,
		head + `"time":"2026-01-01T00:00:00Z","subject":"café 😀","data":{` + wf + `,"run":{"id":"r"},"labels":{"caf\u00e9":"\u00e9t\u00e9","env":"prod"}}}`,
		head + `"time":"2026-07-01T12:30:00.5+05:30","data":{` + wf + `,"run":{"id":"r","started_at":"2026-07-01T12:00:00-04:00","finished_at":"2026-07-01T12:30:00.123456789Z"}}}`,
		head + `"time":"2026-01-01T00:00:00+00:00","data":{` + wf + `,"run":{"id":"r","attempt":2,"status":"running","started_at":null,"finished_at":null,"duration_ms":null},"error":null,"labels":null}}`,
		head + `"time":"2026-01-01T00:00:00Z","data":{` + wf + `,"run":{"id":"r"},"error":{},"labels":{}}}`,
		head + `"time":"2026-01-01T00:00:00Z","data":{` + wf + `,"run":{"id":"r"},"labels":{` + manyLabels(40) + `}}}`,
		head + `"time":"2026-01-01T00:00:00Z","traceparent":"00-x","sequence":-1.5e3,"sampled":false,"none":null,"data":{` + wf + `,"run":{"id":"r"},"graph":{"nodes":[{"id":1},{"id":2}],"x":[[]]}}}`,
	} {
		got, ok := fastWorkflowEvent([]byte(doc))
		if !ok {
			t.Errorf("not vouched for by the fast decoder:\n%s", doc)
			continue
		}
		var want WorkflowEvent
		if err := json.Unmarshal([]byte(doc), &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(*got, want) {
			t.Errorf("fast decoded\n%+v\nencoding/json decoded\n%+v\nfrom %s", *got, want, doc)
		}
	}
}

// TestDecodeWorkflowEventAllocs holds the fast decoding of the benchmark's
// 700-byte example to its allocation budget: one block for the event and
// what its pointers point to, one per string that is not one of the
// usual constants (10 here), one for the text of all the labels, and the
// labels map, made once at its size.
func TestDecodeWorkflowEventAllocs(t *testing.T) {
	doc := readFile(t, filepath.Join(examplesDir, "workflow-event.json"))
	mapAllocs := testing.AllocsPerRun(100, func() {
		m := make(map[string]string, 2)
		m["env"], m["team"] = "prod", "data"
		sinkMap = m
	})
	budget := 1 + 10 + 1 + mapAllocs
	got := testing.AllocsPerRun(100, func() {
		if _, err := DecodeWorkflowEvent(doc); err != nil {
			t.Fatal(err)
		}
	})
	if got > budget {
		t.Fatalf("DecodeWorkflowEvent of the 700-byte example: %v allocations, budget %v", got, budget)
	}
}

// sinkMap keeps the measured map from being optimized away.
var sinkMap map[string]string

// canonicalLabels is LabelsKey's form of labels, written plainly: keys in
// order, each key and value after its length as a uvarint.
func canonicalLabels(labels map[string]string) string {
	var b []byte
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		b = binary.AppendUvarint(b, uint64(len(labels[k])))
		b = append(b, labels[k]...)
	}
	return string(b)
}

// TestLabelsKeyIsCanonical: events with the same labels, written in any
// member order, get the same LabelsKey, and events with other labels
// another; escaped labels leave it to the map.
func TestLabelsKeyIsCanonical(t *testing.T) {
	event := func(labels string) *WorkflowEvent {
		t.Helper()
		doc := `{"specversion":"1.0","id":"e1","source":"s","type":"` + TypeRunFailed + `","tenantid":"acme","time":"2026-01-01T00:00:00Z",` +
			`"data":{"workflow":{"id":"w","name":"n"},"run":{"id":"r"},"labels":` + labels + `}}`
		ev, err := DecodeWorkflowEvent([]byte(doc))
		if err != nil {
			t.Fatalf("%s: %v", labels, err)
		}
		return ev
	}
	a := event(`{"team":"data","env":"prod","app":"etl"}`)
	b := event(`{"app":"etl","env":"prod","team":"data"}`)
	want := canonicalLabels(map[string]string{"app": "etl", "env": "prod", "team": "data"})
	if a.Data.LabelsKey() != want || b.Data.LabelsKey() != want {
		t.Fatalf("LabelsKey %q and %q, want both %q", a.Data.LabelsKey(), b.Data.LabelsKey(), want)
	}
	// Lengths separate the strings: "ab":"c" is not "a":"bc".
	if x, y := event(`{"ab":"c"}`), event(`{"a":"bc"}`); x.Data.LabelsKey() == y.Data.LabelsKey() {
		t.Fatalf("different labels share the key %q", x.Data.LabelsKey())
	}
	if esc := event(`{"te\u0061m":"data"}`); esc.Data.LabelsKey() != "" || esc.Data.Labels["team"] != "data" {
		t.Fatalf("escaped labels: key %q, labels %v", esc.Data.LabelsKey(), esc.Data.Labels)
	}
}
