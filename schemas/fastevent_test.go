package schemas

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
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
	} {
		docs = append(docs, []byte(s))
	}
	return docs
}

// FuzzDecodeWorkflowEventAgreesWithSchema: the fast check accepts nothing the
// schema refuses, decodes what it accepts exactly as encoding/json does, and
// DecodeWorkflowEvent answers every document as Validate + json.Unmarshal do.
func FuzzDecodeWorkflowEventAgreesWithSchema(f *testing.F) {
	for _, doc := range workflowEventSeeds(f) {
		f.Add(doc)
	}
	for _, doc := range fastEventSeeds() {
		f.Add(doc)
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		verr := Validate(KindWorkflowEvent, doc)
		if fast, ok := fastWorkflowEvent(doc); ok {
			if verr != nil {
				t.Fatalf("fast check accepted an event the schema refuses (%v):\n%s", verr, doc)
			}
			var want WorkflowEvent
			if err := json.Unmarshal(doc, &want); err != nil {
				t.Fatalf("fast check accepted an event encoding/json cannot decode (%v):\n%s", err, doc)
			}
			if !reflect.DeepEqual(*fast, want) {
				t.Fatalf("fast check decoded\n%+v\nencoding/json decoded\n%+v\nfrom %s", *fast, want, doc)
			}
		}
		ev, err := DecodeWorkflowEvent(doc)
		switch {
		case verr != nil:
			if err == nil || err.Error() != verr.Error() {
				t.Fatalf("DecodeWorkflowEvent: %v, Validate: %v\n%s", err, verr, doc)
			}
		case err != nil:
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("schema-valid event refused with %T %v\n%s", err, err, doc)
			}
			var want WorkflowEvent
			if json.Unmarshal(doc, &want) == nil {
				t.Fatalf("DecodeError for an event encoding/json decodes: %v\n%s", err, doc)
			}
		case ev == nil:
			t.Fatalf("no event and no error for\n%s", doc)
		}
	})
}

// TestFastCheckTakesOrdinaryEvents: the valid examples, the events the
// workload generator emits and their re-encodings take the fast path; if the
// fast check stopped vouching for them, the processor would silently fall back
// to the slow validator.
func TestFastCheckTakesOrdinaryEvents(t *testing.T) {
	t.Parallel()
	n := 0
	for _, ex := range listExamples(t, examplesDir) {
		if ex.kind != KindWorkflowEvent {
			continue
		}
		doc := readFile(t, ex.path)
		ev, ok := fastWorkflowEvent(doc)
		if !ok {
			t.Errorf("%s: not vouched for by the fast check", ex.name)
			continue
		}
		out, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := fastWorkflowEvent(out); !ok {
			t.Errorf("%s: re-encoded event not vouched for: %s", ex.name, out)
		}
		n++
	}
	if n < 4 {
		t.Fatalf("only %d workflow-event examples", n)
	}
}

// TestDecodeWorkflowEventRefusesInvalidExamples: every invalid example gets
// Validate's own error, naming the field.
func TestDecodeWorkflowEventRefusesInvalidExamples(t *testing.T) {
	t.Parallel()
	for _, ex := range listExamples(t, invalidDir) {
		if ex.kind != KindWorkflowEvent {
			continue
		}
		doc := readFile(t, ex.path)
		if _, ok := fastWorkflowEvent(doc); ok {
			t.Errorf("%s: fast check accepted an invalid example", ex.name)
		}
		_, err := DecodeWorkflowEvent(doc)
		if verr := Validate(KindWorkflowEvent, doc); err == nil || err.Error() != verr.Error() {
			t.Errorf("%s: got %v, want %v", ex.name, err, verr)
		}
		var ve *ValidationError
		if !errors.As(err, &ve) {
			if !errors.Is(err, ErrNotJSON) {
				t.Errorf("%s: got %v, want a ValidationError", ex.name, err)
			}
			continue
		}
		if want := invalidWant[ex.name]; want != "" && !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v does not name %s", ex.name, err, want)
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
