package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	examplesDir = "examples"
	invalidDir  = "examples/invalid"
)

// invalidWant names, for every file under examples/invalid, the instance
// location (JSON Pointer) that Validate must report. Adding an invalid
// example without an entry here fails TestInvalidExamplesAreListed.
// notJSON marks documents that must be refused as not JSON.
const notJSON = "<not json>"

var invalidWant = map[string]string{
	"rule-error.zero-errors": "/errors",
	"tenant.bad-state":       "/state",
	"tenant.bad-tenant-id":   "/tenant_id",

	"workflow-event.missing-tenantid":       "/tenantid",
	"workflow-event.wrong-specversion":      "/specversion",
	"workflow-event.non-string-label":       "/data/labels/env",
	"workflow-event.bad-tenantid":           "/tenantid",
	"workflow-event.attempt-zero":           "/data/run/attempt",
	"workflow-event.attempt-float":          "/data/run/attempt",
	"workflow-event.duration-exponent":      "/data/run/duration_ms",
	"workflow-event.negative-duration":      "/data/run/duration_ms",
	"workflow-event.unknown-run-field":      "/data/run/retries",
	"workflow-event.unknown-workflow-field": "/data/workflow/Name",
	"workflow-event.missing-data":           "/data",
	"workflow-event.missing-run-id":         "/data/run/id",
	"workflow-event.empty-id":               "/id",
	"workflow-event.label-key-too-long":     "/data/labels/" + strings.Repeat("k", 64),
	"workflow-event.label-value-too-long":   "/data/labels/team",
	"workflow-event.uppercase-attribute":    "/TenantID",
	"workflow-event.object-extension":       "/trace",
	"workflow-event.data-base64":            "/data_base64",
	"workflow-event.time-no-zone":           "/time",
	"workflow-event.time-lowercase":         "/time",
	"workflow-event.leap-second":            "/time",
	"workflow-event.bad-date":               "/time",
	"workflow-event.not-json":               notJSON,
	"workflow-event.nul-in-label":           "/data/labels/env",
	"workflow-event.nul-in-label-key":       "/data/labels/e\x00nv",
	"workflow-event.nul-in-error-message":   "/data/error/message",

	"webhook-payload-v1.extra-field":                "/data/severity",
	"webhook-payload-v1.extra-top-level-field":      "/version",
	"webhook-payload-v1.bad-alert-id":               "/data/alert_id",
	"webhook-payload-v1.threshold-on-failed":        "/data/threshold_ms",
	"webhook-payload-v1.duration-without-threshold": "/data/threshold_ms",
	"webhook-payload-v1.missing-labels":             "/data/labels",
	"webhook-payload-v1.error-node":                 "/data/error/node",
	"webhook-payload-v1.unknown-type":               "/type",
	"webhook-payload-v1.firing-without-aggregate":   "/data/aggregate",
	"webhook-payload-v1.aggregate-on-failed":        "/data",
	"webhook-payload-v1.notice-without-notice":      "/data/notice",

	"rule.bad-event-type":             "/event_type",
	"rule.duration-without-threshold": "/duration_threshold_ms",
	"rule.threshold-on-failed":        "/duration_threshold_ms",
	"rule.max-attempts-too-high":      "/max_attempts",
	"rule.empty-condition":            "/condition",
	"rule.is-active-string":           "/is_active",
	"rule.bad-severity":               "/severity",
	"rule.rate-limit-zero":            "/rate_limit_per_minute",
	"rule.rate-limit-too-high":        "/rate_limit_per_minute",
	"rule.cooldown-too-long":          "/cooldown_ms",
	"rule.count-without-window":       "/window_ms",
	"rule.window-not-whole-minutes":   "/window_ms",
	"rule.window-on-per-event":        "/window_ms",
	"rule.finished-per-event":         "/event_type",
	"rule.rate-not-finished":          "/event_type",
	"rule.cooldown-on-count":          "/cooldown_ms",
	"rule.group-by-run":               "/group_by/0",
	"rule.threshold-on-rate":          "/threshold",

	"aggregate-input.tenant-on-watermark": "/tenant_id",
	"aggregate-input.bad-outcome":         "/outcome",
	"aggregate-state.two-members":         "(root)",
	"aggregate-group.bad-state":           "/group/state",
	"quota-usage.bad-scope":               "/scope",
	"endpoint-health.negative-failures":   "/consecutive_failures",
	"tenant-limits.negative-quota":        "/delivery_quota_per_minute",
	"endpoint.bad-kind":                   "/kind",
	"endpoint.plain-secret":               "/secret",
	"endpoint.bad-ciphertext":             "/secret/ciphertext",
	"endpoint.relative-url":               "/target_url",
	"endpoint.bad-header-name":            "/headers/X Bad",
	"endpoint.plain-header-value":         "/headers/X-Api-Key",
	"delivery.payload-extra-field":        "/payload/data/message",
	"delivery.payload-missing-alert-id":   "/payload/data/alert_id",
	"delivery.bad-alert-id":               "/alert_id",
	"delivery.missing-payload":            "/payload",
	"result.bad-outcome":                  "/outcome",
	"result.attempt-zero":                 "/attempt",
	"result.status-code-out-of-range":     "/status_code",
	"result.negative-latency":             "/latency_ms",
	"run-state.missing-seen":              "/seen",
	"run-state.null-seen":                 "/seen",
	"run-state.unknown-seen-type":         "/seen/1",
	"run-state.duplicate-seen":            "/seen",
	"run-state.duplicate-fired":           "/fired",
	"run-state.unknown-field":             "/status",
}

// example is one document under examples/.
type example struct {
	name string // file name without .json
	kind Kind
	path string
}

func listExamples(t testing.TB, dir string) []example {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []example
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		name := strings.TrimSuffix(e.Name(), ".json")
		k, _, _ := strings.Cut(name, ".")
		out = append(out, example{name: name, kind: Kind(k), path: filepath.Join(dir, e.Name())})
	}
	if len(out) == 0 {
		t.Fatalf("no examples in %s", dir)
	}
	return out
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func knownKind(k Kind) bool {
	for _, x := range Kinds {
		if x == k {
			return true
		}
	}
	return false
}

// newValue returns a pointer to the Go type of kind k.
func newValue(k Kind) any {
	switch k {
	case KindWorkflowEvent:
		return new(WorkflowEvent)
	case KindWebhookPayload:
		return new(WebhookPayload)
	case KindRule:
		return new(RuleRecord)
	case KindEndpoint:
		return new(EndpointRecord)
	case KindDelivery:
		return new(DeliveryRecord)
	case KindResult:
		return new(ResultRecord)
	case KindRunState:
		return new(RunState)
	case KindRuleError:
		return new(RuleErrorRecord)
	case KindTenant:
		return new(TenantRecord)
	case KindAggregateInput:
		return new(AggregateInput)
	case KindAggregateState:
		return new(AggregateStateRecord)
	case KindAggregateGroup:
		return new(AggregateGroupStatus)
	case KindQuotaUsage:
		return new(QuotaUsageRecord)
	case KindEndpointHealth:
		return new(EndpointHealthRecord)
	case KindTenantLimits:
		return new(TenantLimitsRecord)
	}
	return nil
}

func TestEveryKindHasSchemaTypeAndExample(t *testing.T) {
	t.Parallel()
	valid, invalid := map[Kind]bool{}, map[Kind]bool{}
	for _, ex := range listExamples(t, examplesDir) {
		if ex.name == string(ex.kind) {
			valid[ex.kind] = true
		}
	}
	for _, ex := range listExamples(t, invalidDir) {
		invalid[ex.kind] = true
	}
	seen := map[Kind]bool{}
	for _, k := range Kinds {
		if seen[k] {
			t.Errorf("kind %q listed twice in Kinds", k)
		}
		seen[k] = true
	}
	for _, k := range Kinds {
		t.Run(string(k), func(t *testing.T) {
			t.Parallel()
			raw := Schema(k)
			if raw == nil {
				t.Fatalf("no schema for kind %q", k)
			}
			var doc map[string]any
			if err := json.Unmarshal(raw, &doc); err != nil {
				t.Fatalf("schema is not JSON: %v", err)
			}
			if doc["$id"] != k.ID() {
				t.Errorf("$id = %v, want %s", doc["$id"], k.ID())
			}
			if doc["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
				t.Errorf("$schema = %v, want draft 2020-12", doc["$schema"])
			}
			if newValue(k) == nil {
				t.Errorf("kind %q has no Go type in newValue", k)
			}
			if !valid[k] {
				t.Errorf("kind %q has no valid example %s/%s.json", k, examplesDir, k)
			}
			if !invalid[k] {
				t.Errorf("kind %q has no invalid example %s/%s.<what>.json", k, invalidDir, k)
			}
		})
	}
	if Schema("no-such-kind") != nil {
		t.Error("Schema of an unknown kind is not nil")
	}
}

func TestSchemaFilesMatchKinds(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("*.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if k := Kind(strings.TrimSuffix(f, ".schema.json")); !knownKind(k) {
			t.Errorf("%s: no Kind %q in Kinds", f, k)
		}
	}
	for _, k := range Kinds {
		if !bytes.Equal(readFile(t, string(k)+".schema.json"), Schema(k)) {
			t.Errorf("Schema(%q) differs from %s.schema.json", k, k)
		}
	}
}

// TestLeafPackage: schemas must not import other packages of the module.
func TestLeafPackage(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		parsed, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range parsed.Imports {
			if path := strings.Trim(imp.Path.Value, `"`); strings.HasPrefix(path, "github.com/exospherehost/exo-alerts") {
				t.Errorf("%s imports %s", f, path)
			}
		}
	}
}

func TestSchemaReturnsCopy(t *testing.T) {
	t.Parallel()
	a := Schema(KindRule)
	a[0] = 'X'
	if Schema(KindRule)[0] == 'X' {
		t.Fatal("Schema returned the embedded bytes, not a copy")
	}
}

func TestValidExamples(t *testing.T) {
	t.Parallel()
	for _, ex := range listExamples(t, examplesDir) {
		t.Run(ex.name, func(t *testing.T) {
			t.Parallel()
			if !knownKind(ex.kind) {
				t.Fatalf("example %s: unknown kind %q (name examples <kind>[.<what>].json)", ex.path, ex.kind)
			}
			if err := Validate(ex.kind, readFile(t, ex.path)); err != nil {
				t.Fatalf("valid example rejected: %v", err)
			}
		})
	}
}

func TestInvalidExamples(t *testing.T) {
	t.Parallel()
	for _, ex := range listExamples(t, invalidDir) {
		t.Run(ex.name, func(t *testing.T) {
			t.Parallel()
			if !knownKind(ex.kind) {
				t.Fatalf("example %s: unknown kind %q", ex.path, ex.kind)
			}
			want, ok := invalidWant[ex.name]
			if !ok {
				t.Fatalf("%s: add the failing location to invalidWant", ex.path)
			}
			err := Validate(ex.kind, readFile(t, ex.path))
			if err == nil {
				t.Fatal("invalid example accepted")
			}
			if want == notJSON {
				if !errors.Is(err, ErrNotJSON) {
					t.Fatalf("error %v does not wrap ErrNotJSON", err)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error %T %v is not a *ValidationError", err, err)
			}
			if ve.Kind != ex.kind {
				t.Errorf("ValidationError.Kind = %q, want %q", ve.Kind, ex.kind)
			}
			found := false
			for _, p := range ve.Problems {
				if strings.HasPrefix(p, want+": ") {
					found = true
				}
			}
			if !found {
				t.Errorf("no problem names %s; got %q", want, ve.Problems)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, string(ex.kind)+": ") || !strings.Contains(msg, want) {
				t.Errorf("Error() = %q, want the kind and %s", msg, want)
			}
			t.Logf("%v", err)
		})
	}
}

func TestInvalidExamplesAreListed(t *testing.T) {
	t.Parallel()
	have := map[string]bool{}
	for _, ex := range listExamples(t, invalidDir) {
		have[ex.name] = true
	}
	for name := range invalidWant {
		if !have[name] {
			t.Errorf("invalidWant lists %s but %s/%s.json does not exist", name, invalidDir, name)
		}
	}
}

// TestRoundTrip decodes every valid example into its Go type (no unknown
// fields allowed), re-encodes it, and checks that the result still
// validates and means the same as the original.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for _, ex := range listExamples(t, examplesDir) {
		t.Run(ex.name, func(t *testing.T) {
			t.Parallel()
			orig := readFile(t, ex.path)
			in := orig
			if ex.kind == KindWorkflowEvent {
				// CloudEvents extension attributes, forward-compatible
				// members of data and null (= absent) attributes are not
				// part of the Go type; compare what the type carries.
				in = stripWorkflowEvent(t, orig)
			}
			v := newValue(ex.kind)
			if v == nil {
				t.Fatalf("no Go type for kind %q", ex.kind)
			}
			dec := json.NewDecoder(bytes.NewReader(in))
			dec.DisallowUnknownFields()
			if err := dec.Decode(v); err != nil {
				t.Fatalf("decode into %T: %v", v, err)
			}
			out, err := json.Marshal(v)
			if err != nil {
				t.Fatalf("encode %T: %v", v, err)
			}
			if err := Validate(ex.kind, out); err != nil {
				t.Fatalf("re-encoded document does not validate: %v\n%s", err, out)
			}
			if diff := semanticDiff(t, in, out); diff != "" {
				t.Fatalf("re-encoded document differs: %s\noriginal:   %s\nre-encoded: %s", diff, compact(t, in), out)
			}
		})
	}
}

// stripWorkflowEvent removes from an event what WorkflowEvent cannot hold:
// attributes that are not fields of the type (extensions), unknown members
// of data, and members whose value is null.
func stripWorkflowEvent(t testing.TB, doc []byte) []byte {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	keepOnly(m, jsonFields(reflect.TypeFor[WorkflowEvent]()))
	if data, ok := m["data"].(map[string]any); ok {
		keepOnly(data, jsonFields(reflect.TypeFor[WorkflowEventData]()))
	}
	dropNulls(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func jsonFields(typ reflect.Type) map[string]bool {
	out := map[string]bool{}
	for f := range typ.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out[name] = true
		}
	}
	return out
}

func keepOnly(m map[string]any, keep map[string]bool) {
	for k := range m {
		if !keep[k] {
			delete(m, k)
		}
	}
}

func dropNulls(v any) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if x == nil {
				delete(v, k)
				continue
			}
			dropNulls(x)
		}
	case []any:
		for _, x := range v {
			dropNulls(x)
		}
	}
}

func compact(t testing.TB, b []byte) string {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// semanticDiff compares two JSON documents as values. Numbers compare by
// their literal; strings compare exactly, except two RFC 3339 times that
// denote the same instant in the same offset.
func semanticDiff(t testing.TB, a, b []byte) string {
	t.Helper()
	decode := func(doc []byte) any {
		var v any
		dec := json.NewDecoder(bytes.NewReader(doc))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	return diff("", decode(a), decode(b))
}

func diff(path string, a, b any) string {
	switch a := a.(type) {
	case map[string]any:
		bm, ok := b.(map[string]any)
		if !ok {
			return fmt.Sprintf("%s: object vs %T", path, b)
		}
		keys := map[string]bool{}
		for k := range a {
			keys[k] = true
		}
		for k := range bm {
			keys[k] = true
		}
		sorted := make([]string, 0, len(keys))
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		for _, k := range sorted {
			av, aok := a[k]
			bv, bok := bm[k]
			switch {
			case !aok:
				return fmt.Sprintf("%s/%s: added", path, k)
			case !bok:
				return fmt.Sprintf("%s/%s: dropped", path, k)
			}
			if d := diff(path+"/"+k, av, bv); d != "" {
				return d
			}
		}
		return ""
	case []any:
		bs, ok := b.([]any)
		if !ok || len(a) != len(bs) {
			return fmt.Sprintf("%s: array vs %v", path, b)
		}
		for i := range a {
			if d := diff(fmt.Sprintf("%s/%d", path, i), a[i], bs[i]); d != "" {
				return d
			}
		}
		return ""
	case string:
		bs, ok := b.(string)
		if ok && (a == bs || sameTime(a, bs)) {
			return ""
		}
		return fmt.Sprintf("%s: %q vs %v", path, a, b)
	default:
		if a != b {
			return fmt.Sprintf("%s: %v (%T) vs %v (%T)", path, a, a, b, b)
		}
		return ""
	}
}

func sameTime(a, b string) bool {
	ta, err1 := time.Parse(time.RFC3339Nano, a)
	tb, err2 := time.Parse(time.RFC3339Nano, b)
	if err1 != nil || err2 != nil {
		return false
	}
	_, oa := ta.Zone()
	_, ob := tb.Zone()
	return ta.Equal(tb) && oa == ob
}

func TestValidateErrors(t *testing.T) {
	t.Parallel()
	event := readFile(t, filepath.Join(examplesDir, "workflow-event.json"))
	tests := []struct {
		name     string
		kind     Kind
		doc      string
		sentinel error    // when set, errors.Is must hold
		problems []string // when set, the exact problems
	}{
		{name: "empty", kind: KindWorkflowEvent, doc: "", sentinel: ErrNotJSON},
		{name: "whitespace", kind: KindWorkflowEvent, doc: " \n", sentinel: ErrNotJSON},
		{name: "garbage", kind: KindWorkflowEvent, doc: "<xml/>", sentinel: ErrNotJSON},
		{name: "trailing data", kind: KindWorkflowEvent, doc: string(event) + "{}", sentinel: ErrNotJSON},
		{name: "two values", kind: KindRule, doc: "{} {}", sentinel: ErrNotJSON},
		{name: "unknown kind", kind: "nope", doc: "{}", sentinel: ErrUnknownKind},
		{name: "null", kind: KindWorkflowEvent, doc: "null", problems: []string{"(root): must be object, got null"}},
		{name: "array", kind: KindResult, doc: "[]", problems: []string{"(root): must be object, got array"}},
		{
			name: "missing tenantid", kind: KindWorkflowEvent,
			doc:      strings.Replace(string(event), `"tenantid": "acme",`, "", 1),
			problems: []string{"/tenantid: is required"},
		},
		{
			name: "two problems sorted", kind: KindWorkflowEvent,
			doc:      strings.Replace(strings.Replace(string(event), `"tenantid": "acme",`, "", 1), `"attempt": 1`, `"attempt": 0`, 1),
			problems: []string{"/data/run/attempt: must be >= 1, got 0", "/tenantid: is required"},
		},
		{
			name: "label key with slash is escaped", kind: KindWorkflowEvent,
			doc:      strings.Replace(string(event), `"env": "prod"`, `"a/b~c": 7`, 1),
			problems: []string{"/data/labels/a~1b~0c: must be string, got number"},
		},
		{
			name: "integer written as float", kind: KindWorkflowEvent,
			doc:      strings.Replace(string(event), `"attempt": 1`, `"attempt": 1.0`, 1),
			problems: []string{`/data/run/attempt: "1.0" is not a valid int32: must be written as an integer (no fraction or exponent)`},
		},
		{
			name: "duration beyond int64", kind: KindWorkflowEvent,
			doc:      strings.Replace(string(event), `"duration_ms": 84211`, `"duration_ms": 9223372036854775808`, 1),
			problems: []string{`/data/run/duration_ms: "9223372036854775808" is not a valid int64: does not fit in 64 bits`},
		},
		{
			name: "duplicate member", kind: KindWorkflowEvent,
			doc:      strings.Replace(string(event), `"data": {`, `"data": "", "data": {`, 1),
			problems: []string{"/data: is duplicated (member names must be unique)"},
		},
		{
			name: "duplicate member spelled with an escape", kind: KindWorkflowEvent,
			doc:      strings.Replace(string(event), `"env": "prod"`, `"env": "prod", "\u0065nv": "dev"`, 1),
			problems: []string{"/data/labels/env: is duplicated (member names must be unique)"},
		},
		{
			name: "long value is cut", kind: KindWorkflowEvent,
			doc:      strings.Replace(string(event), `"tenantid": "acme"`, `"tenantid": "`+strings.Repeat("x", 5000)+`"`, 1),
			problems: []string{`/tenantid: "` + strings.Repeat("x", 45) + `…" does not match ^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := Validate(tc.kind, []byte(tc.doc))
			if err == nil {
				t.Fatal("Validate accepted the document")
			}
			if tc.sentinel != nil {
				if !errors.Is(err, tc.sentinel) {
					t.Fatalf("error %q does not wrap %q", err, tc.sentinel)
				}
				var ve *ValidationError
				if errors.As(err, &ve) {
					t.Fatalf("error %q is a *ValidationError", err)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error %T %q is not a *ValidationError", err, err)
			}
			if !reflect.DeepEqual(ve.Problems, tc.problems) {
				t.Fatalf("problems\n got %q\nwant %q", ve.Problems, tc.problems)
			}
			if want := string(tc.kind) + ": " + strings.Join(tc.problems, "; "); err.Error() != want {
				t.Fatalf("Error() = %q, want %q", err.Error(), want)
			}
		})
	}
}

func TestProblemsAreCapped(t *testing.T) {
	t.Parallel()
	labels := map[string]int{}
	for i := range 30 {
		labels[fmt.Sprintf("l%02d", i)] = i
	}
	doc, err := json.Marshal(map[string]any{
		"specversion": "1.0", "id": "x", "source": "s", "type": "t",
		"time": "2026-11-28T10:00:00Z", "tenantid": "acme",
		"data": map[string]any{"workflow": map[string]any{"id": "w", "name": "n"}, "run": map[string]any{"id": "r"}, "labels": labels},
	})
	if err != nil {
		t.Fatal(err)
	}
	var ve *ValidationError
	if err := Validate(KindWorkflowEvent, doc); !errors.As(err, &ve) {
		t.Fatalf("want a *ValidationError, got %v", err)
	}
	if len(ve.Problems) != maxProblems {
		t.Fatalf("%d problems, want %d: %q", len(ve.Problems), maxProblems, ve.Problems)
	}
	if last := ve.Problems[maxProblems-1]; last != "and 21 more problems" {
		t.Fatalf("last problem = %q", last)
	}
	for _, p := range ve.Problems {
		if len(p) > maxProblemLen {
			t.Errorf("problem longer than %d bytes: %q", maxProblemLen, p)
		}
	}
}

// TestValidateConcurrent runs every example through Validate from many
// goroutines at once (meaningful under -race).
func TestValidateConcurrent(t *testing.T) {
	t.Parallel()
	exs := append(listExamples(t, examplesDir), listExamples(t, invalidDir)...)
	docs := make([][]byte, len(exs))
	for i, ex := range exs {
		docs[i] = readFile(t, ex.path)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range exs {
				ex := exs[(i+g)%len(exs)]
				err := Validate(ex.kind, docs[(i+g)%len(exs)])
				if valid := filepath.Dir(ex.path) == examplesDir; valid != (err == nil) {
					t.Errorf("%s: valid=%v, err=%v", ex.path, valid, err)
				}
			}
		})
	}
	wg.Wait()
}

var tenantRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$`)

// workflowEventSeeds are the fuzz seeds of the workflow-event decoders: the
// examples, and documents where JSON Schema and encoding/json could disagree.
func workflowEventSeeds(t testing.TB) [][]byte {
	var docs [][]byte
	for _, dir := range []string{examplesDir, invalidDir} {
		for _, ex := range listExamples(t, dir) {
			if ex.kind == KindWorkflowEvent {
				docs = append(docs, readFile(t, ex.path))
			}
		}
	}
	docs = append(docs, []byte(`{}`), []byte(`null`))
	// Places where JSON Schema and encoding/json could disagree.
	const head = `{"specversion":"1.0","id":"a","source":"b","type":"c","tenantid":"t",`
	const wf = `"workflow":{"id":"w","name":"n"}`
	for _, s := range []string{
		head + `"time":"2026-01-01T00:00:00Z","data":{` + wf + `,"run":{"id":"r","attempt":1e0}}}`,
		// NUL (refused: Postgres text and jsonb cannot hold it) and its
		// look-alikes (an escaped backslash before u0000; accepted).
		head + `"time":"2026-01-01T00:00:00Z","trace":"a\u0000b","data":{` + wf + `,"run":{"id":"r"}}}`,
		head + `"time":"2026-01-01T00:00:00Z","trace":"a\\u0000b","data":{` + wf + `,"run":{"id":"r"}}}`,
		head + `"time":"2026-01-01T00:00:00Z","datacontenttype":"application/json; x=\u0000","data":{` + wf + `,"run":{"id":"r"}}}`,
		head + `"time":"2026-01-01T00:00:00Z","data":{` + wf + `,"run":{"id":"r\u0000"}}}`,
		head + `"time":"2026-01-01T00:00:00Z","data":{` + wf + `,"run":{"id":"r"},"labels":{"a":"\\u0000"}}}`,
		head + `"time":"2026-01-01T00:00:00Z","data":{` + wf + `,"run":{"id":"r"},"extra":"\u0000"}}`,
		head + `"time":"2026-01-01T00:00:00Z","data":{` + wf + `,"run":{"id":"r","attempt":-0,"duration_ms":-0}}}`,
		head + `"time":"2026-01-01T00:00:00Z","data":{` + wf + `,"run":{"id":"r","duration_ms":1E2}}}`,
		head + `"time":"2026-01-01T24:00:00Z","data":{` + wf + `,"run":{"id":"r"}}}`,
		head + `"time":"2026-01-01T10:00:00+24:00","data":{` + wf + `,"run":{"id":"r"}}}`,
		head + `"time":"2026-01-01T10:00:00.Z","data":{` + wf + `,"run":{"id":"r"}}}`,
		head + `"time":"0000-01-01T00:00:00+23:59","data":{` + wf + `,"run":{"id":"r"}}}`,
		head + `"time":"9999-12-31T23:59:59.999999999-23:59","data":{` + wf + `,"run":{"id":"r"}}}`,
		head + `"time":"2026-01-01T00:00:00Z","SPECVERSION":"0.3","data":{` + wf + `,"run":{"id":"r"}}}`,
		head + `"time":"2026-01-01T00:00:00Z","ſpecversion":"0.3","data":{` + wf + `,"run":{"id":"r"}}}`,
		head + `"time":"2026-01-01T00:00:00Z","data":{` + wf + `,"Workflow":{"id":"","name":""},"run":{"id":"r"}}}`,
		head + `"time":"2026-01-01T00:00:00Z","data":{` + wf + `,"run":{"id":"r"},"labelſ":{"a":1}}}`,
		head + `"time":"2026-01-01T00:00:00Z","data":{` + wf + `,"run":{"id":"r","ID":""}}}`,
		head + `"time":"2026-01-01T00:00:00Z","data":{` + wf + `,"run":{"id":"r"},"run":{"id":""}}}`,
		head + `"time":"2026-01-01T00:00:00Z","data":{` + wf + `,"run":{"id":"r"},"labels":{"\u212a":"kelvin","k":"x"}}}`,
		head + `"time":"2026-01-01T00:00:00Z","big":1e400,"data":{` + wf + `,"run":{"id":"r"},"extra":[[[{}]]]}}`,
		head + `"time":"2026-01-01T00:00:00Z","data":{` + wf + `,"run":{"id":"r","started_at":null,"duration_ms":null},"error":null,"labels":null}}`,
		head + `"time":"2026-01-01T00:00:00Z","data":{` + wf + `,"run":{"id":"\ud800"}}}`,
		"{\"specversion\":\"1.0\",\"id\":\"\xff\",\"source\":\"b\",\"type\":\"c\",\"tenantid\":\"t\",\"time\":\"2026-01-01T00:00:00Z\",\"data\":{" + wf + `,"run":{"id":"r"}}}`,
	} {
		docs = append(docs, []byte(s))
	}
	return docs
}

func FuzzValidateWorkflowEvent(f *testing.F) {
	for _, doc := range workflowEventSeeds(f) {
		f.Add(doc)
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		err := Validate(KindWorkflowEvent, doc)
		if err != nil {
			var ve *ValidationError
			switch {
			case errors.Is(err, ErrNotJSON):
			case errors.As(err, &ve):
				if len(ve.Problems) == 0 || len(ve.Problems) > maxProblems {
					t.Fatalf("%d problems: %v", len(ve.Problems), err)
				}
			default:
				t.Fatalf("unexpected error type %T: %v", err, err)
			}
			return
		}
		// Accepted: it must decode into the Go type, with the values the
		// schema vouched for (encoding/json matches keys case-insensitively,
		// so this also catches a key that the schema and Go read differently).
		var ev WorkflowEvent
		if err := json.Unmarshal(doc, &ev); err != nil {
			t.Fatalf("accepted event does not decode into WorkflowEvent: %v\n%s", err, doc)
		}
		switch {
		case ev.SpecVersion != "1.0":
			t.Fatalf("specversion decoded as %q", ev.SpecVersion)
		case !tenantRE.MatchString(ev.TenantID):
			t.Fatalf("tenantid decoded as %q", ev.TenantID)
		case ev.ID == "" || ev.Source == "" || ev.Type == "":
			t.Fatalf("empty id/source/type decoded: %+v", ev)
		case ev.Data.Workflow.ID == "" || ev.Data.Workflow.Name == "" || ev.Data.Run.ID == "":
			t.Fatalf("empty workflow/run ids decoded: %+v", ev.Data)
		case ev.Data.Run.Attempt < 0:
			t.Fatalf("attempt decoded as %d", ev.Data.Run.Attempt)
		case ev.Data.Run.DurationMS != nil && *ev.Data.Run.DurationMS < 0:
			t.Fatalf("duration_ms decoded as %d", *ev.Data.Run.DurationMS)
		}
		// ... and what the processor re-emits from it must validate too.
		out, err := json.Marshal(ev)
		if err != nil {
			t.Fatalf("accepted event does not re-encode: %v", err)
		}
		if err := Validate(KindWorkflowEvent, out); err != nil {
			t.Fatalf("re-encoded event does not validate: %v\nin:  %s\nout: %s", err, doc, out)
		}
	})
}

func BenchmarkValidateWorkflowEvent(b *testing.B) {
	doc := readFile(b, filepath.Join(examplesDir, "workflow-event.json"))
	if err := Validate(KindWorkflowEvent, doc); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		if err := Validate(KindWorkflowEvent, doc); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidateDelivery(b *testing.B) {
	doc := readFile(b, filepath.Join(examplesDir, "delivery.json"))
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		if err := Validate(KindDelivery, doc); err != nil {
			b.Fatal(err)
		}
	}
}

// TestPatternHintsAreUsed keeps patternHints in step with the schemas.
func TestPatternHintsAreUsed(t *testing.T) {
	t.Parallel()
	used := map[string]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if p, ok := v["pattern"].(string); ok {
				used[p] = true
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	for _, k := range Kinds {
		var doc any
		if err := json.Unmarshal(Schema(k), &doc); err != nil {
			t.Fatal(err)
		}
		walk(doc)
	}
	for p := range patternHints {
		if !used[p] {
			t.Errorf("patternHints has %q, which no schema uses", p)
		}
	}
}

func TestDuplicateMember(t *testing.T) {
	t.Parallel()
	many := make([]string, 40)
	for i := range many {
		many[i] = fmt.Sprintf(`"k%d":%d`, i, i)
	}
	tests := []struct {
		doc  string
		want []string // nil: no duplicate
	}{
		{doc: `{}`},
		{doc: `[]`},
		{doc: `"a"`},
		{doc: `{"a":1,"b":{"a":1},"c":[{"a":1},{"a":2}]}`},
		{doc: `{"a":"\"a\"","\"a\"":1}`},
		{doc: `{"a":1,"a":2}`, want: []string{"a"}},
		{doc: `{"a":{"b":[0,{"x":1,"y":"}","x":2}]}}`, want: []string{"a", "b", "1", "x"}},
		{doc: `[[],[{"q":1}],[{"q":1,"q":1}]]`, want: []string{"2", "0", "q"}},
		{doc: `{"a":1,"\u0061":2}`, want: []string{"a"}},
		{doc: "{\"\xff\":1,\"\xfe\":2}", want: []string{"\ufffd"}},
		{doc: `{` + strings.Join(many, ",") + `}`},
		{doc: `{` + strings.Join(many, ",") + `,"k3":3}`, want: []string{"k3"}},
		{doc: `{` + strings.Join(many, ",") + `,"k39":3}`, want: []string{"k39"}},
	}
	for _, tc := range tests {
		t.Run(tc.doc, func(t *testing.T) {
			t.Parallel()
			if !json.Valid([]byte(tc.doc)) {
				t.Fatalf("test document is not JSON")
			}
			if got := duplicateMember([]byte(tc.doc)); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("duplicateMember = %q, want %q", got, tc.want)
			}
		})
	}
}
