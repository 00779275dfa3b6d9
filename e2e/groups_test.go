package e2e_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/schemas"
)

// A group's status produced to the compacted aggregate-groups topic (as the
// processor does) reaches the groups API through the recorder: firing,
// then resolving, then gone after its tombstone; the rule's summary too.
func TestGroupStatusReachesGroupsAPI(t *testing.T) {
	t.Parallel()
	l := startHistEnv(t)
	status, wh := l.do(t, "POST", "/v1/webhooks", l.adminKey, `{"name":"ops","target_url":"https://hooks.example.com/g"}`)
	if status != http.StatusCreated {
		t.Fatalf("create webhook: %d %v", status, wh)
	}
	status, rule := l.do(t, "POST", "/v1/alert-rules", l.adminKey, `{"name":"etl failing","kind":"count","event_type":"workflow.run.failed",
		"window":"15m","threshold":3,"group_by":["workflow.name"],"webhook_endpoint_id":"`+wh["id"].(string)+`"}`)
	if status != http.StatusCreated {
		t.Fatalf("create count rule: %d %v", status, rule)
	}
	id := rule["id"].(string)
	group := "grp_" + strings.Repeat("7", 32)
	since := time.Date(2026, 11, 28, 10, 2, 0, 0, time.UTC)
	status3 := func(state string) []byte {
		g := &schemas.AggregateGroupInfo{TenantID: "acme", RuleID: id, RuleVersion: 1, GroupKey: group,
			Group: map[string]string{"workflow.name": "nightly-etl"}, State: state, FiringSince: &since,
			IncidentID: "inc_" + strings.Repeat("7", 32), Value: schemas.AggregateValue{Matched: new(int64(3))}}
		if state == schemas.AggregateStateResolving {
			later := since.Add(15 * time.Minute)
			g.ResolvingSince = &later
		}
		v, _ := json.Marshal(schemas.AggregateGroupStatus{Group: g})
		if err := schemas.Validate(schemas.KindAggregateGroup, v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	key := schemas.RecordKey("acme", id+"/"+group)
	groups := func() (map[string]any, []map[string]any) {
		status, body := l.do(t, "GET", "/v1/alert-rules/"+id+"/groups", l.adminKey, "")
		if status != 200 {
			t.Fatalf("groups: %d %v", status, body)
		}
		return body, histItems(t, body)
	}
	l.produce(t, l.topics.AggregateGroups, key, status3(schemas.AggregateStateFiring))
	summary, _ := json.Marshal(schemas.AggregateGroupStatus{Rule: &schemas.AggregateRuleSummary{TenantID: "acme", RuleID: id, Groups: 1, Dropped: 4, Late: 2}})
	l.produce(t, l.topics.AggregateGroups, schemas.RecordKey("acme", id), summary)
	testenv.Eventually(t, "firing group and summary in the API", func() (bool, string) {
		body, items := groups()
		s, _ := json.Marshal(body["summary"])
		return len(items) == 1 && items[0]["state"] == "firing" && items[0]["firing_since"] == "2026-11-28T10:02:00Z" &&
			string(s) == `{"dropped":4,"groups":1,"late":2,"max_groups":500}`, fmt.Sprint(body)
	})
	status, firing := l.do(t, "GET", "/v1/alert-groups?state=firing", l.adminKey, "")
	if items := histItems(t, firing); status != 200 || len(items) != 1 || items[0]["group_key"] != group {
		t.Errorf("firing now: %d %v", status, firing)
	}
	l.produce(t, l.topics.AggregateGroups, key, status3(schemas.AggregateStateResolving))
	testenv.Eventually(t, "resolving group in the API", func() (bool, string) {
		body, items := groups()
		return len(items) == 1 && items[0]["state"] == "resolving" && items[0]["resolving_since"] == "2026-11-28T10:17:00Z", fmt.Sprint(body)
	})
	l.produce(t, l.topics.AggregateGroups, key, nil)
	testenv.Eventually(t, "tombstoned group gone", func() (bool, string) {
		body, items := groups()
		return len(items) == 0, fmt.Sprint(body)
	})
}
