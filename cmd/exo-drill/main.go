// Command exo-drill runs the fault drills (make drill): the real components
// on a private PostgreSQL and Kafka, under a steady stream of failed runs,
// while it kills, stops and restarts them; it prints, per scenario, what
// arrived and exits non-zero if an alert went missing, the processor
// duplicated one, or a component died by itself. See docs/reliability.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/exospherehost/exo-alerts/internal/drill"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		if !errors.Is(err, drill.ErrFailed) {
			fmt.Fprintln(os.Stderr, "exo-drill:", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("exo-drill", flag.ContinueOnError)
	short := fs.Bool("short", false, "the short form: ~10 s outages, fewer events (deploy/local/test.sh runs it)")
	root := fs.String("root", ".", "repository root (for deploy/local's scripts)")
	bin := fs.String("bin", "bin/exo-alerts", "the exo-alerts binary to drill")
	state := fs.String("state-dir", "/tmp/exo-drill", "private state dir: PostgreSQL, Kafka, component logs")
	pgPort := fs.Int("pg-port", 19194, "port of the drill's own PostgreSQL (below the ephemeral port range: the drill starts after the tests, whose client connections may still hold ports there)")
	kPort := fs.Int("kafka-port", 19192, "port of the drill's own Kafka broker")
	kcPort := fs.Int("kafka-controller-port", 19193, "controller port of the drill's own Kafka broker")
	scenarios := fs.String("scenarios", "", "comma-separated scenarios to run (default all: "+strings.Join(drill.ScenarioNames, ",")+")")
	allowCrashes := fs.Bool("allow-crashes", false, "pass a scenario in which a component exited by itself (restarted and reported) if no alert was lost or duplicated")
	rate := fs.Int("rate", 0, "events per second (default 50; 20 with -short)")
	outage := fs.Duration("outage", 0, "how long the broker and Postgres stay down (default 60s; 10s with -short)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	cfg := drill.Long()
	if *short {
		cfg = drill.Short()
	}
	if *rate > 0 {
		cfg.Rate = *rate
	}
	if *outage > 0 {
		cfg.Outage = *outage
	}
	r, err := filepath.Abs(*root)
	if err != nil {
		return err
	}
	b := *bin
	if !filepath.IsAbs(b) {
		b = filepath.Join(r, b)
	}
	s, err := filepath.Abs(*state)
	if err != nil {
		return err
	}
	cfg.Root, cfg.Bin, cfg.StateDir = r, b, s
	cfg.PGPort, cfg.KafkaPort, cfg.ControllerPort = *pgPort, *kPort, *kcPort
	if *scenarios != "" {
		cfg.Scenarios = strings.Split(*scenarios, ",")
	}
	cfg.AllowCrashes = *allowCrashes
	cfg.Out = os.Stdout
	cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "drill")
	return drill.Run(ctx, cfg)
}
