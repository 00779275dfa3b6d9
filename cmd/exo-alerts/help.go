package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/exospherehost/exo-alerts/internal/config"
)

// parse parses a command's flags. -h prints the command's usage, its flags
// and the environment variables it reads (printEnv), and returns
// flag.ErrHelp, which run turns into success.
func parse(fs *flag.FlagSet, args []string) error {
	usage := fs.Usage // flag.NewFlagSet's: "Usage of <name>:" and the flags
	fs.Usage = func() {
		usage()
		printEnv(fs.Output(), fs.Name())
	}
	return fs.Parse(args)
}

// verbFlagSet is the FlagSet of a command whose verbs share their flags
// (rollout, quarantine), named "<command> <verb>", or "<command>" when the
// arguments start with a flag ("rollout -h"); and the arguments it parses.
func verbFlagSet(command string, args []string) (*flag.FlagSet, []string) {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		return flag.NewFlagSet(command+" "+args[0], flag.ContinueOnError), args[1:]
	}
	return flag.NewFlagSet(command, flag.ContinueOnError), args
}

// groupHelp answers "<command> -h" for a command whose subcommands have
// flags of their own (apikey, keyring): its usage, and the variables any of
// its subcommands reads.
func groupHelp(command, usage string, args []string) error {
	if len(args) == 0 || !slices.Contains([]string{"-h", "-help", "--help", "help"}, args[0]) {
		return nil
	}
	fmt.Fprintln(os.Stderr, usage)
	printEnv(os.Stderr, command)
	return flag.ErrHelp
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
