package aggregate

import (
	"slices"
	"time"
)

// Set is the groups of one stage-2 partition, with the batch undo of the
// processor: Begin, then Input/Advance, then Commit or Abort. Abort puts
// every group, and the counts, back as they were at Begin, so a batch
// processed again after an aborted transaction decides the same.
//
// Advance visits the groups in key order (a per-partition heap of due
// groups is the planned replacement, see STATUS-agg.md).
type Set struct {
	MaxGroups int // 0: no bound
	groups    map[string]*Group
	late      uint64
	dropped   uint64
	undo      *setUndo
}

type setUndo struct {
	groups        map[string]*Group // copy at Begin; nil: the key was absent
	late, dropped uint64
}

// NewSet returns an empty set bounded to maxGroups groups (0: no bound).
func NewSet(maxGroups int) *Set { return &Set{MaxGroups: maxGroups, groups: map[string]*Group{}} }

// Len returns the number of groups.
func (s *Set) Len() int { return len(s.groups) }

// Late and Dropped return the inputs not counted: too old, or for a new
// group beyond MaxGroups.
func (s *Set) Late() uint64    { return s.late }
func (s *Set) Dropped() uint64 { return s.dropped }

// Group returns the group of key, nil when absent.
func (s *Set) Group(key string) *Group { return s.groups[key] }

// Begin starts a batch.
func (s *Set) Begin() {
	s.undo = &setUndo{groups: map[string]*Group{}, late: s.late, dropped: s.dropped}
}

// Commit keeps the batch's changes.
func (s *Set) Commit() { s.undo = nil }

// Abort undoes every change since Begin.
func (s *Set) Abort() {
	u := s.undo
	s.undo = nil
	if u == nil {
		return
	}
	for key, g := range u.groups {
		if g == nil {
			delete(s.groups, key)
		} else {
			s.groups[key] = g
		}
	}
	s.late, s.dropped = u.late, u.dropped
}

// touch saves the group of key before its first change in the batch and
// returns the group to change (a copy, so the saved one stays intact).
func (s *Set) touch(key string) *Group {
	g := s.groups[key]
	if s.undo == nil {
		return g
	}
	if _, done := s.undo.groups[key]; done {
		return g
	}
	s.undo.groups[key] = g
	if g == nil {
		return nil
	}
	c := *g
	s.groups[key] = &c
	return &c
}

// Input counts in to the group of (tenant, rule, key), creating it with spec
// when absent (unless the set is full: dropped).
func (s *Set) Input(tenant, rule, key string, spec Spec, in Input, e time.Time) []Transition {
	g := s.touch(key)
	if g == nil {
		if s.MaxGroups > 0 && len(s.groups) >= s.MaxGroups {
			s.dropped++
			return nil
		}
		g = NewGroup(tenant, rule, key, spec)
		s.groups[key] = g
	}
	counted, out := g.Add(in, e)
	if !counted {
		s.late++
	}
	return out
}

// Advance evaluates every group under e, in key order, and drops the idle
// ones (returned, for their tombstones).
func (s *Set) Advance(e time.Time) (out []Transition, dropped []string) {
	keys := make([]string, 0, len(s.groups))
	for k := range s.groups {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		g := s.touch(k)
		out = append(out, g.Advance(e)...)
		if g.Idle(e) {
			delete(s.groups, k)
			dropped = append(dropped, k)
		}
	}
	return out, dropped
}
