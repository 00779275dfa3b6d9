package check

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestReadmeDocumentsEveryValue: the values table of the chart's README and
// values.yaml agree: every documented value exists, and every value is
// documented (itself or a parent of it).
func TestReadmeDocumentsEveryValue(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(chartPath("values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(raw, &values); err != nil {
		t.Fatal(err)
	}
	paths := map[string]bool{} // every path, inner and leaf
	var leaves []string
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		paths[prefix] = true
		m, ok := v.(map[string]any)
		if !ok || len(m) == 0 {
			leaves = append(leaves, prefix)
			return
		}
		for k, child := range m {
			walk(prefix+"."+k, child)
		}
	}
	for k, v := range values {
		walk(k, v)
	}

	readme, err := os.ReadFile(chartPath("README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Values\n")
	if !ok {
		t.Fatal("README.md has no ## Values section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	key := regexp.MustCompile("`([^`]+)`")
	var documented []string
	for line := range strings.SplitSeq(section, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		first := strings.Split(line, "|")[1]
		for _, m := range key.FindAllStringSubmatch(first, -1) {
			k := m[1]
			if rest, ok := strings.CutPrefix(k, "<component>."); ok {
				for _, c := range []string{"controlplane", "processor", "dispatcher", "recorder"} {
					documented = append(documented, c+"."+rest)
				}
				continue
			}
			documented = append(documented, k)
		}
	}
	if len(documented) < 20 {
		t.Fatalf("found only %d documented values: is the table still a table?", len(documented))
	}
	for i, d := range documented {
		d = strings.TrimSuffix(d, ".*")
		documented[i] = d
		if !paths[d] {
			t.Errorf("README documents %s, which values.yaml lacks", d)
		}
	}
	slices.Sort(leaves)
	for _, leaf := range leaves {
		if !slices.ContainsFunc(documented, func(d string) bool { return leaf == d || strings.HasPrefix(leaf, d+".") }) {
			t.Errorf("values.yaml has %s, which README's values table does not document", leaf)
		}
	}
}
