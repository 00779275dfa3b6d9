package check

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/gocty"
	"go.yaml.in/yaml/v3"

	"github.com/exospherehost/exo-alerts/dispatcher"
	"github.com/exospherehost/exo-alerts/internal/kafka"
)

const moduleDir = ".."

func load(t *testing.T) *Module {
	t.Helper()
	m, err := Load(moduleDir)
	if err != nil {
		t.Fatalf("load the module: %v", err)
	}
	return m
}

// required are the inputs without a default, as a caller gives them.
func required() map[string]cty.Value {
	return map[string]cty.Value{
		"database_url_secret": cty.ObjectVal(map[string]cty.Value{"name": cty.StringVal("exo-db")}),
		"keyring_secret":      cty.ObjectVal(map[string]cty.Value{"name": cty.StringVal("exo-keyring")}),
		"kafka_brokers":       cty.TupleVal([]cty.Value{cty.StringVal("b-1.kafka:9096"), cty.StringVal("b-2.kafka:9096")}),
	}
}

func with(base map[string]cty.Value, kv ...any) map[string]cty.Value {
	out := map[string]cty.Value{}
	for k, v := range base {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1].(cty.Value)
	}
	return out
}

func strs(ss ...string) cty.Value {
	if len(ss) == 0 {
		return cty.EmptyTupleVal
	}
	vals := make([]cty.Value, len(ss))
	for i, s := range ss {
		vals[i] = cty.StringVal(s)
	}
	return cty.TupleVal(vals)
}

// decode converts v to ty, as Terraform converts an argument to its
// schema's type, and into a Go value.
func decode(v cty.Value, ty cty.Type, into any) error {
	v, err := convert.Convert(v, ty)
	if err != nil {
		return err
	}
	return gocty.FromCtyValue(v, into)
}

func evaluate(t *testing.T, m *Module, inputs map[string]cty.Value) *Evaluated {
	t.Helper()
	e, err := m.Evaluate(inputs)
	if err != nil {
		t.Fatalf("evaluate the module: %v", err)
	}
	return e
}

// TestFormatted: every file is formatted as terraform fmt formats it (both
// use HCL's formatter).
func TestFormatted(t *testing.T) {
	m := load(t)
	for name, src := range m.Sources {
		if got := hclwrite.Format(src); !bytes.Equal(got, src) {
			t.Errorf("%s is not formatted (terraform fmt); formatted it reads:\n%s", name, got)
		}
	}
}

// TestModuleShape: every variable has a type and a description, every output
// a description, the providers are required with their sources and left to
// the caller to configure, and the module evaluates with only its required
// inputs.
func TestModuleShape(t *testing.T) {
	m := load(t)
	for name, v := range m.Variables {
		if !v.HasType {
			t.Errorf("variable %s has no type", name)
		}
		if strings.TrimSpace(v.Description) == "" {
			t.Errorf("variable %s has no description", name)
		}
	}
	for name, o := range m.Outputs {
		if strings.TrimSpace(o.Description) == "" {
			t.Errorf("output %s has no description", name)
		}
	}
	for _, b := range m.Others {
		t.Errorf("%s: a %s block: a reusable module leaves providers (and everything else) to its caller", b.DefRange, b.Type)
	}
	providers := map[string]string{}
	for _, b := range m.Terraform {
		content, diags := b.Body.Content(&hcl.BodySchema{
			Attributes: []hcl.AttributeSchema{{Name: "required_version"}},
			Blocks:     []hcl.BlockHeaderSchema{{Type: "required_providers"}},
		})
		if diags.HasErrors() {
			t.Fatalf("terraform block: %s", diags.Error())
		}
		for _, rp := range content.Blocks {
			attrs, diags := rp.Body.JustAttributes()
			if diags.HasErrors() {
				t.Fatalf("required_providers: %s", diags.Error())
			}
			for name, a := range attrs {
				v, diags := a.Expr.Value(nil)
				if diags.HasErrors() || !v.Type().IsObjectType() || !v.Type().HasAttribute("source") || !v.Type().HasAttribute("version") {
					t.Errorf("required_providers.%s: want { source, version }", name)
					continue
				}
				providers[name] = v.GetAttr("source").AsString()
			}
		}
	}
	want := map[string]string{"kafka": "Mongey/kafka", "helm": "hashicorp/helm"}
	if fmt.Sprint(providers) != fmt.Sprint(want) {
		t.Errorf("required_providers: %v, want %v", providers, want)
	}
	var missing []string
	for name, v := range m.Variables {
		if v.Default == nil {
			missing = append(missing, name)
		}
	}
	slices.Sort(missing)
	if want := []string{"database_url_secret", "kafka_brokers", "keyring_secret"}; !slices.Equal(missing, want) {
		t.Errorf("required variables: %v, want %v", missing, want)
	}
	evaluate(t, m, required())
}

// binaryTopics are the topics the binary creates for a prefix, partition
// count and retry tiers (the control plane and processor create Specs; the
// dispatcher adds a topic per tier), with their settings.
func binaryTopics(prefix string, partitions int32, tiers []time.Duration) map[string]kafka.Spec {
	t := kafka.NewTopics(prefix)
	out := map[string]kafka.Spec{}
	for _, s := range t.Specs(partitions) {
		out[s.Name] = s
	}
	delete := "delete"
	for _, d := range tiers {
		name := dispatcher.TierTopic(t, d)
		out[name] = kafka.Spec{Name: name, Partitions: partitions, Configs: map[string]*string{"cleanup.policy": &delete}}
	}
	return out
}

type topic struct {
	name              string
	partitions, rf    int
	config            map[string]string
	preventDestroyed  bool
	moduleKey         string
	minInsyncReplicas string
}

func moduleTopics(t *testing.T, m *Module, e *Evaluated) map[string]topic {
	t.Helper()
	out := map[string]topic{}
	for key, attrs := range e.Resources["kafka_topic.this"] {
		var tp topic
		tp.moduleKey = key
		tp.preventDestroyed = m.Resources["kafka_topic.this"].PreventDestroy
		if err := gocty.FromCtyValue(attrs["name"], &tp.name); err != nil {
			t.Fatalf("kafka_topic.this[%q].name: %v", key, err)
		}
		if err := gocty.FromCtyValue(attrs["partitions"], &tp.partitions); err != nil {
			t.Fatalf("kafka_topic.this[%q].partitions: %v", key, err)
		}
		if err := gocty.FromCtyValue(attrs["replication_factor"], &tp.rf); err != nil {
			t.Fatalf("kafka_topic.this[%q].replication_factor: %v", key, err)
		}
		// The provider's config is a map of strings.
		if err := decode(attrs["config"], cty.Map(cty.String), &tp.config); err != nil {
			t.Fatalf("kafka_topic.this[%q].config is not a map of strings: %v", key, err)
		}
		if _, dup := out[tp.name]; dup {
			t.Fatalf("topic %s twice", tp.name)
		}
		out[tp.name] = tp
	}
	return out
}

// TestTopicsMatchTheBinary: the module creates exactly the topics the
// binary creates, for the default and for other prefixes, partition counts
// and retry tiers, each with the binary's settings (compacted where the
// binary compacts), the variables' partitions and replication, protected
// from destruction.
func TestTopicsMatchTheBinary(t *testing.T) {
	m := load(t)
	cases := []struct {
		name       string
		inputs     map[string]cty.Value
		prefix     string
		partitions int32
		rf         int
		tiers      []time.Duration
		minISR     string
	}{
		{name: "defaults", inputs: required(), prefix: kafka.DefaultPrefix, partitions: 3, rf: 3, tiers: dispatcher.DefaultTiers, minISR: "2"},
		{
			name: "another prefix, partitions and tiers",
			inputs: with(required(), "topic_prefix", cty.StringVal("acme-prod."), "partitions", cty.NumberIntVal(24),
				"replication_factor", cty.NumberIntVal(1), "retry_tiers", strs("1500ms", "90s", "15m", "4h")),
			prefix: "acme-prod.", partitions: 24, rf: 1, minISR: "1",
			tiers: []time.Duration{1500 * time.Millisecond, 90 * time.Second, 15 * time.Minute, 4 * time.Hour},
		},
		{name: "no prefix", inputs: with(required(), "topic_prefix", cty.StringVal("")), prefix: "", partitions: 3, rf: 3, tiers: dispatcher.DefaultTiers, minISR: "2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := moduleTopics(t, m, evaluate(t, m, tc.inputs))
			want := binaryTopics(tc.prefix, tc.partitions, tc.tiers)
			for name := range want {
				if _, ok := got[name]; !ok {
					t.Errorf("the binary creates %s; the module does not", name)
				}
			}
			for name := range got {
				if _, ok := want[name]; !ok {
					t.Errorf("the module creates %s; the binary does not use it", name)
				}
			}
			for name, spec := range want {
				tp, ok := got[name]
				if !ok {
					continue
				}
				if tp.partitions != int(spec.Partitions) {
					t.Errorf("%s: %d partitions, the binary's %d (partitions)", name, tp.partitions, spec.Partitions)
				}
				if tp.rf != tc.rf {
					t.Errorf("%s: replication_factor %d, want %d", name, tp.rf, tc.rf)
				}
				for k, v := range spec.Configs {
					if tp.config[k] != *v {
						t.Errorf("%s: %s = %q, the binary creates it with %q", name, k, tp.config[k], *v)
					}
				}
				if tp.config["min.insync.replicas"] != tc.minISR {
					t.Errorf("%s: min.insync.replicas %q, want %q", name, tp.config["min.insync.replicas"], tc.minISR)
				}
				if !tp.preventDestroyed {
					t.Errorf("%s: not protected by prevent_destroy", name)
				}
			}
		})
	}
}

// TestDefaultRetryTiersAreTheDispatchers: retry_tiers' default is the
// dispatcher's DefaultTiers, in its order and named as its topics are.
func TestDefaultRetryTiersAreTheDispatchers(t *testing.T) {
	m := load(t)
	e := evaluate(t, m, required())
	var got []string
	if err := decode(e.Vars["retry_tiers"], cty.List(cty.String), &got); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, d := range dispatcher.DefaultTiers {
		want = append(want, dispatcher.TierName(d))
	}
	if !slices.Equal(got, want) {
		t.Errorf("retry_tiers default %v, the dispatcher's %v", got, want)
	}
	var outTopics []string
	if err := decode(e.Outputs["retry_tier_topics"], cty.List(cty.String), &outTopics); err != nil {
		t.Fatal(err)
	}
	for i, d := range dispatcher.DefaultTiers {
		if w := dispatcher.TierTopic(kafka.NewTopics(kafka.DefaultPrefix), d); i >= len(outTopics) || outTopics[i] != w {
			t.Errorf("output retry_tier_topics[%d] = %v, want %s", i, outTopics, w)
		}
	}
}

// TestValidations: the variables refuse what the binary refuses or names
// otherwise, and accept the rest; every retry tier accepted is named as
// the dispatcher names its topic.
func TestValidations(t *testing.T) {
	m := load(t)
	cases := []struct {
		name     string
		variable string
		value    cty.Value
		valid    bool
	}{
		{"partitions 0", "partitions", cty.NumberIntVal(0), false},
		{"partitions 1025", "partitions", cty.NumberIntVal(1025), false},
		{"partitions 2.5", "partitions", cty.NumberFloatVal(2.5), false},
		{"partitions 1024", "partitions", cty.NumberIntVal(1024), true},
		{"replication 0", "replication_factor", cty.NumberIntVal(0), false},
		{"prefix with a slash", "topic_prefix", cty.StringVal("a/b."), false},
		{"tier in seconds that is minutes", "retry_tiers", strs("120s"), false},
		{"tier in minutes that is hours", "retry_tiers", strs("60m"), false},
		{"tier in ms that is seconds", "retry_tiers", strs("2000ms"), false},
		{"tier of 0s", "retry_tiers", strs("0s"), false},
		{"tier of compound units", "retry_tiers", strs("1m30s"), false},
		{"tier without a unit", "retry_tiers", strs("30"), false},
		{"a tier twice", "retry_tiers", strs("5s", "5s"), false},
		{"no tier", "retry_tiers", strs(), false},
		{"tiers in their units", "retry_tiers", strs("250ms", "1500ms", "5s", "90s", "2m", "90m", "1h", "36h"), true},
		{"topic_config sets cleanup.policy", "topic_config", cty.ObjectVal(map[string]cty.Value{
			"alert-rules": cty.ObjectVal(map[string]cty.Value{"cleanup.policy": cty.StringVal("delete")}),
		}), false},
		{"topic_config sets retention", "topic_config", cty.ObjectVal(map[string]cty.Value{
			"deliveries.dlq": cty.ObjectVal(map[string]cty.Value{"retention.ms": cty.StringVal("5184000000")}),
		}), true},
		{"broker without a port", "kafka_brokers", strs("kafka"), false},
		{"no broker", "kafka_brokers", strs(), false},
		{"SASL mechanism unknown", "kafka_sasl", cty.ObjectVal(map[string]cty.Value{"mechanism": cty.StringVal("GSSAPI"), "secret": cty.StringVal("s")}), false},
		{"negative quota", "delivery_quota", cty.ObjectVal(map[string]cty.Value{"tenant_per_minute": cty.NumberIntVal(-1)}), false},
		{"fractional quota", "delivery_quota", cty.ObjectVal(map[string]cty.Value{"global_per_minute": cty.NumberFloatVal(2.5)}), false},
		{"quotas", "delivery_quota", cty.ObjectVal(map[string]cty.Value{"tenant_per_minute": cty.NumberIntVal(600), "global_per_minute": cty.NumberIntVal(1000000)}), true},
		{"SASL SCRAM", "kafka_sasl", cty.ObjectVal(map[string]cty.Value{"mechanism": cty.StringVal("SCRAM-SHA-512"), "secret": cty.StringVal("s")}), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := m.Evaluate(with(required(), tc.variable, tc.value))
			var ve *ValidationError
			switch {
			case tc.valid && err != nil:
				t.Errorf("%s = %#v refused: %v", tc.variable, tc.value, err)
			case !tc.valid && err == nil:
				t.Errorf("%s = %#v accepted", tc.variable, tc.value)
			case !tc.valid && !errors.As(err, &ve):
				t.Errorf("%s = %#v refused, but not by a validation: %v", tc.variable, tc.value, err)
			}
			if tc.valid && tc.variable == "retry_tiers" {
				var tiers []string
				_ = decode(tc.value, cty.List(cty.String), &tiers)
				for _, s := range tiers {
					d, err := time.ParseDuration(s)
					if err != nil {
						t.Fatalf("%s: %v", s, err)
					}
					if n := dispatcher.TierName(d); n != s {
						t.Errorf("tier %s accepted, but the dispatcher names it %s", s, n)
					}
				}
			}
		})
	}
}

// TestTopicConfigOverrides: topic_config is merged over the module's
// settings of that topic only, and never changes a cleanup policy.
func TestTopicConfigOverrides(t *testing.T) {
	m := load(t)
	e := evaluate(t, m, with(required(), "topic_config", cty.ObjectVal(map[string]cty.Value{
		"deliveries.dlq":      cty.ObjectVal(map[string]cty.Value{"retention.ms": cty.StringVal("5184000000")}),
		"processor.run-state": cty.ObjectVal(map[string]cty.Value{"max.message.bytes": cty.StringVal("2097152")}),
	})))
	got := moduleTopics(t, m, e)
	if v := got["exo.deliveries.dlq"].config["retention.ms"]; v != "5184000000" {
		t.Errorf("exo.deliveries.dlq retention.ms = %q, want the override", v)
	}
	if v := got["exo.rule-errors"].config["retention.ms"]; v != "604800000" {
		t.Errorf("exo.rule-errors retention.ms = %q: an override of another topic leaked", v)
	}
	rs := got["exo.processor.run-state"].config
	if rs["max.message.bytes"] != "2097152" || rs["cleanup.policy"] != "compact" {
		t.Errorf("exo.processor.run-state config %v: want the override and still compacted", rs)
	}
}

// TestResourceArguments: every argument is one the provider's resource has,
// and the ACLs use values the provider accepts.
func TestResourceArguments(t *testing.T) {
	m := load(t)
	schemas := map[string][]string{
		// Mongey/kafka: kafka/resource_kafka_topic.go, resource_kafka_acl.go
		"kafka_topic": {"name", "partitions", "replication_factor", "config"},
		"kafka_acl":   {"resource_name", "resource_type", "resource_pattern_type_filter", "acl_principal", "acl_host", "acl_operation", "acl_permission_type"},
		// hashicorp/helm: helm_release (the arguments both 2.x and 3.x have)
		"helm_release": {"name", "namespace", "create_namespace", "chart", "repository", "version", "values", "wait", "wait_for_jobs",
			"atomic", "timeout", "cleanup_on_fail", "max_history", "skip_crds", "dependency_update", "description"},
	}
	for key, r := range m.Resources {
		known, ok := schemas[r.Type]
		if !ok {
			t.Errorf("%s: a resource type this check does not know", key)
			continue
		}
		for name := range r.Attributes {
			if !slices.Contains(known, name) {
				t.Errorf("%s: argument %s is not one of %s's", key, name, r.Type)
			}
		}
	}
	e := evaluate(t, m, with(required(), "principals", principals("User:cp", "User:proc", "User:disp", "User:rec")))
	if len(e.Resources["kafka_acl.this"]) == 0 {
		t.Fatal("no ACL with principals set")
	}
	enums := map[string][]string{
		"resource_type":                {"Topic", "Group", "Cluster", "TransactionalID"},
		"resource_pattern_type_filter": {"Literal", "Prefixed"},
		"acl_operation":                {"Read", "Write", "Create", "Describe", "DescribeConfigs", "IdempotentWrite"},
		"acl_permission_type":          {"Allow"},
	}
	for key, attrs := range e.Resources["kafka_acl.this"] {
		for attr, allowed := range enums {
			if v := attrs[attr].AsString(); !slices.Contains(allowed, v) {
				t.Errorf("kafka_acl.this[%q].%s = %q, not one of %v", key, attr, v, allowed)
			}
		}
		if attrs["resource_type"].AsString() == "Cluster" && attrs["resource_name"].AsString() != "kafka-cluster" {
			t.Errorf("kafka_acl.this[%q]: a Cluster ACL names kafka-cluster", key)
		}
	}
}

func principals(cp, proc, disp, rec string) cty.Value {
	return cty.ObjectVal(map[string]cty.Value{
		"controlplane": cty.StringVal(cp), "processor": cty.StringVal(proc), "dispatcher": cty.StringVal(disp), "recorder": cty.StringVal(rec),
	})
}

// TestReleaseValues: the release gets the topic prefix, partitions and
// retry tiers of the topics, the brokers, the Secrets by reference, and is
// installed after the topics and ACLs.
func TestReleaseValues(t *testing.T) {
	m := load(t)
	e := evaluate(t, m, with(required(),
		"topic_prefix", cty.StringVal("acme."), "partitions", cty.NumberIntVal(12), "retry_tiers", strs("10s", "5m"),
		"image", cty.ObjectVal(map[string]cty.Value{"repository": cty.StringVal("registry.example/exo-alerts"), "tag": cty.StringVal("1.2.3")}),
		"kafka_sasl", cty.ObjectVal(map[string]cty.Value{"mechanism": cty.StringVal("SCRAM-SHA-512"), "secret": cty.StringVal("exo-kafka-user")}),
		"kafka_tls", cty.ObjectVal(map[string]cty.Value{"enabled": cty.True, "secret": cty.StringVal("exo-kafka-ca")}),
		"delivery_quota", cty.ObjectVal(map[string]cty.Value{"tenant_per_minute": cty.NumberIntVal(600)}),
	))
	rel := e.Resources["helm_release.this"][""]
	var docs []string
	if err := decode(rel["values"], cty.List(cty.String), &docs); err != nil || len(docs) == 0 {
		t.Fatalf("helm_release values: %v (%v)", rel["values"].GoString(), err)
	}
	vals := decodeValues(t, docs[0])
	checks := map[string]any{
		"topics.prefix":              "acme.",
		"topics.partitions":          12,
		"topics.retryTiers":          []any{"10s", "5m"},
		"kafka.brokers":              []any{"b-1.kafka:9096", "b-2.kafka:9096"},
		"kafka.tls.enabled":          true,
		"kafka.tls.existingSecret":   "exo-kafka-ca",
		"kafka.sasl.mechanism":       "SCRAM-SHA-512",
		"kafka.sasl.existingSecret":  "exo-kafka-user",
		"database.existingSecret":    "exo-db",
		"database.existingSecretKey": "DATABASE_URL",
		"keyring.existingSecret":     "exo-keyring",
		"keyring.existingSecretKey":  "EXO_KEYRING",
		"image.repository":           "registry.example/exo-alerts",
		"image.tag":                  "1.2.3",
		"recorder.enabled":           true,
		"quota.tenantPerMinute":      600,
		"quota.globalPerMinute":      0,
	}
	for path, want := range checks {
		if got := lookup(vals, path); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("release value %s = %v, want %v", path, got, want)
		}
	}
	r := m.Resources["helm_release.this"]
	if r.DependsOn == nil {
		t.Fatal("helm_release.this does not depend on the topics and ACLs")
	}
	var deps []string
	for _, tr := range r.DependsOn.Variables() {
		deps = append(deps, tr.RootName()+"."+tr[1].(hcl.TraverseAttr).Name)
	}
	for _, want := range []string{"kafka_topic.this", "kafka_acl.this"} {
		if !slices.Contains(deps, want) {
			t.Errorf("helm_release.this depends on %v, not on %s", deps, want)
		}
	}
	// The control planes run the recorder: the chart runs none on its own.
	e = evaluate(t, m, with(required(), "controlplane_runs_recorder", cty.True))
	vals = decodeValues(t, e.Resources["helm_release.this"][""]["values"].Index(cty.NumberIntVal(0)).AsString())
	if got := lookup(vals, "recorder.enabled"); got != false {
		t.Errorf("controlplane_runs_recorder = true: recorder.enabled = %v, want false", got)
	}
}

func decodeValues(t *testing.T, doc string) map[string]any {
	t.Helper()
	var vals map[string]any
	if err := yaml.Unmarshal([]byte(doc), &vals); err != nil {
		t.Fatalf("release values: %v\n%s", err, doc)
	}
	return vals
}

// lookup returns the value at a dotted path of decoded YAML, or nil.
func lookup(vals map[string]any, path string) any {
	var cur any = vals
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[k]
	}
	return cur
}

// TestChartPath: the release installs the chart of this checkout by default.
func TestChartPath(t *testing.T) {
	m := load(t)
	e := evaluate(t, m, required())
	chart := e.Resources["helm_release.this"][""]["chart"].AsString()
	abs, err := filepath.Abs(chart)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := filepath.Abs(filepath.Join(moduleDir, "..", "helm", "exo-alerts"))
	if abs != want {
		t.Errorf("chart %s, want deploy/helm/exo-alerts (%s)", abs, want)
	}
}

// TestREADMEListsInputsAndOutputs: deploy/terraform/README.md names every
// variable and output.
func TestREADMEListsInputsAndOutputs(t *testing.T) {
	m := load(t)
	readme, err := os.ReadFile(filepath.Join(moduleDir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for name := range m.Variables {
		if !bytes.Contains(readme, []byte("| `"+name+"` |")) {
			t.Errorf("README.md has no row for input %s", name)
		}
	}
	for name := range m.Outputs {
		if !bytes.Contains(readme, []byte("| `"+name+"` |")) {
			t.Errorf("README.md has no row for output %s", name)
		}
	}
}

// TestReleaseValuesAreChartValues: every value the module sets is one the
// chart has (deploy/helm/exo-alerts/values.yaml): a renamed chart value
// fails here, not silently at helm install.
func TestReleaseValuesAreChartValues(t *testing.T) {
	m := load(t)
	e := evaluate(t, m, with(required(),
		"image", cty.ObjectVal(map[string]cty.Value{"repository": cty.StringVal("r"), "tag": cty.StringVal("1"), "digest": cty.StringVal("sha256:0")}),
		"kafka_sasl", cty.ObjectVal(map[string]cty.Value{"mechanism": cty.StringVal("PLAIN"), "secret": cty.StringVal("s")}),
		"replicas", cty.ObjectVal(map[string]cty.Value{"controlplane": cty.NumberIntVal(2), "processor": cty.NumberIntVal(3),
			"dispatcher": cty.NumberIntVal(2), "recorder": cty.NumberIntVal(1)}),
	))
	chart := e.Resources["helm_release.this"][""]["chart"].AsString()
	src, err := os.ReadFile(filepath.Join(chart, "values.yaml"))
	if err != nil {
		t.Fatalf("the chart the release installs: %v", err)
	}
	var chartValues map[string]any
	if err := yaml.Unmarshal(src, &chartValues); err != nil {
		t.Fatalf("%s/values.yaml: %v", chart, err)
	}
	vals := decodeValues(t, e.Resources["helm_release.this"][""]["values"].Index(cty.NumberIntVal(0)).AsString())
	var walk func(path string, set, known map[string]any)
	walk = func(path string, set, known map[string]any) {
		for k, v := range set {
			kv, ok := known[k]
			if !ok {
				t.Errorf("the module sets %s%s; the chart has no such value", path, k)
				continue
			}
			sub, isMap := v.(map[string]any)
			ksub, kIsMap := kv.(map[string]any)
			switch {
			case isMap && kIsMap:
				walk(path+k+".", sub, ksub)
			case isMap != kIsMap && kv != nil:
				t.Errorf("the module sets %s%s to %T; the chart's is %T", path, k, v, kv)
			}
		}
	}
	walk("", vals, chartValues)
}
