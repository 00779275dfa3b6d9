package aggregate

import (
	"container/heap"
	"math"
)

// noDue is the due time of a group that nothing time-driven can change.
const noDue = math.MaxInt64

// due is one entry of a partition's heap of due groups: the group of key
// must be evaluated once the effective watermark reaches at (unix ms, the
// end of its next boundary that can decide something). Entries are lazy:
// one whose at no longer matches its group's is skipped when popped.
type due struct {
	at  int64
	key string
}

// dueHeap orders by time, ties by key (as processor/engine's timerHeap), so
// the groups due at one watermark are evaluated in the same order by a
// replay and by a restored partition.
type dueHeap []due

func (h dueHeap) Len() int { return len(h) }
func (h dueHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].key < h[j].key
}
func (h dueHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)   { *h = append(*h, x.(due)) }
func (h *dueHeap) Pop() any {
	old := *h
	d := old[len(old)-1]
	*h = old[:len(old)-1]
	return d
}

// schedule records en's next due time and pushes it when it changed.
func (pt *partition) schedule(en *entry) {
	at := en.nextDue()
	if at == en.due {
		return
	}
	en.due = at
	if at == noDue {
		return
	}
	heap.Push(&pt.heap, due{at: at, key: en.key})
	if len(pt.heap) > 2*len(pt.groups)+64 {
		pt.rebuildHeap()
	}
}

// rebuildHeap makes the heap again from the groups' due times: after an
// abort (the heap is not part of the undo) or when stale entries pile up.
func (pt *partition) rebuildHeap() {
	pt.heap = pt.heap[:0]
	for k, en := range pt.groups {
		if en.due != noDue {
			pt.heap = append(pt.heap, due{at: en.due, key: k})
		}
	}
	heap.Init(&pt.heap)
}

// popDue returns the next group due at or before e (unix ms).
func (pt *partition) popDue(e int64) (*entry, bool) {
	for len(pt.heap) > 0 && pt.heap[0].at <= e {
		d := heap.Pop(&pt.heap).(due)
		if en := pt.groups[d.key]; en != nil && en.due == d.at {
			return en, true
		}
	}
	return nil, false
}
