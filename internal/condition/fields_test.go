package condition

import (
	"reflect"
	"strings"
	"testing"
)

// fieldCondition is a condition that uses the field at path with its type.
func fieldCondition(f Field) string {
	path := strings.ReplaceAll(f.Path, "<name>", "env")
	if f.Type == "integer" {
		return path + " > 0"
	}
	return path + ` == "x"`
}

// Every described field compiles as the type it is described with, and so
// does its example; every leaf of Env is described.
func TestFieldsCompile(t *testing.T) {
	t.Parallel()
	fields := Fields()
	want := []string{"event.id", "event.type", "event.source", "workflow.id", "workflow.name",
		"run.id", "run.attempt", "run.status", "run.duration_ms", "error.code", "error.message", "error.node", "labels.<name>"}
	var got []string
	for _, f := range fields {
		got = append(got, f.Path)
		t.Run(f.Path, func(t *testing.T) {
			t.Parallel()
			if f.Description == "" || f.Example == "" {
				t.Fatalf("field %s has no description or example", f.Path)
			}
			for _, src := range []string{fieldCondition(f), f.Example} {
				if _, err := Compile(src); err != nil {
					t.Errorf("Compile(%q): %v", src, err)
				}
			}
			// A field used as the wrong type is refused: the described type is the compiled one.
			wrong := strings.ReplaceAll(f.Path, "<name>", "env") + ` == "x"`
			if f.Type == "string" {
				wrong = strings.ReplaceAll(f.Path, "<name>", "env") + " > 0"
			}
			if _, err := Compile(wrong); err == nil {
				t.Errorf("Compile(%q) accepted a %s field used as another type", wrong, f.Type)
			}
		})
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Fields paths = %v, want %v", got, want)
	}
}

func TestTypeName(t *testing.T) {
	t.Parallel()
	cases := map[reflect.Type]string{
		reflect.TypeFor[int](): "integer", reflect.TypeFor[int64](): "integer", reflect.TypeFor[string](): "string",
		reflect.TypeFor[map[string]string](): "string", reflect.TypeFor[bool](): "bool",
	}
	for typ, want := range cases {
		if got := typeName(typ); got != want {
			t.Errorf("typeName(%v) = %q, want %q", typ, got, want)
		}
	}
}
