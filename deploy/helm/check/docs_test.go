package check

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chartutil"
)

// helmDocs are the documents whose commands and values must work: the
// chart's README and the Helm section of docs/operations.md.
func helmDocs(t *testing.T) map[string]string {
	t.Helper()
	readme, err := os.ReadFile(chartPath("README.md"))
	if err != nil {
		t.Fatal(err)
	}
	ops, err := os.ReadFile(repoRoot + "/docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(ops), "\n## Deploying with Helm\n")
	if !ok {
		t.Fatal(`docs/operations.md has no "## Deploying with Helm" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	return map[string]string{"deploy/helm/exo-alerts/README.md": string(readme), "docs/operations.md (Helm)": section}
}

// logicalLines joins lines continued with a backslash.
func logicalLines(doc string) []string {
	return strings.Split(strings.ReplaceAll(doc, "\\\n", " "), "\n")
}

// TestDocsCommandsMatchTheBinary: every `exo-alerts <command> --flag` in the
// Helm docs names a command and flags the binary has.
func TestDocsCommandsMatchTheBinary(t *testing.T) {
	t.Parallel()
	cmds := commands(t)
	invocation := regexp.MustCompile("(?:^|[\\s(/\"`])exo-alerts ([a-z][^`\"')\\n]*)")
	seen := 0
	for name, doc := range helmDocs(t) {
		for _, line := range logicalLines(doc) {
			for _, m := range invocation.FindAllStringSubmatch(line, -1) {
				words := strings.Fields(m[1])
				if !cmds[words[0]] {
					continue // "helm install exo-alerts deploy/...", "the exo-alerts chart"
				}
				seen++
				cmd := words[:1]
				if len(words) > 1 && regexp.MustCompile(`^[a-z]+$`).MatchString(words[1]) {
					cmd = words[:2]
				}
				var flags map[string]bool
				for _, w := range words[len(cmd):] {
					if !strings.HasPrefix(w, "--") {
						continue
					}
					if flags == nil {
						flags = flagsOf(t, cmd...)
					}
					if f, _, _ := strings.Cut(strings.TrimPrefix(w, "--"), "="); !flags[f] {
						t.Errorf("%s: exo-alerts %s has no flag --%s (in %q)", name, strings.Join(cmd, " "), f, strings.TrimSpace(line))
					}
				}
			}
		}
	}
	if seen < 5 {
		t.Errorf("found %d exo-alerts commands in the Helm docs: is the pattern still right?", seen)
	}
}

// TestDocsValuesRender: every `--set key=...` in the Helm docs names a
// value of the chart, and the values file of docs/operations.md renders.
func TestDocsValuesRender(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(chartPath("values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	defaults, err := chartutil.ReadValues(raw)
	if err != nil {
		t.Fatal(err)
	}
	set := regexp.MustCompile(`--set(?:-string)? '?([A-Za-z0-9_.]+)=`)
	n := 0
	for name, doc := range helmDocs(t) {
		for _, m := range set.FindAllStringSubmatch(doc, -1) {
			n++
			if _, err := defaults.PathValue(m[1]); err != nil {
				if _, terr := defaults.Table(m[1]); terr != nil {
					t.Errorf("%s: --set %s: the chart has no such value", name, m[1])
				}
			}
		}
		_, blocks, _ := strings.Cut(doc, "```yaml\n")
		for blocks != "" {
			var block string
			block, blocks, _ = strings.Cut(blocks, "```")
			n++
			if _, err := renderChart(valuesYAML(t, block), releaseName); err != nil {
				t.Errorf("%s: the values\n%s\ndo not render: %v", name, block, err)
			}
			_, blocks, _ = strings.Cut(blocks, "```yaml\n")
		}
	}
	if n < 5 {
		t.Errorf("found %d values in the Helm docs: is the pattern still right?", n)
	}
}
