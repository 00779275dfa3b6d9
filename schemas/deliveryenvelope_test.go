package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// envelopeSeeds: the delivery seeds of FuzzDecodeDeliveryAgreesWithSchema
// (every delivery example, valid and invalid, every payload example in a
// valid envelope, and the mutations of delivery.json) and the fuzz corpus
// checked in for FuzzDecodeDeliveryEnvelopeAgrees.
func envelopeSeeds(t testing.TB) [][]byte {
	docs := deliverySeeds(t)
	dir := filepath.Join("testdata", "fuzz", "FuzzDecodeDeliveryEnvelopeAgrees")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		doc, err := readCorpusEntry(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		docs = append(docs, doc)
	}
	return docs
}

// readCorpusEntry reads a fuzz corpus file of one []byte argument
// ("go test fuzz v1" then `[]byte("...")`).
func readCorpusEntry(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	_, arg, ok := strings.Cut(string(b), "\n")
	arg = strings.TrimSpace(arg)
	if !ok || !strings.HasPrefix(arg, "[]byte(") || !strings.HasSuffix(arg, ")") {
		return nil, errors.New("not a corpus entry of one []byte")
	}
	s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(arg, "[]byte("), ")"))
	if err != nil {
		return nil, err
	}
	return []byte(s), nil
}

// envelopeAgrees holds DecodeDeliveryEnvelope to DecodeDelivery on doc:
// where both accept, the records are identical (every field the dispatcher
// reads, and the payload's bytes it sends); where DecodeDelivery refuses,
// DecodeDeliveryEnvelope refuses with the same error, unless the refusal is
// about the payload's contents only — then it reports true, after checking
// that the payload is a well-formed object without repeated names and that
// the same envelope around a valid payload is valid.
func envelopeAgrees(t *testing.T, doc []byte) (acceptedMore bool) {
	t.Helper()
	full, ferr := DecodeDelivery(doc)
	got, err := DecodeDeliveryEnvelope(doc)
	switch {
	case ferr == nil && err == nil:
		if !reflect.DeepEqual(got, *full) {
			t.Fatalf("envelope decoded\n%+v\nDecodeDelivery decoded\n%+v\nfrom %s", got, *full, doc)
		}
		if !bytes.Equal(got.Payload, full.Payload) {
			t.Fatalf("payload bytes differ:\n%s\n%s", got.Payload, full.Payload)
		}
	case ferr == nil:
		t.Fatalf("refused (%v) a record DecodeDelivery accepts:\n%s", err, doc)
	case err != nil:
		if err.Error() != ferr.Error() {
			t.Fatalf("refused with\n%v\nDecodeDelivery refused with\n%v\n%s", err, ferr, doc)
		}
	default:
		payloadOnlyRefusal(t, doc, got, ferr)
		return true
	}
	return false
}

// payloadOnlyRefusal checks that DecodeDelivery refused doc, which
// DecodeDeliveryEnvelope accepted as got, for its payload's contents alone.
func payloadOnlyRefusal(t *testing.T, doc []byte, got DeliveryRecord, ferr error) {
	t.Helper()
	var verr *ValidationError
	if !errors.As(ferr, &verr) {
		t.Fatalf("accepted a record DecodeDelivery refuses as %T (%v):\n%s", ferr, ferr, doc)
	}
	for _, pr := range verr.Problems {
		if !strings.HasPrefix(pr, "/payload") || strings.Contains(pr, "duplicated") {
			t.Fatalf("accepted a record refused for %q, not the payload's contents:\n%s", pr, doc)
		}
	}
	if len(got.Payload) == 0 || got.Payload[0] != '{' || !json.Valid(got.Payload) || duplicateMember(got.Payload) != nil {
		t.Fatalf("accepted a payload that is not one well-formed object: %s", got.Payload)
	}
	// The same envelope around a valid payload is a valid delivery.
	var members map[string]json.RawMessage
	if err := json.Unmarshal(doc, &members); err != nil {
		t.Fatal(err)
	}
	members["payload"] = readFile(t, filepath.Join(examplesDir, "webhook-payload-v1.json"))
	fixed, err := json.Marshal(members)
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate(KindDelivery, fixed); err != nil {
		t.Fatalf("accepted a record whose envelope is invalid (%v):\n%s", err, doc)
	}
	var want DeliveryRecord
	if err := json.Unmarshal(doc, &want); err != nil {
		t.Fatalf("accepted a record encoding/json cannot decode (%v):\n%s", err, doc)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("envelope decoded\n%+v\nencoding/json decoded\n%+v\nfrom %s", got, want, doc)
	}
}

// TestDecodeDeliveryEnvelopeAgrees runs envelopeAgrees over the examples,
// the bad records and the corpus, and pins which of them it accepts where
// DecodeDelivery refused: only records whose payload object breaks the
// payload schema inside (docs of DecodeDeliveryEnvelope say why that is
// safe for the dispatcher).
func TestDecodeDeliveryEnvelopeAgrees(t *testing.T) {
	t.Parallel()
	var accepted, more, refused int
	for _, doc := range envelopeSeeds(t) {
		if envelopeAgrees(t, doc) {
			more++
			if _, err := DecodeDelivery(doc); err != nil {
				t.Logf("accepted, DecodeDelivery refused: %v", err)
			}
			continue
		}
		if _, err := DecodeDeliveryEnvelope(doc); err == nil {
			accepted++
		} else {
			refused++
		}
	}
	t.Logf("%d accepted by both, %d refused by both, %d accepted only here", accepted, refused, more)
	// The corpus must exercise all three answers.
	if accepted < 10 || refused < 20 || more < 5 {
		t.Fatalf("seeds too narrow: %d accepted, %d refused, %d accepted only here", accepted, refused, more)
	}
}

// FuzzDecodeDeliveryEnvelopeAgrees: see envelopeAgrees.
func FuzzDecodeDeliveryEnvelopeAgrees(f *testing.F) {
	for _, doc := range deliverySeeds(f) {
		f.Add(doc)
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		envelopeAgrees(t, doc)
	})
}

// TestDecodeDeliveryEnvelopeTakesExamples: every valid delivery example —
// aggregate episodes and notices included, which DecodeDelivery leaves to
// the schema validator — and its compact form take the one pass.
func TestDecodeDeliveryEnvelopeTakesExamples(t *testing.T) {
	t.Parallel()
	n := 0
	for _, ex := range listExamples(t, examplesDir) {
		if ex.kind != KindDelivery {
			continue
		}
		doc := readFile(t, ex.path)
		var compact bytes.Buffer
		if err := json.Compact(&compact, doc); err != nil {
			t.Fatal(err)
		}
		for _, d := range [][]byte{doc, compact.Bytes()} {
			var got DeliveryRecord
			if !fastDeliveryEnvelope(d, &got) {
				t.Errorf("%s: not taken by the one pass", ex.name)
			}
		}
		n++
	}
	if n < 6 {
		t.Fatalf("only %d delivery examples", n)
	}
}

// TestDecodeDeliveryEnvelopeAllocs: one allocation per string that is not
// an enum's (alert, tenant, rule and endpoint ids); the record is returned
// by value and the payload is not copied.
func TestDecodeDeliveryEnvelopeAllocs(t *testing.T) {
	doc := readFile(t, filepath.Join(examplesDir, "delivery.json"))
	const budget = 4
	got := testing.AllocsPerRun(100, func() {
		if _, err := DecodeDeliveryEnvelope(doc); err != nil {
			t.Fatal(err)
		}
	})
	if got > budget {
		t.Fatalf("DecodeDeliveryEnvelope of delivery.json: %v allocations, budget %v", got, budget)
	}
}

// BenchmarkDecodeDeliveryEnvelope beside BenchmarkDecodeDelivery, on the
// compact record the processor writes.
func BenchmarkDecodeDeliveryEnvelope(b *testing.B) {
	for _, name := range []string{"delivery", "delivery.firing"} {
		doc := readFile(b, filepath.Join(examplesDir, name+".json"))
		var compact bytes.Buffer
		if err := json.Compact(&compact, doc); err != nil {
			b.Fatal(err)
		}
		b.Run(name+"/full", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := DecodeDelivery(compact.Bytes()); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/envelope", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := DecodeDeliveryEnvelope(compact.Bytes()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
