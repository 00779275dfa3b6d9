package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/exospherehost/exo-alerts/controlplane"
	"github.com/exospherehost/exo-alerts/internal/config"
	"github.com/exospherehost/exo-alerts/internal/postgres"
	"github.com/exospherehost/exo-alerts/internal/rollout"
	"github.com/exospherehost/exo-alerts/internal/store"
)

const rolloutUsage = `usage: exo-alerts rollout list [--explicit] [--limit N]
       exo-alerts rollout set [--wait D] <tenant> off|beta|ga
       exo-alerts rollout clear [--wait D] <tenant>
       exo-alerts rollout default [--wait D] off|beta|ga
       exo-alerts rollout history [--limit N]`

const rolloutHelp = `The live rollout flag: each tenant's explicit state and the global default.
Global off serves nobody; beta only the tenants in state beta or ga; ga every
tenant but those in state off. A tenant not served gets no alerts (the
processor and dispatcher follow a change within a second) and 403 from the
API. Every change is audited (actor cli) and published on the tenants topic
by a running control plane's outbox relay.`

// cmdRollout shows and changes the rollout in Postgres (as the API's
// operator keys do, with actor cli).
func cmdRollout(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New(rolloutUsage)
	}
	fs, rest := verbFlagSet("rollout", args)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), rolloutUsage+"\n\n"+rolloutHelp+"\n\nFlags:")
		fs.PrintDefaults()
	}
	limit := fs.Int("limit", 1000, "list: at most this many tenants; history: this many changes, newest first")
	explicit := fs.Bool("explicit", false, "list: only the tenants with an explicit state")
	wait := fs.Duration("wait", 10*time.Second, "set, clear, default: how long to wait for a control plane's relay to publish the change")
	if err := parse(fs, rest); err != nil {
		return err
	}
	if fs.Name() == "rollout" {
		return errors.New(rolloutUsage) // flags before the verb
	}
	env := &config.Env{}
	c := config.Load(env, config.Needs{Database: true})
	seed := rollout.SeedOf(env.List("EXO_TENANTS"))
	if err := env.Err(); err != nil {
		return err
	}
	want := map[string]int{"list": 0, "history": 0, "set": 2, "clear": 1, "default": 1}
	if n, ok := want[args[0]]; !ok || fs.NArg() != n {
		return errors.New(rolloutUsage)
	}
	pool, err := postgres.Connect(ctx, c.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	var (
		changed bool
		xid     string
		what    string
	)
	switch args[0] {
	case "list":
		return rolloutList(ctx, store.New(pool, ""), seed, *limit, *explicit)
	case "history":
		return rolloutHistory(ctx, store.New(pool, ""), *limit)
	case "set":
		changed, xid, err = controlplane.SetTenantRollout(ctx, pool, c.Topics, fs.Arg(0), fs.Arg(1))
		what = fmt.Sprintf("tenant %s: %s", fs.Arg(0), fs.Arg(1))
	case "clear":
		changed, xid, err = controlplane.SetTenantRollout(ctx, pool, c.Topics, fs.Arg(0), "")
		what = fmt.Sprintf("tenant %s: no explicit state (follows the default)", fs.Arg(0))
	case "default":
		changed, xid, err = controlplane.SetRolloutDefault(ctx, pool, c.Topics, fs.Arg(0))
		what = "default: " + fs.Arg(0)
	}
	if err != nil {
		return fmt.Errorf("rollout %s: %w", args[0], err)
	}
	if !changed {
		fmt.Printf("%s already; nothing changed\n", what)
		return nil
	}
	published, err := controlplane.WaitPublished(ctx, pool, xid, *wait)
	switch {
	case err != nil:
		return fmt.Errorf("rollout %s: stored (%s), but its publication could not be checked: %w", args[0], what, err)
	case published:
		fmt.Printf("%s (stored, audited and published to %s)\n", what, c.Topics.Tenants)
	default:
		fmt.Printf("%s (stored and audited; not on %s yet: is a control plane running? Its outbox relay publishes it)\n", what, c.Topics.Tenants)
	}
	return nil
}

func rolloutList(ctx context.Context, db *store.Store, seed rollout.Seed, limit int, explicit bool) error {
	d, err := db.RolloutDefault(ctx)
	if err != nil {
		return err
	}
	def := seed.Default
	if d != nil {
		def = rollout.State(d.State)
		fmt.Printf("default: %s (set %s)\n", d.State, d.UpdatedAt.UTC().Format(time.RFC3339))
	} else {
		fmt.Printf("default: %s (nothing stored yet: the control plane follows EXO_TENANTS, and stores it at start when set; this shell's EXO_TENANTS is shown)\n", def)
	}
	rows, err := db.ListTenantRollouts(ctx, "", limit, explicit)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TENANT\tSTATE\tSERVED\tUPDATED")
	for _, r := range rows {
		st := rollout.State(r.State)
		if d == nil && st == rollout.None && seed.Served(r.TenantID) && def == rollout.Beta {
			st = rollout.Beta // listed in EXO_TENANTS
		}
		state, updated := r.State, "-"
		if state == "" {
			state = "-"
		}
		if r.UpdatedAt != nil {
			updated = r.UpdatedAt.UTC().Format(time.RFC3339)
		}
		served := "no"
		if rollout.Served(def, st) {
			served = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.TenantID, state, served, updated)
	}
	if len(rows) == limit {
		fmt.Fprintf(tw, "(first %d tenants; --limit shows more)\n", limit)
	}
	return tw.Flush()
}

func rolloutHistory(ctx context.Context, db *store.Store, limit int) error {
	events, err := db.ListRolloutAudit(ctx, 0, limit)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tAT\tACTOR\tACTION\tTENANT\tBEFORE\tAFTER")
	state := func(b []byte) string { // {"state": "beta"} or {"state": null}
		var v struct {
			State *string `json:"state"`
		}
		if json.Unmarshal(b, &v) != nil || v.State == nil {
			return "-"
		}
		return *v.State
	}
	for _, e := range events {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, e.CreatedAt.UTC().Format(time.RFC3339), e.Actor, e.Action, e.ResourceID,
			state(e.Before), state(e.After))
	}
	return tw.Flush()
}
