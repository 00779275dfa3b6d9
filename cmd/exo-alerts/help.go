package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/exospherehost/exo-alerts/internal/config"
)

// exitError ends the binary with code; its message, if any, is printed
// once, by main.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// usageErr is a mistake in the command line (exit status 2): a flag or
// argument that is unknown, missing, extra or malformed. It is found
// before the command reads its environment or connects to anything.
func usageErr(format string, args ...any) error {
	return &exitError{code: 2, msg: fmt.Sprintf(format, args...)}
}

// seeHelp is the hint that ends a usage error of command.
func seeHelp(command string) string {
	return fmt.Sprintf("(exo-alerts %s -h shows its usage)", command)
}

// parse parses a command's flags, which may come before, between or
// after its arguments ("rollout set acme ga --wait 5s"; "--" ends the
// flags), so that fs.Args() are the arguments. -h prints the command's
// usage, its flags and the environment variables it reads (printEnv) on
// stdout and returns flag.ErrHelp, which run turns into success. Any
// other mistake is a usage error (exit status 2), printed once by main:
// the flag package prints nothing itself.
func parse(fs *flag.FlagSet, args []string) error { return parseTo(fs, args, os.Stdout) }

// parseTo is parse printing the help on w.
func parseTo(fs *flag.FlagSet, args []string, w io.Writer) error {
	usage := fs.Usage // the command's own, or flag.NewFlagSet's
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	var pos []string
	for len(args) > 0 {
		a := args[0]
		if a == "--" {
			pos = append(pos, args[1:]...)
			break
		}
		n := flagArity(fs, a)
		if n == 0 {
			pos, args = append(pos, a), args[1:]
			continue
		}
		n = min(n, len(args))
		if err := fs.Parse(args[:n]); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.SetOutput(w)
				usage()
				printEnv(w, fs.Name())
				return err
			}
			return usageErr("%s: %v %s", fs.Name(), err, seeHelp(fs.Name()))
		}
		args = args[n:]
	}
	// The arguments, for fs.Args: after "--" nothing is a flag.
	return fs.Parse(append([]string{"--"}, pos...))
}

// flagArity is how many of the command line's words the flag a takes: 0
// when a is an argument ("acme", "-", a negative number no flag is named
// after), 1 for "-x=v", a boolean flag and anything the flag package is
// to refuse (an unknown flag, -h), else 2 (the flag and its value).
func flagArity(fs *flag.FlagSet, a string) int {
	if len(a) < 2 || a[0] != '-' {
		return 0
	}
	name := strings.TrimPrefix(a[1:], "-")
	if _, err := strconv.ParseFloat(a, 64); err == nil && fs.Lookup(name) == nil {
		return 0
	}
	if strings.Contains(name, "=") {
		return 1
	}
	f := fs.Lookup(name)
	if f == nil {
		return 1
	}
	if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
		return 1
	}
	return 2
}

// noArgs refuses arguments to a command that takes flags only.
func noArgs(fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return usageErr("%s: unexpected argument %q: it takes flags only %s", fs.Name(), fs.Arg(0), seeHelp(fs.Name()))
	}
	return nil
}

// nArgs refuses a command line whose number of arguments is not n,
// showing the command's synopsis.
func nArgs(fs *flag.FlagSet, n int, synopsis string) error {
	switch {
	case fs.NArg() > n:
		return usageErr("%s: unexpected argument %q\n%s", fs.Name(), fs.Arg(n), synopsis)
	case fs.NArg() < n:
		return usageErr("%s: missing argument\n%s", fs.Name(), synopsis)
	}
	return nil
}

// commandUsage is the usage of a command: its synopsis, what it does and
// its flags (printEnv adds the variables it reads).
func commandUsage(fs *flag.FlagSet, synopsis, about string) func() {
	return func() {
		fmt.Fprintf(fs.Output(), "usage: exo-alerts %s\n\n%s\n\nFlags:\n", synopsis, about)
		fs.PrintDefaults()
	}
}

// verbFlagSet is the FlagSet of a command whose verbs share their flags
// (rollout, quota, quarantine, migrate), named "<command> <verb>" when the
// arguments start with a verb ("rollout set -h"), else "<command>". The
// flags may come anywhere (parse): the verb is the first argument.
func verbFlagSet(command string, args []string) *flag.FlagSet {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		return flag.NewFlagSet(command+" "+args[0], flag.ContinueOnError)
	}
	return flag.NewFlagSet(command, flag.ContinueOnError)
}

// verb checks the verb (fs.Arg(0)) of a command whose verbs share their
// flags, and the number of arguments after it (want, by verb).
func verb(fs *flag.FlagSet, command, usage string, want map[string]int) (string, error) {
	if fs.NArg() == 0 {
		return "", usageErr("%s: missing subcommand\n%s", command, usage)
	}
	v := fs.Arg(0)
	n, ok := want[v]
	switch {
	case !ok:
		return "", usageErr("%s: unknown subcommand %q\n%s", command, v, usage)
	case fs.NArg()-1 > n:
		return "", usageErr("%s %s: unexpected argument %q\n%s", command, v, fs.Arg(n+1), usage)
	case fs.NArg()-1 < n:
		return "", usageErr("%s %s: missing argument\n%s", command, v, usage)
	}
	return v, nil
}

// isHelpWord reports whether a is a request for help.
func isHelpWord(a string) bool {
	return slices.Contains([]string{"-h", "-help", "--help", "help"}, a)
}

// subcommand runs the subcommand args[0] of a command whose subcommands
// have flags of their own (apikey, keyring) with the rest of args. -h
// first answers with the command's usage, and the variables any of its
// subcommands reads.
func subcommand(ctx context.Context, command, usage string, args []string, subs map[string]func(context.Context, []string) error) error {
	switch {
	case len(args) == 0:
		return usageErr("%s: missing subcommand\n%s", command, usage)
	case isHelpWord(args[0]):
		fmt.Println(usage)
		printEnv(os.Stdout, command)
		return flag.ErrHelp
	}
	fn, ok := subs[args[0]]
	if !ok {
		return usageErr("%s: unknown subcommand %q\n%s", command, args[0], usage)
	}
	return fn(ctx, args[1:])
}

// printEnv lists the environment variables command reads, with their
// defaults and meanings, as vars.go declares them (docs/operations.md
// lists them all). A variable only some subcommands read or require says
// which.
func printEnv(w io.Writer, command string) {
	vars := config.VarsOf(command)
	if len(vars) == 0 {
		return
	}
	fmt.Fprintln(w, "\nEnvironment (docs/operations.md, \"Environment variables\"):")
	for _, v := range vars {
		var notes []string
		if subs := within(v.Commands, command); len(subs) > 0 {
			notes = append(notes, "read by "+strings.Join(subs, ", "))
		}
		switch subs := within(v.Required, command); {
		case v.RequiredBy(command) && len(subs) == 0:
			notes = append(notes, "required")
		case len(subs) > 0:
			notes = append(notes, "required by "+strings.Join(subs, ", "))
		}
		if d := strings.ReplaceAll(v.Default, "`", ""); d != "" {
			notes = append(notes, "default: "+d)
		}
		line := "  " + v.Name
		if len(notes) > 0 {
			line += " (" + strings.Join(notes, "; ") + ")"
		}
		fmt.Fprintf(w, "%s\n    \t%s\n", line, v.Help)
	}
}

// within returns the subcommands of command among declared, unless
// command itself (or the command it is a subcommand of) is declared.
func within(declared []string, command string) []string {
	var subs []string
	for _, c := range declared {
		if c == command || strings.HasPrefix(command, c+" ") {
			return nil
		}
		if strings.HasPrefix(c, command+" ") {
			subs = append(subs, c)
		}
	}
	return subs
}

// isHelp reports whether err is the answer to -h.
func isHelp(err error) bool { return errors.Is(err, flag.ErrHelp) }
