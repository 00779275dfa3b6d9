package rollout_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/rollout"
	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/schemas"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// Who is served, for every global default and tenant state: global off is
// the kill switch, beta serves the tenants let in, ga all but those let out.
func TestServed(t *testing.T) {
	t.Parallel()
	states := []rollout.State{rollout.None, rollout.Off, rollout.Beta, rollout.GA}
	want := map[rollout.State][]bool{ // default -> served, by tenant state as in states
		rollout.Off:  {false, false, false, false},
		rollout.Beta: {false, false, true, true},
		rollout.GA:   {true, false, true, true},
	}
	for def, served := range want {
		for i, st := range states {
			t.Run(fmt.Sprintf("default %s, tenant %q", def, st), func(t *testing.T) {
				t.Parallel()
				if got := rollout.Served(def, st); got != served[i] {
					t.Errorf("Served(%s, %q) = %v, want %v", def, st, got, served[i])
				}
			})
		}
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   string
		want rollout.State
		err  bool
	}{
		{"off", rollout.Off, false}, {"beta", rollout.Beta, false}, {"ga", rollout.GA, false},
		{"", rollout.None, true}, {"GA", rollout.None, true}, {"on", rollout.None, true}, {"default", rollout.None, true},
	} {
		got, err := rollout.Parse(c.in)
		if got != c.want || (err != nil) != c.err || (err != nil && !errors.Is(err, rollout.ErrBadState)) {
			t.Errorf("Parse(%q) = %q, %v; want %q, error %v", c.in, got, err, c.want, c.err)
		}
	}
}

// EXO_TENANTS: unset or * is GA, none is off, a list is the beta.
func TestSeedOf(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		env    []string
		def    rollout.State
		served map[string]bool
	}{
		{"unset", nil, rollout.GA, map[string]bool{"acme": true, "globex": true}},
		{"star", []string{"*"}, rollout.GA, map[string]bool{"acme": true, "globex": true}},
		{"none", []string{"none"}, rollout.Off, map[string]bool{"acme": false, "globex": false}},
		{"list", []string{"acme", "initech"}, rollout.Beta, map[string]bool{"acme": true, "initech": true, "globex": false}},
	} {
		s := rollout.SeedOf(c.env)
		if s.Default != c.def {
			t.Errorf("%s: default %q, want %q", c.name, s.Default, c.def)
		}
		for tenant, want := range c.served {
			if got := s.Served(tenant); got != want {
				t.Errorf("%s: %s served = %v, want %v", c.name, tenant, got, want)
			}
		}
	}
}

// The table follows the topic live: a tenant's state, the default, a
// tombstone (back to the default), and a record it cannot read (skipped,
// the state before it kept).
func TestTableFollowsTheTopic(t *testing.T) {
	t.Parallel()
	brokers := testenv.Brokers(t)
	topics := testenv.Topics(t)
	cl, err := kgo.NewClient(kafka.ClientOpts(brokers, nil)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := kafka.EnsureTopics(ctx, kadm.NewClient(cl), topics.Specs(1)); err != nil {
		t.Fatal(err)
	}
	put := func(key string, state string) {
		t.Helper()
		var v []byte
		if state != "" {
			v, _ = json.Marshal(schemas.TenantRecord{TenantID: key, State: state, UpdatedAt: time.Now().UTC()})
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topics.Tenants, Key: []byte(key), Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	put("globex", "off") // before the table starts: read at load

	tab := rollout.NewTable(topics.Tenants, testenv.Log(t))
	done := make(chan error, 1)
	go func() { done <- tab.Run(ctx, kafka.ClientOpts(brokers, nil)) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	select {
	case <-tab.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("table not ready within 30s")
	}
	check := func(what string, want map[string]bool) {
		t.Helper()
		sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
		defer scancel()
		if err := tab.Sync(sctx); err != nil {
			t.Fatal(err)
		}
		for tenant, served := range want {
			if got := tab.Served(tenant); got != served {
				t.Errorf("%s: %s served = %v, want %v (default %q, state %q)", what, tenant, got, served, tab.Default(), tab.State(tenant))
			}
		}
	}
	check("no default record: ga", map[string]bool{"acme": true, "globex": false})
	v := tab.Version()
	put(schemas.RolloutDefaultKey, "beta")
	put("acme", "beta")
	check("beta with acme", map[string]bool{"acme": true, "globex": false, "initech": false})
	if tab.Version() == v {
		t.Error("the version did not change with the records")
	}
	put("acme", "")
	check("acme's state cleared", map[string]bool{"acme": false})
	put("acme", "ga")
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topics.Tenants, Key: []byte("acme"), Value: []byte(`{"tenant_id":"acme","state":"on"}`)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	check("a bad record skipped", map[string]bool{"acme": true})
	put(schemas.RolloutDefaultKey, "off")
	check("global off", map[string]bool{"acme": false, "globex": false})
	put(schemas.RolloutDefaultKey, "ga")
	check("global ga", map[string]bool{"acme": true, "globex": false, "initech": true})
}
