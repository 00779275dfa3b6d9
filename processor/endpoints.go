package processor

import (
	"sync"

	"github.com/exospherehost/exo-alerts/internal/ktable"
	"github.com/exospherehost/exo-alerts/processor/engine"
	"github.com/exospherehost/exo-alerts/schemas"
)

// endpointStates are the engine.EndpointStates of the endpoints, by
// tenant/id: the endpoints table's change hook (apply) keeps each current,
// and the rule index gives each rule its endpoint's, so the engine asks a
// rule, not the table, whether its endpoint can receive. An endpoint a
// rule names before the table has it is inactive until it comes. A state
// is never removed (a deleted endpoint's stays, inactive): a rule may hold
// it, and the endpoint may come back. One small object per endpoint key
// ever seen.
type endpointStates struct {
	mu sync.Mutex
	m  map[string]*engine.EndpointState
}

func newEndpointStates() *endpointStates {
	return &endpointStates{m: map[string]*engine.EndpointState{}}
}

// state returns the state of the endpoint keyed key (tenant/id), made
// inactive if there is none yet.
func (s *endpointStates) state(key string) *engine.EndpointState {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.m[key]
	if st == nil {
		st = &engine.EndpointState{}
		s.m[key] = st
	}
	return st
}

// apply is the endpoints table's change hook. The table applies a record
// (rows, then this hook) before its position moves, so a Sync that
// returned has the states of every record it waited for.
func (s *endpointStates) apply(c ktable.Change[schemas.EndpointRecord]) {
	s.state(c.Key).SetActive(c.Value != nil && c.Value.IsActive)
}
