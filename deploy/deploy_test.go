// Package deploy_test keeps the operator artefacts under deploy/ honest: the
// Grafana dashboard and the Prometheus rules may only use metrics that the
// real components export, every alert carries what an operator needs to act
// on it, and the scrape configuration points at the components' defaults.
package deploy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
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

	"github.com/exospherehost/exo-alerts/e2e/harness"
	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/schemas"
)

const (
	dashboardFile  = "grafana/exo-alerts.json"
	alertsFile     = "prometheus/alerts.yml"
	prometheusFile = "prometheus/prometheus.yml"
	readmeFile     = "README.md"
	commandsFile   = "../cmd/exo-alerts/commands.go"
)

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
// enough, takes its Prometheus data source from the ${datasource} variable
// and has unique panel ids.
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
		}
	}
	for _, want := range []string{"Processor", "Dispatcher", "Control plane"} {
		if !slices.ContainsFunc(d.Panels, func(p panel) bool { return p.Type == "row" && p.Title == want }) {
			t.Errorf("no row %q", want)
		}
	}
}

// TestAlertRules checks that every alert can be acted on: a for duration,
// a severity, a summary and description, and a runbook entry that exists.
func TestAlertRules(t *testing.T) {
	t.Parallel()
	rf := loadRules(t)
	readme, err := os.ReadFile(readmeFile)
	if err != nil {
		t.Fatal(err)
	}
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
		if !strings.HasSuffix(r.Annotations["runbook_url"], "deploy/README.md"+anchor) {
			t.Errorf("alert %s: runbook_url %q, want one ending in deploy/README.md%s", r.Alert, r.Annotations["runbook_url"], anchor)
		}
		if !regexp.MustCompile(`(?m)^### ` + regexp.QuoteMeta(r.Alert) + `\s*$`).Match(readme) {
			t.Errorf("alert %s: deploy/README.md has no runbook heading \"### %s\"", r.Alert, r.Alert)
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
	for _, q := range loadDashboard(t).queries() {
		exprs = append(exprs, q.expr)
	}
	for _, e := range exprs {
		for _, m := range jobMatcher.FindAllStringSubmatch(e, -1) {
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
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
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

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
