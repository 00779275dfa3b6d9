package openapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// document is the committed OpenAPI document (controlplane's
// TestOpenAPIIsCommitted keeps it equal to what the server serves).
const document = "../../docs/openapi.json"

// quiet keeps the npm tools from reporting usage or looking for updates:
// a test sends nothing anywhere.
var quiet = []string{"REDOCLY_TELEMETRY=off", "REDOCLY_SUPPRESS_UPDATE_NOTICE=true", "NO_UPDATE_NOTIFIER=1"}

// lintTimeout bounds one linter's run.
const lintTimeout = 2 * time.Minute

// problem is one finding of a linter.
type problem struct {
	severity, rule, where, message string
}

func (p problem) String() string {
	return fmt.Sprintf("%s %s at %s: %s", p.severity, p.rule, p.where, p.message)
}

// redocly lints doc with Redocly CLI and .redocly.yaml (the recommended
// ruleset) and returns its errors and warnings.
func redocly(t *testing.T, modules, doc string) []problem {
	t.Helper()
	cfg, _ := filepath.Abs(".redocly.yaml")
	stdout, stderr := lint(t, filepath.Join(modules, ".bin", "redocly"), "lint", doc, "--config", cfg, "--format=json")
	var report struct {
		Totals   struct{ Errors, Warnings int }
		Problems []struct {
			RuleID, Severity, Message string
			Location                  []struct{ Pointer string }
		}
	}
	if err := json.Unmarshal(stdout, &report); err != nil {
		t.Fatalf("redocly's report: %v\n%s\n%s", err, stdout, stderr)
	}
	var out []problem
	for _, p := range report.Problems {
		if p.Severity != "error" && p.Severity != "warn" {
			continue
		}
		where := ""
		if len(p.Location) > 0 {
			where = p.Location[0].Pointer
		}
		out = append(out, problem{p.Severity, p.RuleID, where, p.Message})
	}
	if report.Totals.Errors+report.Totals.Warnings != len(out) {
		t.Fatalf("redocly counts %d errors and %d warnings but lists %d: %s", report.Totals.Errors, report.Totals.Warnings, len(out), stdout)
	}
	return out
}

// spectral lints doc with Spectral and .spectral.yaml (spectral:oas) and
// returns its errors and warnings.
func spectral(t *testing.T, modules, doc string) []problem {
	t.Helper()
	cfg, _ := filepath.Abs(".spectral.yaml")
	report := filepath.Join(t.TempDir(), "spectral.json")
	_, stderr := lint(t, filepath.Join(modules, ".bin", "spectral"), "lint", "--ruleset", cfg, "--format", "json", "--output", report, doc)
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatalf("spectral wrote no report: %v\n%s", err, stderr)
	}
	var results []struct {
		Code     string
		Message  string
		Severity int // 0 error, 1 warning, 2 information, 3 hint
		Path     []any
	}
	if err := json.Unmarshal(b, &results); err != nil {
		t.Fatalf("spectral's report: %v\n%s\n%s", err, b, stderr)
	}
	var out []problem
	for _, r := range results {
		if r.Severity <= 1 {
			out = append(out, problem{[]string{"error", "warn"}[r.Severity], r.Code, fmt.Sprint(r.Path), r.Message})
		}
	}
	return out
}

// lint runs a linter; its exit status says only whether it found
// something (the report says what), so it is not an error here, but a
// linter that cannot run is.
func lint(t *testing.T, bin string, args ...string) (stdout, stderr []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), lintTimeout)
	defer cancel()
	var o, e bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), quiet...)
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		if _, ok := err.(*exec.ExitError); !ok || ctx.Err() != nil { //nolint:errorlint // the type of Run's own error, never wrapped
			t.Fatalf("%s: %v\n%s", cmd, err, e.Bytes())
		}
	}
	return o.Bytes(), e.Bytes()
}

// The committed document passes both linters with no error and no warning.
func TestOpenAPILintsClean(t *testing.T) {
	t.Parallel()
	modules := nodeModules(t)
	doc, _ := filepath.Abs(document)
	for name, linter := range map[string]func(*testing.T, string, string) []problem{"redocly": redocly, "spectral": spectral} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			for _, p := range linter(t, modules, doc) {
				t.Errorf("%s: %s", name, p)
			}
		})
	}
}

// The linters, as configured, see what the API promises: a document
// without servers, without an operation's description, with an
// undescribed parameter or an undescribed tag fails both.
func TestOpenAPILintCatchesGaps(t *testing.T) {
	t.Parallel()
	modules := nodeModules(t)
	raw, err := os.ReadFile(document)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	delete(doc, "servers")
	list := doc["paths"].(map[string]any)["/v1/alert-rules"].(map[string]any)["get"].(map[string]any)
	delete(list, "description")
	for _, p := range list["parameters"].([]any) {
		delete(p.(map[string]any), "description")
	}
	doc["tags"] = append(doc["tags"].([]any), map[string]any{"name": "Undescribed"})
	broken, _ := json.Marshal(doc)
	path := filepath.Join(t.TempDir(), "openapi.json")
	if err := os.WriteFile(path, broken, 0o644); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"redocly":  {"no-empty-servers", "operation-description", "parameter-description", "tag-description"},
		"spectral": {"oas3-api-servers", "operation-description", "oas3-parameter-description"},
	}
	for name, linter := range map[string]func(*testing.T, string, string) []problem{"redocly": redocly, "spectral": spectral} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			found := map[string]bool{}
			for _, p := range linter(t, modules, path) {
				found[p.rule] = true
			}
			for _, rule := range want[name] {
				if !found[rule] {
					t.Errorf("%s does not report %s on the broken document (found %v)", name, rule, found)
				}
			}
		})
	}
}
