package aggregate

import (
	"cmp"
	"slices"

	"github.com/exospherehost/exo-alerts/schemas"
)

// Buckets is the number of buckets of a window: a window of length W is kept
// as Buckets buckets of W/Buckets each.
const Buckets = 60

// Ahead is how many buckets the ring keeps beyond the window: the buckets
// that inputs ahead of the effective watermark E fill while the boundaries
// under E still need the Buckets before them. E lags the newest inputs by
// EXO_PROCESSOR_AGGREGATE_DELAY plus the marker interval (about 6 s): 6
// buckets of a 1m window, fewer for longer windows. An input further ahead
// evicts buckets that boundaries not yet evaluated would count; those
// boundaries are then skipped (no decision on a partial window, see
// Group.skipTo), never decided early.
const Ahead = 12

// ringSize is the number of buckets a group keeps in its ring.
const ringSize = Buckets + Ahead

// maxTail bounds the tail: the non-empty buckets older than the ring that
// boundaries not yet evaluated still count. They exist while inputs run
// ahead of the effective watermark by more than Ahead buckets — a
// partition replaying a backlog ahead of another, a source that stalls —
// and hold the inputs of the partitions behind, which would otherwise be
// lost. Sparse: a group keeps at most maxTail of them (12 B each beside its
// index); beyond, the oldest goes and the boundaries that counted it are
// skipped.
const maxTail = 2 * Buckets

// tailBucket is one bucket of the tail.
type tailBucket struct {
	i int64
	b bucket
}

// Outcome is what one input adds to a window.
type Outcome uint8

const (
	// Matched is an input of a count rule.
	Matched Outcome = iota + 1
	// Succeeded is a finished run that succeeded (rate rules).
	Succeeded
	// Failed is a finished run that failed (rate rules).
	Failed
)

// bucket is the counts of one bucket: matched, succeeded, failed.
type bucket struct{ n, s, f uint32 }

func (b bucket) empty() bool { return b.n == 0 && b.s == 0 && b.f == 0 }

// Sums is the content of a window: matched, succeeded and failed inputs.
type Sums struct{ N, S, F uint64 }

func (s *Sums) add(b bucket) { s.N += uint64(b.n); s.S += uint64(b.s); s.F += uint64(b.f) }
func (s *Sums) sub(b bucket) { s.N -= uint64(b.n); s.S -= uint64(b.s); s.F -= uint64(b.f) }

// window is a ring of ringSize buckets ending at head, the newest bucket
// that holds an input: bucket i (of the epoch-aligned sequence
// i = floor(unix_ms / bucketMS)) lives in slot i mod ringSize while
// head-ringSize < i ≤ head. sums is the window at head (buckets
// head-Buckets+1 … head). Only inputs move the head, so it is the highest
// index of the non-empty buckets and the sparse buckets restore it exactly.
// Every operation is O(1) except a move of the head, which is
// O(min(distance, ringSize)), and the reads at another bucket (O(Buckets)).
type window struct {
	bucketMS int64
	head     int64
	started  bool // false: no input yet, head means nothing
	ring     [ringSize]bucket
	sums     Sums
	tail     []tailBucket // ascending, every i ≤ head-ringSize, none empty
}

func newWindow(windowMS int64) window {
	b := windowMS / Buckets
	if b < 1 {
		b = 1
	}
	return window{bucketMS: b}
}

// index is the bucket of a unix time in ms (floor, also before 1970).
func (w *window) index(ms int64) int64 {
	i := ms / w.bucketMS
	if ms%w.bucketMS != 0 && ms < 0 {
		i--
	}
	return i
}

// end is the end (exclusive, unix ms) of bucket i: its boundary.
func (w *window) end(i int64) int64 { return (i + 1) * w.bucketMS }

func slot(i int64) int {
	s := int(i % ringSize)
	if s < 0 {
		s += ringSize
	}
	return s
}

// advance moves the head forward to h. Buckets that leave the window at h
// are subtracted from sums; non-empty buckets that leave the ring go to the
// tail when a boundary after keep-1 still counts them (i ≥ keep), and the
// newest one that could not be kept (the tail full) is returned (lost, ok).
func (w *window) advance(h, keep int64) (lost int64, ok bool) {
	if !w.started {
		w.head, w.started = h, true
		return 0, false
	}
	if h <= w.head {
		return 0, false
	}
	if h-w.head >= ringSize {
		for i := w.head - ringSize + 1; i <= w.head; i++ {
			if b := w.ring[slot(i)]; !b.empty() && i >= keep {
				if l, lok := w.keep(i, b); lok {
					lost, ok = l, true
				}
			}
		}
		w.ring = [ringSize]bucket{}
		w.sums = Sums{}
		w.head = h
		return lost, ok
	}
	for j := w.head + 1; j <= h; j++ {
		// Bucket j-Buckets leaves the window; it is in the ring (ringSize ≥
		// Buckets), or a new empty bucket cleared below.
		w.sums.sub(w.ring[slot(j-Buckets)])
		ev := &w.ring[slot(j)] // bucket j-ringSize leaves the ring
		if !ev.empty() && j-ringSize >= keep {
			if l, lok := w.keep(j-ringSize, *ev); lok {
				lost, ok = l, true
			}
		}
		*ev = bucket{}
	}
	w.head = h
	return lost, ok
}

// keep appends bucket i (older than every bucket of the tail's future: it
// left the ring last) to the tail, dropping the oldest when full.
func (w *window) keep(i int64, b bucket) (lost int64, ok bool) {
	w.tail = append(w.tail, tailBucket{i: i, b: b})
	if len(w.tail) > maxTail {
		lost, ok = w.tail[0].i, true
		w.tail = append(w.tail[:0], w.tail[1:]...)
	}
	return lost, ok
}

// prune drops the tail's buckets no boundary after keep-1 counts.
func (w *window) prune(keep int64) {
	n := 0
	for n < len(w.tail) && w.tail[n].i < keep {
		n++
	}
	if n > 0 {
		w.tail = append(w.tail[:0], w.tail[n:]...)
		if len(w.tail) == 0 {
			w.tail = nil
		}
	}
}

// add counts one input in bucket i, moving the head to i when it is ahead.
// Buckets a boundary after keep-1 still counts are never silently lost: an
// input older than the ring goes to the tail, and whatever the full tail
// cannot hold is reported (lost, lostOK) for the group to skip the
// boundaries that counted it. counted=false: the input is older than
// anything a boundary still to evaluate counts (i < keep), or the tail is
// full of newer buckets (then lost = i).
func (w *window) add(i int64, o Outcome, keep int64) (counted bool, lost int64, lostOK bool) {
	lost, lostOK = w.advance(i, keep)
	var one bucket
	switch o {
	case Matched:
		one.n = 1
	case Succeeded:
		one.s = 1
	case Failed:
		one.f = 1
	}
	if i <= w.head-ringSize {
		if i < keep {
			return false, lost, lostOK
		}
		k, found := slices.BinarySearchFunc(w.tail, i, func(t tailBucket, i int64) int { return cmp.Compare(t.i, i) })
		if found {
			w.tail[k].b.n += one.n
			w.tail[k].b.s += one.s
			w.tail[k].b.f += one.f
			return true, lost, lostOK
		}
		if len(w.tail) >= maxTail && k == 0 {
			return false, i, true
		}
		w.tail = slices.Insert(w.tail, k, tailBucket{i: i, b: one})
		if len(w.tail) > maxTail {
			l := w.tail[0].i
			w.tail = append(w.tail[:0], w.tail[1:]...)
			if !lostOK || l > lost {
				lost, lostOK = l, true
			}
		}
		return true, lost, lostOK
	}
	b := &w.ring[slot(i)]
	b.n += one.n
	b.s += one.s
	b.f += one.f
	if i > w.head-Buckets {
		w.sums.add(one)
	}
	return true, lost, lostOK
}

// at returns bucket i, empty when outside the ring.
func (w *window) at(i int64) bucket {
	if !w.started || i > w.head {
		return bucket{}
	}
	if i <= w.head-ringSize {
		if k, found := slices.BinarySearchFunc(w.tail, i, func(t tailBucket, i int64) int { return cmp.Compare(t.i, i) }); found {
			return w.tail[k].b
		}
		return bucket{}
	}
	return w.ring[slot(i)]
}

// sumsAt is the content of the window ending at bucket c (buckets
// c-Buckets+1 … c) as far as the ring and the tail hold it; buckets after c
// are not counted, so a boundary is decided on closed buckets only.
func (w *window) sumsAt(c int64) Sums {
	if !w.started || c-Buckets >= w.head {
		return Sums{}
	}
	var s Sums
	for _, t := range w.tail {
		if t.i > c-Buckets && t.i <= c {
			s.add(t.b)
		}
	}
	if c <= w.head-ringSize {
		return s
	}
	if c >= w.head {
		x := w.sums
		for i := w.head - Buckets + 1; i <= c-Buckets; i++ {
			x.sub(w.ring[slot(i)])
		}
		s.N, s.S, s.F = s.N+x.N, s.S+x.S, s.F+x.F
		return s
	}
	for i := max(c-Buckets+1, w.head-ringSize+1); i <= c; i++ {
		s.add(w.ring[slot(i)])
	}
	return s
}

// empty says whether the ring and the tail hold nothing.
func (w *window) empty() bool {
	if len(w.tail) > 0 {
		return false
	}
	for i := range w.ring {
		if !w.ring[i].empty() {
			return false
		}
	}
	return true
}

// nextChange is the first boundary after c at which the window's content
// can differ from its content at c: a bucket with data enters (j) or one
// leaves (j + Buckets). It returns ok=false when the window stays as it is
// at c for ever (no input arrives).
func (w *window) nextChange(c int64) (int64, bool) {
	if !w.started {
		return 0, false
	}
	best, ok := int64(0), false
	for _, t := range w.tail {
		for _, j := range [2]int64{t.i, t.i + Buckets} {
			if j > c && (!ok || j < best) {
				best, ok = j, true
			}
		}
	}
	for i := max(w.head-ringSize+1, c-Buckets+1); i <= w.head; i++ {
		if w.ring[slot(i)].empty() {
			continue
		}
		for _, j := range [2]int64{i, i + Buckets} {
			if j > c && (!ok || j < best) {
				best, ok = j, true
			}
		}
	}
	return best, ok
}

// buckets lists the non-empty buckets of the ring, oldest first, and
// restore puts them back (the inverse, for the changelog).
func (w *window) buckets() []schemas.AggregateBucket {
	if !w.started {
		return nil
	}
	var out []schemas.AggregateBucket
	for _, t := range w.tail {
		out = append(out, schemas.AggregateBucket{I: t.i, N: t.b.n, S: t.b.s, F: t.b.f})
	}
	for i := w.head - ringSize + 1; i <= w.head; i++ {
		if b := w.ring[slot(i)]; !b.empty() {
			out = append(out, schemas.AggregateBucket{I: i, N: b.n, S: b.s, F: b.f})
		}
	}
	return out
}

func (w *window) restore(bs []schemas.AggregateBucket) {
	*w = window{bucketMS: w.bucketMS}
	for _, b := range bs {
		if !w.started || b.I > w.head {
			w.head, w.started = b.I, true
		}
	}
	sorted := slices.SortedFunc(slices.Values(bs), func(a, b schemas.AggregateBucket) int { return cmp.Compare(a.I, b.I) })
	for _, b := range sorted {
		if b.N == 0 && b.S == 0 && b.F == 0 {
			continue
		}
		if b.I <= w.head-ringSize {
			if n := len(w.tail); n > 0 && w.tail[n-1].i == b.I {
				w.tail[n-1].b.n += b.N
				w.tail[n-1].b.s += b.S
				w.tail[n-1].b.f += b.F
			} else {
				w.tail = append(w.tail, tailBucket{i: b.I, b: bucket{n: b.N, s: b.S, f: b.F}})
			}
			continue
		}
		x := &w.ring[slot(b.I)]
		x.n += b.N
		x.s += b.S
		x.f += b.F
		if b.I > w.head-Buckets {
			w.sums.add(bucket{n: b.N, s: b.S, f: b.F})
		}
	}
}
