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
		// A command that chose its exit status (validate: 1 some events
		// invalid, 2 usage).
		if ee.msg != "" {
			fmt.Fprintln(os.Stderr, "exo-alerts:", ee.msg)
		}
		os.Exit(ee.code)
	case err != nil:
		fmt.Fprintln(os.Stderr, "exo-alerts:", err)
		os.Exit(1)
	}
}
