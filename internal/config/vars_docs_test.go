package config_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/exospherehost/exo-alerts/internal/config"
)

// The documents holding the generated table, between these markers.
var envDocs = []string{"README.md", "docs/operations.md"}

const (
	envBegin = "<!-- env:begin"
	envEnd   = "<!-- env:end -->"
)

// envTable is the Markdown table of every variable, for the document at
// doc (links in the declaration are relative to the repository's root).
func envTable(doc string) string {
	var b strings.Builder
	b.WriteString("| variable | default | read by | meaning |\n|---|---|---|---|\n")
	cell := func(s string) string {
		s = strings.ReplaceAll(s, "|", `\|`)
		if doc == "docs/operations.md" {
			s = strings.ReplaceAll(s, "](docs/operations.md#", "](#")
			s = strings.ReplaceAll(s, "](docs/", "](")
		}
		return s
	}
	for _, v := range config.Vars() {
		def := v.Default
		if def == "" {
			def = "—"
		}
		var readBy []string
		if len(v.Required) > 0 {
			readBy = append(readBy, strings.Join(v.Required, ", ")+" (required)")
		}
		var rest []string
		for _, c := range v.Commands {
			if !v.RequiredBy(c) {
				rest = append(rest, c)
			}
		}
		if len(rest) > 0 {
			readBy = append(readBy, strings.Join(rest, ", "))
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", v.Name, cell(def), strings.Join(readBy, "; "), cell(v.Doc))
	}
	return b.String()
}

// TestEnvDocsAreCommitted: the variables' tables in the README and the
// operations guide are the declaration's; UPDATE_ENV_DOCS=1 (make
// env-docs) rewrites them.
func TestEnvDocsAreCommitted(t *testing.T) {
	update := os.Getenv("UPDATE_ENV_DOCS") == "1"
	if !update {
		t.Parallel()
	}
	for _, doc := range envDocs {
		path := filepath.Join(root, doc)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		src := string(b)
		i := strings.Index(src, envBegin)
		if i < 0 {
			t.Errorf("%s has no %q … %q markers for the variables' table", doc, envBegin, envEnd)
			continue
		}
		start := i + strings.Index(src[i:], "\n") + 1
		end := strings.Index(src[start:], envEnd)
		if end < 0 {
			t.Errorf("%s: %q without %q", doc, envBegin, envEnd)
			continue
		}
		end += start
		want := envTable(doc)
		if src[start:end] == want {
			continue
		}
		if update {
			if err := os.WriteFile(path, []byte(src[:start]+want+src[end:]), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("rewrote the variables' table of %s", doc)
			continue
		}
		t.Errorf("%s: the variables' table is not internal/config/vars.go's: run make env-docs\n got:\n%s\nwant:\n%s", doc, src[start:end], want)
	}
}
