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

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h timerHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)        { *h = append(*h, x.(timer)) }
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

func (pt *partition) popExpiry(wm time.Time) (string, bool) {
	if len(pt.expiries) == 0 || pt.expiries[0].at.After(wm) {
		return "", false
	}
	return heap.Pop(&pt.expiries).(expiryEntry).key, true
}
