package engine

import (
	"time"
)

// timer is the next duration deadline of a running run (the earliest of
// its tenant's duration rules that has not fired), in Unix nanoseconds:
// one per run, however many duration rules its tenant has.
type timer struct {
	at int64
	r  *run
}

// timerLess orders timers by deadline, then run key, so that deadlines due
// together fire in the same order on every replay (the order decides which
// alerts a rate limit admits); a run's rules due together fire in rule id
// order.
func timerLess(a, b timer) bool {
	if a.at != b.at {
		return a.at < b.at
	}
	return compareKeys(a.r.key(), b.r.key()) < 0
}

// expiryEntry is when a run's state may be tombstoned, in Unix
// nanoseconds.
type expiryEntry struct {
	at int64
	r  *run
}

// expiryLess orders expiries by time, then run key, so that runs expiring
// together are tombstoned in the same order on every replay (the heap is
// rebuilt from a map, whose order is random).
func expiryLess(a, b expiryEntry) bool {
	if a.at != b.at {
		return a.at < b.at
	}
	return compareKeys(a.r.key(), b.r.key()) < 0
}

// heapPush and heapPop are container/heap's algorithms on a typed slice,
// so a push boxes nothing.
func heapPush[T any](h *[]T, x T, less func(a, b T) bool) {
	*h = append(*h, x)
	s := *h
	for j := len(s) - 1; j > 0; {
		i := (j - 1) / 2
		if !less(s[j], s[i]) {
			break
		}
		s[i], s[j] = s[j], s[i]
		j = i
	}
}

func heapPop[T any](h *[]T, less func(a, b T) bool) T {
	s := *h
	n := len(s) - 1
	s[0], s[n] = s[n], s[0]
	heapDown(s[:n], 0, less)
	x := s[n]
	var zero T
	s[n] = zero // drop the reference to the run
	*h = s[:n]
	return x
}

func heapDown[T any](s []T, i int, less func(a, b T) bool) {
	for {
		l := 2*i + 1
		if l >= len(s) {
			return
		}
		j := l
		if r := l + 1; r < len(s) && less(s[r], s[l]) {
			j = r
		}
		if !less(s[j], s[i]) {
			return
		}
		s[i], s[j] = s[j], s[i]
		i = j
	}
}

func heapInit[T any](s []T, less func(a, b T) bool) {
	for i := len(s)/2 - 1; i >= 0; i-- {
		heapDown(s, i, less)
	}
}

// partition is the state of one assigned partition. Heap entries are
// validated when popped (their run must still be the partition's run of
// its key), so stale ones are harmless.
type partition struct {
	runs         map[string]*run // by key (tenant/run)
	watermark    time.Time
	timers       []timer
	expiries     []expiryEntry
	rulesVersion uint64
	// tombstones counts the runs fire has removed (Event looks its run up
	// again only when the count moved).
	tombstones uint64
	// staleTimers estimates the timers left in the heap by runs that
	// finished before their deadlines (see staleTimer).
	staleTimers int

	// contexts shares workflows and labels between runs (see context);
	// ctxKey and ctxPairs are its scratch buffers.
	contexts map[string]*runContext
	ctxKey   []byte
	ctxPairs []labelPair
	lastCtx  *runContext // the context context returned last
	// fired shares the extra records of runs that hold only a fired list
	// (see addFired).
	fired map[firedKey]*runExtra
}

// staleTimer notes that a running run finished (or restarted); once such
// stale timers are half the heap (and more than compactSlack), the heap is
// rebuilt from the runs in flight at the next fire. Without this, every
// finished run left its timer until its deadline: hours of deadlines of a
// busy tenant's finished runs. Rebuilding costs O(runs) after at least that
// many stale timers.
func (pt *partition) staleTimer() {
	pt.staleTimers++
	if pt.staleTimers > len(pt.timers)/2 && len(pt.timers) > compactSlack {
		pt.rulesVersion = ^uint64(0) // rearm rebuilds
		pt.staleTimers = 0
	}
}

func newPartition() *partition {
	return &partition{runs: map[string]*run{}, rulesVersion: ^uint64(0), contexts: map[string]*runContext{}, fired: map[firedKey]*runExtra{}}
}

// live says whether r is still pt's run of its key: runs leaving pt.runs
// are marked gone (a map lookup per timer and expiry cost 5 % of
// BenchmarkEngineEvent).
func (pt *partition) live(r *run) bool { return r.keyLen&runGone == 0 }

func (pt *partition) pushTimer(t timer) { heapPush(&pt.timers, t, timerLess) }

// popTimer pops the earliest timer due at or before wm.
func (pt *partition) popTimer(wm int64) (timer, bool) {
	if len(pt.timers) == 0 || pt.timers[0].at > wm {
		return timer{}, false
	}
	return heapPop(&pt.timers, timerLess), true
}

func (pt *partition) pushExpiry(r *run, at int64) {
	heapPush(&pt.expiries, expiryEntry{at: at, r: r}, expiryLess)
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
func (pt *partition) compactExpiries(expiry func(*run) int64) {
	if len(pt.expiries) <= 2*len(pt.runs)+compactSlack {
		return
	}
	h := make([]expiryEntry, 0, len(pt.runs))
	for _, r := range pt.runs {
		h = append(h, expiryEntry{at: expiry(r), r: r})
	}
	heapInit(h, expiryLess)
	pt.expiries = h
}

// popExpiry pops the earliest expiry due at or before wm.
func (pt *partition) popExpiry(wm int64) (*run, bool) {
	if len(pt.expiries) == 0 || pt.expiries[0].at > wm {
		return nil, false
	}
	return heapPop(&pt.expiries, expiryLess).r, true
}
