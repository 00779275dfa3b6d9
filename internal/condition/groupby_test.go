package condition

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/exospherehost/exo-alerts/schemas"
)

func TestCheckGroupBy(t *testing.T) {
	t.Parallel()
	failed, succeeded := schemas.TypeRunFailed, schemas.TypeRunSucceeded
	tests := []struct {
		path, eventType string
		ok              bool
		reason          string // part of the refusal
	}{
		{"workflow.id", succeeded, true, ""},
		{"workflow.name", schemas.TypeRunFinished, true, ""},
		{"labels.env", failed, true, ""},
		{"labels." + strings.Repeat("é", 63), failed, true, ""},
		{"labels." + strings.Repeat("k", 64), failed, false, "at most 63"},
		{"labels.", failed, false, "name the label"},
		{"labels.a\x00b", failed, false, "NUL"},
		{"error.code", failed, true, ""},
		{"error.node", failed, true, ""},
		{"error.code", succeeded, false, "workflow.run.failed"},
		{"error.node", schemas.TypeRunFinished, false, "workflow.run.failed"},
		{"run.id", failed, false, "per-event"},
		{"event.id", failed, false, "per-event"},
		{"run.duration_ms", failed, false, "per-event"},
		{"error.message", failed, false, "unbounded"},
		{"workflow", failed, false, "not a group_by path"},
		{"", failed, false, "not a group_by path"},
	}
	for _, tc := range tests {
		t.Run(tc.path+"/"+tc.eventType, func(t *testing.T) {
			t.Parallel()
			err := CheckGroupBy(tc.path, tc.eventType)
			if tc.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var ge *GroupByError
			if !errors.As(err, &ge) || !errors.Is(err, ErrGroupBy) || ge.Path != tc.path {
				t.Fatalf("err = %#v, want a *GroupByError for %q wrapping ErrGroupBy", err, tc.path)
			}
			if !strings.Contains(ge.Reason, tc.reason) {
				t.Errorf("reason %q does not say %q", ge.Reason, tc.reason)
			}
		})
	}
}

func TestCheckGroupByList(t *testing.T) {
	t.Parallel()
	if errs := CheckGroupByList([]string{"workflow.name", "labels.team", "error.code", "labels.env"}, schemas.TypeRunFailed); errs != nil {
		t.Errorf("four allowed paths refused: %v", errs)
	}
	errs := CheckGroupByList([]string{"workflow.name", "workflow.name", "run.id", "labels.a", "labels.b"}, schemas.TypeRunFailed)
	if len(errs) != 3 {
		t.Fatalf("want 3 problems (too many, twice, run.id), got %v", errs)
	}
	for _, err := range errs {
		if !errors.Is(err, ErrGroupBy) {
			t.Errorf("%v does not wrap ErrGroupBy", err)
		}
	}
}

func TestGroupValue(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 255) + "€" // the euro sign straddles byte 256
	ev := &schemas.WorkflowEvent{
		ID: "e1", Type: schemas.TypeRunFailed,
		Data: schemas.WorkflowEventData{
			Workflow: schemas.Workflow{ID: "wf_9", Name: "nightly-etl"},
			Run:      schemas.Run{ID: "run_1"},
			Error:    &schemas.ErrorInfo{Code: "TIMEOUT", Node: "load", Message: "m"},
			Labels:   map[string]string{"env": "prod", "long": long},
		},
	}
	env := NewEnv(ev)
	for path, want := range map[string]string{
		"workflow.id":   "wf_9",
		"workflow.name": "nightly-etl",
		"error.code":    "TIMEOUT",
		"error.node":    "load",
		"labels.env":    "prod",
		"labels.team":   "", // missing label: its own group ""
		"labels.long":   strings.Repeat("a", 255),
		"error.message": "", // not a group_by path
		"run.id":        "",
	} {
		if got := GroupValue(&env, path); got != want {
			t.Errorf("GroupValue(%s) = %q, want %q", path, got, want)
		}
	}
	if got := GroupValue(&env, "labels.long"); len(got) > MaxGroupValueBytes || !utf8.ValidString(got) {
		t.Errorf("long value cut to %d bytes, valid UTF-8 %v", len(got), utf8.ValidString(got))
	}
}

// Every listed path (labels.<name> with a name) passes CheckGroupBy for
// the types it names, and GroupByFields hands out copies.
func TestGroupByFieldsAreAllowed(t *testing.T) {
	t.Parallel()
	fields := GroupByFields()
	if len(fields) == 0 {
		t.Fatal("no group_by fields")
	}
	for _, f := range fields {
		path := strings.ReplaceAll(f.Path, "<name>", "env")
		types := f.EventTypes
		if types == nil {
			types = []string{schemas.TypeRunFailed, schemas.TypeRunSucceeded, schemas.TypeRunFinished}
		}
		for _, typ := range types {
			if err := CheckGroupBy(path, typ); err != nil {
				t.Errorf("listed %s refused for %s: %v", path, typ, err)
			}
		}
		if f.Description == "" {
			t.Errorf("%s has no description", f.Path)
		}
	}
	fields[3].EventTypes[0] = "changed"
	if GroupByFields()[3].EventTypes[0] == "changed" {
		t.Error("GroupByFields returns the package's slice")
	}
}

func FuzzGroupValue(f *testing.F) {
	f.Add("labels.env", "prod")
	f.Add("workflow.name", strings.Repeat("é", 200))
	f.Fuzz(func(t *testing.T, path, value string) {
		env := NewEnv(&schemas.WorkflowEvent{Data: schemas.WorkflowEventData{
			Workflow: schemas.Workflow{ID: value, Name: value},
			Error:    &schemas.ErrorInfo{Code: value, Node: value},
			Labels:   map[string]string{strings.TrimPrefix(path, "labels."): value},
		}})
		got := GroupValue(&env, path)
		if len(got) > MaxGroupValueBytes || !strings.HasPrefix(value, got) {
			t.Fatalf("GroupValue(%q) = %q from %q", path, got, value)
		}
		if utf8.ValidString(value) && !utf8.ValidString(got) {
			t.Fatalf("cut a valid value into invalid UTF-8: %q", got)
		}
	})
}
