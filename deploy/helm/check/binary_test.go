package check

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// binDir holds the binary built for the tests; TestMain removes it.
var binDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// binary builds cmd/exo-alerts of the parent module once per test run.
var binary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "exo-alerts-helm-check")
	if err != nil {
		return "", err
	}
	binDir = dir
	bin := filepath.Join(dir, "exo-alerts")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/exo-alerts")
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", &buildError{out: string(out), err: err}
	}
	return bin, nil
})

type buildError struct {
	out string
	err error
}

func (e *buildError) Error() string {
	return "go build ./cmd/exo-alerts: " + e.err.Error() + "\n" + e.out
}
func (e *buildError) Unwrap() error { return e.err }

var flagLine = regexp.MustCompile(`(?m)^\s+-([a-z0-9][a-z0-9-]*)\b`)

// flagsOf returns the flags `exo-alerts <command> [<verb>] -h` lists.
func flagsOf(t *testing.T, command ...string) map[string]bool {
	t.Helper()
	bin, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, append(command, "-h")...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("exo-alerts %s -h: %v\n%s", strings.Join(command, " "), err, out.String())
	}
	flags := map[string]bool{}
	for _, m := range flagLine.FindAllStringSubmatch(out.String(), -1) {
		flags[m[1]] = true
	}
	if len(flags) == 0 {
		t.Fatalf("exo-alerts %s -h lists no flag:\n%s", strings.Join(command, " "), out.String())
	}
	return flags
}

var commandLine = regexp.MustCompile(`(?m)^  ([a-z]+)\s{2,}`)

// commands returns the subcommands `exo-alerts help` lists.
func commands(t *testing.T) map[string]bool {
	t.Helper()
	bin, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "help").CombinedOutput()
	if err != nil {
		t.Fatalf("exo-alerts help: %v\n%s", err, out)
	}
	_, list, ok := strings.Cut(string(out), "Commands:")
	if !ok {
		t.Fatalf("exo-alerts help lists no commands:\n%s", out)
	}
	cmds := map[string]bool{}
	for _, m := range commandLine.FindAllStringSubmatch(list, -1) {
		cmds[m[1]] = true
	}
	return cmds
}

var envLiteral = regexp.MustCompile(`"([A-Z][A-Z0-9_]*)"`)

// sourceEnvNames returns every upper-case string literal in the non-test Go
// files of the parent module: the names the binary can read from its
// environment (config.Env's String/Int/Duration/List and os.Getenv all take
// the name as a literal).
var sourceEnvNames = sync.OnceValues(func() (map[string]bool, error) {
	names := map[string]bool{}
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		return nil, err
	}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root {
				base := d.Name()
				if strings.HasPrefix(base, ".") || base == "testdata" || base == "node_modules" || base == "bin" {
					return filepath.SkipDir
				}
				if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
					return filepath.SkipDir // a nested module is not the binary
				}
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
		for _, m := range envLiteral.FindAllSubmatch(src, -1) {
			names[string(m[1])] = true
		}
		return nil
	})
	return names, err
})
