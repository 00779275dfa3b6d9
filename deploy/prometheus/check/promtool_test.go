package check

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v2"
)

// promtool is built once per test binary from the version go.mod pins
// (tool directive). remove_all_sd leaves out the service-discovery plugins
// promtool registers for `check config`, which static_configs do not need,
// and which would triple the build.
var promtool string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "promtool")
	if err != nil {
		panic(err)
	}
	promtool = filepath.Join(dir, "promtool")
	build := exec.Command("go", "build", "-tags", "remove_all_sd", "-o", promtool, "github.com/prometheus/prometheus/cmd/promtool")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		os.Stderr.WriteString("building promtool: " + err.Error() + "\n")
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func run(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(promtool, args...)
	cmd.Dir = ".."
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestRulesUnitTests runs alerts_test.yml: every case of every alert
// fires or stays quiet as it says, with the labels and annotations it says.
func TestRulesUnitTests(t *testing.T) {
	t.Parallel()
	out := run(t, "test", "rules", "alerts_test.yml")
	if !strings.Contains(out, "SUCCESS") {
		t.Fatalf("promtool test rules did not report SUCCESS:\n%s", out)
	}
}

// TestEveryAlertHasFiringAndQuietCases reads alerts_test.yml against
// alerts.yml: each alert has a case where it fires and one where it does
// not, so a rule added without tests fails here.
func TestEveryAlertHasFiringAndQuietCases(t *testing.T) {
	t.Parallel()
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	var tests struct {
		RuleFiles []string `yaml:"rule_files"`
		Tests     []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	decode(t, "../alerts.yml", &rules)
	decode(t, "../alerts_test.yml", &tests)
	if len(tests.RuleFiles) != 1 || tests.RuleFiles[0] != "alerts.yml" {
		t.Errorf("alerts_test.yml loads %v, want [alerts.yml]", tests.RuleFiles)
	}
	firing, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				firing[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			n++
			if !firing[r.Alert] {
				t.Errorf("alert %s has no case in alerts_test.yml where it fires", r.Alert)
			}
			if !quiet[r.Alert] {
				t.Errorf("alert %s has no case in alerts_test.yml where it stays quiet", r.Alert)
			}
		}
	}
	if n == 0 {
		t.Fatal("alerts.yml has no alert")
	}
}

// TestCheckRulesAndConfig runs promtool's syntax and lint checks on the
// rules, and its configuration check on prometheus.yml (which loads the
// rules again).
func TestCheckRulesAndConfig(t *testing.T) {
	t.Parallel()
	out := run(t, "check", "rules", "alerts.yml")
	if m := regexp.MustCompile(`SUCCESS: (\d+) rules found`).FindStringSubmatch(out); m == nil || m[1] == "0" {
		t.Errorf("promtool check rules alerts.yml:\n%s", out)
	}
	out = run(t, "check", "config", "prometheus.yml")
	if !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool check config prometheus.yml:\n%s", out)
	}
}

func decode(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
