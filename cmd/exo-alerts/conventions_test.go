package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/internal/config"
	"github.com/exospherehost/exo-alerts/internal/keyring"
	"github.com/exospherehost/exo-alerts/internal/workload"
	"github.com/exospherehost/exo-alerts/processor"
	"github.com/exospherehost/exo-alerts/schemas"
)

// The command-line conventions, checked on the real binary as a shell
// runs it: what it prints on stdout and stderr, and its exit status.
// 0: done (or the help asked for); 1: the command failed; 2: the command
// line is wrong, said once on stderr, before anything is read or sent.

var binary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// TestMain removes the binary the tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	if binary.dir != "" {
		_ = os.RemoveAll(binary.dir)
	}
	os.Exit(code)
}

// exoBinary builds the binary once for the tests that run it (with -race
// when the tests are: the packages are in the build cache then).
func exoBinary(t *testing.T) string {
	t.Helper()
	binary.once.Do(func() {
		binary.dir, binary.err = os.MkdirTemp("", "exo-alerts-cli-")
		if binary.err != nil {
			return
		}
		binary.path = filepath.Join(binary.dir, "exo-alerts")
		args := []string{"build", "-o", binary.path}
		if raceBuild() {
			args = append(args, "-race")
		}
		if out, err := exec.Command("go", append(args, ".")...).CombinedOutput(); err != nil {
			binary.err = errors.New("go build: " + err.Error() + "\n" + string(out))
		}
	})
	if binary.err != nil {
		t.Fatal(binary.err)
	}
	return binary.path
}

// run is one run of the binary.
type result struct {
	stdout, stderr string
	code           int
}

// runBinary runs the binary with args and env added to an environment
// without any of the variables it reads (HOME a fresh directory). A run
// that does not end within a minute is killed and fails the test: a
// command that should have refused its command line started instead.
func runBinary(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, exoBinary(t), args...)
	cmd.Env = append(cleanEnv(t), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	switch {
	case ctx.Err() != nil:
		t.Fatalf("exo-alerts %q was still running after a minute (killed)\nstdout:\n%s\nstderr:\n%s", args, r.stdout, r.stderr)
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("exo-alerts %q: %v", args, err)
	}
	return r
}

// cleanEnv is this process's environment without the variables the
// binary reads, and a HOME of its own (dev mode writes under it).
func cleanEnv(t *testing.T) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if name == "HOME" || slices.ContainsFunc(config.Vars(), func(v config.Var) bool { return v.Name == name }) {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+t.TempDir())
}

// trap is a TCP listener standing in for Postgres and Kafka: it counts
// the connections it is offered and closes them, so a test proves a
// command connected to nothing.
type trap struct {
	addr  string
	conns atomic.Int64
}

func newTrap(t *testing.T) *trap {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr := &trap{addr: l.Addr().String()}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			tr.conns.Add(1)
			_ = c.Close()
		}
	}()
	t.Cleanup(func() { _ = l.Close(); <-done })
	return tr
}

// env points every service the binary may reach at the trap, with a
// well-formed key ring, so that only the command line can fail a run.
func (tr *trap) env() []string {
	return []string{
		"DATABASE_URL=postgres://exo@" + tr.addr + "/exo?connect_timeout=5", "KAFKA_BROKERS=" + tr.addr,
		"EXO_KEYRING=" + keyring.Generate("k1"),
	}
}

// commandLines are the commands and subcommands, each with arguments it
// accepts (the same as TestHelpListsTheVariablesEachCommandReads's).
var commandLines = [][]string{
	{"dev"}, {"controlplane"}, {"processor"}, {"dispatcher"}, {"recorder"},
	{"migrate", "up"}, {"migrate", "down"}, {"migrate", "status"},
	{"emit"}, {"validate", "-"}, {"version"},
	{"apikey", "create", "--tenant", "acme"}, {"apikey", "list"}, {"apikey", "revoke", "key_abcdefghijklmnopqrst"},
	{"keyring", "generate"}, {"keyring", "reencrypt"},
	{"rollout", "list"}, {"rollout", "set", "acme", "ga"}, {"rollout", "clear", "acme"}, {"rollout", "default", "ga"}, {"rollout", "history"},
	{"quota", "list"}, {"quota", "set", "acme", "5"}, {"quota", "clear", "acme"},
	{"quarantine", "list"}, {"quarantine", "replay", "7"}, {"quarantine", "replay", "outbox:7"},
}

// command is the name of a command line's command ("rollout set").
func command(line []string) string {
	n := 1
	if len(line) > 1 && !strings.HasPrefix(line[1], "-") && !slices.Contains([]string{"validate"}, line[0]) {
		n = 2
	}
	return strings.Join(line[:n], " ")
}

// Every command and subcommand answers -h, --help and -help with its
// usage and the environment variables it reads, on stdout, exit status 0;
// so do the commands with subcommands and the binary itself.
func TestEveryCommandHelpExitsZero(t *testing.T) {
	t.Parallel()
	lines := [][]string{{}, {"apikey"}, {"keyring"}, {"rollout"}, {"quota"}, {"quarantine"}, {"migrate"}}
	for _, l := range commandLines {
		if name := strings.Fields(command(l)); !slices.ContainsFunc(lines, func(x []string) bool { return slices.Equal(x, name) }) {
			lines = append(lines, name)
		}
	}
	for _, line := range lines {
		for _, h := range []string{"--help", "-h", "-help"} {
			args := append(slices.Clone(line), h)
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				t.Parallel()
				r := runBinary(t, nil, args...)
				if r.code != 0 || r.stderr != "" {
					t.Fatalf("exit %d, stderr %q; want 0 and nothing on stderr", r.code, r.stderr)
				}
				if !strings.Contains(strings.ToLower(r.stdout), "usage") {
					t.Errorf("no usage on stdout:\n%s", r.stdout)
				}
				if len(line) == 0 {
					return
				}
				for _, v := range config.VarsOf(strings.Join(line, " ")) {
					if !strings.Contains(r.stdout, "\n  "+v.Name) {
						t.Errorf("does not list %s, which it reads:\n%s", v.Name, r.stdout)
					}
				}
			})
		}
	}
}

// An argument a command does not take is refused (exit status 2, the
// argument named once) before the command reads its environment or
// connects: `dev extra --addr X` never starts dev mode.
func TestExtraArgumentExitsTwo(t *testing.T) {
	t.Parallel()
	for _, line := range commandLines {
		for _, args := range [][]string{append(slices.Clone(line), "extra"), append(slices.Clone(line), "extra", "--addr", "127.0.0.1:1")} {
			if line[0] == "validate" {
				continue // its arguments are files: TestValidateStdinBatchAndDump
			}
			if args[len(args)-2] == "--addr" && line[0] != "dev" && line[0] != "controlplane" {
				continue
			}
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				t.Parallel()
				tr := newTrap(t)
				r := runBinary(t, tr.env(), args...)
				if r.code != 2 || strings.Count(r.stderr, `"extra"`) != 1 || r.stdout != "" {
					t.Errorf("exit %d, want 2 with \"extra\" named once on stderr and nothing on stdout\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
				}
				if n := tr.conns.Load(); n != 0 {
					t.Errorf("%d connection(s) to Postgres or Kafka before the command line was refused", n)
				}
			})
		}
	}
}

// An unknown flag is a usage error, printed once: no second copy, no
// usage dumped after it.
func TestBadFlagExitsTwoPrintedOnce(t *testing.T) {
	t.Parallel()
	lines := append(slices.Clone(commandLines), []string{"validate"})
	for _, line := range lines {
		args := append(slices.Clone(line), "--bogus")
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			tr := newTrap(t)
			r := runBinary(t, tr.env(), args...)
			if r.code != 2 || r.stdout != "" {
				t.Errorf("exit %d, stdout %q; want 2 and nothing on stdout", r.code, r.stdout)
			}
			if strings.Count(r.stderr, "bogus") != 1 || strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "exo-alerts: "+command(line)+": ") {
				t.Errorf("stderr: want one line naming the command and the flag once:\n%s", r.stderr)
			}
			if n := tr.conns.Load(); n != 0 {
				t.Errorf("%d connection(s) to Postgres or Kafka", n)
			}
		})
	}
}

// No command, an unknown command, and a command with subcommands but none
// given: usage on stderr, exit status 2.
func TestNoOrUnknownCommandExitsTwo(t *testing.T) {
	t.Parallel()
	cases := []struct {
		args []string
		want string
	}{
		{nil, "Commands:\n  dev "},
		{[]string{"nope"}, `unknown command "nope"`},
		{[]string{"--nope"}, `unknown command "--nope"`},
		{[]string{"apikey"}, "usage: exo-alerts apikey create"},
		{[]string{"apikey", "delete"}, `unknown subcommand "delete"`},
		{[]string{"keyring"}, "usage: exo-alerts keyring generate"},
		{[]string{"keyring", "rotate"}, `unknown subcommand "rotate"`},
		{[]string{"migrate"}, "usage: exo-alerts migrate up|down|status"},
		{[]string{"migrate", "sideways"}, `unknown subcommand "sideways"`},
		{[]string{"rollout"}, "usage: exo-alerts rollout list"},
		{[]string{"rollout", "--limit", "5"}, "usage: exo-alerts rollout list"},
		{[]string{"rollout", "flip"}, `unknown subcommand "flip"`},
		{[]string{"quota"}, "usage: exo-alerts quota list"},
		{[]string{"quota", "raise"}, `unknown subcommand "raise"`},
		{[]string{"quarantine"}, "usage: exo-alerts quarantine list"},
		{[]string{"quarantine", "replay"}, "quarantine replay: missing argument"},
		{[]string{"rollout", "set", "acme"}, "rollout set: missing argument"},
		{[]string{"apikey", "revoke"}, "apikey revoke: missing argument"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			t.Parallel()
			refusedUnconnected(t, c.args, c.want)
		})
	}
}

// refusedUnconnected runs the binary with args, Postgres and Kafka at a
// trap, and checks that it exits 2 with want in its one error line on
// stderr, nothing on stdout, and no connection made. It returns stderr.
func refusedUnconnected(t *testing.T, args []string, want string) string {
	t.Helper()
	tr := newTrap(t)
	r := runBinary(t, tr.env(), args...)
	if r.code != 2 || r.stdout != "" || !strings.Contains(r.stderr, want) || strings.Count(r.stderr, "exo-alerts: ") != 1 {
		t.Errorf("exit %d; want 2, %q once on stderr and nothing on stdout\nstdout:\n%s\nstderr:\n%s", r.code, want, r.stdout, r.stderr)
	}
	if n := tr.conns.Load(); n != 0 {
		t.Errorf("%d connection(s) to Postgres or Kafka", n)
	}
	return r.stderr
}

// Every value is checked before anything is sent, as the API and the
// processor would check it: exit status 2 with what is wrong and what is
// wanted, and no connection to Postgres or Kafka (both are the trap).
func TestBadValuesRefusedBeforeConnecting(t *testing.T) {
	t.Parallel()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"emit", "--type", "nope"}, `emit: --type "nope": want one of workflow.run.started, workflow.run.succeeded, workflow.run.failed`},
		{[]string{"emit", "--type=workflow.run.retried"}, "want one of workflow.run.started, workflow.run.succeeded, workflow.run.failed"},
		{[]string{"emit", "--tenant", "a b"}, `emit: --tenant "a b": a tenant id is 1–63 letters`},
		{[]string{"emit", "--tenant", strings.Repeat("t", 64)}, "a tenant id is 1–63 letters"},
		{[]string{"emit", "--count", "0"}, "emit: --count 0: want 1–100000"},
		{[]string{"emit", "--brokers", "kafka"}, `emit: --brokers (default: KAFKA_BROKERS) "kafka": want comma-separated host:port`},
		{[]string{"emit", "--brokers", " , "}, `emit: --brokers (default: KAFKA_BROKERS) " , ": want comma-separated host:port`},
		{[]string{"emit", "--duration", "-1s"}, "emit: --duration -1s"},
		{[]string{"emit", "--label", "nokey"}, `invalid value "nokey" for flag -label: want key=value`},
		{[]string{"emit", "--label", "env=" + strings.Repeat("x", 300)}, "emit: the event would be invalid: schema (1 problem)\n  /data/labels/env: must be at most 256 characters long"},
		{[]string{"emit", "--workflow", ""}, "/data/workflow/name: must not be empty"},
		{[]string{"emit", "--label", strings.Repeat("k", 64) + "=v"}, "emit: the event would be invalid: schema (1 problem)\n  /data/labels/" + strings.Repeat("k", 64)},
		{[]string{"apikey", "create", "--tenant", "a/b"}, `apikey create: --tenant "a/b": a tenant id`},
		{[]string{"apikey", "create", "--tenant", "acme", "--role", "root"}, `apikey create: --role "root": want one of admin, viewer, ingest, operator`},
		{[]string{"apikey", "create", "--tenant", "acme", "--name", " "}, `apikey create: --name " "`},
		{[]string{"apikey", "create"}, "apikey create: --tenant is required"},
		{[]string{"apikey", "create", "--role", "operator", "--tenant", "acme"}, "an operator key belongs to no tenant"},
		{[]string{"apikey", "list", "--tenant", "-x"}, `apikey list: --tenant "-x": a tenant id`},
		{[]string{"apikey", "revoke", "whk_abcdefghijklmnopqrst"}, `apikey revoke: "whk_abcdefghijklmnopqrst" is not an API key id`},
		{[]string{"keyring", "generate", "--id", "k 1"}, `keyring generate: --id "k 1": want 1–32 letters`},
		{[]string{"rollout", "set", "acme", "GA"}, `rollout set: state "GA": want off, beta or ga`},
		{[]string{"rollout", "set", "ac me", "ga"}, `rollout set: tenant "ac me": a tenant id`},
		{[]string{"rollout", "clear", "ac/me"}, `rollout clear: tenant "ac/me": a tenant id`},
		{[]string{"rollout", "default", "on"}, `rollout default: state "on": want off, beta or ga`},
		{[]string{"rollout", "list", "--limit", "0"}, "rollout list: --limit 0: want 1–100000"},
		{[]string{"rollout", "set", "acme", "ga", "--wait", "-1s"}, "rollout set: --wait -1s"},
		{[]string{"quota", "set", "acme", "lots"}, `quota set: "lots" is not a number of alerts per minute`},
		{[]string{"quota", "set", "acme", "-3"}, `quota set: "-3" is not a number of alerts per minute`},
		{[]string{"quota", "set", "ac!me", "3"}, `quota set: tenant "ac!me": a tenant id`},
		{[]string{"quota", "clear", "ac me"}, `quota clear: tenant "ac me": a tenant id`},
		{[]string{"quarantine", "replay", "x"}, `quarantine replay: "x" is not the id of a quarantined record`},
		{[]string{"quarantine", "replay", "outbox:-1"}, `quarantine replay: "outbox:-1" is not the id`},
		{[]string{"quarantine", "list", "--limit", "0"}, "quarantine list: --limit 0: want 1–10000"},
		{[]string{"dev", "--addr", "X"}, `dev: --addr "X": want host:port`},
		{[]string{"dev", "--kafka-port", "70000"}, "dev: --kafka-port 70000: want 1–65535"},
		{[]string{"controlplane", "--addr", "127.0.0.1:http"}, `controlplane: --addr "127.0.0.1:http": want host:port`},
		{[]string{"processor", "--metrics-addr", "127.0.0.1:99999"}, `processor: --metrics-addr "127.0.0.1:99999": want host:port`},
		{[]string{"recorder", "--metrics-addr", "nohost"}, `recorder: --metrics-addr "nohost": want host:port`},
		{[]string{"dispatcher", "--attempt-timeout", "1ms"}, "dispatcher: --attempt-timeout 1ms: want 100ms–1h0m0s"},
		{[]string{"dispatcher", "--attempt-timeout", "soon"}, `invalid value "soon" for flag -attempt-timeout`},
		{[]string{"validate", "--format", "xml"}, `validate: -format "xml": want auto, event, batch or dump`},
		{[]string{"version", "--version"}, "version: flag provided but not defined: -version"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			t.Parallel()
			stderr := refusedUnconnected(t, c.args, c.want)
			if strings.Contains(stderr, "reachable") || strings.Contains(stderr, "connect") {
				t.Errorf("a connection error, not the command line's:\n%s", stderr)
			}
		})
	}
}

// emit --type nope with KAFKA_BROKERS at a closed port fails on the type,
// not on the connection: it never gets that far.
func TestEmitBadTypeClosedBroker(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	_ = l.Close()
	r := runBinary(t, []string{"KAFKA_BROKERS=" + closed}, "emit", "--type", "nope")
	want := "exo-alerts: emit: --type \"nope\": want one of workflow.run.started, workflow.run.succeeded, workflow.run.failed\n"
	if r.code != 2 || r.stderr != want || r.stdout != "" {
		t.Errorf("exit %d, stderr %q, stdout %q; want 2 and %q", r.code, r.stderr, r.stdout, want)
	}
}

// Flags may follow the arguments ("rollout set acme ga --wait 5s"), and
// "--" ends the flags; the command line then passes and the command goes
// on to read its environment (here: refused, nothing set, exit status 1).
func TestFlagsAfterArguments(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"rollout", "set", "acme", "ga", "--wait", "5s"},
		{"rollout", "--wait=5s", "set", "acme", "ga"},
		{"quota", "set", "acme", "5", "--wait", "0s"},
		{"quota", "set", "--", "acme", "5"},
		{"apikey", "list", "--tenant", "acme"},
		{"quarantine", "replay", "outbox:3", "--limit", "5"},
		{"migrate", "status"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			r := runBinary(t, nil, args...)
			if r.code != 1 || r.stderr != "exo-alerts: configuration: DATABASE_URL is not set\n" {
				t.Errorf("exit %d, stderr %q; want the command line accepted and 1 for the missing DATABASE_URL", r.code, r.stderr)
			}
		})
	}
}

// parse reads flags wherever they are: before, between and after the
// arguments; "--" ends them; a negative number no flag is named after is
// an argument; a flag's value may start with a dash.
func TestParseFlagsAnywhere(t *testing.T) {
	t.Parallel()
	cases := []struct {
		args       []string
		wait, name string
		verbose    bool
		pos        []string
	}{
		{[]string{"set", "acme", "ga"}, "", "", false, []string{"set", "acme", "ga"}},
		{[]string{"set", "acme", "ga", "--wait", "5s"}, "5s", "", false, []string{"set", "acme", "ga"}},
		{[]string{"-v", "set", "--name=x", "acme", "-wait", "1s", "ga"}, "1s", "x", true, []string{"set", "acme", "ga"}},
		{[]string{"set", "acme", "-3", "--name", "-n-"}, "", "-n-", false, []string{"set", "acme", "-3"}},
		{[]string{"set", "--", "--wait", "-v"}, "", "", false, []string{"set", "--wait", "-v"}},
		{[]string{"-", "-v=false"}, "", "", false, []string{"-"}},
	}
	for _, c := range cases {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		wait := fs.String("wait", "", "")
		name := fs.String("name", "", "")
		verbose := fs.Bool("v", false, "")
		if err := parse(fs, c.args); err != nil {
			t.Errorf("%q: %v", c.args, err)
			continue
		}
		if *wait != c.wait || *name != c.name || *verbose != c.verbose || !slices.Equal(fs.Args(), c.pos) {
			t.Errorf("%q: wait %q name %q v %v args %q; want %q %q %v %q", c.args, *wait, *name, *verbose, fs.Args(), c.wait, c.name, c.verbose, c.pos)
		}
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.String("wait", "", "")
	var ee *exitError
	if err := parse(fs, []string{"set", "--wait"}); !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(ee.msg, "flag needs an argument: -wait") {
		t.Errorf("a flag without its value: %v, want a usage error", err)
	}
}

// The CLI's tenant check says yes exactly when the processor's decoder
// (the event schema's tenantId) does.
func TestTenantCheckAgreesWithTheProcessor(t *testing.T) {
	t.Parallel()
	for _, tenant := range []string{"acme", "a", "A1", "1a", "a.b_c-d", strings.Repeat("t", 63), strings.Repeat("t", 64),
		"", "-a", ".a", "_a", "a b", "a/b", "a:b", "ä", "a\x00", "acme!"} {
		rec, err := workload.Record("t.workflow-events", workload.Event(workload.Spec{Tenant: tenant, Type: schemas.TypeRunFailed, WorkflowName: "w"}))
		if err != nil {
			t.Fatal(err)
		}
		ev, _, _ := processor.CheckRecord(rec, processor.CheckOptions{})
		if cli := checkTenant("t", "--tenant", tenant) == nil; cli != (ev != nil) {
			t.Errorf("tenant %q: the CLI accepts it: %v; the processor: %v", tenant, cli, ev != nil)
		}
	}
}
