package main

import (
	"context"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/exospherehost/exo-alerts/internal/config"
)

// runOut runs the command line and returns what it printed on stdout and
// stderr (usage goes to stderr), so tests using it are not parallel.
func runOut(t *testing.T, args ...string) (string, error) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, stderr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = w, w
	done := make(chan []byte)
	go func() {
		out, _ := io.ReadAll(r)
		done <- out
	}()
	runErr := run(context.Background(), args)
	os.Stdout, os.Stderr = stdout, stderr
	_ = w.Close()
	out := <-done
	_ = r.Close()
	return string(out), runErr
}

// subcommands are those with a -h of their own.
var subcommands = []string{
	"apikey create", "apikey list", "apikey revoke", "keyring generate", "keyring reencrypt",
	"quarantine list", "quarantine replay", "rollout list", "rollout set", "rollout clear", "rollout default", "rollout history",
	"quota list", "quota set", "quota clear", "migrate up",
}

var (
	envHeader = regexp.MustCompile(`(?m)^Environment \(docs/operations.md, "Environment variables"\):$`)
	envLine   = regexp.MustCompile(`(?m)^  ([A-Z][A-Z0-9_]+)(?: \((.*)\))?\n    \t(.+)$`)
	flagLine  = regexp.MustCompile(`(?m)^  -[a-z]`)
)

// TestHelpListsTheVariablesEachCommandReads: `exo-alerts <command> -h`
// succeeds for every command and subcommand and lists, after its flags,
// exactly the variables vars.go says it reads (which
// TestEveryVariableIsDeclared checks against the code), each with its
// meaning, its default and whether the command requires it.
func TestHelpListsTheVariablesEachCommandReads(t *testing.T) {
	top := regexp.MustCompile(`(?m)^  ([a-z]+)\s{2,}`).FindAllStringSubmatch(usage, -1)
	var commands []string
	for _, m := range top {
		commands = append(commands, m[1])
	}
	if len(commands) < 10 {
		t.Fatalf("read %d commands from the usage: %v", len(commands), commands)
	}
	commands = append(commands, subcommands...)
	for _, v := range config.Vars() {
		for _, c := range v.Commands {
			if !slices.Contains(commands, c) {
				t.Errorf("vars.go: %s is read by %q, whose -h this test does not run", v.Name, c)
			}
		}
	}
	out, err := runOut(t, "-h")
	if err != nil || !strings.Contains(out, `"exo-alerts <command> -h"`) || !strings.Contains(out, "the variables it reads") {
		t.Errorf("exo-alerts -h: %v; it does not point at <command> -h for the variables:\n%s", err, out)
	}
	for _, c := range commands {
		t.Run(c, func(t *testing.T) {
			out, err := runOut(t, append(strings.Fields(c), "-h")...)
			if err != nil {
				t.Fatalf("exo-alerts %s -h: %v\n%s", c, err, out)
			}
			want := config.VarsOf(c)
			loc := envHeader.FindStringIndex(out)
			if len(want) == 0 {
				if loc != nil || envLine.MatchString(out) {
					t.Errorf("exo-alerts %s -h lists variables; vars.go says it reads none:\n%s", c, out)
				}
				return
			}
			if loc == nil {
				t.Fatalf("exo-alerts %s -h has no environment section:\n%s", c, out)
			}
			if f := flagLine.FindAllStringIndex(out, -1); len(f) > 0 && f[len(f)-1][0] > loc[0] {
				t.Errorf("exo-alerts %s -h: a flag after the environment section:\n%s", c, out)
			}
			got := envLine.FindAllStringSubmatch(out[loc[1]:], -1)
			var names, wantNames []string
			for _, m := range got {
				names = append(names, m[1])
			}
			for _, v := range want {
				wantNames = append(wantNames, v.Name)
			}
			if !slices.Equal(names, wantNames) {
				t.Fatalf("exo-alerts %s -h lists %v\nvars.go says it reads %v", c, names, wantNames)
			}
			for i, v := range want {
				notes, help := got[i][2], got[i][3]
				if help != v.Help {
					t.Errorf("%s: %s: %q, want its Help %q", c, v.Name, help, v.Help)
				}
				if strings.Contains(notes, "required") != v.RequiredBy(c) {
					t.Errorf("%s: %s (%s): required by this command: %v", c, v.Name, notes, v.RequiredBy(c))
				}
				if d := strings.ReplaceAll(v.Default, "`", ""); d != "" && !strings.Contains(notes, "default: "+d) {
					t.Errorf("%s: %s (%s) does not show its default %q", c, v.Name, notes, d)
				}
			}
		})
	}
}

// TestRequiredVariables: with none of the variables set, each command that
// requires some refuses to start naming exactly those vars.go marks
// required for it (and connects to nothing).
func TestRequiredVariables(t *testing.T) {
	for _, v := range config.Vars() {
		t.Setenv(v.Name, "") // blank is unset
	}
	runs := [][]string{{"controlplane"}, {"processor"}, {"dispatcher"}, {"recorder"}, {"migrate", "status"}, {"apikey", "list"},
		{"keyring", "reencrypt"}, {"quarantine", "list"}, {"rollout", "list"}, {"quota", "list"}}
	notSet := regexp.MustCompile(`\b([A-Z][A-Z0-9_]+) is not set`)
	for _, v := range config.Vars() {
		for _, c := range v.Required {
			if !slices.ContainsFunc(runs, func(r []string) bool { return v.RequiredBy(strings.Join(r, " ")) }) {
				t.Errorf("vars.go: %s is required by %q, which this test does not run", v.Name, c)
			}
		}
	}
	for _, args := range runs {
		c := strings.Join(args, " ")
		_, err := runOut(t, args...)
		if err == nil {
			t.Errorf("exo-alerts %s started without any variable set", c)
			continue
		}
		var got, want []string
		for _, m := range notSet.FindAllStringSubmatch(err.Error(), -1) {
			got = append(got, m[1])
		}
		for _, v := range config.VarsOf(c) {
			if v.RequiredBy(c) {
				want = append(want, v.Name)
			}
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("exo-alerts %s without variables: %v\nmissing %v; vars.go says it requires %v", c, err, got, want)
		}
	}
}
