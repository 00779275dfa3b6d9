package dispatcher

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/exospherehost/exo-alerts/schemas"
)

// The dispatcher decodes its records with schemas.DecodeDeliveryEnvelope,
// which does not validate the payload's contents. For every delivery example
// of the schemas (per-event alerts, aggregate episodes, notices, tests) and
// every invalid one, the record and the message sent to each kind of
// endpoint are the same as with the full decode (schemas.DecodeDelivery)
// wherever the full decode accepts; where it refuses, so does the envelope
// decode unless the refusal is about the payload's contents, and then a
// webhook is sent the payload's bytes unchanged.
func TestEnvelopeDecodeSendsWhatFullDecodeSends(t *testing.T) {
	t.Parallel()
	dir := filepath.Join("..", "schemas", "examples")
	var docs [][]byte
	for _, sub := range []string{dir, filepath.Join(dir, "invalid")} {
		paths, err := filepath.Glob(filepath.Join(sub, "delivery*.json"))
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range paths {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			docs = append(docs, b)
		}
	}
	if len(docs) < 8 {
		t.Fatalf("only %d delivery examples", len(docs))
	}
	kinds := []string{schemas.EndpointKindWebhook, schemas.EndpointKindSlack, schemas.EndpointKindPagerDuty}
	const links = LinkTemplate("https://app.example.com/{tenant_id}/{workflow_id}/{run_id}/{alert_id}")
	both := 0
	for _, doc := range docs {
		full, ferr := schemas.DecodeDelivery(doc)
		del, err := schemas.DecodeDeliveryEnvelope(doc)
		switch {
		case ferr == nil && err == nil:
			both++
			if !reflect.DeepEqual(del, *full) {
				t.Fatalf("records differ:\n%+v\n%+v", del, *full)
			}
			for _, kind := range kinds {
				want, werr := render(kind, full, "R0UTING", links)
				got, gerr := render(kind, &del, "R0UTING", links)
				if werr != nil || gerr != nil || !bytes.Equal(got.body, want.body) || got.sign != want.sign {
					t.Errorf("%s message differs (errors %v, %v):\n%s\n%s", kind, gerr, werr, got.body, want.body)
				}
			}
		case ferr == nil:
			t.Errorf("envelope decode refused (%v) what the full decode accepts:\n%s", err, doc)
		case err != nil:
			if err.Error() != ferr.Error() {
				t.Errorf("refused with %v, the full decode with %v", err, ferr)
			}
		default:
			if !strings.Contains(ferr.Error(), "/payload/") {
				t.Errorf("accepted a record refused for %v", ferr)
			}
			m, err := render(schemas.EndpointKindWebhook, &del, "", links)
			if err != nil || !m.sign || !bytes.Equal(m.body, del.Payload) {
				t.Errorf("webhook message of an accepted record: %v, %s", err, m.body)
			}
		}
	}
	if both < 6 {
		t.Fatalf("only %d examples decoded by both", both)
	}
}
