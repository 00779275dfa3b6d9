package controlplane

import (
	"context"
	"net/http"
	"slices"

	"github.com/danielgtaylor/huma/v2"

	"github.com/exospherehost/exo-alerts/internal/condition"
	"github.com/exospherehost/exo-alerts/schemas"
)

// EventType is an alert type a rule can watch, as GET /v1/event-types shows it.
type EventType struct {
	Type                   string           `json:"type" enum:"workflow.run.failed,workflow.run.succeeded,workflow.run.started,workflow.run.duration_exceeded,workflow.run.finished" example:"workflow.run.failed"`
	Description            string           `json:"description"`
	NeedsDurationThreshold bool             `json:"needs_duration_threshold" doc:"Whether a rule of this type needs duration_threshold (and no other type takes one)"`
	Fields                 []ConditionField `json:"fields" doc:"The fields a condition can use that this type of event fills in"`
	ExampleCondition       string           `json:"example_condition"`
	RuleKinds              []string         `json:"rule_kinds" doc:"The rule kinds that may watch this type (per_event, count, rate)"`
}

// RuleKind is a kind of rule, as GET /v1/event-types shows it, with a full
// create document as its example.
type RuleKind struct {
	Kind        string         `json:"kind" enum:"per_event,count,rate"`
	Description string         `json:"description"`
	Required    []string       `json:"required" doc:"Members a create document of this kind must have"`
	Optional    []string       `json:"optional" doc:"Further members this kind takes; any other aggregate member is refused"`
	Example     map[string]any `json:"example" doc:"A full create document of this kind (POST /v1/alert-rules), with a placeholder endpoint id"`
	Explanation string         `json:"explanation" doc:"The example in words: when it fires and when it resolves"`
}

// GroupByPath is a path a count or rate rule may group by.
type GroupByPath struct {
	Path        string   `json:"path" example:"workflow.name" doc:"labels.<name> stands for any label, e.g. labels.team"`
	Description string   `json:"description"`
	EventTypes  []string `json:"event_types" doc:"The event types whose rules may group by it"`
}

// DeliveryType is a type of delivery a receiver can get.
type DeliveryType struct {
	Type        string `json:"type" enum:"workflow.run.failed,workflow.run.succeeded,workflow.run.started,workflow.run.duration_exceeded,workflow.alert.firing,workflow.alert.resolved,tenant.notice,webhook.test" example:"workflow.alert.firing"`
	Description string `json:"description"`
}

// ConditionField is a field a rule's condition can use.
type ConditionField struct {
	Path        string `json:"path" doc:"How a condition names the field; labels are labels.<name>, e.g. labels.env" example:"run.duration_ms"`
	Type        string `json:"type" enum:"string,integer"`
	Description string `json:"description"`
	Example     string `json:"example" doc:"A condition that uses the field" example:"run.duration_ms > 600000"`
}

type eventTypesOut struct {
	Body EventTypeCatalog
}

// EventTypeCatalog is the answer to GET /v1/event-types.
type EventTypeCatalog struct {
	Items      []EventType    `json:"items"`
	Kinds      []RuleKind     `json:"kinds" doc:"The kinds of rule, each with the members it takes and a worked example"`
	GroupBy    []GroupByPath  `json:"group_by" doc:"The paths count and rate rules may group by"`
	Deliveries []DeliveryType `json:"deliveries" doc:"Every type of delivery a receiver can get (X-Exosphere-Event, data.type)"`
}

// eventTypeDoc is what the catalogue says about an alert type; the fields
// come from the condition compiler's environment, minus the ones this type
// never fills in (they still compile, but are always "" or 0).
type eventTypeDoc struct {
	typ, description, example string
	threshold                 bool
	unset                     []string
	kinds                     []string
}

var (
	perEventAndCount = []string{schemas.RuleKindPerEvent, schemas.RuleKindCount}
	aggregateKinds   = []string{schemas.RuleKindCount, schemas.RuleKindRate}
)

var eventTypeDocs = []eventTypeDoc{
	{
		typ:         schemas.TypeRunStarted,
		description: "A workflow run started.",
		example:     `labels.env == "prod" && run.attempt > 1`,
		unset:       []string{"run.duration_ms", "error.code", "error.message", "error.node"},
		kinds:       perEventAndCount,
	},
	{
		typ:         schemas.TypeRunSucceeded,
		description: "A workflow run finished successfully.",
		example:     `workflow.name == "nightly-etl" && run.duration_ms > 3600000`,
		unset:       []string{"error.code", "error.message", "error.node"},
		kinds:       perEventAndCount,
	},
	{
		typ:         schemas.TypeRunFailed,
		description: "A workflow run failed. The payload carries the error code; the message only when the rule sets include_error_message.",
		example:     `labels.env == "prod" && error.code != "CANCELLED"`,
		kinds:       perEventAndCount,
	},
	{
		typ: schemas.TypeRunDurationExceeded,
		description: "A workflow run is still running duration_threshold after it started (derived by the processor from the run's " +
			"started event; fires at most once per run and rule, never for a run that finished in time).",
		example:   `workflow.name startsWith "nightly-" && labels.env == "prod"`,
		threshold: true,
		unset:     []string{"event.source", "error.code", "error.message", "error.node"},
		kinds:     perEventAndCount,
	},
	{
		typ: schemas.TypeRunFinished,
		description: "A workflow run finished: its workflow.run.succeeded or workflow.run.failed event. Not an event of its own but a filter " +
			"of count and rate rules (a rate rule always watches it): the condition selects which finished runs count.",
		example: `labels.env == "prod"`,
		unset:   []string{"error.code", "error.message", "error.node"},
		kinds:   aggregateKinds,
	},
}

// placeholderEndpoint stands for the tenant's endpoint id in the kinds'
// examples.
const placeholderEndpoint = "wh_REPLACE_WITH_YOUR_ENDPOINT_ID"

var ruleKinds = []RuleKind{
	{
		Kind:        schemas.RuleKindPerEvent,
		Description: "An alert for every matching event (with optional rate_limit_per_minute and cooldown).",
		Required:    []string{"name", "event_type", "endpoint_id"},
		Optional: []string{"condition", "duration_threshold (workflow.run.duration_exceeded: required)", "rate_limit_per_minute", "cooldown",
			"include_error_message", "severity", "max_attempts"},
		Example: map[string]any{"name": "prod failures", "kind": schemas.RuleKindPerEvent, "event_type": schemas.TypeRunFailed,
			"condition": `labels.env == "prod"`, "endpoint_id": placeholderEndpoint, "severity": "error"},
		Explanation: "Every failed run with the label env=prod sends one alert.",
	},
	{
		Kind: schemas.RuleKindCount,
		Description: "Fires once when at least threshold matching events fall in the sliding window (on the event that crosses it), " +
			"resolves when the window holds fewer for hold. Each group (group_by) is watched on its own.",
		Required: []string{"name", "kind", "event_type", "window", "threshold", "endpoint_id"},
		Optional: []string{"condition", "group_by", "max_groups", "hold", "repeat_interval",
			"duration_threshold (workflow.run.duration_exceeded: required)", "severity", "max_attempts"},
		Example: map[string]any{"name": "nightly-etl keeps failing", "kind": schemas.RuleKindCount, "event_type": schemas.TypeRunFailed,
			"condition": `labels.env == "prod"`, "window": "15m", "threshold": 3, "group_by": []string{"workflow.name"}, "max_groups": 100,
			"repeat_interval": "4h", "endpoint_id": placeholderEndpoint, "severity": "critical"},
		Explanation: "When a prod workflow fails for the 3rd time within 15 minutes, one workflow.alert.firing is sent for that workflow " +
			"(the 4th failure sends nothing); every 4 hours while it lasts it is sent again; once fewer than 3 of its failures fall " +
			"in the last 15 minutes, one workflow.alert.resolved follows.",
	},
	{
		Kind: schemas.RuleKindRate,
		Description: "Fires once when the success ratio succeeded / (succeeded + failed) of the finished runs in the window falls below " +
			"success_ratio_below, with at least min_runs runs; resolves when it has been back at or above it for hold.",
		Required: []string{"name", "kind", "window", "success_ratio_below", "endpoint_id"},
		Optional: []string{"event_type (only workflow.run.finished)", "condition", "min_runs", "group_by", "max_groups", "hold",
			"repeat_interval", "severity", "max_attempts"},
		Example: map[string]any{"name": "prod success rate", "kind": schemas.RuleKindRate, "window": "1h", "success_ratio_below": 0.95,
			"min_runs": 10, "group_by": []string{"labels.team"}, "hold": "10m", "condition": `labels.env == "prod"`,
			"endpoint_id": placeholderEndpoint},
		Explanation: "For each team: when fewer than 95% of its prod runs finished in the last hour succeeded (and at least 10 finished), " +
			"one workflow.alert.firing is sent; 1 failure of 1 run sends nothing. When the ratio has been at or above 95% for 10 " +
			"minutes, one workflow.alert.resolved follows.",
	},
}

var deliveryTypes = []DeliveryType{
	{schemas.TypeRunFailed, "A per-event rule matched a failed run."},
	{schemas.TypeRunSucceeded, "A per-event rule matched a successful run."},
	{schemas.TypeRunStarted, "A per-event rule matched a run that started."},
	{schemas.TypeRunDurationExceeded, "A per-event rule's run is still running duration_threshold after it started."},
	{schemas.TypeAlertFiring, "A count or rate rule's group crossed its threshold (and each repeat_interval while it stays crossed); data.aggregate says which group, its value and incident_id."},
	{schemas.TypeAlertResolved, "A count or rate rule's firing group recovered (or the rule was changed or removed); same incident_id as its firing."},
	{schemas.TypeWebhookTest, "A test delivery sent from the API or dashboard."},
	{schemas.TypeTenantNotice, "A health notice to the tenant's notice endpoint (a rule disabled, an endpoint unhealthy, dead letters, the quota)."},
}

// groupByPaths lists the group_by paths from the condition package, so the
// catalogue and the validation cannot drift.
func groupByPaths() []GroupByPath {
	all := []string{schemas.TypeRunStarted, schemas.TypeRunSucceeded, schemas.TypeRunFailed, schemas.TypeRunDurationExceeded, schemas.TypeRunFinished}
	var out []GroupByPath
	for _, f := range condition.GroupByFields() {
		types := f.EventTypes
		if types == nil {
			types = all
		}
		out = append(out, GroupByPath{Path: f.Path, Description: f.Description, EventTypes: types})
	}
	return out
}

// eventTypes builds the catalogue.
func eventTypes() []EventType {
	fields := condition.Fields()
	out := make([]EventType, 0, len(eventTypeDocs))
	for _, d := range eventTypeDocs {
		et := EventType{Type: d.typ, Description: d.description, NeedsDurationThreshold: d.threshold, ExampleCondition: d.example,
			Fields: make([]ConditionField, 0, len(fields)), RuleKinds: d.kinds}
		for _, f := range fields {
			if slices.Contains(d.unset, f.Path) {
				continue
			}
			et.Fields = append(et.Fields, ConditionField{Path: f.Path, Type: f.Type, Description: f.Description, Example: f.Example})
		}
		out = append(out, et)
	}
	return out
}

func (s *Server) registerEventTypes(api huma.API) {
	catalogue := EventTypeCatalog{Items: eventTypes(), Kinds: ruleKinds, GroupBy: groupByPaths(), Deliveries: deliveryTypes}
	huma.Register(api, huma.Operation{
		OperationID: "list-event-types", Method: http.MethodGet, Path: "/v1/event-types", Tags: []string{"Event types"},
		Summary:     "List the alert types a rule can watch",
		Description: "The catalogue of event types an alert rule can watch, with the fields its condition can use (derived from the condition compiler), an example condition and the rule kinds each; the rule kinds with a worked example each; the paths count and rate rules may group by; and every type of delivery a receiver can get.",
		Security:    []map[string][]string{bearer}, Errors: []int{401},
	}, func(context.Context, *struct{}) (*eventTypesOut, error) {
		return &eventTypesOut{Body: catalogue}, nil
	})
}
