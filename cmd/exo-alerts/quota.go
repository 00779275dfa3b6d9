package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/exospherehost/exo-alerts/controlplane"
	"github.com/exospherehost/exo-alerts/internal/config"
	"github.com/exospherehost/exo-alerts/internal/postgres"
)

const quotaUsage = `usage: exo-alerts quota list
       exo-alerts quota set [--wait D] <tenant> <alerts-per-minute>
       exo-alerts quota clear [--wait D] <tenant>`

const quotaHelp = `The delivery quota: alerts delivered per tenant per minute of event time.
Without an override a tenant gets EXO_TENANT_DELIVERY_QUOTA (0: no cap); set
gives it its own cap (0: unlimited), clear puts it back on the default. All
tenants together are capped by EXO_GLOBAL_DELIVERY_QUOTA. The processor
suppresses what is over (no delivery) and counts it for the tenant (GET
/v1/quota). Every change is audited (actor cli) and published on the
tenant-limits topic by a running control plane's outbox relay.`

// quotaEnv reads the default caps (EXO_TENANT_DELIVERY_QUOTA,
// EXO_GLOBAL_DELIVERY_QUOTA; 0: none), refusing negative values.
func quotaEnv(env *config.Env) (tenant, global int64) {
	t, g := env.Int("EXO_TENANT_DELIVERY_QUOTA", 0), env.Int("EXO_GLOBAL_DELIVERY_QUOTA", 0)
	if t < 0 {
		env.Problem("EXO_TENANT_DELIVERY_QUOTA: %d is negative (0: no cap)", t)
	}
	if g < 0 {
		env.Problem("EXO_GLOBAL_DELIVERY_QUOTA: %d is negative (0: no cap)", g)
	}
	return int64(t), int64(g)
}

// cmdQuota shows and changes the tenants' delivery quota overrides in
// Postgres (as the API's operator keys do, with actor cli).
func cmdQuota(ctx context.Context, args []string) error {
	fs := verbFlagSet("quota", args)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), quotaUsage+"\n\n"+quotaHelp+"\n\nFlags:")
		fs.PrintDefaults()
	}
	wait := fs.Duration("wait", 10*time.Second, "set, clear: how long to wait for a control plane's relay to publish the change (0s–1h)")
	if err := parse(fs, args); err != nil {
		return err
	}
	v, err := verb(fs, "quota", quotaUsage, map[string]int{"list": 0, "set": 2, "clear": 1})
	if err != nil {
		return err
	}
	if err := checkDuration("quota "+v, "wait", *wait, 0, time.Hour); err != nil {
		return err
	}
	args = fs.Args()[1:] // the verb's arguments
	var perMinute *int64
	switch v {
	case "set":
		n, err := strconv.ParseInt(args[1], 10, 64)
		if err != nil || n < 0 {
			return usageErr("quota set: %q is not a number of alerts per minute (>= 0; 0: unlimited)\n%s", args[1], quotaUsage)
		}
		perMinute = &n
		fallthrough
	case "clear":
		if err := checkTenant("quota "+v, "tenant", args[0]); err != nil {
			return err
		}
	}
	env := &config.Env{}
	c := config.Load(env, config.Needs{Database: true})
	tenantDefault, global := quotaEnv(env)
	if err := env.Err(); err != nil {
		return err
	}
	pool, err := postgres.Connect(ctx, c.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if v == "list" {
		return quotaList(ctx, pool, tenantDefault, global)
	}
	tenant := args[0]
	what := fmt.Sprintf("tenant %s: no override (the default applies)", tenant)
	if perMinute != nil {
		what = fmt.Sprintf("tenant %s: %s", tenant, capText(*perMinute, "unlimited"))
	}
	changed, xid, err := controlplane.SetTenantQuota(ctx, pool, c.Topics, tenant, perMinute)
	if err != nil {
		return fmt.Errorf("quota %s: %w", v, err)
	}
	if !changed {
		fmt.Printf("%s already; nothing changed\n", what)
		return nil
	}
	published, err := controlplane.WaitPublished(ctx, pool, xid, *wait)
	switch {
	case err != nil:
		return fmt.Errorf("quota %s: stored (%s), but its publication could not be checked: %w", v, what, err)
	case published:
		fmt.Printf("%s (stored, audited and published to %s)\n", what, c.Topics.TenantLimits)
	default:
		fmt.Printf("%s (stored and audited; not on %s yet: is a control plane running? Its outbox relay publishes it)\n", what, c.Topics.TenantLimits)
	}
	return nil
}

// capText is a cap per minute in words; zero says none.
func capText(n int64, none string) string {
	if n == 0 {
		return none
	}
	return fmt.Sprintf("%d alerts per minute", n)
}

// quotaList prints the default caps (this shell's environment: the
// processors' may differ) and every tenant's override.
func quotaList(ctx context.Context, pool *pgxpool.Pool, tenantDefault, global int64) error {
	rows, err := controlplane.ListTenantQuotas(ctx, pool)
	if err != nil {
		return fmt.Errorf("quota list: %w", err)
	}
	fmt.Printf("default per tenant: %s (EXO_TENANT_DELIVERY_QUOTA in this shell)\n", capText(tenantDefault, "no cap"))
	fmt.Printf("global: %s (EXO_GLOBAL_DELIVERY_QUOTA in this shell)\n", capText(global, "no cap"))
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TENANT\tPER MINUTE")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\n", r.TenantID, capText(*r.PerMinute, "unlimited"))
	}
	if len(rows) == 0 {
		fmt.Fprintln(tw, "(no tenant has an override)")
	}
	return tw.Flush()
}
