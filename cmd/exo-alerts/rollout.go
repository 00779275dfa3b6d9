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
	fs := verbFlagSet("rollout", args)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), rolloutUsage+"\n\n"+rolloutHelp+"\n\nFlags:")
		fs.PrintDefaults()
	}
	limit := fs.Int("limit", 1000, "list: at most this many tenants; history: this many changes, newest first (1–100000)")
	explicit := fs.Bool("explicit", false, "list: only the tenants with an explicit state")
	wait := fs.Duration("wait", 10*time.Second, "set, clear, default: how long to wait for a control plane's relay to publish the change (0s–1h)")
	if err := parse(fs, args); err != nil {
		return err
	}
	v, err := verb(fs, "rollout", rolloutUsage, map[string]int{"list": 0, "history": 0, "set": 2, "clear": 1, "default": 1})
	if err != nil {
		return err
	}
	if err := errors.Join(checkRange("rollout "+v, "limit", *limit, 1, 100000), checkDuration("rollout "+v, "wait", *wait, 0, time.Hour)); err != nil {
		return err
	}
	args = fs.Args()[1:] // the verb's arguments
	switch v {
	case "set", "clear":
		if err := checkTenant("rollout "+v, "tenant", args[0]); err != nil {
			return err
		}
	}
	switch v {
	case "set", "default":
		if _, err := rollout.Parse(args[len(args)-1]); err != nil {
			return usageErr("rollout %s: state %q: want off, beta or ga", v, args[len(args)-1])
		}
	}
	env := &config.Env{}
	c := config.Load(env, config.Needs{Database: true})
	seed := rollout.SeedOf(env.List("EXO_TENANTS"))
	if err := env.Err(); err != nil {
		return err
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
	switch v {
	case "list":
		return rolloutList(ctx, store.New(pool, ""), seed, *limit, *explicit)
	case "history":
		return rolloutHistory(ctx, store.New(pool, ""), *limit)
	case "set":
		changed, xid, err = controlplane.SetTenantRollout(ctx, pool, c.Topics, args[0], args[1])
		what = fmt.Sprintf("tenant %s: %s", args[0], args[1])
	case "clear":
		changed, xid, err = controlplane.SetTenantRollout(ctx, pool, c.Topics, args[0], "")
		what = fmt.Sprintf("tenant %s: no explicit state (follows the default)", args[0])
	case "default":
		changed, xid, err = controlplane.SetRolloutDefault(ctx, pool, c.Topics, args[0])
		what = "default: " + args[0]
	}
	if err != nil {
		return fmt.Errorf("rollout %s: %w", v, err)
	}
	if !changed {
		fmt.Printf("%s already; nothing changed\n", what)
		return nil
	}
	published, err := controlplane.WaitPublished(ctx, pool, xid, *wait)
	switch {
	case err != nil:
		return fmt.Errorf("rollout %s: stored (%s), but its publication could not be checked: %w", v, what, err)
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
