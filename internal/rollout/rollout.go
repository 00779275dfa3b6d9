package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/ktable"
	"github.com/exospherehost/exo-alerts/schemas"
)

// State is a rollout state: of a tenant (explicit), or the global default.
// The zero value is "no explicit state" for a tenant.
type State string

// The states.
const (
	None State = ""
	Off  State = schemas.RolloutOff
	Beta State = schemas.RolloutBeta
	GA   State = schemas.RolloutGA
)

// States lists the states one can set, in rollout order.
var States = []State{Off, Beta, GA}

// ErrBadState is returned by Parse for anything but off, beta or ga.
var ErrBadState = errors.New("rollout: state must be off, beta or ga")

// Parse returns the state s names.
func Parse(s string) (State, error) {
	st := State(s)
	if !slices.Contains(States, st) {
		return None, fmt.Errorf("%w, not %q", ErrBadState, s)
	}
	return st, nil
}

// Served reports whether a tenant whose explicit state is tenant (None:
// none) is served while the global default is def: off serves nobody, beta
// the tenants in state beta or ga, ga everybody but the tenants in state
// off. An unknown default serves like ga.
func Served(def, tenant State) bool {
	switch def {
	case Off:
		return false
	case Beta:
		return tenant == Beta || tenant == GA
	default:
		return tenant != Off
	}
}

// Seed is the rollout EXO_TENANTS describes: the control plane stores it at
// start when no default is stored yet, and until then the API follows it.
type Seed struct {
	Default State
	// Beta are the tenants put in state beta (EXO_TENANTS lists them).
	Beta []string
}

// SeedOf reads EXO_TENANTS' value, split at commas: unset (nil) or "*" is
// GA for everybody, "none" is off, anything else the list of the beta's
// tenants with the default beta.
func SeedOf(list []string) Seed {
	switch {
	case len(list) == 0 || slices.Equal(list, []string{"*"}):
		return Seed{Default: GA}
	case slices.Equal(list, []string{"none"}):
		return Seed{Default: Off}
	default:
		return Seed{Default: Beta, Beta: slices.Clone(list)}
	}
}

// Served reports whether the seed serves tenant.
func (s Seed) Served(tenant string) bool {
	st := None
	if slices.Contains(s.Beta, tenant) {
		st = Beta
	}
	return Served(s.Default, st)
}

// Table is the live rollout as the tenants topic says, for the services
// that do not read Postgres (the processor and the dispatcher). Before the
// topic holds a default record (a control plane has never started) the
// default is ga: everybody is served, as before the flag existed.
type Table struct {
	t       *ktable.Table[schemas.TenantRecord]
	version atomic.Uint64
	log     *slog.Logger
}

// NewTable returns the table of topic (kafka.Topics.Tenants); Run fills it.
func NewTable(topic string, log *slog.Logger) *Table {
	t := &Table{log: log}
	t.t = ktable.New(topic, decode, t.changed, log)
	return t
}

func decode(b []byte) (schemas.TenantRecord, error) {
	var r schemas.TenantRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return r, err
	}
	_, err := Parse(r.State)
	return r, err
}

// changed is the table's change hook: a change is logged at INFO once the
// table is loaded (the initial load of every tenant's state at DEBUG).
func (t *Table) changed(c ktable.Change[schemas.TenantRecord]) {
	t.version.Add(1)
	level := slog.LevelDebug
	select {
	case <-t.t.Ready():
		level = slog.LevelInfo
	default:
	}
	state := "(none: follows the default)"
	if c.Value != nil {
		state = c.Value.State
	}
	if c.Key == schemas.RolloutDefaultKey {
		t.log.Log(context.Background(), level, "rollout default changed", "state", state)
	} else {
		t.log.Log(context.Background(), level, "tenant rollout changed", "tenant_id", c.Key, "state", state)
	}
}

// Run reads the topic until ctx ends (ktable.Table.Run).
func (t *Table) Run(ctx context.Context, opts []kgo.Opt) error { return t.t.Run(ctx, opts) }

// Ready is closed once the table has read what the topic held at start.
func (t *Table) Ready() <-chan struct{} { return t.t.Ready() }

// Sync waits until every record on the topic when it was called is applied.
func (t *Table) Sync(ctx context.Context) error { return t.t.Sync(ctx) }

// Version changes whenever a record is applied.
func (t *Table) Version() uint64 { return t.version.Load() }

// Default is the global default (GA before any default record).
func (t *Table) Default() State {
	if r, ok := t.t.Get(schemas.RolloutDefaultKey); ok {
		if st, err := Parse(r.State); err == nil {
			return st
		}
	}
	return GA
}

// State is tenant's explicit state (None: none).
func (t *Table) State(tenant string) State {
	if r, ok := t.t.Get(tenant); ok {
		return State(r.State)
	}
	return None
}

// Served reports whether tenant is served now.
func (t *Table) Served(tenant string) bool { return Served(t.Default(), t.State(tenant)) }
