package condition

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/exospherehost/exo-alerts/schemas"
)

// Limits of an aggregate rule's group_by.
const (
	// MaxGroupBy is the most paths a group_by may list.
	MaxGroupBy = 4
	// MaxGroupValueBytes is the longest group value kept; GroupValue cuts
	// longer ones (on a rune boundary).
	MaxGroupValueBytes = 256
	// maxLabelName is the longest label name, in characters (the label-key
	// rule of the workflow event schema).
	maxLabelName = 63
)

// labelsPrefix starts the path of a label.
const labelsPrefix = "labels."

// GroupByField describes one path an aggregate rule may group by.
type GroupByField struct {
	// Path is the path as group_by names it; labels are labels.<name>.
	Path        string
	Description string
	// EventTypes lists the event types whose rules may use the path; nil
	// means every type an aggregate rule may watch.
	EventTypes []string
}

// groupByFields backs GroupByFields: the control plane (validation,
// GET /v1/event-types) and the processor (group values) read the same list.
var groupByFields = []GroupByField{
	{Path: "workflow.id", Description: "One group per workflow id."},
	{Path: "workflow.name", Description: "One group per workflow name."},
	{Path: labelsPrefix + "<name>", Description: "One group per value of the run's label <name> (1-63 characters); runs without the label form the group \"\"."},
	{Path: "error.code", Description: "One group per error code of the failed run.", EventTypes: []string{schemas.TypeRunFailed}},
	{Path: "error.node", Description: "One group per failing node of the run.", EventTypes: []string{schemas.TypeRunFailed}},
}

// GroupByFields lists the paths an aggregate rule may group by.
func GroupByFields() []GroupByField {
	out := make([]GroupByField, len(groupByFields))
	for i, f := range groupByFields {
		out[i] = f
		out[i].EventTypes = slices.Clone(f.EventTypes)
	}
	return out
}

// ErrGroupBy is wrapped by every *GroupByError, for errors.Is.
var ErrGroupBy = errors.New("group_by path not allowed")

// GroupByError says why a group_by path is refused.
type GroupByError struct {
	Path   string
	Reason string
}

func (e *GroupByError) Error() string {
	return fmt.Sprintf("group_by %q: %s", e.Path, e.Reason)
}

// Unwrap returns ErrGroupBy.
func (e *GroupByError) Unwrap() error { return ErrGroupBy }

// CheckGroupBy reports whether path may group a rule watching eventType; a
// refusal is a *GroupByError saying why.
func CheckGroupBy(path, eventType string) error {
	refuse := func(reason string) error { return &GroupByError{Path: path, Reason: reason} }
	if name, ok := strings.CutPrefix(path, labelsPrefix); ok {
		switch n := utf8.RuneCountInString(name); {
		case !utf8.ValidString(name):
			return refuse("a label name is valid UTF-8")
		case n == 0:
			return refuse("name the label: labels.<name>")
		case n > maxLabelName:
			return refuse(fmt.Sprintf("a label name is at most %d characters", maxLabelName))
		case strings.ContainsRune(name, 0):
			return refuse("a label name contains no NUL")
		}
		return nil
	}
	for _, f := range groupByFields {
		if f.Path != path {
			continue
		}
		if f.EventTypes != nil && !slices.Contains(f.EventTypes, eventType) {
			return refuse("only rules watching " + strings.Join(f.EventTypes, ", ") + " may group by it")
		}
		return nil
	}
	switch {
	case path == "event.id" || strings.HasPrefix(path, "run."):
		return refuse("one group per run or event is a per-event rule that costs memory: use kind per_event")
	case path == "error.message" || path == "run.duration_ms":
		return refuse("its values are unbounded, so would be its groups")
	}
	return refuse("not a group_by path (allowed: workflow.id, workflow.name, labels.<name>, error.code, error.node)")
}

// CheckGroupByList checks a whole group_by: at most MaxGroupBy paths, each
// allowed (CheckGroupBy) and listed once. It returns every problem.
func CheckGroupByList(paths []string, eventType string) []error {
	var errs []error
	if len(paths) > MaxGroupBy {
		errs = append(errs, fmt.Errorf("%w: group_by lists %d paths, at most %d", ErrGroupBy, len(paths), MaxGroupBy))
	}
	seen := map[string]bool{}
	for _, p := range paths {
		if seen[p] {
			errs = append(errs, &GroupByError{Path: p, Reason: "listed twice"})
			continue
		}
		seen[p] = true
		if err := CheckGroupBy(p, eventType); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// GroupValue returns the value of an allowed group_by path in env, cut to
// MaxGroupValueBytes; a label the run does not have, or a path that is not
// allowed, is "".
func GroupValue(env *Env, path string) string {
	var v string
	switch path {
	case "workflow.id":
		v = env.Workflow.ID
	case "workflow.name":
		v = env.Workflow.Name
	case "error.code":
		v = env.Error.Code
	case "error.node":
		v = env.Error.Node
	default:
		if name, ok := strings.CutPrefix(path, labelsPrefix); ok {
			v = env.Labels[name]
		}
	}
	return cut(v, MaxGroupValueBytes)
}

// cut returns s cut to at most n bytes on a rune boundary.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
