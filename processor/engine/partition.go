package engine

import (
	"container/heap"
	"time"

	"github.com/exospherehost/exo-alerts/schemas"
)

// timer is a duration deadline of one rule for one run.
type timer struct {
	at   time.Time
	key  string
	rule string
}

type timerHeap []timer

func (h timerHeap) Len() int { return len(h) }

// Less orders timers by deadline, then run and rule, so that deadlines due
// together fire in the same order on every replay (the order decides which
// alerts a rate limit admits).
func (h timerHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	if h[i].key != h[j].key {
		return h[i].key < h[j].key
	}
	return h[i].rule < h[j].rule
}
func (h timerHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)   { *h = append(*h, x.(timer)) }
func (h *timerHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// expiryEntry is when a run's state may be tombstoned.
type expiryEntry struct {
	at  time.Time
	key string
}

type expiryHeap []expiryEntry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiryEntry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// partition is the state of one assigned partition. Heap entries are
// validated when popped, so stale ones are harmless.
type partition struct {
	runs         map[string]*schemas.RunState
	watermark    time.Time
	timers       timerHeap
	expiries     expiryHeap
	rulesVersion uint64
	// staleTimers estimates the timers left in the heap by runs that
	// finished before their deadlines (see staleTimer).
	staleTimers int
}

// staleTimer notes that a run with n armed timers finished; once such stale
// timers are half the heap (and more than compactSlack), the heap is rebuilt
// from the runs in flight at the next fire. Without this, every finished run
// left one timer per duration rule until its deadline: hours of deadlines of
// a busy tenant's finished runs (100,000 timers for 20,000 runs and five
// rules). Rebuilding costs O(runs) after at least that many stale timers.
func (pt *partition) staleTimer(n int) {
	pt.staleTimers += n
	if pt.staleTimers > len(pt.timers)/2 && len(pt.timers) > compactSlack {
		pt.rulesVersion = ^uint64(0) // rearm rebuilds
		pt.staleTimers = 0
	}
}

func newPartition() *partition {
	return &partition{runs: map[string]*schemas.RunState{}, rulesVersion: ^uint64(0)}
}

func (pt *partition) pushTimer(t timer) { heap.Push(&pt.timers, t) }

// popTimer pops the earliest timer due at or before wm.
func (pt *partition) popTimer(wm time.Time) (timer, bool) {
	if len(pt.timers) == 0 || pt.timers[0].at.After(wm) {
		return timer{}, false
	}
	return heap.Pop(&pt.timers).(timer), true
}

func (pt *partition) pushExpiry(key string, at time.Time) {
	heap.Push(&pt.expiries, expiryEntry{at: at, key: key})
}

// compactSlack is how many stale expiry entries a partition tolerates
// beyond one per run before it rebuilds its expiry heap.
const compactSlack = 1024

// compactExpiries rebuilds the expiry heap with one entry per run once
// stale entries (superseded expiries, tombstoned runs) outnumber the runs.
// Without it, every finished run would leave its running-run expiry
// (started_at + MaxRunAge, days away) in the heap long after its state was
// tombstoned. Rebuilding costs O(runs) after at least runs+compactSlack
// pushes, so it is amortised O(1) per push.
func (pt *partition) compactExpiries(expiry func(*schemas.RunState) time.Time) {
	if len(pt.expiries) <= 2*len(pt.runs)+compactSlack {
		return
	}
	h := make(expiryHeap, 0, len(pt.runs))
	for key, st := range pt.runs {
		h = append(h, expiryEntry{at: expiry(st), key: key})
	}
	heap.Init(&h)
	pt.expiries = h
}

func (pt *partition) popExpiry(wm time.Time) (string, bool) {
	if len(pt.expiries) == 0 || pt.expiries[0].at.After(wm) {
		return "", false
	}
	return heap.Pop(&pt.expiries).(expiryEntry).key, true
}
