// Package deploy_test keeps the operator artefacts under deploy/ honest: the
// Grafana dashboard and the Prometheus rules may only use metrics that the
// real components export, the counters the dashboard plots exist at 0 from
// the start, every alert carries what an operator needs to act on it (its
// runbook entry in docs/operations*.md included), the scrape configuration
// points at the components' defaults, and the commands the operator guide
// shows are the binary's.
package deploy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.yaml.in/yaml/v3"

	"github.com/exospherehost/exo-alerts/dispatcher"
	"github.com/exospherehost/exo-alerts/e2e/harness"
	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/schemas"
)

const (
	dashboardFile  = "grafana/exo-alerts.json"
	alertsFile     = "prometheus/alerts.yml"
	prometheusFile = "prometheus/prometheus.yml"
	commandsFile   = "../cmd/exo-alerts/commands.go"
	openapiFile    = "../docs/openapi.json"
	// opsDocs are the operator guide's files (docs/operations.md and the
	// parts written beside it): the runbook and the commands operators type.
	opsDocs = "../docs/operations*.md"
	// runbookURL is the document every alert's runbook_url points into.
	runbookURL = "docs/operations.md"
)

// filterVars are the dashboard's template variables that pick one
// environment (namespace), component (job) or instance: every selector of
// every panel query filters by all three.
var filterVars = []string{"namespace", "job", "instance"}

func TestMain(m *testing.M) { testenv.Main(m) }

// TestArtefactsUseExportedMetrics runs the control plane, the processor, the
// dispatcher and the recorder against the real Postgres and Kafka, collects the metric
// names they export, and fails naming every metric the dashboard or the
// alert rules use that none of them exports, and every exported metric the
// dashboard does not show.
func TestArtefactsUseExportedMetrics(t *testing.T) {
	dash := loadDashboard(t)
	rules := loadRules(t)
	used := map[string][]string{} // metric -> where it is used
	for _, q := range dash.queries() {
		for _, name := range metricNames(q.expr) {
			used[name] = append(used[name], "dashboard panel "+q.where)
		}
	}
	for _, r := range rules.all() {
		names := metricNames(r.Expr)
		if len(names) == 0 && !upRef.MatchString(stripStrings(r.Expr)) {
			t.Errorf("alert %s: its expression uses no exo_ metric and not up: %q", r.Alert, r.Expr)
		}
		for _, name := range names {
			used[name] = append(used[name], "alert "+r.Alert)
		}
	}
	if len(used) == 0 {
		t.Fatal("the artefacts use no exo_ metric at all: the tokenizer or the files are broken")
	}

	exp := startComponents(t)
	var missing []string
	deadline := time.Now().Add(90 * time.Second)
	for {
		missing = missing[:0]
		known := exp.snapshot(t)
		for name := range used {
			if !known.has(name) {
				missing = append(missing, name)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	sort.Strings(missing)
	for _, name := range missing {
		t.Errorf("%s is used by %s but no component exports it", name, strings.Join(slices.Compact(used[name]), ", "))
	}
	known := exp.snapshot(t)
	t.Logf("exported: %s", strings.Join(known.names(), " "))

	onDashboard := map[string]bool{}
	for _, q := range dash.queries() {
		for _, name := range metricNames(q.expr) {
			onDashboard[known.base(name)] = true
		}
	}
	for _, name := range known.names() {
		if !onDashboard[name] {
			t.Errorf("%s is exported but not on the dashboard: add a panel to deploy/%s", name, dashboardFile)
		}
	}
}

// TestDashboard checks the dashboard's structure: it parses, is recent
// enough, takes its Prometheus data source from the ${datasource} variable,
// has unique panel ids, and lets one environment or instance be picked:
// the namespace, job and instance variables exist and every selector of
// every query filters by all three.
func TestDashboard(t *testing.T) {
	t.Parallel()
	d := loadDashboard(t)
	if d.SchemaVersion < 39 {
		t.Errorf("schemaVersion %d, want >= 39", d.SchemaVersion)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("uid %q and title %q must be set (a stable uid keeps links working across imports)", d.UID, d.Title)
	}
	var dsVar bool
	for _, v := range d.Templating.List {
		if v.Name == "datasource" && v.Type == "datasource" && v.Query == "prometheus" {
			dsVar = true
		}
	}
	if !dsVar {
		t.Error("no template variable named datasource of type datasource querying prometheus")
	}
	for _, name := range filterVars {
		i := slices.IndexFunc(d.Templating.List, func(v templateVar) bool { return v.Name == name })
		if i < 0 {
			t.Errorf("no template variable %q: one environment or instance cannot be picked", name)
			continue
		}
		v := d.Templating.List[i]
		q, _ := v.Query.(string)
		if v.Type != "query" || v.Datasource == nil || v.Datasource.UID != "${datasource}" || !strings.HasPrefix(q, "label_values(") {
			t.Errorf("template variable %s: type %q, datasource %+v, query %q; want a label_values query on ${datasource}", name, v.Type, v.Datasource, q)
		}
		if !v.IncludeAll || !v.Multi {
			t.Errorf("template variable %s: includeAll %v, multi %v; want both (All is the default view)", name, v.IncludeAll, v.Multi)
		}
	}
	ids := map[int]string{}
	var rows int
	for _, p := range d.flat() {
		if prev, dup := ids[p.ID]; dup || p.ID <= 0 {
			t.Errorf("panel %q has id %d, also used by %q (ids must be unique and positive)", p.Title, p.ID, prev)
		}
		ids[p.ID] = p.Title
		if p.Type == "row" {
			rows++
			continue
		}
		if p.Type == "text" {
			continue
		}
		if p.Datasource.UID != "${datasource}" || p.Datasource.Type != "prometheus" {
			t.Errorf("panel %q: datasource %+v, want the ${datasource} prometheus variable", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %q: query %s is empty", p.Title, tg.RefID)
			}
			if tg.Datasource != nil && tg.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q: query %s uses data source %+v", p.Title, tg.RefID, *tg.Datasource)
			}
			for _, sel := range selectors(tg.Expr) {
				for _, v := range filterVars {
					if !slices.Contains(sel.matchers, matcher{label: v, op: "=~", value: "$" + v}) {
						t.Errorf("panel %q: query %s: %s does not filter by %s=~\"$%s\" (in %q)", p.Title, tg.RefID, sel.name, v, v, tg.Expr)
					}
				}
			}
		}
	}
	for _, want := range []string{"Processor", "Dispatcher", "Control plane"} {
		if !slices.ContainsFunc(d.Panels, func(p panel) bool { return p.Type == "row" && p.Title == want }) {
			t.Errorf("no row %q", want)
		}
	}
}

// TestAlertRules checks that every alert can be acted on: a for duration,
// a severity, a summary and description, and a runbook entry that exists
// (a heading under "## Runbook" in docs/operations*.md, which its
// runbook_url names).
func TestAlertRules(t *testing.T) {
	t.Parallel()
	rf := loadRules(t)
	runbook := runbookSection(t)
	seen := map[string]bool{}
	all := rf.all()
	if len(all) == 0 {
		t.Fatal("no alert rules")
	}
	for _, r := range all {
		if r.Alert == "" {
			t.Errorf("a rule without an alert name (recording rules are not used here): %q", r.Expr)
			continue
		}
		if seen[r.Alert] {
			t.Errorf("alert %s is defined twice", r.Alert)
		}
		seen[r.Alert] = true
		if !promDuration.MatchString(r.For) {
			t.Errorf("alert %s: for %q, want a positive duration such as 10m (an alert without one pages on a single bad scrape)", r.Alert, r.For)
		}
		if s := r.Labels["severity"]; s != "critical" && s != "warning" && s != "info" {
			t.Errorf("alert %s: severity label %q, want critical, warning or info", r.Alert, s)
		}
		for _, a := range []string{"summary", "description", "runbook_url"} {
			if strings.TrimSpace(r.Annotations[a]) == "" {
				t.Errorf("alert %s: no %s annotation", r.Alert, a)
			}
		}
		anchor := "#" + strings.ToLower(r.Alert)
		if !strings.HasSuffix(r.Annotations["runbook_url"], runbookURL+anchor) {
			t.Errorf("alert %s: runbook_url %q, want one ending in %s%s", r.Alert, r.Annotations["runbook_url"], runbookURL, anchor)
		}
		if !regexp.MustCompile(`(?m)^### ` + regexp.QuoteMeta(r.Alert) + `\s*$`).MatchString(runbook) {
			t.Errorf("alert %s: %s has no runbook heading \"### %s\" under ## Runbook", r.Alert, opsDocs, r.Alert)
		}
	}
}

// TestScrapeConfig checks that prometheus.yml loads the alert rules, scrapes
// each component on the default address its command listens on, and that
// every job matcher in the rules and the dashboard names a scraped job, and
// some alert watches up for every job.
func TestScrapeConfig(t *testing.T) {
	t.Parallel()
	var pc struct {
		Global        map[string]string `yaml:"global"`
		RuleFiles     []string          `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			MetricsPath   string `yaml:"metrics_path"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	decodeYAML(t, prometheusFile, &pc)
	if !slices.Contains(pc.RuleFiles, "alerts.yml") {
		t.Errorf("rule_files %v does not load alerts.yml", pc.RuleFiles)
	}
	src, err := os.ReadFile(commandsFile)
	if err != nil {
		t.Fatal(err)
	}
	// The default listen address of each component's command: the control
	// plane's API address (it serves /metrics there), the others' --metrics-addr.
	defaults := map[string]*regexp.Regexp{
		"exo-alerts-controlplane": regexp.MustCompile(`(?s)func cmdControlplane\(.*?fs\.String\("addr", "([^"]+)"`),
		"exo-alerts-processor":    regexp.MustCompile(`(?s)func cmdProcessor\(.*?fs\.String\("metrics-addr", "([^"]+)"`),
		"exo-alerts-dispatcher":   regexp.MustCompile(`(?s)func cmdDispatcher\(.*?fs\.String\("metrics-addr", "([^"]+)"`),
		"exo-alerts-recorder":     regexp.MustCompile(`(?s)func cmdRecorder\(.*?fs\.String\("metrics-addr", "([^"]+)"`),
	}
	var jobs []string
	for _, sc := range pc.ScrapeConfigs {
		jobs = append(jobs, sc.JobName)
		re, ok := defaults[sc.JobName]
		if !ok {
			t.Errorf("scrape job %q is not one of the components %v", sc.JobName, keys(defaults))
			continue
		}
		m := re.FindSubmatch(src)
		if m == nil {
			t.Fatalf("cannot find the default address of %s in %s", sc.JobName, commandsFile)
		}
		var targets []string
		for _, st := range sc.StaticConfigs {
			targets = append(targets, st.Targets...)
		}
		if !slices.Equal(targets, []string{string(m[1])}) {
			t.Errorf("job %s scrapes %v, want the default address [%s]", sc.JobName, targets, m[1])
		}
		if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
			t.Errorf("job %s: metrics_path %q, the components serve /metrics", sc.JobName, sc.MetricsPath)
		}
	}
	for job := range defaults {
		if !slices.Contains(jobs, job) {
			t.Errorf("no scrape job %s", job)
		}
	}

	var exprs []string
	watched := map[string]bool{}
	for _, r := range loadRules(t).all() {
		exprs = append(exprs, r.Expr)
		if upRef.MatchString(stripStrings(r.Expr)) {
			for _, j := range jobsMatched(t, r.Expr, jobs) {
				watched[j] = true
			}
		}
	}
	dash := loadDashboard(t)
	for _, q := range dash.queries() {
		exprs = append(exprs, q.expr)
	}
	for _, v := range dash.Templating.List {
		if q, ok := v.Query.(string); ok && v.Type == "query" {
			exprs = append(exprs, q)
		}
	}
	for _, e := range exprs {
		for _, m := range jobMatcher.FindAllStringSubmatch(e, -1) {
			if strings.HasPrefix(m[2], "$") {
				continue // a template variable: its values come from the matchers checked here
			}
			if len(jobsMatched(t, m[0], jobs)) == 0 {
				t.Errorf("%s matches no scrape job %v (in %q)", m[0], jobs, e)
			}
		}
	}
	for _, j := range jobs {
		if !watched[j] {
			t.Errorf("no alert fires when job %s is down (up == 0)", j)
		}
	}
}

// TestDashboardCountersStartAtZero starts every component and, before any
// traffic, gathers what they export: every counter the dashboard plots
// must be there at 0, a labelled one with a series for each of its known
// label values (knownLabels) and for each value a panel selects, so that
// panels show 0, not "No data", until the first event. None of these
// counters has an unbounded label (tenant, endpoint, rule): the partition
// gauges (lag, watermark) appear with the partitions a processor is
// assigned, and histograms (latency) are not counters.
func TestDashboardCountersStartAtZero(t *testing.T) {
	t.Parallel()
	var counters []string
	selected := map[string][]matcher{} // label="value" matchers of the panels, per counter
	for _, q := range loadDashboard(t).queries() {
		for _, sel := range selectors(q.expr) {
			if !strings.HasSuffix(sel.name, "_total") {
				continue
			}
			if !slices.Contains(counters, sel.name) {
				counters = append(counters, sel.name)
			}
			for _, m := range sel.matchers {
				if m.op == "=" {
					selected[sel.name] = append(selected[sel.name], m)
				}
			}
		}
	}
	if len(counters) < 10 {
		t.Fatalf("found only %d counters on the dashboard (%v): the selector parser or the dashboard is broken", len(counters), counters)
	}

	h := harness.Start(t, harness.Options{})
	known := knownLabels(t, h.Topics)
	// The components register as they start (the outbox relay on its
	// goroutine): wait for the families, not for any value.
	fams := map[string]*dto.MetricFamily{}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mfs, err := h.Registry.Gather()
		if err != nil {
			t.Fatalf("gather: %v", err)
		}
		clear(fams)
		for _, mf := range mfs {
			fams[mf.GetName()] = mf
		}
		if !slices.ContainsFunc(counters, func(n string) bool { return fams[n] == nil }) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, name := range counters {
		mf := fams[name]
		if mf == nil {
			t.Errorf("%s is not exported right after start, so its panels show \"No data\": create its series when it is registered (WithLabelValues for each known label value)", name)
			continue
		}
		if mf.GetType() != dto.MetricType_COUNTER {
			t.Errorf("%s is a %s, not a counter (a _total name promises one)", name, mf.GetType())
			continue
		}
		got := map[string]bool{}
		labelled := false
		for _, m := range mf.GetMetric() {
			key := labelKey(m.GetLabel())
			got[key] = true
			labelled = labelled || key != ""
			if v := m.GetCounter().GetValue(); v != 0 {
				t.Errorf("%s{%s} = %v right after start, before any traffic; want 0", name, key, v)
			}
		}
		want, listed := known[name]
		switch {
		case labelled && !listed:
			t.Errorf("%s has labels (%v): list every value it can take in knownLabels and create them at registration", name, slices.Sorted(maps.Keys(got)))
		case !labelled && listed:
			t.Errorf("%s has no label, but knownLabels lists %v for it", name, want)
		}
		for _, k := range want {
			if !got[k] {
				t.Errorf("%s{%s} does not exist right after start: its panel shows nothing for it until the first one", name, k)
			}
		}
		for _, m := range selected[name] {
			sel := fmt.Sprintf("%s=%q", m.label, m.value)
			if !slices.ContainsFunc(slices.Collect(maps.Keys(got)), func(k string) bool { return slices.Contains(strings.Split(k, ","), sel) }) {
				t.Errorf("the dashboard selects %s{%s}, which does not exist right after start", name, sel)
			}
		}
	}
}

// knownLabels are the label sets each labelled counter on the dashboard
// can take, as labelKey writes them: the control plane's operations are
// those of docs/openapi.json, the recorder's topics the test's.
func knownLabels(t *testing.T, topics kafka.Topics) map[string][]string {
	t.Helper()
	var spec struct {
		Paths map[string]map[string]struct {
			OperationID string `json:"operationId"`
		} `json:"paths"`
	}
	b, err := os.ReadFile(openapiFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatalf("%s: %v", openapiFile, err)
	}
	var ops []string
	for _, item := range spec.Paths {
		for _, op := range item {
			if op.OperationID != "" {
				ops = append(ops, op.OperationID)
			}
		}
	}
	if len(ops) < 10 {
		t.Fatalf("%s has only %d operations", openapiFile, len(ops))
	}
	var tiers []string
	for _, d := range dispatcher.DefaultTiers {
		tiers = append(tiers, dispatcher.TierName(d))
	}
	recorded := []string{topics.Deliveries, topics.DeliveryResults, topics.DeliveriesDLQ, topics.RuleErrors, topics.AggregateGroups, topics.QuotaUsage, topics.EndpointHealth}
	history := []string{"alerts", "delivery_attempts", "dead_letters"}
	return map[string][]string{
		"exo_processor_events_total":            labelSets("outcome", "matched", "unmatched", "duplicate", "invalid", "ignored_type", "tenant_off"),
		"exo_processor_transactions_total":      labelSets("result", "committed", "aborted"),
		"exo_processor_alerts_suppressed_total": labelSets("reason", "rate_limit", "cooldown"),
		"exo_processor_rule_errors_total":       labelSets("reason", "budget", "runtime"),
		"exo_processor_quota_suppressed_total":  labelSets("scope", "tenant", "global"),

		// Stage 2 of the processor (count and rate rules).
		"exo_processor_aggregate_inputs_total":      labelSets("outcome", "counted", "late", "dropped", "stale_spec", "invalid"),
		"exo_processor_aggregate_transitions_total": labelSets("to", "firing", "resolving", "resolved", "repeat"),

		"exo_dispatcher_attempts_total": labelSets("outcome",
			schemas.OutcomeDelivered, schemas.OutcomeRetry, schemas.OutcomeEndpointGone, schemas.OutcomeDead),
		"exo_dispatcher_deferred_total": labelSets("class", "circuit_open", "endpoint_backlog"),
		"exo_dispatcher_retries_total":  labelSets("tier", tiers...),
		"exo_dispatcher_dead_letters_total": labelSets("reason",
			"exhausted", "undecodable", "endpoint_inactive", "secret", "render", "bad_url", "ssrf_refused", "tenant_disabled"),
		"exo_recorder_records_total":                 labelSets("table", append(history, "alert_rules.last_error", "aggregate_groups", "quota_suppressions")...),
		"exo_recorder_pruned_rows_total":             labelSets("table", append(history, "quota_suppressions")...),
		"exo_recorder_skipped_records_total":         labelSets("topic", recorded...),
		"exo_recorder_quarantined_records_total":     labelSets("topic", recorded...),
		"exo_controlplane_dependency_failures_total": labelSets("dependency", "postgres"),
		"exo_controlplane_ingest_events_total":       labelSets("outcome", "accepted", "invalid", "wrong_tenant", "rate_limited", "too_large", "unavailable"),
		"exo_recorder_notices_total":                 labelSets("kind", "rule_disabled", "endpoint_unhealthy", "dead_letters", "quota_exceeded"),
		"exo_dispatcher_unhealthy_notices_total":     labelSets("state", schemas.EndpointUnhealthy, schemas.EndpointHealthy),
		"exo_controlplane_http_requests_total": func() []string {
			var out []string
			for _, op := range ops {
				for _, class := range []string{"2xx", "4xx", "5xx"} {
					out = append(out, fmt.Sprintf(`code=%q,operation=%q`, class, op))
				}
			}
			return out
		}(),
	}
}

// labelSets is one label set per value of one label.
func labelSets(label string, values ...string) []string {
	out := make([]string, len(values))
	for i, v := range values {
		out[i] = fmt.Sprintf("%s=%q", label, v)
	}
	return out
}

// labelKey writes a series' labels as name="value" pairs sorted by name,
// joined by commas ("" for none).
func labelKey(ls []*dto.LabelPair) string {
	parts := make([]string, len(ls))
	for i, l := range ls {
		parts[i] = fmt.Sprintf("%s=%q", l.GetName(), l.GetValue())
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// TestOperationsGuideCommands checks every "exo-alerts <command> …" the
// operator guide shows (in code blocks and code spans) against the
// binary: the command is one its usage lists, a subcommand is one the
// command's usage names, and every flag is one the (sub)command's -h
// lists. It also checks that every EXO_ variable the guide names is read
// by the code.
func TestOperationsGuideCommands(t *testing.T) {
	t.Parallel()
	doc := readOpsDocs(t)
	lines := docCommands(doc)
	if len(lines) < 5 {
		t.Fatalf("found only %d exo-alerts commands in %s: %q", len(lines), opsDocs, lines)
	}
	bin := filepath.Join(t.TempDir(), "exo-alerts")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/exo-alerts").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	home := t.TempDir()
	help := func(args ...string) string {
		cmd := exec.Command(bin, append(args, "-h")...)
		cmd.Env = []string{"HOME=" + home} // no DATABASE_URL, no KAFKA_BROKERS: nothing to connect to
		out, _ := cmd.CombinedOutput()     // a usage error exits 1 and still prints the usage
		return string(out)
	}
	// The usage's command list: each command with its description (which
	// names its subcommands: "migrate up | down | status").
	var commands []string
	described := map[string]string{}
	top := help()
	entries := regexp.MustCompile(`(?m)^  ([a-z]+)\s{2,}`).FindAllStringSubmatchIndex(top, -1)
	for i, m := range entries {
		end := len(top)
		if i+1 < len(entries) {
			end = entries[i+1][0]
		}
		name := top[m[2]:m[3]]
		commands = append(commands, name)
		described[name] = top[m[1]:end]
	}
	if len(commands) < 5 {
		t.Fatalf("cannot read the commands from exo-alerts -h: %q", top)
	}
	word := regexp.MustCompile(`^[a-z][a-z-]*$`)
	for _, line := range lines {
		args := strings.Fields(line)
		if len(args) == 0 || !slices.Contains(commands, args[0]) {
			t.Errorf("%s shows %q: exo-alerts has no such command (it has %v)", opsDocs, "exo-alerts "+line, commands)
			continue
		}
		path := args[:1]
		if len(args) > 1 && word.MatchString(args[1]) {
			sub := regexp.MustCompile(`\b` + regexp.QuoteMeta(args[1]) + `\b`)
			if !sub.MatchString(described[args[0]]) && !sub.MatchString(help(args[0])) {
				t.Errorf("%s shows %q: neither exo-alerts -h nor exo-alerts %s -h names a subcommand %s", opsDocs, "exo-alerts "+line, args[0], args[1])
				continue
			}
			path = args[:2]
		}
		var usage string
		for _, a := range args[len(path):] {
			a = strings.TrimLeft(a, "[")
			if !strings.HasPrefix(a, "-") || strings.Trim(a, "-") == "" {
				continue
			}
			name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
			name = strings.TrimRight(name, "]")
			if usage == "" {
				usage = help(path...)
			}
			if !regexp.MustCompile(`(?m)^\s+-` + regexp.QuoteMeta(name) + `\b`).MatchString(usage) {
				t.Errorf("%s shows %q: exo-alerts %s has no flag -%s", opsDocs, "exo-alerts "+line, strings.Join(path, " "), name)
			}
		}
	}

	// Every EXO_ variable the guide names is one the code reads.
	var src strings.Builder
	err := filepath.WalkDir("..", func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || d.Name() == ".git") {
			return filepath.SkipDir
		}
		// The binary's Go code, and the scripts and compose file that
		// read variables of their own (EXO_STATE_DIR, EXO_PG_TLS, the
		// image compose runs).
		script := strings.HasSuffix(p, ".sh") || strings.HasSuffix(p, "compose.yaml")
		if !d.IsDir() && (script || strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go")) {
			b, err := os.ReadFile(p)
			src.Write(b)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	code := src.String()
	for _, v := range slices.Compact(slices.Sorted(slices.Values(regexp.MustCompile(`\bEXO_[A-Z0-9_]*[A-Z0-9]\b`).FindAllString(doc, -1)))) {
		if !strings.Contains(code, `"`+v+`"`) && !regexp.MustCompile(`\$\{?`+v+`\b|\b`+v+`=`).MatchString(code) {
			t.Errorf("%s names %s, which no code reads", opsDocs, v)
		}
	}
}

// docCommands returns what follows "exo-alerts " in the code of a
// Markdown document (fenced blocks and code spans), up to the end of the
// line or span or a shell operator.
func docCommands(doc string) []string {
	var code []string
	fenced := false
	for _, line := range strings.Split(doc, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		if fenced {
			code = append(code, line)
			continue
		}
		for _, m := range codeSpan.FindAllStringSubmatch(line, -1) {
			code = append(code, m[1])
		}
	}
	var out []string
	for _, c := range code {
		for _, m := range docCommand.FindAllStringSubmatch(c, -1) {
			cmd := m[1]
			if i := strings.IndexAny(cmd, "|;&#>"); i >= 0 {
				cmd = cmd[:i]
			}
			out = append(out, strings.TrimSpace(cmd))
		}
	}
	return out
}

var (
	codeSpan = regexp.MustCompile("`([^`]+)`")
	// exo-alerts where a shell runs it: first on a line (after an optional
	// "$ " prompt), after ; & | ( or a "--" (kubectl exec … -- exo-alerts),
	// or as bin/exo-alerts or ./cmd/exo-alerts; not as a release, namespace
	// or chart name (helm install exo-alerts …, -n exo-alerts).
	docCommand = regexp.MustCompile(`(?m)(?:^\s*(?:\$\s+)?|[;&|(]\s*|--\s+|\bbin/|\bcmd/)exo-alerts[ \t]+([^\n]*)`)
)

// TestSelectors pins the selector parser the dashboard checks rely on.
func TestSelectors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		expr string
		want []selector
	}{
		{`sum(rate(exo_a_total[1h]))`, []selector{{name: "exo_a_total"}}},
		{`up{job=~"exo-alerts-.*", instance=~"$instance"} == 0`, []selector{{name: "up", matchers: []matcher{{"job", "=~", "exo-alerts-.*"}, {"instance", "=~", "$instance"}}}}},
		{`rate(exo_b{outcome="a\"}b", job!="exo_c"}[$__rate_interval]) / exo_d {x!~"y"}`, []selector{
			{name: "exo_b", matchers: []matcher{{"outcome", "=", `a\"}b`}, {"job", "!=", "exo_c"}}},
			{name: "exo_d", matchers: []matcher{{"x", "!~", "y"}}},
		}},
		{`label_values(up{job=~"exo-alerts-.*"}, job)`, []selector{{name: "up", matchers: []matcher{{"job", "=~", "exo-alerts-.*"}}}}},
		{`sum by (le) (exo_h_bucket{le="0.1"}) offset 5m`, []selector{{name: "exo_h_bucket", matchers: []matcher{{"le", "=", "0.1"}}}}},
	} {
		if got := selectors(tc.expr); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("selectors(%q) = %+v, want %+v", tc.expr, got, tc.want)
		}
	}
}

// TestMetricNames pins the tokenizer the other tests rely on.
func TestMetricNames(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`sum by (outcome) (rate(exo_a_total[5m]))`, []string{"exo_a_total"}},
		{`histogram_quantile(0.9, sum by (le) (rate(exo_h_seconds_bucket{job="exo_not_a_metric"}[$__rate_interval])))`, []string{"exo_h_seconds_bucket"}},
		{"exo_g\n/ on(instance) exo_h)", []string{"exo_g", "exo_h"}},
		{`up{job=~"exo-alerts-.*"} == 0`, nil},
		{`(sum(rate(exo_x[1m])) or vector(0)) + exo_y`, []string{"exo_x", "exo_y"}},
	} {
		if got := metricNames(tc.expr); !slices.Equal(got, tc.want) {
			t.Errorf("metricNames(%q) = %v, want %v", tc.expr, got, tc.want)
		}
	}
}

// --- the components' metrics ----------------------------------------------

// exports collects the metric names of the running components: the
// descriptors of every collector the processor and the dispatcher register
// (a vector is exported from its first observation, whatever the traffic),
// and what the shared registry gathers, which is the only view into the
// control plane (its Config takes a *prometheus.Registry).
type exports struct {
	reg *prometheus.Registry
	rec *recordingRegisterer
}

type metricSet map[string]dto.MetricType

func (e *exports) snapshot(t *testing.T) metricSet {
	t.Helper()
	out := metricSet{}
	for name, typ := range e.rec.seen() {
		out[name] = typ
	}
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		out[mf.GetName()] = mf.GetType()
	}
	return out
}

// has reports whether name is exported, as itself or as a series of a
// histogram (_bucket, _sum, _count) or summary (_sum, _count).
func (s metricSet) has(name string) bool {
	_, ok := s[name]
	return ok || s.base(name) != name
}

// base is the family name of a histogram or summary series, else name.
func (s metricSet) base(name string) string {
	for _, suf := range []string{"_bucket", "_sum", "_count"} {
		b, ok := strings.CutSuffix(name, suf)
		if !ok {
			continue
		}
		switch typ, known := s[b]; {
		case !known:
		case typ == dto.MetricType_HISTOGRAM || typ == dto.MetricType_GAUGE_HISTOGRAM:
			return b
		case typ == dto.MetricType_SUMMARY && suf != "_bucket":
			return b
		}
	}
	return name
}

func (s metricSet) names() []string {
	var out []string
	for n := range s {
		if strings.HasPrefix(n, "exo_") {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// recordingRegisterer registers with the shared registry and remembers the
// name and type of every metric each collector describes.
type recordingRegisterer struct {
	prometheus.Registerer
	mu    sync.Mutex
	types map[string]dto.MetricType
}

// fqName pulls the name out of a Desc, which has no accessor for it.
var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (r *recordingRegisterer) Register(c prometheus.Collector) error {
	if err := r.Registerer.Register(c); err != nil {
		return err
	}
	typ := collectorType(c)
	descs := make(chan *prometheus.Desc)
	go func() { c.Describe(descs); close(descs) }()
	r.mu.Lock()
	defer r.mu.Unlock()
	for d := range descs {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			if _, ok := r.types[m[1]]; !ok {
				r.types[m[1]] = typ
			}
		}
	}
	return nil
}

func (r *recordingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

func (r *recordingRegisterer) seen() map[string]dto.MetricType {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.types)
}

// collectorType is the metric type a collector exports: from the vector
// type, else from what it collects now (the histogram and summary
// interfaces have the same methods, so their values tell them apart).
func collectorType(c prometheus.Collector) dto.MetricType {
	switch c.(type) {
	case *prometheus.HistogramVec:
		return dto.MetricType_HISTOGRAM
	case *prometheus.SummaryVec:
		return dto.MetricType_SUMMARY
	case *prometheus.GaugeVec:
		return dto.MetricType_GAUGE
	case *prometheus.CounterVec:
		return dto.MetricType_COUNTER
	}
	ch := make(chan prometheus.Metric)
	go func() { c.Collect(ch); close(ch) }()
	typ := dto.MetricType_UNTYPED
	for m := range ch {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			continue
		}
		switch {
		case pb.Histogram != nil:
			typ = dto.MetricType_HISTOGRAM
		case pb.Summary != nil:
			typ = dto.MetricType_SUMMARY
		case pb.Counter != nil:
			typ = dto.MetricType_COUNTER
		case pb.Gauge != nil:
			typ = dto.MetricType_GAUGE
		}
	}
	return typ
}

// startComponents runs the four components as cmd/exo-alerts wires them
// (the recorder in the control plane's process, on its registry), on the
// test's own database and topics, until the test ends, feeds the
// recorder one record it must skip and one it must write, and sends the API
// one request, so the control plane's labelled metrics have a series each.
func startComponents(t *testing.T) *exports {
	t.Helper()
	var rec *recordingRegisterer
	h := harness.Start(t, harness.Options{Registerer: func(reg *prometheus.Registry) prometheus.Registerer {
		rec = &recordingRegisterer{Registerer: reg, types: map[string]dto.MetricType{}}
		return rec
	}})
	reg, brokers, topics := h.Registry, h.Brokers, h.Topics
	log := testenv.Log(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	delivery, err := os.ReadFile("../schemas/examples/delivery.json")
	if err != nil {
		t.Fatal(err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, delivery); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kafka.ClientOpts(brokers, log)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	key := schemas.RecordKey("acme", "whk_01JD5A")
	pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
	defer pcancel()
	if err := cl.ProduceSync(pctx,
		&kgo.Record{Topic: topics.Deliveries, Key: key, Value: []byte(`{"not":"a delivery"}`)},
		&kgo.Record{Topic: topics.Deliveries, Key: key, Value: compact.Bytes()},
	).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.API+"/v1/webhooks", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req) // no API key: a 401 is a request too
	if err != nil {
		t.Fatalf("API request: %v", err)
	}
	_ = resp.Body.Close()
	return &exports{reg: reg, rec: rec}
}

// --- the artefacts ----------------------------------------------------------

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID         int           `json:"id"`
	Type       string        `json:"type"`
	Title      string        `json:"title"`
	Datasource datasourceRef `json:"datasource"`
	Targets    []struct {
		RefID      string         `json:"refId"`
		Expr       string         `json:"expr"`
		Datasource *datasourceRef `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // of a collapsed row
}

type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []templateVar `json:"list"`
	} `json:"templating"`
}

type templateVar struct {
	Name       string         `json:"name"`
	Type       string         `json:"type"`
	Query      any            `json:"query"`
	Datasource *datasourceRef `json:"datasource"`
	Multi      bool           `json:"multi"`
	IncludeAll bool           `json:"includeAll"`
}

func loadDashboard(t *testing.T) *dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return &d
}

func (d *dashboard) flat() []panel {
	var out []panel
	for _, p := range d.Panels {
		out = append(out, p)
		out = append(out, p.Panels...)
	}
	return out
}

type query struct{ where, expr string }

func (d *dashboard) queries() []query {
	var out []query
	for _, p := range d.flat() {
		for _, tg := range p.Targets {
			out = append(out, query{where: fmt.Sprintf("%q/%s", p.Title, tg.RefID), expr: tg.Expr})
		}
	}
	return out
}

type rule struct {
	Alert       string            `yaml:"alert"`
	Record      string            `yaml:"record"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	} `yaml:"groups"`
}

func (rf *ruleFile) all() []rule {
	var out []rule
	for _, g := range rf.Groups {
		out = append(out, g.Rules...)
	}
	return out
}

func loadRules(t *testing.T) *ruleFile {
	t.Helper()
	var rf ruleFile
	decodeYAML(t, alertsFile, &rf)
	return &rf
}

// decodeYAML decodes path strictly: a misspelt key (annotation, labes) fails.
func decodeYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// --- PromQL, as little of it as the checks need ------------------------------

var (
	// stringLit is a PromQL string literal: "…", '…' or `…`.
	stringLit = regexp.MustCompile("\"(?:[^\"\\\\]|\\\\.)*\"|'(?:[^'\\\\]|\\\\.)*'|`[^`]*`")
	// ident is a PromQL identifier: metric names, label names, functions,
	// keywords. Grafana's $__rate_interval starts with $ and is no match
	// (its tail is, but does not start with exo_).
	ident        = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*`)
	upRef        = regexp.MustCompile(`(^|[^A-Za-z0-9_:])up\s*[{\s=!<>)]`)
	jobMatcher   = regexp.MustCompile(`job\s*(=~|!~|!=|=)\s*"([^"]*)"`)
	promDuration = regexp.MustCompile(`^([0-9]+(ms|s|m|h|d|w|y))+$`)
)

func stripStrings(expr string) string { return stringLit.ReplaceAllString(expr, `""`) }

// metricNames returns the metric names an expression uses, in order of
// first use: every identifier outside string literals that starts with
// exo_. Our label names, functions and keywords never do, so no PromQL
// parser is needed; a label value such as job="exo_x" is a string and
// skipped. up (Prometheus' own) is checked separately.
func metricNames(expr string) []string {
	var out []string
	src := stripStrings(expr)
	for _, loc := range ident.FindAllStringIndex(src, -1) {
		id := src[loc[0]:loc[1]]
		if loc[0] > 0 && src[loc[0]-1] == '$' {
			continue // a Grafana variable
		}
		if strings.HasPrefix(id, "exo_") && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// jobsMatched returns the jobs that the job matchers of expr select (all
// jobs when it has none).
func jobsMatched(t *testing.T, expr string, jobs []string) []string {
	t.Helper()
	out := slices.Clone(jobs)
	for _, m := range jobMatcher.FindAllStringSubmatch(expr, -1) {
		if strings.HasPrefix(m[2], "$") {
			continue // a Grafana template variable
		}
		var re *regexp.Regexp
		if m[1] == "=~" || m[1] == "!~" {
			var err error
			if re, err = regexp.Compile("^(?:" + m[2] + ")$"); err != nil {
				t.Errorf("job matcher %s: %v", m[0], err)
				return nil
			}
		}
		out = slices.DeleteFunc(out, func(j string) bool {
			switch m[1] {
			case "=":
				return j != m[2]
			case "!=":
				return j == m[2]
			case "=~":
				return !re.MatchString(j)
			default:
				return re.MatchString(j)
			}
		})
	}
	return out
}

// matcher is one label matcher of a selector: job=~"$job".
type matcher struct{ label, op, value string }

// selector is one metric selector of an expression: its metric name and
// its label matchers (none for a bare name).
type selector struct {
	name     string
	matchers []matcher
}

// wordAt is a run of identifier characters (an identifier, or a number
// with its unit) at the start of a string.
var wordAt = regexp.MustCompile(`^[A-Za-z0-9_:]+`)

var matcherRE = regexp.MustCompile(`^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*,?`)

// selectors returns the metric selectors of expr: every exo_ metric and
// every up, with the matchers in braces after it. String literals are
// skipped, so a label value never reads as a metric, and so are Grafana
// variables ($__rate_interval) and numbers with units (1h).
func selectors(expr string) []selector {
	var out []selector
	for i := 0; i < len(expr); {
		c := expr[i]
		if c == '"' || c == '\'' || c == '`' {
			i += max(len(stringLit.FindString(expr[i:])), 1)
			continue
		}
		word := wordAt.FindString(expr[i:])
		if word == "" {
			i++
			continue
		}
		start := i
		i += len(word)
		if (start > 0 && expr[start-1] == '$') || (word[0] >= '0' && word[0] <= '9') {
			continue
		}
		if !strings.HasPrefix(word, "exo_") && word != "up" {
			continue
		}
		sel := selector{name: word}
		rest := strings.TrimLeft(expr[i:], " \t\n")
		if body, ok := strings.CutPrefix(rest, "{"); ok {
			for {
				body = strings.TrimLeft(body, " \t\n")
				if after, ok := strings.CutPrefix(body, "}"); ok {
					body = after
					break
				}
				m := matcherRE.FindStringSubmatch(body)
				if m == nil {
					sel.matchers = append(sel.matchers, matcher{label: "<unparsed>", value: body})
					body = ""
					break
				}
				sel.matchers = append(sel.matchers, matcher{label: m[1], op: m[2], value: m[3]})
				body = body[len(m[0]):]
			}
			i = len(expr) - len(body)
		}
		out = append(out, sel)
	}
	return out
}

// readOpsDocs returns the operator guide's files, concatenated.
func readOpsDocs(t *testing.T) string {
	t.Helper()
	files, err := filepath.Glob(opsDocs)
	if err != nil || len(files) == 0 {
		t.Fatalf("no operator guide at %s (%v)", opsDocs, err)
	}
	var b strings.Builder
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(src)
		b.WriteString("\n")
	}
	return b.String()
}

// runbookSection returns the text under the guide's "## Runbook" heading,
// up to the next level-2 heading.
func runbookSection(t *testing.T) string {
	t.Helper()
	doc := readOpsDocs(t)
	_, after, ok := strings.Cut(doc, "\n## Runbook\n")
	if !ok {
		t.Fatalf("%s has no \"## Runbook\" section", opsDocs)
	}
	if i := strings.Index(after, "\n## "); i >= 0 {
		after = after[:i]
	}
	return after
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
