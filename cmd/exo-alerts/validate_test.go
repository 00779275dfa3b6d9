package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/producer"
	"github.com/exospherehost/exo-alerts/schemas"
)

// validateOut runs validate with stdin and returns stdout and the exit
// status the binary would end with.
func validateOut(t *testing.T, stdin string, args ...string) (string, int) {
	t.Helper()
	var out bytes.Buffer
	err := validate(args, strings.NewReader(stdin), &out)
	code := 0
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		code = ee.code
		out.WriteString(ee.msg)
	case isHelp(err): // the help is on stdout
	case err != nil:
		t.Fatalf("validate %q: %v", args, err)
	}
	return out.String(), code
}

// invalidEventPaths is, for every invalid workflow-event example, the path
// validate must print (the processor's reason for the one that is not JSON).
var invalidEventPaths = map[string]string{
	"attempt-float": "/data/run/attempt", "attempt-zero": "/data/run/attempt", "bad-date": "/time",
	"bad-tenantid": "/tenantid", "data-base64": "/data_base64", "duration-exponent": "/data/run/duration_ms",
	"empty-id": "/id", "label-key-too-long": "/data/labels/" + strings.Repeat("k", 64), "label-value-too-long": "/data/labels/team",
	"leap-second": "/time", "missing-data": "/data", "missing-run-id": "/data/run/id", "missing-tenantid": "/tenantid",
	"negative-duration": "/data/run/duration_ms", "non-string-label": "/data/labels/env", "not-json": "value is not JSON",
	"nul-in-error-message": "/data/error/message", "nul-in-label-key": `/data/labels/e\x00nv`, "nul-in-label": "/data/labels/env",
	"object-extension": "/trace", "time-lowercase": "/time", "time-no-zone": "/time", "unknown-run-field": "/data/run/retries",
	"unknown-workflow-field": "/data/workflow/Name", "uppercase-attribute": "/TenantID", "wrong-specversion": "/specversion",
}

func TestValidateExamples(t *testing.T) {
	t.Parallel()
	valid, _ := filepath.Glob("../../schemas/examples/workflow-event*.json")
	if len(valid) < 3 {
		t.Fatalf("found %d valid examples", len(valid))
	}
	out, code := validateOut(t, "", valid...)
	if code != 0 || strings.Count(out, ": valid: ") != len(valid) || !strings.Contains(out, "0 invalid") {
		t.Errorf("valid examples: exit %d\n%s", code, out)
	}
	invalid, _ := filepath.Glob("../../schemas/examples/invalid/workflow-event.*.json")
	if len(invalid) != len(invalidEventPaths) {
		t.Errorf("%d invalid examples, %d expected paths: list the new one", len(invalid), len(invalidEventPaths))
	}
	for _, f := range invalid {
		name := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "workflow-event."), ".json")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			want, ok := invalidEventPaths[name]
			if !ok {
				t.Fatalf("no expected path for %s", f)
			}
			out, code := validateOut(t, "", f)
			if code != 1 || !strings.Contains(out, f+": invalid: ") {
				t.Errorf("exit %d\n%s", code, out)
			}
			if !strings.Contains(out, "\n  "+want+": ") && !strings.Contains(out, ": invalid: "+want) {
				t.Errorf("path %q not printed:\n%s", want, out)
			}
		})
	}
}

func TestValidateStdinBatchAndDump(t *testing.T) {
	t.Parallel()
	good, err := os.ReadFile("../../schemas/examples/workflow-event.json")
	if err != nil {
		t.Fatal(err)
	}
	bad, err := os.ReadFile("../../schemas/examples/invalid/workflow-event.attempt-zero.json")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	run := producer.Run{Tenant: "acme", WorkflowID: "wf_1", WorkflowName: "etl", ID: "run_1", StartedAt: at.Add(-time.Minute)}
	failed := producer.Failed(run, at, schemas.ErrorInfo{Code: "X"})
	bin, err := producer.Record("workflow-events", failed, producer.Binary)
	if err != nil {
		t.Fatal(err)
	}
	// kcat -J: headers as ["name", "value", ...], the value as "payload".
	kcat := func(key string, drop string) string {
		var hs []string
		for _, h := range bin.Headers {
			if h.Key != drop {
				hs = append(hs, h.Key, string(h.Value))
			}
		}
		line, _ := json.Marshal(map[string]any{"topic": "workflow-events", "partition": 0, "offset": 7, "key": key, "headers": hs, "payload": string(bin.Value)})
		return string(line)
	}
	// The documented form: headers as an object, the value as a string.
	object := func(key string, value []byte) string {
		line, _ := json.Marshal(map[string]any{"key": key, "headers": map[string]string{"content-type": "application/cloudevents+json"}, "value": string(value)})
		return string(line)
	}
	compact := func(b []byte) string {
		var buf bytes.Buffer
		_ = json.Compact(&buf, b)
		return buf.String()
	}

	cases := []struct {
		name  string
		stdin string
		args  []string
		code  int
		want  []string
	}{
		{"one event on stdin", string(good), nil, 0, []string{"stdin: valid: workflow.run.failed acme/run_123 attempt 1"}},
		{"stdin named -", string(bad), []string{"-"}, 1, []string{"stdin: invalid: schema (1 problem)", "  /data/run/attempt: must be >= 1"}},
		{"batch with one bad event", "[" + string(good) + "," + string(bad) + "]", nil, 1,
			[]string{"stdin[0]: valid", "stdin[1]: invalid", "  /data/run/attempt: ", "1 valid, 1 invalid"}},
		{"batch format forced", "{}", []string{"-format", "batch"}, 2, []string{"not a batch"}},
		{"dump in binary mode (kcat -J)", kcat("acme/run_1", "") + "\n" + kcat("acme/run_1", "ce_tenantid") + "\n", nil, 1,
			[]string{"stdin:1: valid: workflow.run.failed acme/run_1 attempt 1", "stdin:2: invalid: schema (1 problem)", "  /tenantid: is required"}},
		{"dump, documented form", object("acme/run_123", good) + "\n" + object("acme/run_123", []byte("{nope")) + "\n", nil, 1,
			[]string{"stdin:1: valid", "stdin:2: invalid: value is not JSON"}},
		{"dump, one record with the value as JSON", `{"key":"acme/run_123","value":` + compact(good) + "}", nil, 0, []string{"stdin:1: valid"}},
		{"dump, another tenant's key", kcat("globex/run_1", ""), nil, 0, []string{"stdin:1: valid", `warning: key "globex/run_1" is not "acme/run_1"`}},
		{"dump, another tenant's key, strict", kcat("globex/run_1", ""), []string{"-strict-keys"}, 1,
			[]string{`stdin:1: invalid: record key "globex/run_1" does not start with the event's tenant "acme" followed by /`}},
		{"dump, malformed line", "{\"key\":", []string{"-format", "dump"}, 2, []string{"stdin:1: not a dump record"}},
		{"quiet", string(good), []string{"-q"}, 0, nil},
		{"unknown flag", "", []string{"-nope"}, 2, nil},
		{"unknown format", "", []string{"-format", "xml"}, 2, []string{`-format "xml"`}},
		{"missing file", "", []string{"no-such-file.json"}, 2, []string{"no-such-file.json"}},
		{"help", "", []string{"-h"}, 0, []string{"Usage: exo-alerts validate", "-format", "-strict-keys", "-max-bytes", "Exit status: 0"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			out, code := validateOut(t, c.stdin, c.args...)
			if code != c.code {
				t.Errorf("exit %d, want %d\n%s", code, c.code, out)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if c.name == "quiet" && out != "" {
				t.Errorf("-q printed %q for a valid event", out)
			}
		})
	}
}
