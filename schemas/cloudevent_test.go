package schemas_test

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/exospherehost/exo-alerts/schemas"
)

// CheckWorkflowEvent says why an event is refused and where: the reason the
// processor writes on the invalid topic and the JSON Pointers at fault that
// the HTTP ingest answers with.
func TestCheckWorkflowEvent(t *testing.T) {
	t.Parallel()
	valid, err := os.ReadFile("examples/workflow-event.json")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(valid)
	for _, c := range []struct {
		name, doc, reason string
		paths             []string
	}{
		{"valid", doc, "", nil},
		{"not JSON", "{x", "value is not JSON", nil},
		{"bad time", strings.Replace(doc, `"time": "2026`, `"time": "x2026`, 1), "schema: workflow-event: /time", []string{"/time"}},
		{"no run id", strings.Replace(doc, `"id": "run_123",`, ``, 1), "schema: workflow-event: /data/run/id: is required", []string{"/data/run/id"}},
		{"labels too large", strings.Replace(doc, `"env": "prod"`, manyLabels(), 1), "labels of", []string{"/data/labels"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ev, err := schemas.CheckWorkflowEvent([]byte(c.doc))
			if c.reason == "" {
				if err != nil || ev.ID == "" {
					t.Fatalf("valid event refused: %v", err)
				}
				return
			}
			var ie *schemas.InvalidEventError
			if !errors.As(err, &ie) || !strings.HasPrefix(ie.Reason, c.reason) || !slices.Equal(ie.Paths, c.paths) {
				t.Fatalf("err %v (%T); want reason %q… at %v", err, err, c.reason, c.paths)
			}
		})
	}
}

// manyLabels is labels each within the schema's limits, more than
// MaxLabelBytes in all.
func manyLabels() string {
	var b strings.Builder
	for i := range schemas.MaxLabelBytes/256 + 1 {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "\"l%d\": %q", i, strings.Repeat("v", 256))
	}
	return b.String()
}

// A binary-mode event (attributes and data apart) makes the structured
// document that decodes to the same event; data that is not JSON is refused.
func TestStructuredFromBinary(t *testing.T) {
	t.Parallel()
	attrs := map[string]string{"specversion": "1.0", "id": "e1", "source": "s", "type": "workflow.run.failed",
		"time": "2026-11-28T10:00:00Z", "tenantid": "acme", "data": "ignored"}
	doc, err := schemas.StructuredFromBinary(attrs, []byte(` {"workflow":{"id":"w","name":"n"},"run":{"id":"r1"}} `))
	if err != nil {
		t.Fatal(err)
	}
	ev, err := schemas.CheckWorkflowEvent(doc)
	if err != nil || ev.ID != "e1" || ev.TenantID != "acme" || ev.Data.Run.ID != "r1" {
		t.Fatalf("%s: %+v, %v", doc, ev, err)
	}
	if _, err := schemas.StructuredFromBinary(attrs, []byte("{x")); err == nil || err.Error() != "data is not JSON" {
		t.Errorf("data not JSON: %v", err)
	}
}
