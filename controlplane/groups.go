package controlplane

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/exospherehost/exo-alerts/internal/store"
)

// The current state of the groups of count and rate rules, as the
// processor last reported it on the aggregate-groups topic and the
// recorder stored it (docs/design/aggregate-alerts.md §4).

// AlertGroup is one group of a count or rate rule.
type AlertGroup struct {
	RuleID         string            `json:"rule_id" example:"rul_p2k8d7s1m4n6b3v9c5x0"`
	RuleName       string            `json:"rule_name"`
	GroupKey       string            `json:"group_key" example:"grp_9f86d081884c7d659a2feaa0c55ad015" doc:"The group's id within its rule"`
	Group          map[string]string `json:"group" doc:"The group's value of each group_by path, e.g. {\"workflow.name\": \"nightly-etl\"}; {} for a rule without group_by"`
	State          string            `json:"state" enum:"inactive,firing,resolving" doc:"firing: crossed and notified; resolving: no longer crossed, waiting out hold; inactive: quiet"`
	FiringSince    *time.Time        `json:"firing_since" doc:"When the current episode fired (firing and resolving)"`
	ResolvingSince *time.Time        `json:"resolving_since" doc:"Since when the condition is false (resolving)"`
	LastResolvedAt *time.Time        `json:"last_resolved_at" doc:"When the last episode resolved"`
	IncidentID     *string           `json:"incident_id" doc:"The current episode's incident id (PagerDuty's dedup_key, data.aggregate.incident_id of its deliveries)"`
	Value          GroupValue        `json:"value" doc:"The window's value at the last report"`
	LastEventAt    *time.Time        `json:"last_event_at" doc:"Event time of the group's last input"`
	EvaluatedAt    *time.Time        `json:"evaluated_at" doc:"The window boundary of the last evaluation"`
	UpdatedAt      time.Time         `json:"updated_at" doc:"When this state was stored (as last reported)"`
}

// GroupValue is a group's window: matched for count rules; succeeded,
// failed and ratio for rate rules.
type GroupValue struct {
	Matched   *int64   `json:"matched,omitempty" doc:"count: matching events in the window"`
	Succeeded *int64   `json:"succeeded,omitempty" doc:"rate: succeeded runs in the window"`
	Failed    *int64   `json:"failed,omitempty" doc:"rate: failed runs in the window"`
	Ratio     *float64 `json:"ratio,omitempty" doc:"rate: succeeded / (succeeded + failed)"`
}

// GroupSummary is what the processor last reported of a rule's groups.
type GroupSummary struct {
	Groups    int64 `json:"groups" doc:"Groups the rule keeps now"`
	MaxGroups int   `json:"max_groups" doc:"The rule's max_groups"`
	Dropped   int64 `json:"dropped" doc:"Inputs dropped because a new group would have exceeded max_groups (or the processor's bound)"`
	Late      int64 `json:"late" doc:"Inputs dropped because their event time was older than the window"`
}

// groupsIn are the parameters of a page of groups.
type groupsIn struct {
	Cursor, State string
	Limit         int
}

type ruleGroupsIn struct {
	ID     string `path:"id" maxLength:"64" doc:"The resource's id"`
	Cursor string `query:"cursor" maxLength:"300" doc:"Opaque cursor from next_cursor"`
	Limit  int    `query:"limit" minimum:"1" maximum:"200" default:"50" doc:"The most items on a page"`
	State  string `query:"state" enum:"firing,resolving,inactive" doc:"Only groups in this state"`
}

type alertGroupsIn struct {
	Cursor string `query:"cursor" maxLength:"300" doc:"Opaque cursor from next_cursor"`
	Limit  int    `query:"limit" minimum:"1" maximum:"200" default:"50" doc:"The most items on a page"`
	State  string `query:"state" enum:"firing,resolving,inactive" doc:"Only groups in this state"`
	RuleID string `query:"rule_id" maxLength:"64" doc:"Only the groups of this rule"`
}

// RuleGroupList is a page of one count or rate rule's groups with their summary (GET /v1/alert-rules/{id}/groups).
type RuleGroupList struct {
	Items      []AlertGroup `json:"items"`
	NextCursor string       `json:"next_cursor" doc:"Pass as ?cursor= to get the next page; empty on the last page"`
	Summary    GroupSummary `json:"summary"`
}

type ruleGroupsOut struct {
	Link string `header:"Link" doc:"The next page's URL as <url>; rel=\"next\", when there is one"`
	Body RuleGroupList
}

// AlertGroupList is a page of the groups of all the tenant's count and rate rules (GET /v1/alert-groups).
type AlertGroupList struct {
	Items      []AlertGroup `json:"items"`
	NextCursor string       `json:"next_cursor" doc:"Pass as ?cursor= to get the next page; empty on the last page"`
}

type alertGroupsOut struct {
	Link string `header:"Link" doc:"The next page's URL as <url>; rel=\"next\", when there is one"`
	Body AlertGroupList
}

func (s *Server) registerGroups(api huma.API) {
	huma.Register(api, huma.Operation{
		OperationID: "list-alert-rule-groups", Method: http.MethodGet, Path: "/v1/alert-rules/{id}/groups", Tags: []string{"Alert rules"},
		Summary: "List the groups of a count or rate rule",
		Description: "The current state of each group of a count or rate rule (\"firing since …\"), ordered by group_key, with the rule's " +
			"summary: groups kept, dropped and late inputs. As last reported by the processor: at least once a minute of event time " +
			"for firing and resolving groups, on every change of state. 404 for a per-event rule.",
		Security: []map[string][]string{bearer}, Errors: []int{400, 401, 404},
	}, s.listRuleGroups)
	huma.Register(api, huma.Operation{
		OperationID: "list-alert-groups", Method: http.MethodGet, Path: "/v1/alert-groups", Tags: []string{"Alert rules"},
		Summary:     "List the groups of all count and rate rules",
		Description: "The groups of the tenant's count and rate rules, ordered by rule and group; `?state=firing` is what fires now.",
		Security:    []map[string][]string{bearer}, Errors: []int{400, 401},
	}, s.listAlertGroups)
}

func (s *Server) listRuleGroups(ctx context.Context, in *ruleGroupsIn) (*ruleGroupsOut, error) {
	p := principalFrom(ctx)
	cur, err := queryCursor(in.Cursor, store.ParseGroupCursor)
	if err != nil {
		return nil, err
	}
	out := &ruleGroupsOut{}
	var next string
	err = s.tenantTx(ctx, p.TenantID, func(tx *store.Tx) error {
		r, err := tx.GetRule(ctx, in.ID)
		if err != nil {
			return err
		}
		if !r.IsAggregate() {
			return ErrNotFound
		}
		var rows []*store.GroupRow
		if rows, next, err = tx.ListGroups(ctx, cur, in.Limit, store.GroupFilter{RuleID: r.ID, State: in.State}); err != nil {
			return err
		}
		out.Body.Items = alertGroupsOf(rows)
		st, err := tx.GroupStats(ctx, r.ID)
		if err != nil {
			return err
		}
		out.Body.Summary = GroupSummary{Groups: st.Groups, MaxGroups: max(deref(r.MaxGroups), 1), Dropped: st.Dropped, Late: st.Late}
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		return nil, huma.Error404NotFound("no count or rate rule with this id")
	}
	if err != nil {
		return nil, s.internalError("list rule groups", err)
	}
	out.Body.NextCursor = next
	if next != "" {
		out.Link = nextLink("/v1/alert-rules/"+url.PathEscape(in.ID)+"/groups", groupsIn{in.Cursor, in.State, in.Limit}, next, nil)
	}
	return out, nil
}

func (s *Server) listAlertGroups(ctx context.Context, in *alertGroupsIn) (*alertGroupsOut, error) {
	p := principalFrom(ctx)
	cur, err := queryCursor(in.Cursor, store.ParseGroupCursor)
	if err != nil {
		return nil, err
	}
	out := &alertGroupsOut{}
	var next string
	err = s.tenantTx(ctx, p.TenantID, func(tx *store.Tx) error {
		rows, n, err := tx.ListGroups(ctx, cur, in.Limit, store.GroupFilter{RuleID: in.RuleID, State: in.State})
		out.Body.Items, next = alertGroupsOf(rows), n
		return err
	})
	if err != nil {
		return nil, s.internalError("list alert groups", err)
	}
	out.Body.NextCursor = next
	if next != "" {
		extra := url.Values{}
		if in.RuleID != "" {
			extra.Set("rule_id", in.RuleID)
		}
		out.Link = nextLink("/v1/alert-groups", groupsIn{in.Cursor, in.State, in.Limit}, next, extra)
	}
	return out, nil
}

// nextLink is the rel=next Link of a groups page.
func nextLink(path string, in groupsIn, next string, q url.Values) string {
	if q == nil {
		q = url.Values{}
	}
	q.Set("limit", fmt.Sprint(in.Limit))
	if in.State != "" {
		q.Set("state", in.State)
	}
	q.Set("cursor", next)
	return "<" + path + "?" + q.Encode() + `>; rel="next"`
}

func alertGroupsOf(rows []*store.GroupRow) []AlertGroup {
	out := make([]AlertGroup, 0, len(rows))
	for _, g := range rows {
		group := g.Group
		if group == nil {
			group = map[string]string{}
		}
		out = append(out, AlertGroup{
			RuleID: g.RuleID, RuleName: g.RuleName, GroupKey: g.GroupKey, Group: group, State: g.State,
			FiringSince: utc(g.FiringSince), ResolvingSince: utc(g.ResolvingSince), LastResolvedAt: utc(g.LastResolvedAt),
			IncidentID: g.IncidentID, Value: GroupValue(g.Value), LastEventAt: utc(g.LastEventAt), EvaluatedAt: utc(g.EvaluatedAt),
			UpdatedAt: g.UpdatedAt.UTC(),
		})
	}
	return out
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
