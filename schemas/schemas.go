package schemas

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// Kind names a record type that has a JSON Schema.
type Kind string

// The record kinds.
const (
	KindWorkflowEvent  Kind = "workflow-event"
	KindWebhookPayload Kind = "webhook-payload-v1"
	KindRule           Kind = "rule"
	KindEndpoint       Kind = "endpoint"
	KindDelivery       Kind = "delivery"
	KindResult         Kind = "result"
	KindRunState       Kind = "run-state"
	KindRuleError      Kind = "rule-error"
	KindTenant         Kind = "tenant"
	KindAggregateInput Kind = "aggregate-input"
	KindAggregateState Kind = "aggregate-state"
	KindAggregateGroup Kind = "aggregate-group"
	KindQuotaUsage     Kind = "quota-usage"
	KindEndpointHealth Kind = "endpoint-health"
	KindTenantLimits   Kind = "tenant-limits"
)

// Kinds lists every kind. Each has a schema file <kind>.schema.json.
var Kinds = slices.Clone(allKinds[:])

// allKinds backs Kinds; the compiler reads this copy, which callers cannot
// modify.
var allKinds = [...]Kind{KindWorkflowEvent, KindWebhookPayload, KindRule, KindEndpoint, KindDelivery, KindResult, KindRunState, KindRuleError, KindTenant,
	KindAggregateInput, KindAggregateState, KindAggregateGroup, KindQuotaUsage, KindEndpointHealth, KindTenantLimits}

// IDBase is the common prefix of the schemas' $id.
const IDBase = "https://schemas.exosphere.dev/alerts/"

// ID returns the $id of the schema of kind k.
func (k Kind) ID() string { return IDBase + string(k) + ".schema.json" }

// Sentinel errors, for errors.Is.
var (
	// ErrNotJSON: the document is not a single, well-formed JSON value.
	ErrNotJSON = errors.New("document is not valid JSON")
	// ErrUnknownKind: Validate was called with a kind that has no schema.
	ErrUnknownKind = errors.New("unknown schema kind")
)

// ValidationError reports why a JSON document does not match its schema.
// Each problem names the failing field by its instance location (a JSON
// Pointer such as /data/run/attempt, or "(root)") followed by a short
// reason. Problems are sorted, at most 10 (the last one then says how many
// more there were), each at most 200 bytes; values quoted from the document
// are cut short.
type ValidationError struct {
	Kind     Kind
	Problems []string
}

// Error joins the problems: "workflow-event: /tenantid: is required; ...".
// It is short enough for a Kafka header.
func (e *ValidationError) Error() string {
	return string(e.Kind) + ": " + strings.Join(e.Problems, "; ")
}

//go:embed *.schema.json
var files embed.FS

// maxProblems caps the problems reported for one document.
const maxProblems = 10

// maxProblemLen caps the length of one problem, in bytes.
const maxProblemLen = 200

type compiled struct {
	raw     map[Kind][]byte
	schemas map[Kind]*jsonschema.Schema
}

var load = sync.OnceValue(func() *compiled {
	c, err := compile()
	if err != nil {
		// The schemas are embedded: this is a programming error that the
		// package tests catch.
		panic("schemas: " + err.Error())
	}
	return c
})

func compile() (*compiled, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.RegisterFormat(&jsonschema.Format{Name: "int32", Validate: intFormat(32)})
	c.RegisterFormat(&jsonschema.Format{Name: "int64", Validate: intFormat(64)})
	c.UseLoader(noLoader{})

	out := &compiled{raw: map[Kind][]byte{}, schemas: map[Kind]*jsonschema.Schema{}}
	for _, k := range allKinds {
		raw, err := files.ReadFile(string(k) + ".schema.json")
		if err != nil {
			return nil, err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("%s.schema.json: %w", k, err)
		}
		if m, ok := doc.(map[string]any); !ok || m["$id"] != k.ID() {
			return nil, fmt.Errorf("%s.schema.json: $id must be %s", k, k.ID())
		}
		if err := c.AddResource(k.ID(), doc); err != nil {
			return nil, err
		}
		out.raw[k] = raw
	}
	for _, k := range allKinds {
		s, err := c.Compile(k.ID())
		if err != nil {
			return nil, err
		}
		out.schemas[k] = s
	}
	return out, nil
}

// noLoader refuses to fetch schemas: every $ref must resolve to an
// embedded schema.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("schema %s is not embedded", url)
}

// intFormat implements the OpenAPI formats int32 and int64: the number must
// be written as a JSON integer literal (no fraction, no exponent) that fits
// the Go integer type. JSON Schema's "integer" alone also accepts 1.0 and
// 1e3, which encoding/json refuses to decode into a Go integer.
func intFormat(bits int) func(any) error {
	return func(v any) error {
		var lit string
		switch n := v.(type) {
		case json.Number:
			lit = string(n)
		case float64:
			if n != math.Trunc(n) || math.Abs(n) > 1<<53 {
				return fmt.Errorf("not an integer of %d bits", bits)
			}
			lit = strconv.FormatFloat(n, 'f', -1, 64)
		default:
			return nil // not a number: the type keyword reports it
		}
		if strings.ContainsAny(lit, ".eE") {
			return errors.New("must be written as an integer (no fraction or exponent)")
		}
		if _, err := strconv.ParseInt(lit, 10, bits); err != nil {
			return fmt.Errorf("does not fit in %d bits", bits)
		}
		return nil
	}
}

// Schema returns the raw JSON Schema document of kind k, or nil if k is not
// a known kind. The caller may modify the returned slice.
func Schema(k Kind) []byte {
	raw, ok := load().raw[k]
	if !ok {
		return nil
	}
	return bytes.Clone(raw)
}

// Validate validates the JSON document doc against the schema of kind k.
// It returns nil when doc is valid; a *ValidationError naming the failing
// fields when it is not (an object with a repeated member name is invalid
// too: decoders disagree on which one counts); an error wrapping ErrNotJSON
// when doc is not a single JSON value; an error wrapping ErrUnknownKind for
// an unknown k. Numbers are decoded exactly (jsonschema.UnmarshalJSON).
// It is safe for concurrent use; the schemas are compiled once, on first use.
func Validate(k Kind, doc []byte) error {
	sch, ok := load().schemas[k]
	if !ok {
		return fmt.Errorf("schemas: %w %q", ErrUnknownKind, string(k))
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return fmt.Errorf("schemas: %s: %w: %s", k, ErrNotJSON, truncate(err.Error(), maxProblemLen))
	}
	if loc := duplicateMember(doc); loc != nil {
		return &ValidationError{Kind: k, Problems: []string{truncate(pointer(loc)+": is duplicated (member names must be unique)", maxProblemLen)}}
	}
	err = sch.Validate(v)
	if err == nil {
		return nil
	}
	var verr *jsonschema.ValidationError
	if !errors.As(err, &verr) {
		// Not produced by the validator for a decoded document; keep it.
		return &ValidationError{Kind: k, Problems: []string{truncate(err.Error(), maxProblemLen)}}
	}
	return &ValidationError{Kind: k, Problems: problems(verr)}
}

// problems flattens the validator's error tree into sorted, de-duplicated
// "location: reason" lines, one per failing leaf.
func problems(root *jsonschema.ValidationError) []string {
	seen := map[string]bool{}
	var out []string
	add := func(loc []string, msg string) {
		p := truncate(pointer(loc)+": "+msg, maxProblemLen)
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		switch k := e.ErrorKind.(type) {
		case *kind.Required:
			for _, m := range k.Missing {
				add(child(e.InstanceLocation, m), "is required")
			}
			return
		case *kind.AdditionalProperties:
			for _, p := range k.Properties {
				add(child(e.InstanceLocation, p), "is not allowed (unknown property)")
			}
			return
		case *kind.PropertyNames:
			// The validator does not keep the location of the object
			// whose property name failed (it aliases a reused slice), so
			// the schemas use patternProperties instead; never trust it.
			add(nil, fmt.Sprintf("property name %s is not allowed", quote(k.Property)))
			return
		case *kind.Not, *kind.FalseSchema:
			// The schemas forbid property names with patternProperties
			// whose subschema is false (or "not": true, to carry a
			// description).
			if strings.Contains(e.SchemaURL, "/patternProperties/") {
				add(e.InstanceLocation, "is not an allowed property name")
			} else {
				add(e.InstanceLocation, "is not allowed here")
			}
			return
		}
		if len(e.Causes) == 0 {
			add(e.InstanceLocation, reason(e.ErrorKind))
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(root)
	if len(out) == 0 {
		add(root.InstanceLocation, "does not match the schema")
	}
	sort.Strings(out)
	if len(out) > maxProblems {
		n := len(out) - (maxProblems - 1)
		out = append(out[:maxProblems-1], fmt.Sprintf("and %d more problems", n))
	}
	return out
}

func child(loc []string, name string) []string {
	return append(loc[:len(loc):len(loc)], name)
}

// pointer renders an instance location as a JSON Pointer (RFC 6901); the
// document itself is "(root)".
func pointer(loc []string) string {
	if len(loc) == 0 {
		return "(root)"
	}
	var sb strings.Builder
	for _, tok := range loc {
		sb.WriteByte('/')
		tok = strings.ReplaceAll(tok, "~", "~0")
		sb.WriteString(strings.ReplaceAll(tok, "/", "~1"))
	}
	return sb.String()
}

// reason is a short reason for one failing keyword.
func reason(k jsonschema.ErrorKind) string {
	switch k := k.(type) {
	case *kind.Type:
		return fmt.Sprintf("must be %s, got %s", strings.Join(k.Want, " or "), k.Got)
	case *kind.MinLength:
		if k.Want == 1 {
			return "must not be empty"
		}
		return fmt.Sprintf("must be at least %d characters long, got %d", k.Want, k.Got)
	case *kind.MaxLength:
		return fmt.Sprintf("must be at most %d characters long, got %d", k.Want, k.Got)
	case *kind.Pattern:
		if hint, ok := patternHints[k.Want]; ok {
			return fmt.Sprintf("%s %s", quote(k.Got), hint)
		}
		return fmt.Sprintf("%s does not match %s", quote(k.Got), k.Want)
	case *kind.Format:
		return fmt.Sprintf("%s is not a valid %s: %v", quote(fmt.Sprint(k.Got)), k.Want, k.Err)
	case *kind.Minimum:
		return fmt.Sprintf("must be >= %s, got %s", ratString(k.Want), ratString(k.Got))
	case *kind.Maximum:
		return fmt.Sprintf("must be <= %s, got %s", ratString(k.Want), ratString(k.Got))
	}
	return k.LocalizedString(printer)
}

var printer = message.NewPrinter(language.English)

// patternHints says in words what the schemas' long patterns require.
var patternHints = map[string]string{
	`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-5][0-9](\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$`: "is not an RFC 3339 date-time like 2026-11-28T10:00:00.123Z (upper-case T, Z or ±hh:mm, no leap second)",
	`^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$`:                                      "is not standard padded base64",
}

// quote quotes a value taken from the document, cut to a few dozen
// characters so one huge field cannot blow up the error.
func quote(s string) string {
	return strconv.Quote(truncate(s, 48))
}

func ratString(r *big.Rat) string {
	if r == nil {
		return "?"
	}
	if r.IsInt() {
		return r.Num().String()
	}
	return r.FloatString(3)
}

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
