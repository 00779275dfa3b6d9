package check

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v3"
)

const (
	deployDir   = "../.."
	repoRoot    = "../../.."
	composeFile = "compose.yaml"
	// The exo-alerts image: every service running it runs the binary.
	imageVar = "EXO_ALERTS_IMAGE"
	image    = "exo-alerts:compose-check"
)

// exe is exo-alerts built from this checkout (TestMain).
var exe string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "exo-compose-check")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	exe = filepath.Join(dir, "exo-alerts")
	build := exec.Command("go", "build", "-o", exe, "./cmd/exo-alerts")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build ./cmd/exo-alerts: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func loadProject(t *testing.T, env ...string) (*types.Project, error) {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{filepath.Join(deployDir, composeFile)},
		cli.WithWorkingDirectory(deployDir), cli.WithEnv(env), cli.WithName("exo-alerts"))
	if err != nil {
		t.Fatal(err)
	}
	return opts.LoadProject(context.Background())
}

func project(t *testing.T) *types.Project {
	t.Helper()
	p, err := loadProject(t, "EXO_KEYRING=k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", imageVar+"="+image)
	if err != nil {
		t.Fatalf("docker compose config would fail: %v", err)
	}
	return p
}

// exoServices are the services that run the exo-alerts image.
func exoServices(t *testing.T, p *types.Project) map[string]types.ServiceConfig {
	t.Helper()
	out := map[string]types.ServiceConfig{}
	for name, s := range p.Services {
		if s.Image == image {
			out[name] = s
		}
	}
	return out
}

// run runs the binary and returns its output (stdout and stderr) and exit code.
func run(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(exe, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")} // none of the compose variables: only parsing runs
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &exit):
		return string(out), exit.ExitCode()
	}
	t.Fatalf("run exo-alerts %v: %v", args, err)
	return "", -1
}

// subcommands are the commands `exo-alerts help` lists.
func subcommands(t *testing.T) []string {
	t.Helper()
	out, code := run(t, "help")
	if code != 0 {
		t.Fatalf("exo-alerts help: exit %d\n%s", code, out)
	}
	_, list, ok := strings.Cut(out, "Commands:\n")
	if !ok {
		t.Fatalf("exo-alerts help lists no commands:\n%s", out)
	}
	list, _, _ = strings.Cut(list, "\n\n")
	var cmds []string
	for _, m := range regexp.MustCompile(`(?m)^  ([a-z]+)\s`).FindAllStringSubmatch(list, -1) {
		cmds = append(cmds, m[1])
	}
	if len(cmds) < 5 {
		t.Fatalf("exo-alerts help lists %v", cmds)
	}
	return cmds
}

var flagLine = regexp.MustCompile(`(?m)^  -([a-z][a-z0-9-]*)`)

// flags are the flags `exo-alerts <words> -h` lists, by name.
func flags(t *testing.T, words ...string) []string {
	t.Helper()
	out, _ := run(t, append(slices.Clone(words), "-h")...)
	var names []string
	for _, m := range flagLine.FindAllStringSubmatch(out, -1) {
		names = append(names, m[1])
	}
	return names
}

// checkArgs fails unless the binary accepts args as a command line: the
// subcommand is one it lists, every flag is one of the subcommand's
// (the binary parses them: a flag it does not define fails), and every
// other word is one its usage names.
func checkArgs(t *testing.T, where string, args []string) {
	t.Helper()
	if len(args) == 0 {
		t.Errorf("%s: no command (the image's entrypoint is exo-alerts: a subcommand is needed)", where)
		return
	}
	if !slices.Contains(subcommands(t), args[0]) {
		t.Errorf("%s: %q is not a subcommand of exo-alerts (%v)", where, args[0], subcommands(t))
		return
	}
	words := []string{args[0]}
	var flagArgs []string
	for i := 1; i < len(args); i++ {
		a := args[i]
		if strings.HasPrefix(a, "-") {
			flagArgs = append(flagArgs, a)
			if !strings.Contains(a, "=") && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") && !isBool(t, words, a) {
				flagArgs = append(flagArgs, args[i+1])
				i++
			}
			continue
		}
		if len(flagArgs) > 0 {
			continue // a positional after the flags (an id): the subcommand's business
		}
		usage, _ := run(t, append(slices.Clone(words), "-h")...)
		usage = usageLine(usage, words) + "\n" + helpEntry(t, args[0])
		if !regexp.MustCompile(`(^|[\s|\[])` + regexp.QuoteMeta(a) + `($|[\s|\]:])`).MatchString(usage) {
			t.Errorf("%s: %q is not in the usage of exo-alerts %s:\n%s", where, a, strings.Join(words, " "), usage)
			return
		}
		words = append(words, a)
	}
	if len(flagArgs) == 0 {
		return
	}
	// The binary parses the flags and stops at -h (exit 0): an unknown flag
	// or a bad value fails the parse.
	out, code := run(t, slices.Concat(words, flagArgs, []string{"-h"})...)
	if code != 0 || strings.Contains(out, "flag provided but not defined") || strings.Contains(out, "invalid value") {
		t.Errorf("%s: exo-alerts %s does not take %v (exit %d):\n%s", where, strings.Join(words, " "), flagArgs, code, out)
	}
}

func isBool(t *testing.T, words []string, flag string) bool {
	out, _ := run(t, append(slices.Clone(words), "-h")...)
	name := strings.TrimLeft(flag, "-")
	m := regexp.MustCompile(`(?m)^  -` + regexp.QuoteMeta(name) + `( (\S+))?\n`).FindStringSubmatch(out)
	return m != nil && m[2] == ""
}

// usageLine is the part of a command's -h output that names its words:
// "usage: exo-alerts migrate up|down|status" and the like.
func usageLine(out string, words []string) string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "exo-alerts "+strings.Join(words, " ")) {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

// helpEntry is the entry of cmd in `exo-alerts help`, continuation lines
// included.
func helpEntry(t *testing.T, cmd string) string {
	out, _ := run(t, "help")
	var entry []string
	in := false
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(l, "  "+cmd+" "):
			in = true
		case in && strings.HasPrefix(l, "      "):
		default:
			in = false
		}
		if in {
			entry = append(entry, l)
		}
	}
	return strings.Join(entry, "\n")
}

// TestServicesRunRealCommands: every service of the exo-alerts image runs a
// subcommand the binary has, with flags it has.
func TestServicesRunRealCommands(t *testing.T) {
	p := project(t)
	svcs := exoServices(t, p)
	for _, want := range []string{"migrate", "controlplane", "processor", "dispatcher", "recorder"} {
		var found bool
		for _, s := range svcs {
			if len(s.Command) > 0 && s.Command[0] == want {
				found = true
			}
		}
		if !found {
			t.Errorf("no service runs exo-alerts %s", want)
		}
	}
	for name, s := range svcs {
		checkArgs(t, "service "+name, s.Command)
	}
	if got := svcs["migrate"].Command; !slices.Equal(got, []string{"migrate", "up"}) {
		t.Errorf("service migrate runs %v, want migrate up", got)
	}
}

// TestDocumentedCommandsAreReal: the commands the compose file and the
// operations guide tell to run in the image (docker run, docker compose run,
// kubectl exec) or from a checkout are ones the binary takes.
func TestDocumentedCommandsAreReal(t *testing.T) {
	space := regexp.MustCompile(`\s+`)
	runs := regexp.MustCompile("(?:run --rm (?:\"[^\"]*\"|\\S+)|-- exo-alerts|go run \\./cmd/exo-alerts) ([^`)\"\\\\#|;]*)")
	var found int
	for _, file := range []string{filepath.Join(deployDir, composeFile), filepath.Join(repoRoot, "docs", "operations.md")} {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range runs.FindAllStringSubmatch(space.ReplaceAllString(string(src), " "), -1) {
			args := strings.Fields(m[1])
			if i := slices.IndexFunc(args, func(a string) bool { return strings.HasPrefix(a, "<") }); i >= 0 {
				args = args[:i] // a placeholder: what comes before it is checked
			}
			if len(args) == 0 {
				continue
			}
			found++
			checkArgs(t, filepath.Base(file)+": "+strings.TrimSpace(m[0]), args)
		}
	}
	if found < 6 {
		t.Errorf("found %d documented commands; the pattern no longer finds them", found)
	}
}

// envRead are the variables the binary reads, found in its Go sources
// (config.Env's String/Int/Duration/List/get, os.Getenv, LookupEnv, envOr).
func envRead(t *testing.T) map[string]bool {
	t.Helper()
	re := regexp.MustCompile(`(?:\.(?:String|Int|Duration|List|Bool|get)|Getenv|LookupEnv|envOr)\("((?:EXO|KAFKA|DATABASE)_[A-Z0-9_]+)"`)
	read := map[string]bool{}
	err := filepath.WalkDir(repoRoot, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			// Nested modules (deployment checks) are not the binary.
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil && path != repoRoot {
				return filepath.SkipDir
			}
			if n := d.Name(); n == ".git" || n == "node_modules" || n == "bin" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range re.FindAllSubmatch(src, -1) {
			read[string(m[1])] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"DATABASE_URL", "KAFKA_BROKERS", "EXO_KEYRING", "EXO_TOPIC_PREFIX"} {
		if !read[v] {
			t.Fatalf("the source scan misses %s: it no longer finds what the binary reads (%v)", v, read)
		}
	}
	return read
}

// readBy is the README environment table: variable => its "read by" cell.
func readBy(t *testing.T) map[string]string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([A-Z][A-Z0-9_]+)` \\|[^|]*\\|([^|]*)\\|").FindAllStringSubmatch(string(src), -1) {
		out[m[1]] = m[2]
	}
	return out
}

// TestServicesGetVariablesTheyRead: every variable a service of the image is
// given is one the binary reads, and one its subcommand reads (README's
// environment table, "read by"); the ones it needs are there.
func TestServicesGetVariablesTheyRead(t *testing.T) {
	p := project(t)
	read, table := envRead(t), readBy(t)
	for name, s := range exoServices(t, p) {
		cmd := s.Command[0]
		for v := range s.Environment {
			if !read[v] {
				t.Errorf("service %s: %s is not a variable exo-alerts reads", name, v)
				continue
			}
			cell, ok := table[v]
			if !ok {
				t.Errorf("service %s: %s has no row in README's environment table", name, v)
				continue
			}
			if !strings.Contains(cell, "every command") && !regexp.MustCompile(`\b`+cmd+`\b`).MatchString(cell) {
				t.Errorf("service %s: exo-alerts %s does not read %s (read by: %s)", name, cmd, v, strings.TrimSpace(cell))
			}
		}
		for v, cell := range table {
			if _, given := s.Environment[v]; given || !strings.Contains(cell, "required") {
				continue
			}
			required, _, _ := strings.Cut(cell, "(required)")
			if regexp.MustCompile(`\b` + cmd + `\b`).MatchString(required) {
				t.Errorf("service %s: exo-alerts %s requires %s (read by: %s); not given", name, cmd, v, strings.TrimSpace(cell))
			}
		}
	}
}

// listen is the address a service's --addr / --metrics-addr flag listens
// on, or its default.
func listen(t *testing.T, s types.ServiceConfig) (host, port string) {
	t.Helper()
	for _, a := range s.Command[1:] {
		for _, f := range []string{"--addr=", "-addr=", "--metrics-addr=", "-metrics-addr="} {
			if v, ok := strings.CutPrefix(a, f); ok {
				h, p, err := net.SplitHostPort(v)
				if err != nil {
					t.Fatalf("service %s: %s: %v", s.Name, a, err)
				}
				return h, p
			}
		}
	}
	return "", ""
}

// TestPortsMatchTheFlags: each long-running component listens on all the
// container's interfaces (the binary's defaults are 127.0.0.1, unreachable
// from other containers), published ports go to the port its flag listens
// on, and Prometheus scrapes each of them there, in the jobs of
// deploy/prometheus/prometheus.yml.
func TestPortsMatchTheFlags(t *testing.T) {
	p := project(t)
	svcs := exoServices(t, p)
	ports := map[string]string{}
	for name, s := range svcs {
		if s.Command[0] == "migrate" {
			continue
		}
		names := flags(t, s.Command[0])
		if !slices.Contains(names, "addr") && !slices.Contains(names, "metrics-addr") {
			continue
		}
		host, port := listen(t, s)
		if port == "" {
			t.Errorf("service %s: no --addr/--metrics-addr: the default listens on 127.0.0.1 inside the container", name)
			continue
		}
		if host != "0.0.0.0" && host != "" {
			t.Errorf("service %s listens on %s: other containers cannot reach it", name, host)
		}
		ports[name] = port
		for _, pc := range s.Ports {
			if fmt.Sprint(pc.Target) != port {
				t.Errorf("service %s publishes container port %d; it listens on %s", name, pc.Target, port)
			}
			if pc.HostIP != "127.0.0.1" {
				t.Errorf("service %s publishes port %s on %q: keep it on 127.0.0.1 (a laptop's network)", name, pc.Published, pc.HostIP)
			}
		}
	}
	if cp := svcs["controlplane"]; len(cp.Ports) == 0 {
		t.Error("the control plane's API is not published")
	}

	prom := promConfig(t, p)
	var base struct {
		ScrapeConfigs []struct {
			JobName string `yaml:"job_name"`
		} `yaml:"scrape_configs"`
	}
	readYAML(t, filepath.Join(deployDir, "prometheus", "prometheus.yml"), &base)
	jobs := map[string][]string{}
	for _, sc := range prom.ScrapeConfigs {
		if sc.MetricsPath != "/metrics" {
			t.Errorf("job %s: metrics_path %q, want /metrics", sc.JobName, sc.MetricsPath)
		}
		for _, st := range sc.StaticConfigs {
			jobs[sc.JobName] = append(jobs[sc.JobName], st.Targets...)
		}
	}
	for _, sc := range base.ScrapeConfigs {
		if _, ok := jobs[sc.JobName]; !ok {
			t.Errorf("deploy/prometheus/prometheus.yml has job %s; compose's Prometheus does not", sc.JobName)
		}
	}
	for name, port := range ports {
		job := "exo-alerts-" + svcs[name].Command[0]
		if want := name + ":" + port; !slices.Equal(jobs[job], []string{want}) {
			t.Errorf("job %s scrapes %v, want [%s]", job, jobs[job], want)
		}
	}
}

type promFile struct {
	RuleFiles     []string `yaml:"rule_files"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		MetricsPath   string `yaml:"metrics_path"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

// mounted returns the host path mounted at target in s (a file or a
// directory above it), or "".
func mounted(s types.ServiceConfig, target string) string {
	for _, v := range s.Volumes {
		if v.Type != types.VolumeTypeBind {
			continue
		}
		if target == v.Target {
			return v.Source
		}
		if rel, ok := strings.CutPrefix(target, strings.TrimSuffix(v.Target, "/")+"/"); ok {
			return filepath.Join(v.Source, rel)
		}
	}
	return ""
}

// promConfig is compose's Prometheus configuration, as mounted; each rule
// file it loads is mounted too.
func promConfig(t *testing.T, p *types.Project) promFile {
	t.Helper()
	s, ok := p.Services["prometheus"]
	if !ok {
		t.Fatal("no prometheus service")
	}
	const config = "/etc/prometheus/prometheus.yml" // the image's --config.file
	src := mounted(s, config)
	if src == "" {
		t.Fatalf("nothing is mounted at %s", config)
	}
	var f promFile
	readYAML(t, src, &f)
	if len(f.RuleFiles) == 0 {
		t.Error("compose's Prometheus loads no rules")
	}
	for _, r := range f.RuleFiles {
		host := mounted(s, filepath.Join(filepath.Dir(config), r))
		if host == "" {
			t.Errorf("rule file %s is not mounted", r)
			continue
		}
		want, _ := filepath.Abs(filepath.Join(deployDir, "prometheus", "alerts.yml"))
		if host != want {
			t.Errorf("rule file %s is %s, want deploy/prometheus/alerts.yml", r, host)
		}
	}
	return f
}

func readYAML(t *testing.T, path string, into any) {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(src))
	dec.KnownFields(false)
	if err := dec.Decode(into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestGrafanaProvisionsTheDashboard: Grafana's provisioning (mounted)
// points a dashboard provider at a directory holding
// deploy/grafana/exo-alerts.json, and a default Prometheus data source at
// the prometheus service, which the dashboard's data source variable picks.
func TestGrafanaProvisionsTheDashboard(t *testing.T) {
	p := project(t)
	g, ok := p.Services["grafana"]
	if !ok {
		t.Fatal("no grafana service")
	}
	prov := mounted(g, "/etc/grafana/provisioning") // the image's GF_PATHS_PROVISIONING
	if prov == "" {
		t.Fatal("nothing is mounted at /etc/grafana/provisioning")
	}
	var dashboards struct {
		Providers []struct {
			Type    string
			Options struct{ Path string }
		}
	}
	files, _ := filepath.Glob(filepath.Join(prov, "dashboards", "*.yml"))
	if len(files) != 1 {
		t.Fatalf("dashboard providers: %v, want one file", files)
	}
	readYAML(t, files[0], &dashboards)
	want, err := os.ReadFile(filepath.Join(deployDir, "grafana", "exo-alerts.json"))
	if err != nil {
		t.Fatal(err)
	}
	var served bool
	for _, pr := range dashboards.Providers {
		dir := mounted(g, pr.Options.Path)
		if pr.Type != "file" || dir == "" {
			continue
		}
		got, err := os.ReadFile(filepath.Join(dir, "exo-alerts.json"))
		served = served || (err == nil && bytes.Equal(got, want))
	}
	if !served {
		t.Errorf("no dashboard provider serves deploy/grafana/exo-alerts.json (providers %+v, mounts %+v)", dashboards.Providers, g.Volumes)
	}

	var datasources struct {
		Datasources []struct {
			Type, URL string
			IsDefault bool `yaml:"isDefault"`
		}
	}
	files, _ = filepath.Glob(filepath.Join(prov, "datasources", "*.yml"))
	if len(files) != 1 {
		t.Fatalf("data sources: %v, want one file", files)
	}
	readYAML(t, files[0], &datasources)
	var dash struct {
		Templating struct {
			List []struct{ Name, Type, Query string }
		}
	}
	if err := json.Unmarshal(want, &dash); err != nil {
		t.Fatal(err)
	}
	var dsType string
	for _, v := range dash.Templating.List {
		if v.Type == "datasource" {
			dsType = v.Query
		}
	}
	var ok2 bool
	for _, ds := range datasources.Datasources {
		u, err := url.Parse(ds.URL)
		if err != nil {
			t.Errorf("data source URL %q: %v", ds.URL, err)
			continue
		}
		prom, isSvc := p.Services[u.Hostname()]
		if ds.Type == dsType && ds.IsDefault && isSvc && strings.Contains(prom.Image, "prometheus") && u.Port() == "9090" {
			ok2 = true
		}
	}
	if !ok2 {
		t.Errorf("no default %q data source at the prometheus service's port 9090: %+v", dsType, datasources.Datasources)
	}
}

// TestStartOrderAndKafka: the components start after the migrations
// succeeded and Kafka is healthy, the migrations after Postgres is; the
// database URL is the postgres service's; the broker is KRaft and can run
// the processor's transactions on one broker; the recorder runs on its own.
func TestStartOrderAndKafka(t *testing.T) {
	p := project(t)
	svcs := exoServices(t, p)
	for name, s := range svcs {
		want := map[string]string{"migrate": "service_completed_successfully", "kafka": "service_healthy"}
		if s.Command[0] == "migrate" {
			want = map[string]string{"postgres": "service_healthy"}
		}
		for dep, cond := range want {
			if got := s.DependsOn[dep].Condition; got != cond {
				t.Errorf("service %s: depends on %s with %q, want %q", name, dep, got, cond)
			}
			if p.Services[dep].HealthCheck == nil && cond == "service_healthy" {
				t.Errorf("service %s has no healthcheck", dep)
			}
		}
		if v := s.Environment["DATABASE_URL"]; v != nil {
			u, err := url.Parse(*v)
			if err != nil {
				t.Fatal(err)
			}
			pg := p.Services[u.Hostname()].Environment
			pass, _ := u.User.Password()
			if pg["POSTGRES_USER"] == nil || *pg["POSTGRES_USER"] != u.User.Username() || *pg["POSTGRES_PASSWORD"] != pass ||
				*pg["POSTGRES_DB"] != strings.TrimPrefix(u.Path, "/") {
				t.Errorf("service %s: DATABASE_URL %s is not the %s service's user, password and database", name, *v, u.Hostname())
			}
		}
		if v := s.Environment["KAFKA_BROKERS"]; v != nil {
			adv := p.Services["kafka"].Environment["KAFKA_ADVERTISED_LISTENERS"]
			if adv == nil || !strings.Contains(*adv, "://"+*v) {
				t.Errorf("service %s: KAFKA_BROKERS %s is not a listener the broker advertises", name, *v)
			}
		}
	}
	k := p.Services["kafka"].Environment
	for key, want := range map[string]string{
		"KAFKA_PROCESS_ROLES": "broker,controller", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
		"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1", "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
	} {
		if k[key] == nil || *k[key] != want {
			t.Errorf("kafka: %s = %v, want %s", key, k[key], want)
		}
	}
	if img := p.Services["kafka"].Image; !strings.HasPrefix(img, "apache/kafka:") {
		t.Errorf("kafka image %s, want apache/kafka", img)
	}
	var cp, rec int
	for _, s := range svcs {
		switch s.Command[0] {
		case "controlplane":
			cp++
			if v := s.Environment["EXO_CONTROLPLANE_RECORDER"]; v == nil || *v != "off" {
				t.Error("the control plane runs a recorder of its own besides the recorder service: EXO_CONTROLPLANE_RECORDER=off")
			}
		case "recorder":
			rec++
		case "processor":
			if s.Environment["EXO_PROCESSOR_TRANSACTIONAL_ID"] == nil {
				t.Errorf("processor service %s: no stable EXO_PROCESSOR_TRANSACTIONAL_ID (a recreated container gets another hostname)", s.Name)
			}
		}
	}
	if cp != 1 || rec != 1 {
		t.Errorf("%d control plane and %d recorder services, want one each", cp, rec)
	}
}

// TestKeyringIsRequired: without EXO_KEYRING the file does not load (no
// key ring is invented), and says how to make one.
func TestKeyringIsRequired(t *testing.T) {
	_, err := loadProject(t, imageVar+"="+image)
	if err == nil || !strings.Contains(err.Error(), "EXO_KEYRING") || !strings.Contains(err.Error(), "keyring generate") {
		t.Errorf("loading without EXO_KEYRING: %v, want a failure naming EXO_KEYRING and keyring generate", err)
	}
}
