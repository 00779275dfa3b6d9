package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"testing"
)

// knownExceptions are the edges allowed to break a rule: none. Do not add
// to this list — fix the import instead.
var knownExceptions = []Exception{}

// TestImportGraph checks the real import graph of the module.
func TestImportGraph(t *testing.T) {
	t.Parallel()
	pkgs := loadGraph(t)
	if len(pkgs) < 10 {
		t.Fatalf("go list returned %d packages of %s; expected the whole module", len(pkgs), Module)
	}
	violations, stale := Check(pkgs, knownExceptions)
	for _, v := range violations {
		t.Errorf("forbidden import %s", v)
	}
	for _, e := range stale {
		t.Errorf("exception %s no longer occurs: remove it from knownExceptions", e.Edge)
	}
}

// loadGraph runs `go list -deps -json` over the module and keeps its
// packages.
func loadGraph(t *testing.T) []Package {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-json", Module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []Package
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p Package
		err := dec.Decode(&p)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		if _, ok := rel(p.ImportPath); ok {
			pkgs = append(pkgs, p)
		}
	}
	return pkgs
}

func TestCheckRules(t *testing.T) {
	t.Parallel()
	m := func(p string) string { return Module + "/" + p }
	cases := []struct {
		name      string
		pkg       Package
		allowed   []Exception
		want      []string // violations, as Edge.String()
		wantStale []string
	}{
		{name: "cmd composes all services", pkg: Package{ImportPath: m("cmd/exo-alerts"), Imports: []string{m("controlplane"), m("processor"), m("dispatcher"), m("internal/config")}}},
		{name: "service uses shared and own packages", pkg: Package{ImportPath: m("processor"), Imports: []string{"fmt", "github.com/twmb/franz-go/pkg/kgo", m("processor/engine"), m("internal/condition"), m("schemas"), m("signature")}}},
		{name: "internal uses internal", pkg: Package{ImportPath: m("internal/ktable"), Imports: []string{m("internal/kafka"), m("schemas")}}},
		{name: "leaf uses only std and itself", pkg: Package{ImportPath: m("schemas"), Imports: []string{"encoding/json"}, XTestImports: []string{m("schemas")}}},
		{name: "service imports another service", pkg: Package{ImportPath: m("processor"), Imports: []string{m("dispatcher")}}, want: []string{"processor -> dispatcher"}},
		{name: "recorder test imports the control plane", pkg: Package{ImportPath: m("recorder"), Imports: []string{m("internal/store")}, XTestImports: []string{m("recorder"), m("controlplane")}}, want: []string{"recorder -> controlplane (test files)"}},
		{name: "service sub-package imports another service's sub-package", pkg: Package{ImportPath: m("processor/engine"), Imports: []string{m("controlplane/store")}}, want: []string{"processor/engine -> controlplane/store"}},
		{name: "test files count", pkg: Package{ImportPath: m("dispatcher"), TestImports: []string{m("processor")}}, want: []string{"dispatcher -> processor (test files)"}},
		{name: "internal imports a service", pkg: Package{ImportPath: m("internal/keyring"), Imports: []string{m("controlplane")}}, want: []string{"internal/keyring -> controlplane"}},
		{name: "schemas imports internal", pkg: Package{ImportPath: m("schemas"), Imports: []string{m("internal/kafka")}}, want: []string{"schemas -> internal/kafka"}},
		{name: "producer uses schemas and franz-go", pkg: Package{ImportPath: m("producer"), Imports: []string{"github.com/twmb/franz-go/pkg/kgo", m("schemas")}, XTestImports: []string{m("producer"), m("schemas")}}},
		{name: "producer imports internal", pkg: Package{ImportPath: m("producer"), Imports: []string{m("schemas"), m("internal/kafka")}}, want: []string{"producer -> internal/kafka"}},
		{name: "producer imports another client library", pkg: Package{ImportPath: m("producer"), Imports: []string{"github.com/IBM/sarama", "golang.org/x/sync/errgroup"}}, want: []string{"producer -> github.com/IBM/sarama", "producer -> golang.org/x/sync/errgroup"}},
		{name: "producer test imports a service", pkg: Package{ImportPath: m("producer"), XTestImports: []string{m("processor")}}, want: []string{"producer -> processor (test files)"}},
		{name: "signature imports schemas", pkg: Package{ImportPath: m("signature"), XTestImports: []string{m("schemas")}}, want: []string{"signature -> schemas (test files)"}},
		{
			name:    "an exception allows only its own edge",
			pkg:     Package{ImportPath: m("internal/devmode"), Imports: []string{m("controlplane"), m("processor")}},
			allowed: []Exception{{Edge: Edge{From: "internal/devmode", To: "controlplane"}}},
			want:    []string{"internal/devmode -> processor"},
		},
		{
			name:      "an exception that no longer occurs is reported",
			pkg:       Package{ImportPath: m("internal/devmode"), Imports: []string{m("internal/config")}},
			allowed:   []Exception{{Edge: Edge{From: "internal/devmode", To: "controlplane"}}},
			wantStale: []string{"internal/devmode -> controlplane"},
		},
		{
			name:    "a production exception does not allow a test edge",
			pkg:     Package{ImportPath: m("controlplane"), TestImports: []string{m("dispatcher")}},
			allowed: []Exception{{Edge: Edge{From: "controlplane", To: "dispatcher"}}},
			want:    []string{"controlplane -> dispatcher (test files)"}, wantStale: []string{"controlplane -> dispatcher"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			violations, stale := Check([]Package{tc.pkg}, tc.allowed)
			var got, gotStale []string
			for _, v := range violations {
				got = append(got, v.Edge.String())
			}
			for _, e := range stale {
				gotStale = append(gotStale, e.String())
			}
			if !equal(got, tc.want) {
				t.Errorf("violations = %q, want %q", got, tc.want)
			}
			if !equal(gotStale, tc.wantStale) {
				t.Errorf("stale exceptions = %q, want %q", gotStale, tc.wantStale)
			}
		})
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
