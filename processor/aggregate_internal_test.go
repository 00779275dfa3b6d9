package processor

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/exospherehost/exo-alerts/schemas"
)

// The cheap check of stage 2's hot path passes what stage 1 writes (the
// schema's examples) and refuses, before the engine, inputs missing what
// the engine needs; the schema refuses each of those too, so the reason
// the invalid topic shows is never a false one.
func TestCheckAggregateInput(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"aggregate-input.json", "aggregate-input.watermark.json"} {
		raw, err := os.ReadFile("../schemas/examples/" + name)
		if err != nil {
			t.Fatal(err)
		}
		var in schemas.AggregateInput
		if err := json.Unmarshal(raw, &in); err != nil {
			t.Fatal(err)
		}
		if err := checkAggregateInput(&in); err != nil {
			t.Errorf("%s: %v, want accepted", name, err)
		}
	}
	for _, doc := range []string{
		`{}`,
		`null`,
		`{"kind":"alert"}`,
		`{"kind":"input","rule_id":"r","spec":"0123456789abcdef","outcome":"matched","at":"2026-01-01T00:00:00Z","event":{"id":"e","type":"workflow.run.failed","run_id":"r","workflow":{"id":"w","name":"n"}}}`,
		`{"kind":"input","tenant_id":"t","spec":"0123456789abcdef","outcome":"matched","at":"2026-01-01T00:00:00Z","event":{"id":"e","type":"workflow.run.failed","run_id":"r","workflow":{"id":"w","name":"n"}}}`,
		`{"kind":"input","tenant_id":"t","rule_id":"r","spec":"0123456789abcdef","outcome":"exploded","at":"2026-01-01T00:00:00Z","event":{"id":"e","type":"workflow.run.failed","run_id":"r","workflow":{"id":"w","name":"n"}}}`,
		`{"kind":"input","tenant_id":"t","rule_id":"r","spec":"0123456789abcdef","outcome":"matched","event":{"id":"e","type":"workflow.run.failed","run_id":"r","workflow":{"id":"w","name":"n"}}}`,
		`{"kind":"watermark","watermark":"2026-01-01T00:00:00Z"}`,
		`{"kind":"watermark","source_partition":-1,"watermark":"2026-01-01T00:00:00Z"}`,
		`{"kind":"watermark","source_partition":0}`,
	} {
		var in schemas.AggregateInput
		if err := json.Unmarshal([]byte(doc), &in); err != nil {
			t.Fatal(err)
		}
		if err := checkAggregateInput(&in); err == nil {
			t.Errorf("%s: accepted, want refused", doc)
		}
		if err := schemas.Validate(schemas.KindAggregateInput, []byte(doc)); err == nil {
			t.Errorf("%s: the schema accepts it", doc)
		}
	}
}
