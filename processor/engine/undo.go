package engine

import (
	"sync/atomic"
	"time"
)

// undo remembers what a batch changed, so Abort can put it back.
type undo struct {
	runs       map[int32]map[string]savedRun
	watermarks map[int32]time.Time
	noise      map[noiseKey]savedNoise
	ruleErrs   map[string]*ruleErrors    // nil value: the key was absent
	counts     map[*atomic.Uint64]uint64 // counted in the batch, added to Stats on Commit
}

// savedRun is a run as it was before the batch changed it: r (nil: the key
// was absent) with value val. Runs are changed in place; what they point to
// is not, so the shallow copy is the whole state.
type savedRun struct {
	r   *run
	val run
}

// savedNoise is a rule's noise state before the batch changed it: n (nil:
// none) with value val. Noise states are changed in place.
type savedNoise struct {
	n   *noise
	val noise
}

// Begin starts a batch: every change until Commit or Abort can be undone.
func (e *Engine) Begin() {
	if u := e.spareUndo; u != nil {
		e.spareUndo = nil
		u.reset()
		e.undo = u
		return
	}
	e.undo = &undo{runs: map[int32]map[string]savedRun{}, watermarks: map[int32]time.Time{}, noise: map[noiseKey]savedNoise{}, ruleErrs: map[string]*ruleErrors{}, counts: map[*atomic.Uint64]uint64{}}
}

// maxReusedUndo is the most runs a partition's undo map may have held and
// still be reused by the next batch: clearing a map costs its size, and
// one huge batch should not make every later one pay for it.
const maxReusedUndo = 8192

// reset empties u for another batch, keeping its maps' room (a batch's
// maps grew from empty, and were garbage, every batch: 7 % of
// BenchmarkEngineMix).
func (u *undo) reset() {
	for p, m := range u.runs {
		if len(m) > maxReusedUndo {
			delete(u.runs, p)
			continue
		}
		clear(m)
	}
	clear(u.watermarks)
	clear(u.noise)
	clear(u.ruleErrs)
	clear(u.counts)
}

// endBatch ends the batch of u, keeping u for the next one.
func (e *Engine) endBatch(u *undo) {
	e.undo, e.spareUndo = nil, u
}

// Commit keeps the batch's changes and adds its counts to Stats.
func (e *Engine) Commit() {
	u := e.undo
	if u == nil {
		return
	}
	for c, n := range u.counts {
		c.Add(n)
	}
	e.endBatch(u)
}

// count counts one occurrence: at once outside a batch, on Commit inside
// one (an aborted batch is processed again and must not count twice).
func (e *Engine) count(c *atomic.Uint64) {
	if e.undo != nil {
		e.undo.counts[c]++
		return
	}
	c.Add(1)
}

// Abort undoes every change since Begin.
func (e *Engine) Abort() {
	u := e.undo
	if u == nil {
		return
	}
	defer e.endBatch(u)
	e.undo = nil
	for p, runs := range u.runs {
		pt := e.parts[p]
		if pt == nil {
			continue
		}
		for key, s := range runs {
			if cur := pt.runs[key]; cur != nil && cur != s.r {
				cur.gone() // made in the batch: undone
			}
			if s.r == nil {
				delete(pt.runs, key)
			} else {
				*s.r = s.val
				pt.runs[key] = s.r
				e.pushExpiry(pt, s.r)
			}
		}
		pt.rulesVersion = ^uint64(0) // re-arm every timer from the restored runs
	}
	for p, wm := range u.watermarks {
		if pt := e.parts[p]; pt != nil {
			pt.watermark = wm
		}
	}
	for key, re := range u.ruleErrs {
		if re == nil {
			delete(e.ruleErrs, key)
		} else {
			e.ruleErrs[key] = re
		}
	}
	for key, s := range u.noise {
		if s.n == nil {
			delete(e.noise, key)
		} else {
			*s.n = s.val
			e.noise[key] = s.n
		}
	}
}

// saveRun saves r, partition p's run of key (nil: none), before the
// batch's first change to it.
func (e *Engine) saveRun(p int32, pt *partition, key string, r *run) {
	if e.undo == nil {
		return
	}
	m := e.undo.runs[p]
	if m == nil {
		m = map[string]savedRun{}
		e.undo.runs[p] = m
	}
	if _, done := m[key]; !done {
		s := savedRun{r: r}
		if r != nil {
			s.val = *r
		}
		m[key] = s
	}
}

func (e *Engine) saveWatermark(p int32, pt *partition) {
	if e.undo == nil {
		return
	}
	if _, done := e.undo.watermarks[p]; !done {
		e.undo.watermarks[p] = pt.watermark
	}
}

// saveNoise saves n, the rule's noise state (nil: none), before the
// batch's first change to it.
func (e *Engine) saveNoise(key noiseKey, n *noise) {
	if e.undo == nil {
		return
	}
	if _, done := e.undo.noise[key]; !done {
		s := savedNoise{n: n}
		if n != nil {
			s.val = *n
		}
		e.undo.noise[key] = s
	}
}
