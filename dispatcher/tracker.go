package dispatcher

import (
	"sort"
	"sync"
	"sync/atomic"
)

// tracker follows the records of one source between fetch and outcome, so
// that an offset is committed only once every record before it has its
// outcome acknowledged by Kafka — while records of different endpoints
// finish in any order.
type tracker struct {
	mu    sync.Mutex
	parts map[int32]*partTrack
	n     int
	// wake is signalled when a record finishes.
	wake chan struct{}
}

type partTrack struct {
	offsets []int64 // fetched, in order, not yet committable
	// finished[i] tells whether the record at offsets[i] is finished (a
	// slice beside offsets, not a map: no hashing, nothing to delete);
	// nfinished counts the true ones.
	finished  []bool
	nfinished int
	epoch     int32
	// dropped is set when the partition is revoked or lost: its records
	// still queued are not attempted (the next owner attempts them).
	dropped atomic.Bool
}

func newTracker() *tracker {
	return &tracker{parts: map[int32]*partTrack{}, wake: make(chan struct{}, 1)}
}

// add tracks a fetched record and returns its ticket: whether its
// partition is still owned (false once the partition is revoked, even if it
// comes back), and how to mark it finished.
func (t *tracker) add(part int32, offset int64, epoch int32) ticket {
	t.mu.Lock()
	defer t.mu.Unlock()
	pt := t.parts[part]
	if pt == nil {
		pt = &partTrack{}
		t.parts[part] = pt
	}
	pt.offsets = append(pt.offsets, offset)
	pt.finished = append(pt.finished, false)
	pt.epoch = epoch
	t.n++
	return ticket{t: t, pt: pt, offset: offset}
}

// ticket is one tracked record.
type ticket struct {
	t      *tracker
	pt     *partTrack
	offset int64
}

// alive reports whether the record's partition is still owned.
func (k ticket) alive() bool { return !k.pt.dropped.Load() }

// finish marks the record finished: its outcome records are durable (or it
// needs none). A record of a partition dropped since is ignored, even if
// the partition came back and the same offset was fetched again: that
// fetch is another record, finished by its own ticket.
func (k ticket) finish() {
	t := k.t
	t.mu.Lock()
	if pt := k.pt; !pt.dropped.Load() {
		i := sort.Search(len(pt.offsets), func(i int) bool { return pt.offsets[i] >= k.offset })
		if i < len(pt.offsets) && pt.offsets[i] == k.offset && !pt.finished[i] {
			pt.finished[i] = true
			pt.nfinished++
			t.n--
		}
	}
	t.mu.Unlock()
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// inflight is the number of records fetched and not finished.
func (t *tracker) inflight() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n
}

// committable pops, per partition, the finished prefix and returns the
// offset to commit (one past its last record).
func (t *tracker) committable() map[int32][2]int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[int32][2]int64{}
	for p, pt := range t.parts {
		i := 0
		for i < len(pt.offsets) && pt.finished[i] {
			i++
		}
		if i > 0 {
			out[p] = [2]int64{pt.offsets[i-1] + 1, int64(pt.epoch)}
			pt.offsets, pt.finished = pt.offsets[i:], pt.finished[i:]
			pt.nfinished -= i
		}
	}
	return out
}

// drop forgets partitions (revoked): their unfinished records are not
// counted any more and will be attempted again by their next owner.
func (t *tracker) drop(parts []int32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, p := range parts {
		if pt := t.parts[p]; pt != nil {
			t.n -= len(pt.offsets) - pt.nfinished
			pt.dropped.Store(true)
			delete(t.parts, p)
		}
	}
}
