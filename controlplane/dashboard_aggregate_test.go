package controlplane_test

import (
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/exospherehost/exo-alerts/internal/store"
	"github.com/exospherehost/exo-alerts/schemas"
)

// The rule form offers the kinds with their fields, explanation and worked
// example; a rate rule is created through it (a refusal marks its field),
// its groups show "firing since …" from the status the recorder stored,
// the overview lists what fires now, and an edit moves it to count.
func TestDashboardAggregateRules(t *testing.T) {
	t.Parallel()
	requireBrowser(t)
	l := startHistEnv(t, nil)
	endpoint := l.mustDo(t, "POST", "/v1/webhooks", `{"name":"ops","target_url":"https://hooks.example.com/x"}`, 201)["id"].(string)
	d := openDashboard(t, l.url, l.adminKey)

	// Per-event (the default) shows its own fields only.
	if d.visible("#rf-window") || !d.visible("#rf-rate") {
		t.Error("per_event form: window shown or rate limit hidden")
	}
	d.choose("#rf-kind", "rate")
	d.waitText("#rf-kind-help", "success ratio")
	d.waitText("#rf-kind-help .kind-example", "1 failure of 1 run sends nothing")
	for sel, want := range map[string]bool{"#rf-window": true, "#rf-ratio": true, "#rf-min-runs": true, "#rf-group-by": true, "#rf-hold": true,
		"#rf-repeat": true, "#rf-count-threshold": false, "#rf-rate": false, "#rf-cooldown": false, "#rf-include-error": false} {
		if got := d.visible(sel); got != want {
			t.Errorf("rate form: %s visible = %v, want %v", sel, got, want)
		}
	}
	if got := eval[string](d, `[...document.querySelectorAll("#rf-event option")].map(o => o.value).join(",")`); got != schemas.TypeRunFinished {
		t.Errorf("a rate rule may watch %q, want only %s", got, schemas.TypeRunFinished)
	}
	d.waitText("#rf-group-by-help", "labels.<name>")

	// A path that cannot group is refused at its field; fixed, it is created.
	d.setValue("#rf-name", "team success rate")
	d.choose("#rf-endpoint", endpoint)
	d.setValue("#rf-condition", `labels.env == "prod"`)
	d.setValue("#rf-window", "1h")
	d.setValue("#rf-ratio", "0.95")
	d.setValue("#rf-group-by", "run.id")
	d.setValue("#rf-hold", "10m")
	d.click("#rule-submit")
	d.waitText("#rule-problem", "body.group_by[0]")
	d.waitText(`.field-error[data-field="group_by"]`, "per-event")
	d.setValue("#rf-group-by", "labels.team")
	d.click("#rule-submit")
	d.waitText("#rule-note", "Created rule")
	rules := histItems(t, l.mustDo(t, "GET", "/v1/alert-rules?kind=rate", "", 200))
	if len(rules) != 1 {
		t.Fatalf("rate rules after the form: %v", rules)
	}
	r := rules[0]
	if r["event_type"] != schemas.TypeRunFinished || r["success_ratio_below"] != 0.95 || r["min_runs"] != float64(10) || r["window"] != "1h0m0s" ||
		jsonOf(r["group_by"]) != `["labels.team"]` || r["max_groups"] != float64(500) || r["hold"] != "10m0s" || r["condition"] != `labels.env == "prod"` ||
		r["repeat_interval"] != nil || r["rate_limit_per_minute"] != nil {
		t.Fatalf("rate rule created through the form: %v", r)
	}
	rule := r["id"].(string)
	d.waitText(rowSel("rules", rule)+" .kind-summary", "rate: success < 95% in 1h")

	// The processor reported two groups: one fires.
	since := time.Now().UTC().Add(-18 * time.Minute).Truncate(time.Second)
	reportGroups(t, store.New(l.pool, ""),
		groupInfo("acme", rule, 'a', schemas.AggregateStateFiring, since, schemas.AggregateValue{Succeeded: n64(9), Failed: n64(3), Ratio: new(0.75)}, map[string]string{"labels.team": "data"}),
		groupInfo("acme", rule, 'b', schemas.AggregateStateInactive, since, schemas.AggregateValue{Succeeded: n64(20), Failed: n64(0), Ratio: new(1.0)}, map[string]string{"labels.team": "ml"}),
		schemas.AggregateGroupStatus{Rule: &schemas.AggregateRuleSummary{TenantID: "acme", RuleID: rule, Groups: 2, Dropped: 12, Late: 3}},
	)
	d.click(rowSel("rules", rule) + " button.groups")
	firing := `#groups tr[data-group-key="` + groupKey('a') + `"]`
	d.waitText(firing, "firing since")
	d.waitText(firing, "labels.team=data")
	d.waitText(firing, "75.0% succeeded (9 succeeded, 3 failed)")
	d.waitText(`#groups tr[data-group-key="`+groupKey('b')+`"]`, "inactive")
	d.waitText("#groups-summary", "2 groups of at most 500; 12 events dropped")
	d.choose("#groups-state", "firing")
	d.waitGone(`#groups tr[data-group-key="` + groupKey('b') + `"]`)
	d.click("#firing-refresh")
	d.waitText("#firing", "team success rate")
	d.waitText("#firing", "firing since")

	// Edit to a count rule: the rate members go, the count ones come.
	d.click(rowSel("rules", rule) + " button.edit")
	d.waitText("#rule-form-title", "Edit rule")
	if got := eval[string](d, `document.getElementById("rf-group-by").value`); got != "labels.team" {
		t.Errorf("edit form group by %q", got)
	}
	d.choose("#rf-kind", "count")
	d.choose("#rf-event", schemas.TypeRunFailed)
	d.setValue("#rf-count-threshold", "3")
	d.click("#rule-submit")
	d.waitText("#rule-note", "Saved rule")
	got := l.mustDo(t, "GET", "/v1/alert-rules/"+rule, "", 200)
	if got["kind"] != "count" || got["threshold"] != float64(3) || got["event_type"] != schemas.TypeRunFailed || got["min_runs"] != nil ||
		got["success_ratio_below"] != nil || jsonOf(got["group_by"]) != `["labels.team"]` || got["hold"] != "10m0s" {
		t.Errorf("rule after the edit to count: %v", got)
	}
	d.do(chromedp.Reload())
	d.waitText(rowSel("rules", rule)+" .kind-summary", "count: ≥ 3 in 1h by labels.team")
}
