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
	Type                   string           `json:"type" example:"workflow.run.failed"`
	Description            string           `json:"description"`
	NeedsDurationThreshold bool             `json:"needs_duration_threshold" doc:"Whether a rule of this type needs duration_threshold (and no other type takes one)"`
	Fields                 []ConditionField `json:"fields" doc:"The fields a condition can use that this type of event fills in"`
	ExampleCondition       string           `json:"example_condition"`
}

// ConditionField is a field a rule's condition can use.
type ConditionField struct {
	Path        string `json:"path" doc:"How a condition names the field; labels are labels.<name>, e.g. labels.env" example:"run.duration_ms"`
	Type        string `json:"type" enum:"string,integer"`
	Description string `json:"description"`
	Example     string `json:"example" doc:"A condition that uses the field" example:"run.duration_ms > 600000"`
}

type eventTypesOut struct {
	Body struct {
		Items []EventType `json:"items"`
	}
}

// eventTypeDoc is what the catalogue says about an alert type; the fields
// come from the condition compiler's environment, minus the ones this type
// never fills in (they still compile, but are always "" or 0).
type eventTypeDoc struct {
	typ, description, example string
	threshold                 bool
	unset                     []string
}

var eventTypeDocs = []eventTypeDoc{
	{
		typ:         schemas.TypeRunStarted,
		description: "A workflow run started.",
		example:     `labels.env == "prod" && run.attempt > 1`,
		unset:       []string{"run.duration_ms", "error.code", "error.message", "error.node"},
	},
	{
		typ:         schemas.TypeRunSucceeded,
		description: "A workflow run finished successfully.",
		example:     `workflow.name == "nightly-etl" && run.duration_ms > 3600000`,
		unset:       []string{"error.code", "error.message", "error.node"},
	},
	{
		typ:         schemas.TypeRunFailed,
		description: "A workflow run failed. The payload carries the error code; the message only when the rule sets include_error_message.",
		example:     `labels.env == "prod" && error.code != "CANCELLED"`,
	},
	{
		typ: schemas.TypeRunDurationExceeded,
		description: "A workflow run is still running duration_threshold after it started (derived by the processor from the run's " +
			"started event; fires at most once per run and rule, never for a run that finished in time).",
		example:   `workflow.name startsWith "nightly-" && labels.env == "prod"`,
		threshold: true,
		unset:     []string{"event.source", "error.code", "error.message", "error.node"},
	},
}

// eventTypes builds the catalogue.
func eventTypes() []EventType {
	fields := condition.Fields()
	out := make([]EventType, 0, len(eventTypeDocs))
	for _, d := range eventTypeDocs {
		et := EventType{Type: d.typ, Description: d.description, NeedsDurationThreshold: d.threshold, ExampleCondition: d.example,
			Fields: make([]ConditionField, 0, len(fields))}
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
	catalogue := eventTypes()
	huma.Register(api, huma.Operation{
		OperationID: "list-event-types", Method: http.MethodGet, Path: "/v1/event-types", Tags: []string{"Event types"},
		Summary:     "List the alert types a rule can watch",
		Description: "The catalogue of event types an alert rule can watch, with the fields its condition can use (derived from the condition compiler) and an example condition each.",
		Security:    []map[string][]string{bearer}, Errors: []int{401},
	}, func(context.Context, *struct{}) (*eventTypesOut, error) {
		out := &eventTypesOut{}
		out.Body.Items = catalogue
		return out, nil
	})
}
