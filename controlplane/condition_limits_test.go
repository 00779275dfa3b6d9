package controlplane_test

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

// Issue #8's condition bomb: 190 characters, no event data, let bindings
// feeding replace(x, "", x); it cost ~0.8 GiB per event, and one level more
// killed the processor.
const conditionBomb = `let a = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"; let b = replace(a, "", a); let c = replace(b, "", b); let d = replace(c, "", c); len(d) > 0`

// TestConditionLimits: the bomb and its variants are refused with 422
// naming body.condition and the position of the refused part, on create and
// on update, and write nothing; a condition that is only stopped by the
// evaluation budget at run time is accepted (the processor reports it as a
// rule error).
func TestConditionLimits(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, _, wh := b.do(t, "POST", "/v1/webhooks", b.adminKey, `{"name":"ok","target_url":"https://example.com/h"}`)
	whID := wh["id"].(string)
	status, _, rule := b.do(t, "POST", "/v1/alert-rules", b.adminKey, `{"name":"fine","event_type":"workflow.run.failed","condition":"labels.env == \"prod\"","webhook_endpoint_id":"`+whID+`"}`)
	if status != 201 {
		t.Fatalf("create a plain rule: %d %v", status, rule)
	}
	ruleID := rule["id"].(string)
	rulesBefore := b.count(t, "alert_rules")

	for _, c := range []struct {
		name, condition, at string // at: where the problem must point (line 1)
	}{
		{"replace bomb", conditionBomb, "replace("},
		{"repeat", `len(repeat(error.message, 1000000)) > 0`, "repeat("},
		{"join of a long list", `len(join(map(1..10000, {error.message}), "")) > 0`, "join("},
		{"accumulator in a loop", `reduce(1..10000, #acc + "xxxxxxxx", "") != ""`, "reduce("},
		{"pattern from event data", `workflow.name matches error.message`, "matches"},
		{"huge constant", `error.message == "` + strings.Repeat("z", 1500) + `"`, `"z`},
	} {
		t.Run(c.name, func(t *testing.T) {
			col := strings.Index(c.condition, c.at) + 1
			body, _ := json.Marshal(map[string]any{"name": "bomb", "event_type": "workflow.run.failed", "condition": c.condition, "webhook_endpoint_id": whID})
			for _, req := range []struct{ method, path, body string }{
				{"POST", "/v1/alert-rules", string(body)},
				{"PATCH", "/v1/alert-rules/" + ruleID, `{"condition":` + strconv.Quote(c.condition) + `}`},
			} {
				status, _, problem := b.do(t, req.method, req.path, b.adminKey, req.body)
				raw, _ := json.Marshal(problem["errors"])
				if status != 422 || !strings.Contains(string(raw), "body.condition") {
					t.Fatalf("%s %s: %d %s, want 422 naming body.condition", req.method, req.path, status, raw)
				}
				if want := "line 1, column " + strconv.Itoa(col) + ":"; !strings.Contains(string(raw), want) {
					t.Errorf("%s: problem %s does not point at %q (%s)", req.method, raw, c.at, want)
				}
			}
		})
	}
	if n := b.count(t, "alert_rules"); n != rulesBefore {
		t.Errorf("refused conditions wrote %d rules", n-rulesBefore)
	}
	_, _, got := b.do(t, "GET", "/v1/alert-rules/"+ruleID, b.adminKey, "")
	if got["condition"] != `labels.env == "prod"` {
		t.Errorf("refused updates changed the rule's condition to %v", got["condition"])
	}

	// Bounded only by the evaluation budget: accepted; the processor stops
	// it on each event and reports a rule error.
	doubling := `let s0 = "` + strings.Repeat("x", 64) + `";`
	for i := 1; i <= 24; i++ {
		doubling += " let s" + strconv.Itoa(i) + " = s" + strconv.Itoa(i-1) + " + s" + strconv.Itoa(i-1) + ";"
	}
	doubling += " len(s24) > 0"
	body, _ := json.Marshal(map[string]any{"name": "budget", "event_type": "workflow.run.failed", "condition": doubling, "webhook_endpoint_id": whID})
	if status, _, p := b.do(t, "POST", "/v1/alert-rules", b.adminKey, string(body)); status != 201 {
		t.Fatalf("a condition bounded by the budget: %d %v, want 201", status, p)
	}
}
