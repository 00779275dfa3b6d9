package controlplane_test

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/exospherehost/exo-alerts/internal/condition"
	"github.com/exospherehost/exo-alerts/schemas"
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
		Type                   string   `json:"type"`
		Description            string   `json:"description"`
		NeedsDurationThreshold bool     `json:"needs_duration_threshold"`
		ExampleCondition       string   `json:"example_condition"`
		RuleKinds              []string `json:"rule_kinds"`
		Fields                 []struct {
			Path, Type, Description, Example string
		} `json:"fields"`
	}
	if err := json.Unmarshal(raw, &items); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"workflow.run.started": false, "workflow.run.succeeded": false, "workflow.run.failed": false, "workflow.run.duration_exceeded": true,
		"workflow.run.finished": false}
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
			wantKinds := []string{"per_event", "count"}
			if it.Type == "workflow.run.finished" {
				wantKinds = []string{"count", "rate"}
			}
			if !slices.Equal(it.RuleKinds, wantKinds) {
				t.Errorf("rule_kinds %v, want %v", it.RuleKinds, wantKinds)
			}
			// A rule of every kind the type lists, with its example
			// condition, is accepted.
			for _, kind := range it.RuleKinds {
				rule := map[string]any{"name": "example", "kind": kind, "event_type": it.Type, "condition": it.ExampleCondition, "webhook_endpoint_id": wh["id"]}
				if it.NeedsDurationThreshold {
					rule["duration_threshold"] = "15m"
				}
				switch kind {
				case "count":
					rule["window"], rule["threshold"] = "5m", 2
				case "rate":
					rule["window"], rule["success_ratio_below"] = "1h", 0.9
				}
				req, _ := json.Marshal(rule)
				if status, _, body := b.do(t, "POST", "/v1/alert-rules", b.adminKey, string(req)); status != 201 {
					t.Fatalf("a %s rule with the catalogue's example is refused: %d %v", kind, status, body)
				}
			}
			// A kind the type does not list is refused.
			if !slices.Contains(it.RuleKinds, "rate") {
				req, _ := json.Marshal(map[string]any{"name": "x", "kind": "rate", "event_type": it.Type, "window": "1h", "success_ratio_below": 0.9, "webhook_endpoint_id": wh["id"]})
				if status, _, _ := b.do(t, "POST", "/v1/alert-rules", b.adminKey, string(req)); status != 422 {
					t.Errorf("a rate rule on %s: %d, want 422", it.Type, status)
				}
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

// The catalogue's kinds each come with a full create document that the
// API accepts as that kind, and leaving out any member it calls required
// is refused; its group_by paths are the condition package's, each
// accepted by the API for the types it lists; its deliveries list every
// type a receiver can get.
func TestEventTypesKindsGroupByDeliveries(t *testing.T) {
	t.Parallel()
	b := setup(t)
	status, _, body := b.do(t, "GET", "/v1/event-types", b.viewKey, "")
	if status != 200 {
		t.Fatalf("GET /v1/event-types: %d %v", status, body)
	}
	var cat struct {
		Kinds []struct {
			Kind, Description, Explanation string
			Required, Optional             []string
			Example                        map[string]any
		} `json:"kinds"`
		GroupBy []struct {
			Path, Description string
			EventTypes        []string `json:"event_types"`
		} `json:"group_by"`
		Deliveries []struct{ Type, Description string } `json:"deliveries"`
	}
	raw, _ := json.Marshal(body)
	if err := json.Unmarshal(raw, &cat); err != nil {
		t.Fatal(err)
	}
	_, _, wh := b.do(t, "POST", "/v1/webhooks", b.adminKey, `{"name":"w","target_url":"https://e.com/w"}`)
	var kinds []string
	for _, k := range cat.Kinds {
		kinds = append(kinds, k.Kind)
		t.Run(k.Kind, func(t *testing.T) {
			if k.Description == "" || k.Explanation == "" || len(k.Required) == 0 {
				t.Errorf("kind %+v", k)
			}
			doc := maps.Clone(k.Example)
			doc["endpoint_id"] = wh["id"]
			status, _, got := b.do(t, "POST", "/v1/alert-rules", b.adminKey, jsonOf(doc))
			if status != 201 || got["kind"] != k.Kind {
				t.Fatalf("the %s example %s: %d %v", k.Kind, jsonOf(doc), status, got)
			}
			for _, m := range k.Required {
				if _, ok := doc[m]; !ok {
					t.Errorf("the %s example lacks required member %s", k.Kind, m)
				}
				without := maps.Clone(doc)
				delete(without, m)
				if status, _, got := b.do(t, "POST", "/v1/alert-rules", b.adminKey, jsonOf(without)); status != 422 && status != 400 {
					t.Errorf("%s without %s: %d %v, want refused", k.Kind, m, status, got)
				}
			}
		})
	}
	if !slices.Equal(kinds, []string{"per_event", "count", "rate"}) {
		t.Errorf("kinds %v", kinds)
	}
	var paths []string
	for _, f := range condition.GroupByFields() {
		paths = append(paths, f.Path)
	}
	var got []string
	for _, g := range cat.GroupBy {
		got = append(got, g.Path)
		path := strings.ReplaceAll(g.Path, "<name>", "team")
		if g.Description == "" || len(g.EventTypes) == 0 {
			t.Errorf("group_by %+v", g)
		}
		for _, typ := range g.EventTypes {
			rule := map[string]any{"name": "g", "kind": "count", "event_type": typ, "window": "5m", "threshold": 2, "group_by": []string{path}, "webhook_endpoint_id": wh["id"]}
			if typ == "workflow.run.duration_exceeded" {
				rule["duration_threshold"] = "1m"
			}
			if status, _, ans := b.do(t, "POST", "/v1/alert-rules", b.adminKey, jsonOf(rule)); status != 201 {
				t.Errorf("group_by %s on %s: %d %v", path, typ, status, ans)
			}
		}
	}
	if !slices.Equal(got, paths) {
		t.Errorf("group_by paths %v, the condition package has %v", got, paths)
	}
	var types []string
	for _, d := range cat.Deliveries {
		if d.Description == "" {
			t.Errorf("delivery %s without a description", d.Type)
		}
		types = append(types, d.Type)
	}
	for _, want := range append(slices.Clone(schemas.AlertTypes), schemas.TypeAlertFiring, schemas.TypeAlertResolved, schemas.TypeWebhookTest, schemas.TypeTenantNotice) {
		if !slices.Contains(types, want) {
			t.Errorf("deliveries %v lack %s", types, want)
		}
	}
}
