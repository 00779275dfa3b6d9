package main

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/exospherehost/exo-alerts/internal/testenv"
)

// exo-alerts quota -h explains the quota and lists the variables it reads.
func TestQuotaHelp(t *testing.T) {
	for _, args := range [][]string{{"quota", "-h"}, {"quota", "set", "-h"}} {
		out, err := runOut(t, args...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		for _, want := range []string{"exo-alerts quota set [--wait D] <tenant> <alerts-per-minute>", "-wait",
			"EXO_TENANT_DELIVERY_QUOTA (default: 0)", "EXO_GLOBAL_DELIVERY_QUOTA (default: 0)", "DATABASE_URL (required)"} {
			if !strings.Contains(out, want) {
				t.Errorf("%v does not show %q:\n%s", args, want, out)
			}
		}
	}
	if _, err := runOut(t, "quota"); err == nil || !strings.Contains(err.Error(), "usage: exo-alerts quota list") {
		t.Errorf("quota without a verb: %v", err)
	}
}

// The quota commands: overrides set, unchanged, cleared and listed with
// the defaults; bad input refused; every change audited by cli and queued
// for tenant-limits. No control plane runs: the command says the change is
// stored but not published yet.
func TestQuotaCommands(t *testing.T) {
	dbURL := testenv.DatabaseURL(t, true)
	t.Setenv("DATABASE_URL", dbURL)
	t.Setenv("EXO_TOPIC_PREFIX", "t.quota.")
	t.Setenv("EXO_TENANT_DELIVERY_QUOTA", "600")
	t.Setenv("EXO_GLOBAL_DELIVERY_QUOTA", "")
	pool, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"quota", "set", "--wait", "0", "acme", "100"}, "tenant acme: 100 alerts per minute (stored and audited; not on t.quota.tenant-limits yet"},
		{[]string{"quota", "set", "--wait", "0", "acme", "100"}, "tenant acme: 100 alerts per minute already; nothing changed"},
		{[]string{"quota", "set", "--wait", "0", "globex", "0"}, "tenant globex: unlimited (stored"},
		{[]string{"quota", "set", "--wait", "0", "initech", "5"}, "tenant initech: 5 alerts per minute (stored"},
		{[]string{"quota", "clear", "--wait", "0", "initech"}, "tenant initech: no override (the default applies) (stored"},
	} {
		out, err := runCmd(t, c.args...)
		if err != nil || !strings.Contains(out, c.want) {
			t.Fatalf("%v: %v\n%s\nwant %q", c.args, err, out, c.want)
		}
	}
	out, err := runCmd(t, "quota", "list")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"default per tenant: 600 alerts per minute", "global: no cap", "acme    100 alerts per minute", "globex  unlimited"} {
		if !strings.Contains(out, want) {
			t.Errorf("quota list does not show %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "initech") {
		t.Errorf("quota list shows initech, cleared:\n%s", out)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"quota", "set", "acme", "-3"}, "not a number"},
		{[]string{"quota", "set", "acme", "lots"}, "not a number"},
		{[]string{"quota", "set", "acme!", "3"}, "tenant id"},
		{[]string{"quota", "clear", "--wait", "0", "nobody"}, "no tenant"},
		{[]string{"quota", "set", "acme"}, "usage: exo-alerts quota"},
	} {
		if _, err := runCmd(t, c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error naming %q", c.args, err, c.want)
		}
	}
	var audited, queued int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM audit_events WHERE actor = 'cli' AND action LIKE 'quota.%'`).Scan(&audited); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM outbox WHERE topic = 't.quota.tenant-limits'`).Scan(&queued); err != nil {
		t.Fatal(err)
	}
	if audited != 4 || queued != 4 {
		t.Errorf("%d changes audited by cli and %d queued for tenant-limits, want 4 and 4", audited, queued)
	}
}
