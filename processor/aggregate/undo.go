package aggregate

import (
	"maps"
	"slices"
	"time"
)

// batch is the undo log of the batch in progress: for every partition it
// touched, what to put back on Abort. Groups and rule counts are saved
// before their first change (copy on write); the heap of due groups is
// rebuilt from the restored groups.
type batch struct {
	parts  map[int32]*partUndo
	counts counters
}

type partUndo struct {
	pt           *partition
	groups       map[string]*entry // the entry at Begin; nil: absent
	rules        map[string]*ruleStat
	sources      map[int32]time.Time
	e            time.Time
	byState      [3]int
	synced       bool
	rulesVersion uint64
	dirty        map[string]struct{}
	dirtyRules   map[string]struct{}
	dirtyStatus  map[string]struct{}
	wmDirty      bool
}

// Begin starts a batch over all partitions.
func (e *Engine) Begin() { e.batch = &batch{parts: map[int32]*partUndo{}} }

// Commit keeps the batch's changes and adds its counts to Stats.
func (e *Engine) Commit() {
	if e.batch != nil {
		e.Stats.add(e.batch.counts)
	}
	e.batch = nil
}

// Abort undoes every change since Begin, on every partition still held:
// groups, counts, watermarks and what the next Flush would write. The
// batch's Stats are not counted. Processing the batch again decides the
// same, with the same outputs.
func (e *Engine) Abort() {
	b := e.batch
	e.batch = nil
	if b == nil {
		return
	}
	for p, u := range b.parts {
		pt := u.pt
		if e.parts[p] != pt {
			continue // revoked (or reassigned) since: nothing to undo
		}
		for k, en := range u.groups {
			if en == nil {
				delete(pt.groups, k)
			} else {
				pt.groups[k] = en
			}
		}
		for k, st := range u.rules {
			if st == nil {
				delete(pt.rules, k)
			} else {
				pt.rules[k] = st
			}
		}
		pt.sources, pt.e, pt.byState = u.sources, u.e, u.byState
		pt.synced, pt.rulesVersion = u.synced, u.rulesVersion
		pt.dirty, pt.dirtyRules, pt.dirtyStatus, pt.wmDirty = u.dirty, u.dirtyRules, u.dirtyStatus, u.wmDirty
		pt.rebuildHeap()
	}
}

// count adds to the counters: the batch's, or Stats at once outside one.
func (e *Engine) count(f func(*counters)) {
	if e.batch != nil {
		f(&e.batch.counts)
		return
	}
	var c counters
	f(&c)
	e.Stats.add(c)
}

// touchPart saves a partition's scalars before the batch changes them.
func (e *Engine) touchPart(pt *partition) *partUndo {
	if e.batch == nil {
		return nil
	}
	if u := e.batch.parts[pt.id]; u != nil && u.pt == pt {
		return u
	}
	u := &partUndo{pt: pt, groups: map[string]*entry{}, rules: map[string]*ruleStat{},
		sources: maps.Clone(pt.sources), e: pt.e, byState: pt.byState, synced: pt.synced, rulesVersion: pt.rulesVersion,
		dirty: maps.Clone(pt.dirty), dirtyRules: maps.Clone(pt.dirtyRules), dirtyStatus: maps.Clone(pt.dirtyStatus), wmDirty: pt.wmDirty}
	e.batch.parts[pt.id] = u
	return u
}

// touch returns the group of key to change (nil when absent), saving it
// first: the saved entry stays as it was, the partition holds a copy.
func (e *Engine) touch(pt *partition, key string) *entry {
	en := pt.groups[key]
	u := e.touchPart(pt)
	if u == nil {
		return en
	}
	if _, done := u.groups[key]; done {
		return en
	}
	u.groups[key] = en
	if en == nil {
		return nil
	}
	c := *en
	c.g.win.tail = slices.Clone(en.g.win.tail) // changed in place
	pt.groups[key] = &c
	return &c
}

// touchRule is touch for a rule's counts.
func (e *Engine) touchRule(pt *partition, key string) *ruleStat {
	st := pt.rules[key]
	u := e.touchPart(pt)
	if u == nil {
		return st
	}
	if _, done := u.rules[key]; done {
		return st
	}
	u.rules[key] = st
	if st == nil {
		return nil
	}
	c := *st
	pt.rules[key] = &c
	return &c
}
