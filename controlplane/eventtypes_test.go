package controlplane_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/exospherehost/exo-alerts/internal/condition"
)

// The catalogue lists the four alert types, and every field it offers a
// condition compiles in the condition compiler as the type it claims; each
// type's example condition is accepted by POST /v1/alert-rules.
func TestEventTypes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if status, _, _ := b.do(t, "GET", "/v1/event-types", "", ""); status != 401 {
		t.Fatalf("without a key: %d, want 401", status)
	}
	status, _, body := b.do(t, "GET", "/v1/event-types", b.viewKey, "")
	if status != 200 {
		t.Fatalf("GET /v1/event-types: %d %v", status, body)
	}
	raw, _ := json.Marshal(body["items"])
	var items []struct {
		Type                   string `json:"type"`
		Description            string `json:"description"`
		NeedsDurationThreshold bool   `json:"needs_duration_threshold"`
		ExampleCondition       string `json:"example_condition"`
		Fields                 []struct {
			Path, Type, Description, Example string
		} `json:"fields"`
	}
	if err := json.Unmarshal(raw, &items); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"workflow.run.started": false, "workflow.run.succeeded": false, "workflow.run.failed": false, "workflow.run.duration_exceeded": true}
	if len(items) != len(want) {
		t.Fatalf("%d event types, want %d: %s", len(items), len(want), raw)
	}
	all := map[string]bool{}
	for _, f := range condition.Fields() {
		all[f.Path] = true
	}
	_, _, wh := b.do(t, "POST", "/v1/webhooks", b.adminKey, `{"name":"w","target_url":"https://e.com/w"}`)
	for _, it := range items {
		t.Run(it.Type, func(t *testing.T) {
			needs, ok := want[it.Type]
			if !ok || needs != it.NeedsDurationThreshold || it.Description == "" || len(it.Fields) == 0 {
				t.Fatalf("event type %+v", it)
			}
			for _, f := range it.Fields {
				if !all[f.Path] {
					t.Errorf("field %s is not in the condition environment", f.Path)
				}
				path := strings.ReplaceAll(f.Path, "<name>", "env")
				right, wrong := path+` == "x"`, path+" > 0"
				if f.Type == "integer" {
					right, wrong = wrong, right
				}
				if _, err := condition.Compile(right); err != nil {
					t.Errorf("field %s (%s): Compile(%q): %v", f.Path, f.Type, right, err)
				}
				if _, err := condition.Compile(wrong); err == nil {
					t.Errorf("field %s claims type %s but Compile(%q) accepts it", f.Path, f.Type, wrong)
				}
				if _, err := condition.Compile(f.Example); err != nil || f.Description == "" {
					t.Errorf("field %s: example %q: %v (description %q)", f.Path, f.Example, err, f.Description)
				}
			}
			rule := map[string]any{"name": "example", "event_type": it.Type, "condition": it.ExampleCondition, "webhook_endpoint_id": wh["id"]}
			if it.NeedsDurationThreshold {
				rule["duration_threshold"] = "15m"
			}
			req, _ := json.Marshal(rule)
			if status, _, body := b.do(t, "POST", "/v1/alert-rules", b.adminKey, string(req)); status != 201 {
				t.Fatalf("a rule with the catalogue's example is refused: %d %v", status, body)
			}
		})
	}
	// A failure offers every field of the environment.
	for _, it := range items {
		if it.Type == "workflow.run.failed" && len(it.Fields) != len(all) {
			t.Errorf("workflow.run.failed offers %d fields, the environment has %d", len(it.Fields), len(all))
		}
	}
}
