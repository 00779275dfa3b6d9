package main

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/exospherehost/exo-alerts/internal/testenv"
)

// The rollout commands: an operator key minted (no tenant), the default
// and tenants' states set, cleared and listed with who is served, a bad
// state refused, every change in the rollout's history by cli and queued
// for the tenants topic. No control plane runs: the command says the
// change is stored but not published yet.
func TestRolloutCommands(t *testing.T) {
	dbURL := testenv.DatabaseURL(t, true)
	t.Setenv("DATABASE_URL", dbURL)
	t.Setenv("EXO_TOPIC_PREFIX", "t.roll.")
	t.Setenv("EXO_TENANTS", "")
	pool, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)

	out, err := runCmd(t, "apikey", "create", "--role", "operator", "--name", "ops")
	if err != nil || !strings.Contains(out, "role:   operator") || !keyRE.MatchString(out) {
		t.Fatalf("apikey create --role operator: %v\n%s", err, out)
	}
	if _, err := runCmd(t, "apikey", "create", "--role", "operator", "--tenant", "acme"); err == nil || !strings.Contains(err.Error(), "no tenant") {
		t.Errorf("an operator key of a tenant: %v", err)
	}
	if out, _ := runCmd(t, "apikey", "list"); !strings.Contains(out, "operator") || !strings.Contains(strings.Fields(strings.Split(out, "\n")[1])[1], "-") {
		t.Errorf("apikey list shows the operator key without its tenant dash:\n%s", out)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"rollout", "default", "--wait", "0", "beta"}, "default: beta (stored and audited; not on t.roll.tenants yet"},
		{[]string{"rollout", "set", "--wait", "0", "acme", "beta"}, "tenant acme: beta (stored"},
		{[]string{"rollout", "set", "--wait", "0", "acme", "beta"}, "tenant acme: beta already; nothing changed"},
		{[]string{"rollout", "set", "--wait", "0", "globex", "off"}, "tenant globex: off (stored"},
		{[]string{"rollout", "set", "--wait", "0", "initech", "ga"}, "tenant initech: ga (stored"},
		{[]string{"rollout", "clear", "--wait", "0", "initech"}, "tenant initech: no explicit state"},
	} {
		out, err := runCmd(t, c.args...)
		if err != nil || !strings.Contains(out, c.want) {
			t.Fatalf("%v: %v\n%s\nwant %q", c.args, err, out, c.want)
		}
	}
	out, err = runCmd(t, "rollout", "list")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"default: beta (set ", "acme     beta   yes", "globex   off    no", "initech  -      no"} {
		if !strings.Contains(out, want) {
			t.Errorf("rollout list lacks %q:\n%s", want, out)
		}
	}
	out, err = runCmd(t, "rollout", "history")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := []string{"cli rollout.clear initech ga -", "cli rollout.set initech - ga", "cli rollout.set globex - off",
		"cli rollout.set acme - beta", "cli rollout.default * - beta"}
	if len(lines) != len(want)+1 {
		t.Fatalf("rollout history:\n%s", out)
	}
	for i, w := range want {
		if got := strings.Join(strings.Fields(lines[i+1])[2:], " "); got != w {
			t.Errorf("rollout history line %d: %q, want %q", i+1, got, w)
		}
	}
	var queued int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM outbox WHERE topic = 't.roll.tenants'`).Scan(&queued); err != nil || queued != 5 {
		t.Errorf("%d records queued for the tenants topic (%v), want 5", queued, err)
	}

	for _, args := range [][]string{
		{"rollout", "default", "on"}, {"rollout", "set", "acme", "GA"}, {"rollout", "set", "ac me", "ga"},
	} {
		if _, err := runCmd(t, args...); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
	if _, err := runCmd(t, "rollout", "clear", "nobody"); err == nil || !strings.Contains(err.Error(), "no tenant") {
		t.Errorf("clear an unknown tenant: %v", err)
	}
	for _, args := range [][]string{{"rollout"}, {"rollout", "set", "acme"}, {"rollout", "default"}, {"rollout", "flip"}} {
		if _, err := runCmd(t, args...); err == nil || !strings.Contains(err.Error(), "usage") {
			t.Errorf("%v: err = %v, want usage", args, err)
		}
	}
}
