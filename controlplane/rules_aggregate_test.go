package controlplane_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/exospherehost/exo-alerts/controlplane"
	"github.com/exospherehost/exo-alerts/schemas"
)

// endpoint creates an endpoint of acme and returns its id.
func (b *bundle) endpoint(t *testing.T) string {
	t.Helper()
	status, _, wh := b.do(t, "POST", "/v1/webhooks", b.adminKey, `{"name":"ops","target_url":"https://hooks.example.com/x"}`)
	if status != http.StatusCreated {
		t.Fatalf("create webhook: %d %v", status, wh)
	}
	return wh["id"].(string)
}

// problemLocations are the locations a 422 names, sorted.
func problemLocations(t *testing.T, problem map[string]any) []string {
	t.Helper()
	var locs []string
	for _, e := range asList(problem["errors"]) {
		m := e.(map[string]any)
		if msg, _ := m["message"].(string); msg == "" {
			t.Errorf("a problem without a message: %v", m)
		}
		locs = append(locs, m["location"].(string))
	}
	slices.Sort(locs)
	return slices.Compact(locs)
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// lastRuleSnapshot is the newest rule snapshot in the outbox, validated
// against its schema.
func (b *bundle) lastRuleSnapshot(t *testing.T) schemas.RuleRecord {
	t.Helper()
	var snap []byte
	if err := b.pool.QueryRow(context.Background(), `SELECT value FROM outbox WHERE topic LIKE '%alert-rules' ORDER BY id DESC LIMIT 1`).Scan(&snap); err != nil {
		t.Fatal(err)
	}
	if err := schemas.Validate(schemas.KindRule, snap); err != nil {
		t.Fatalf("rule snapshot %s: %v", snap, err)
	}
	var rec schemas.RuleRecord
	if err := json.Unmarshal(snap, &rec); err != nil {
		t.Fatal(err)
	}
	return rec
}

// Every limit and refusal of a count or rate rule (and of the aggregate
// members on a per-event rule) is a 422 naming exactly the members at
// fault; nothing is stored.
func TestAggregateRuleRefusals(t *testing.T) {
	t.Parallel()
	b := setup(t)
	wh := b.endpoint(t)
	count := map[string]any{"kind": "count", "event_type": "workflow.run.failed", "window": "15m", "threshold": 3}
	rate := map[string]any{"kind": "rate", "window": "1h", "success_ratio_below": 0.95}
	with := func(base map[string]any, kv ...any) map[string]any {
		out := maps.Clone(base)
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(out, kv[i].(string))
				continue
			}
			out[kv[i].(string)] = kv[i+1]
		}
		return out
	}
	long := strings.Repeat("x", 64)
	cases := []struct {
		name string
		doc  map[string]any
		want []string
	}{
		{"unknown kind", with(count, "kind", "sum"), []string{"body.kind"}},
		{"count without window", with(count, "window", nil), []string{"body.window"}},
		{"window not a duration", with(count, "window", "soon"), []string{"body.window"}},
		{"window under 1m", with(count, "window", "30s"), []string{"body.window"}},
		{"window over 24h", with(count, "window", "25h"), []string{"body.window"}},
		{"window not whole minutes", with(count, "window", "90s"), []string{"body.window"}},
		{"count without threshold", with(count, "threshold", nil), []string{"body.threshold"}},
		{"threshold 0", with(count, "threshold", 0), []string{"body.threshold"}},
		{"threshold over 100000", with(count, "threshold", 100001), []string{"body.threshold"}},
		{"count without event_type", with(count, "event_type", nil), []string{"body.event_type"}},
		{"count with a ratio and min_runs", with(count, "success_ratio_below", 0.5, "min_runs", 5), []string{"body.min_runs", "body.success_ratio_below"}},
		{"rate without ratio", with(rate, "success_ratio_below", nil), []string{"body.success_ratio_below"}},
		{"ratio 0", with(rate, "success_ratio_below", 0), []string{"body.success_ratio_below"}},
		{"ratio over 1", with(rate, "success_ratio_below", 1.01), []string{"body.success_ratio_below"}},
		{"ratio with 5 decimals", with(rate, "success_ratio_below", 0.95001), []string{"body.success_ratio_below"}},
		{"min_runs 0", with(rate, "min_runs", 0), []string{"body.min_runs"}},
		{"min_runs over 100000", with(rate, "min_runs", 100001), []string{"body.min_runs"}},
		{"rate on failures", with(rate, "event_type", "workflow.run.failed"), []string{"body.event_type"}},
		{"rate with a threshold", with(rate, "threshold", 3), []string{"body.threshold"}},
		{"rate without window", with(rate, "window", nil), []string{"body.window"}},
		{"five group_by paths", with(count, "group_by", []string{"workflow.id", "workflow.name", "labels.a", "labels.b", "labels.c"}), []string{"body.group_by"}},
		{"group_by twice", with(count, "group_by", []string{"workflow.name", "workflow.name"}), []string{"body.group_by[1]"}},
		{"group_by run id", with(count, "group_by", []string{"workflow.name", "run.id"}), []string{"body.group_by[1]"}},
		{"group_by event id", with(count, "group_by", []string{"event.id"}), []string{"body.group_by[0]"}},
		{"group_by error message", with(count, "group_by", []string{"error.message"}), []string{"body.group_by[0]"}},
		{"group_by duration", with(count, "group_by", []string{"run.duration_ms"}), []string{"body.group_by[0]"}},
		{"group_by unnamed label", with(count, "group_by", []string{"labels."}), []string{"body.group_by[0]"}},
		{"group_by long label", with(count, "group_by", []string{"labels." + long}), []string{"body.group_by[0]"}},
		{"group_by unknown path", with(count, "group_by", []string{"tenant_id"}), []string{"body.group_by[0]"}},
		{"group_by error code of successes", with(count, "event_type", "workflow.run.succeeded", "group_by", []string{"error.code"}), []string{"body.group_by[0]"}},
		{"group_by error node of a rate rule", with(rate, "group_by", []string{"error.node"}), []string{"body.group_by[0]"}},
		{"max_groups over 5000", with(count, "group_by", []string{"workflow.name"}, "max_groups", 5001), []string{"body.max_groups"}},
		{"max_groups 0", with(count, "group_by", []string{"workflow.name"}, "max_groups", 0), []string{"body.max_groups"}},
		{"max_groups without group_by", with(count, "max_groups", 2), []string{"body.max_groups"}},
		{"hold negative", with(count, "hold", "-1s"), []string{"body.hold"}},
		{"hold over 24h", with(count, "hold", "25h"), []string{"body.hold"}},
		{"repeat under 1m", with(count, "repeat_interval", "30s"), []string{"body.repeat_interval"}},
		{"repeat over 168h", with(count, "repeat_interval", "169h"), []string{"body.repeat_interval"}},
		{"aggregate with per-event noise controls", with(count, "rate_limit_per_minute", 5, "cooldown", "1m", "include_error_message", true),
			[]string{"body.cooldown", "body.include_error_message", "body.rate_limit_per_minute"}},
		{"per_event with every aggregate member", map[string]any{"event_type": "workflow.run.failed", "window": "15m", "threshold": 3,
			"success_ratio_below": 0.5, "min_runs": 5, "group_by": []string{"workflow.name"}, "max_groups": 10, "hold": "1m", "repeat_interval": "1h"},
			[]string{"body.group_by", "body.hold", "body.max_groups", "body.min_runs", "body.repeat_interval", "body.success_ratio_below", "body.threshold", "body.window"}},
		{"per_event on finished runs", map[string]any{"kind": "per_event", "event_type": "workflow.run.finished"}, []string{"body.event_type"}},
		{"duration threshold of a count rule on failures", with(count, "duration_threshold", "1m"), []string{"body.duration_threshold"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			doc := with(c.doc, "name", "r", "webhook_endpoint_id", wh)
			status, _, problem := b.do(t, "POST", "/v1/alert-rules", b.adminKey, jsonOf(doc))
			if status != http.StatusUnprocessableEntity {
				t.Fatalf("%s: %d %v, want 422", jsonOf(doc), status, problem)
			}
			if got := problemLocations(t, problem); !slices.Equal(got, c.want) {
				t.Errorf("%s: 422 names %v, want %v: %v", jsonOf(doc), got, c.want, problem)
			}
		})
	}
	t.Cleanup(func() {
		if n := b.count(t, "alert_rules"); n != 0 {
			t.Errorf("%d rules stored by refused creates", n)
		}
	})
}

// Count and rate rules are created with their defaults, read back with
// durations as string and milliseconds, published with the aggregate
// members, and listed by kind; a per-event rule reads as per_event with
// none of them.
func TestAggregateRuleCreateReadList(t *testing.T) {
	t.Parallel()
	b := setup(t)
	wh := b.endpoint(t)
	status, _, cnt := b.do(t, "POST", "/v1/alert-rules", b.adminKey, `{"name":"nightly-etl keeps failing","kind":"count",
		"event_type":"workflow.run.failed","condition":"labels.env == \"prod\"","window":"15m","threshold":3,
		"group_by":["workflow.name","error.code"],"repeat_interval":"4h","webhook_endpoint_id":"`+wh+`","severity":"critical"}`)
	if status != http.StatusCreated {
		t.Fatalf("create count rule: %d %v", status, cnt)
	}
	want := map[string]any{"kind": "count", "window": "15m0s", "window_ms": float64(900000), "threshold": float64(3),
		"max_groups": float64(500), "hold": "0s", "hold_ms": float64(0), "repeat_interval": "4h0m0s", "repeat_interval_ms": float64(14400000)}
	for k, v := range want {
		if cnt[k] != v {
			t.Errorf("count rule %s = %v, want %v", k, cnt[k], v)
		}
	}
	if jsonOf(cnt["group_by"]) != `["workflow.name","error.code"]` || cnt["success_ratio_below"] != nil || cnt["min_runs"] != nil {
		t.Errorf("count rule: %v", cnt)
	}
	rec := b.lastRuleSnapshot(t)
	if rec.Kind != "count" || rec.WindowMS != 900000 || rec.Threshold != 3 || rec.MaxGroups != 500 || rec.RepeatIntervalMS != 14400000 ||
		!slices.Equal(rec.GroupBy, []string{"workflow.name", "error.code"}) || rec.HoldMS != 0 {
		t.Errorf("count rule snapshot: %+v", rec)
	}

	status, _, rt := b.do(t, "POST", "/v1/alert-rules", b.adminKey, `{"name":"prod success rate","kind":"rate","window":"1h",
		"success_ratio_below":0.95,"hold":"10m","condition":"labels.env == \"prod\"","webhook_endpoint_id":"`+wh+`"}`)
	if status != http.StatusCreated {
		t.Fatalf("create rate rule: %d %v", status, rt)
	}
	want = map[string]any{"kind": "rate", "event_type": "workflow.run.finished", "window_ms": float64(3600000), "success_ratio_below": 0.95,
		"min_runs": float64(10), "max_groups": float64(1), "hold": "10m0s", "hold_ms": float64(600000)}
	for k, v := range want {
		if rt[k] != v {
			t.Errorf("rate rule %s = %v, want %v", k, rt[k], v)
		}
	}
	if jsonOf(rt["group_by"]) != `[]` || rt["threshold"] != nil || rt["repeat_interval"] != nil || rt["repeat_interval_ms"] != nil {
		t.Errorf("rate rule: %v", rt)
	}
	rec = b.lastRuleSnapshot(t)
	if rec.Kind != "rate" || rec.EventType != schemas.TypeRunFinished || rec.SuccessRatioBelowBP != 9500 || rec.MinRuns != 10 ||
		rec.MaxGroups != 1 || rec.HoldMS != 600000 || rec.RepeatIntervalMS != 0 || rec.GroupBy != nil {
		t.Errorf("rate rule snapshot: %+v", rec)
	}

	status, _, pe := b.do(t, "POST", "/v1/alert-rules", b.adminKey, `{"name":"every failure","event_type":"workflow.run.failed","webhook_endpoint_id":"`+wh+`"}`)
	if status != http.StatusCreated || pe["kind"] != "per_event" {
		t.Fatalf("create per-event rule: %d %v", status, pe)
	}
	for _, k := range []string{"window", "window_ms", "threshold", "group_by", "max_groups", "hold", "hold_ms", "min_runs", "success_ratio_below"} {
		if _, ok := pe[k]; ok {
			t.Errorf("per-event rule shows %s: %v", k, pe)
		}
	}
	if rec := b.lastRuleSnapshot(t); rec.Kind != "" || rec.WindowMS != 0 || rec.MaxGroups != 0 {
		t.Errorf("per-event snapshot carries aggregate members: %+v", rec)
	}
	// A rule read back is the rule as created.
	if status, _, got := b.do(t, "GET", "/v1/alert-rules/"+rt["id"].(string), b.viewKey, ""); status != 200 || jsonOf(got) != jsonOf(rt) {
		t.Errorf("GET rate rule: %d %v, want %v", status, got, rt)
	}
	for kind, id := range map[string]any{"count": cnt["id"], "rate": rt["id"], "per_event": pe["id"]} {
		status, _, list := b.do(t, "GET", "/v1/alert-rules?kind="+kind, b.viewKey, "")
		items := asList(list["items"])
		if status != 200 || len(items) != 1 || items[0].(map[string]any)["id"] != id {
			t.Errorf("list kind=%s: %d %v, want only %v", kind, status, list, id)
		}
	}
	if status, _, _ := b.do(t, "GET", "/v1/alert-rules?kind=sum", b.viewKey, ""); status != 422 {
		t.Errorf("list kind=sum: %d, want 422", status)
	}
}

// A merge patch moves a rule between kinds when the members the new kind
// refuses are nulled in the same patch; otherwise the 422 names each.
func TestAggregateRulePatchBetweenKinds(t *testing.T) {
	t.Parallel()
	b := setup(t)
	wh := b.endpoint(t)
	status, _, r := b.do(t, "POST", "/v1/alert-rules", b.adminKey, `{"name":"n","kind":"count","event_type":"workflow.run.failed",
		"window":"15m","threshold":3,"group_by":["workflow.name"],"max_groups":100,"repeat_interval":"4h","webhook_endpoint_id":"`+wh+`"}`)
	if status != http.StatusCreated {
		t.Fatalf("create: %d %v", status, r)
	}
	path := "/v1/alert-rules/" + r["id"].(string)
	patch := func(body string, want int) map[string]any {
		t.Helper()
		status, _, got := b.doH(t, "PATCH", path, b.adminKey, body, nil)
		if status != want {
			t.Fatalf("PATCH %s: %d %v, want %d", body, status, got, want)
		}
		return got
	}
	if got := patch(`{"threshold":5}`, 200); got["threshold"] != float64(5) || got["max_groups"] != float64(100) || got["window"] != "15m0s" {
		t.Errorf("threshold 5: %v", got)
	}
	if got := patch(`{"repeat_interval":null}`, 200); got["repeat_interval"] != nil || got["repeat_interval_ms"] != nil || got["threshold"] != float64(5) {
		t.Errorf("no repeats: %v", got)
	}
	if rec := b.lastRuleSnapshot(t); rec.RepeatIntervalMS != 0 || rec.Threshold != 5 {
		t.Errorf("snapshot after patches: %+v", rec)
	}
	got := patch(`{"kind":"per_event"}`, 422)
	if locs := problemLocations(t, got); !slices.Equal(locs, []string{"body.group_by", "body.max_groups", "body.threshold", "body.window"}) {
		t.Errorf("to per_event without nulls names %v: %v", locs, got)
	}
	got = patch(`{"kind":"per_event","window":null,"threshold":null,"group_by":null,"max_groups":null}`, 200)
	if got["kind"] != "per_event" || got["window"] != nil || got["group_by"] != nil || got["hold"] != nil {
		t.Errorf("back to per_event: %v", got)
	}
	var kind string
	var window, maxGroups, hold *int64
	var groupBy []string
	if err := b.pool.QueryRow(context.Background(), `SELECT kind, window_ms, max_groups, hold_ms, group_by FROM alert_rules WHERE id = $1`,
		r["id"]).Scan(&kind, &window, &maxGroups, &hold, &groupBy); err != nil || kind != "per_event" || window != nil || maxGroups != nil || hold != nil || len(groupBy) != 0 {
		t.Errorf("stored per_event row: %s %v %v %v %v: %v", kind, window, maxGroups, hold, groupBy, err)
	}
	// To rate: the event type must go (rate rules watch finished runs).
	got = patch(`{"kind":"rate","window":"1h","success_ratio_below":0.9}`, 422)
	if locs := problemLocations(t, got); !slices.Equal(locs, []string{"body.event_type"}) {
		t.Errorf("to rate keeping workflow.run.failed names %v", locs)
	}
	got = patch(`{"kind":"rate","window":"1h","success_ratio_below":0.9,"event_type":null,"min_runs":20}`, 200)
	if got["event_type"] != schemas.TypeRunFinished || got["success_ratio_below"] != 0.9 || got["min_runs"] != float64(20) || got["max_groups"] != float64(1) {
		t.Errorf("to rate: %v", got)
	}
	// Rate to count: the ratio and min_runs must be nulled.
	got = patch(`{"kind":"count","threshold":10}`, 422)
	if locs := problemLocations(t, got); !slices.Equal(locs, []string{"body.min_runs", "body.success_ratio_below"}) {
		t.Errorf("to count keeping the ratio names %v", locs)
	}
	got = patch(`{"kind":"count","threshold":10,"success_ratio_below":null,"min_runs":null}`, 200)
	if got["kind"] != "count" || got["threshold"] != float64(10) || got["event_type"] != schemas.TypeRunFinished || got["min_runs"] != nil {
		t.Errorf("to count: %v", got)
	}
	if rec := b.lastRuleSnapshot(t); rec.Kind != "count" || rec.Threshold != 10 || rec.SuccessRatioBelowBP != 0 || rec.MinRuns != 0 || rec.WindowMS != 3600000 {
		t.Errorf("snapshot after rate to count: %+v", rec)
	}
	// A patch that changes nothing writes nothing.
	before := b.count(t, "outbox")
	patch(`{"threshold":10}`, 200)
	if after := b.count(t, "outbox"); after != before {
		t.Errorf("a patch that changes nothing wrote %d outbox rows", after-before)
	}
}

// The per-tenant caps hold when creates race: with one slot left, of
// concurrent creates exactly one passes and the others get a 422 naming
// kind (rules) or max_groups (groups). Deactivated rules do not count;
// reactivating one when the tenant is full is refused; per-event rules and
// other tenants are not limited.
func TestAggregateRuleCapsUnderConcurrentCreates(t *testing.T) {
	t.Parallel()
	b := setupWith(t, func(c *controlplane.Config) {
		c.AggregateRulesPerTenant = 3
		c.AggregateGroupsPerTenant = 100
	})
	wh := b.endpoint(t)
	create := func(key, body string) (int, map[string]any) {
		status, _, got := b.do(t, "POST", "/v1/alert-rules", key, body)
		return status, got
	}
	countRule := func(name string, extra string) string {
		return `{"name":"` + name + `","kind":"count","event_type":"workflow.run.failed","window":"5m","threshold":2,"webhook_endpoint_id":"` + wh + `"` + extra + `}`
	}
	// race sends n creates at once and returns the answers.
	race := func(n int, body func(i int) string) (created []string, refused []map[string]any) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				status, got := create(b.adminKey, body(i))
				mu.Lock()
				defer mu.Unlock()
				switch status {
				case http.StatusCreated:
					created = append(created, got["id"].(string))
				case http.StatusUnprocessableEntity:
					refused = append(refused, got)
				default:
					t.Errorf("racing create: %d %v", status, got)
				}
			})
		}
		close(start)
		wg.Wait()
		return created, refused
	}
	for i := range 2 {
		if status, got := create(b.adminKey, countRule(fmt.Sprint("base", i), "")); status != http.StatusCreated {
			t.Fatalf("create: %d %v", status, got)
		}
	}
	for round := range 3 {
		created, refused := race(4, func(i int) string { return countRule(fmt.Sprintf("r%d-%d", round, i), "") })
		if len(created) != 1 || len(refused) != 3 {
			t.Fatalf("round %d: %d created, %d refused with one slot left", round, len(created), len(refused))
		}
		for _, p := range refused {
			if locs := problemLocations(t, p); !slices.Equal(locs, []string{"body.kind"}) {
				t.Errorf("refused create names %v: %v", locs, p)
			}
		}
		if status, _, got := b.do(t, "DELETE", "/v1/alert-rules/"+created[0], b.adminKey, ""); status != 200 {
			t.Fatalf("delete: %d %v", status, got)
		}
	}
	// Deactivated aggregate rules do not count; reactivating one when full does.
	status, spare := create(b.adminKey, countRule("spare", `,"is_active":false`))
	if status != http.StatusCreated {
		t.Fatalf("inactive create: %d %v", status, spare)
	}
	if status, got := create(b.adminKey, countRule("third", "")); status != http.StatusCreated {
		t.Fatalf("third active: %d %v", status, got)
	}
	status, _, got := b.doH(t, "PATCH", "/v1/alert-rules/"+spare["id"].(string), b.adminKey, `{"is_active":true}`, nil)
	if locs := problemLocations(t, got); status != 422 || !slices.Equal(locs, []string{"body.kind"}) {
		t.Errorf("reactivating a fourth: %d %v", status, got)
	}
	if status, got := create(b.adminKey, `{"name":"pe","event_type":"workflow.run.failed","webhook_endpoint_id":"`+wh+`"}`); status != http.StatusCreated {
		t.Errorf("per-event rule refused by the aggregate caps: %d %v", status, got)
	}
	status, _, owh := b.do(t, "POST", "/v1/webhooks", b.otherKey, `{"name":"ops","target_url":"https://hooks.example.com/y"}`)
	if status != http.StatusCreated {
		t.Fatal(owh)
	}
	if status, got := create(b.otherKey, strings.Replace(countRule("globex", ""), wh, owh["id"].(string), 1)); status != http.StatusCreated {
		t.Errorf("another tenant refused by acme's caps: %d %v", status, got)
	}

	// Groups: free two rule slots (one active rule of one group is left),
	// then two racing creates of 60 groups each: one fits in 100, the
	// other is refused.
	_, _, list := b.do(t, "GET", "/v1/alert-rules?kind=count&is_active=true", b.adminKey, "")
	for _, it := range asList(list["items"])[:2] {
		if status, _, got := b.do(t, "DELETE", "/v1/alert-rules/"+it.(map[string]any)["id"].(string), b.adminKey, ""); status != 200 {
			t.Fatalf("delete: %d %v", status, got)
		}
	}
	_, _, list = b.do(t, "GET", "/v1/alert-rules?kind=count&is_active=true", b.adminKey, "")
	if n := len(asList(list["items"])); n != 1 {
		t.Fatalf("%d active count rules, want 1", n)
	}
	created, refused := race(2, func(i int) string {
		return countRule(fmt.Sprint("g", i), `,"group_by":["workflow.name"],"max_groups":60`)
	})
	if len(created) != 1 || len(refused) != 1 {
		t.Fatalf("groups race: %d created, %d refused", len(created), len(refused))
	}
	if locs := problemLocations(t, refused[0]); !slices.Equal(locs, []string{"body.max_groups"}) {
		t.Errorf("groups refusal names %v: %v", locs, refused[0])
	}
	// Growing a rule past the groups cap is refused; up to it is not.
	path := "/v1/alert-rules/" + created[0]
	if status, _, got := b.doH(t, "PATCH", path, b.adminKey, `{"max_groups":100}`, nil); status != 422 || !slices.Equal(problemLocations(t, got), []string{"body.max_groups"}) {
		t.Errorf("max_groups 100 with 1 group taken: %d %v", status, got)
	}
	if status, _, got := b.doH(t, "PATCH", path, b.adminKey, `{"max_groups":99}`, nil); status != 200 {
		t.Errorf("max_groups 99 with 1 group taken: %d %v", status, got)
	}
}
