package archtest

import (
	"fmt"
	"strings"
)

// Module is the module path; only its packages are checked.
const Module = "github.com/exospherehost/exo-alerts"

// services are the top-level directories that hold a service.
var services = map[string]bool{"controlplane": true, "processor": true, "dispatcher": true, "recorder": true}

// leaves are the top-level packages that import nothing of the module.
var leaves = map[string]bool{"schemas": true, "signature": true}

// public are the top-level packages outside code imports, with the only
// package of the module each may import: what they pull into an outside
// program stays small (producer: the event types and franz-go).
var public = map[string]string{"producer": "schemas"}

// Package is the part of `go list -json` output that Check reads.
type Package struct {
	ImportPath   string
	Imports      []string
	TestImports  []string
	XTestImports []string
}

// Edge is one import, with paths relative to Module ("controlplane",
// "internal/ssrf"). Test is true when only test files import it.
type Edge struct {
	From, To string
	Test     bool
}

func (e Edge) String() string {
	if e.Test {
		return e.From + " -> " + e.To + " (test files)"
	}
	return e.From + " -> " + e.To
}

// Violation is an edge that breaks a rule.
type Violation struct {
	Edge
	Rule string
}

func (v Violation) String() string { return fmt.Sprintf("%s: %s", v.Edge, v.Rule) }

// Exception allows one edge that breaks a rule today, and says why.
type Exception struct {
	Edge
	Why string
}

// Check returns the edges of pkgs that break a rule and are not excepted,
// and the exceptions whose edge no longer exists (so the list shrinks when
// the code is fixed).
func Check(pkgs []Package, allowed []Exception) (violations []Violation, stale []Exception) {
	seen := map[Edge]bool{}
	excepted := map[Edge]bool{}
	for _, e := range allowed {
		excepted[e.Edge] = true
	}
	for _, p := range pkgs {
		from, ok := rel(p.ImportPath)
		if !ok {
			continue
		}
		prod := map[string]bool{}
		for _, imp := range p.Imports {
			prod[imp] = true
		}
		check := func(imports []string, test bool) {
			for _, imp := range imports {
				to, ok := rel(imp)
				if !ok && (!test || !prod[imp]) && public[top(from)] != "" && !stdOrFranz(imp) {
					e := Edge{From: from, To: imp, Test: test}
					seen[e] = true
					if !excepted[e] {
						violations = append(violations, Violation{Edge: e, Rule: top(from) + " may import only the standard library and franz-go outside the module"})
					}
				}
				if !ok || (test && prod[imp]) {
					continue
				}
				e := Edge{From: from, To: to, Test: test}
				seen[e] = true
				if r := rule(from, to); r != "" && !excepted[e] {
					violations = append(violations, Violation{Edge: e, Rule: r})
				}
			}
		}
		check(p.Imports, false)
		check(p.TestImports, true)
		check(p.XTestImports, true)
	}
	for _, e := range allowed {
		if !seen[e.Edge] {
			stale = append(stale, e)
		}
	}
	return violations, stale
}

// rule names the rule the import from -> to breaks, or returns "".
func rule(from, to string) string {
	ft, tt := top(from), top(to)
	switch {
	case leaves[ft] && tt != ft:
		return ft + " must import no other package of the module"
	case public[ft] != "" && tt != ft && tt != public[ft]:
		return ft + " must import no package of the module but " + public[ft]
	case services[ft] && services[tt] && ft != tt:
		return "a service imports another service's package"
	case ft == "internal" && services[tt]:
		return "a package under internal/ imports a service"
	}
	return ""
}

// stdOrFranz reports whether the import path outside the module is of the
// standard library (no dot in its first element) or of franz-go.
func stdOrFranz(path string) bool {
	return !strings.Contains(top(path), ".") || strings.HasPrefix(path, "github.com/twmb/franz-go/")
}

// rel returns path relative to Module, and whether it is in the module.
func rel(path string) (string, bool) {
	if path == Module {
		return ".", true
	}
	r, ok := strings.CutPrefix(path, Module+"/")
	return r, ok
}

func top(path string) string {
	t, _, _ := strings.Cut(path, "/")
	return t
}
