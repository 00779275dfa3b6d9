// Command exo-alerts is the one binary of Exosphere Alerts. Each subcommand
// parses its flags and environment, builds a config and calls a component's
// Run(ctx, cfg).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "exo-alerts:", err)
		os.Exit(1)
	}
}
