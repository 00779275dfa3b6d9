// Command exo-alerts is the one binary of Exosphere Alerts. Each subcommand
// parses its flags and environment, builds a config and calls a component's
// Run(ctx, cfg).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		// A command that chose its exit status (2: a usage error;
		// validate: 1 some events invalid). Its message is printed here
		// only, once (errors.Join: every problem found).
		if msg := err.Error(); msg != "" {
			fmt.Fprintln(os.Stderr, "exo-alerts:", msg)
		}
		os.Exit(ee.code)
	case err != nil:
		fmt.Fprintln(os.Stderr, "exo-alerts:", err)
		os.Exit(1)
	}
}
