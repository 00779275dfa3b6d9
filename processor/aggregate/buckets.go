package aggregate

// Buckets is the number of buckets of a window: a window of length W is kept
// as Buckets buckets of W/Buckets each.
const Buckets = 60

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

// window is a ring of Buckets buckets ending at head: bucket i (of the
// epoch-aligned sequence i = floor(unix_ms / bucketMS)) lives in slot
// i mod Buckets while head-Buckets < i ≤ head. sums is the total of the
// ring. Every operation is O(1) except a move of the head, which is
// O(min(distance, Buckets)).
type window struct {
	bucketMS int64
	head     int64
	started  bool // false: no input yet, head means nothing
	ring     [Buckets]bucket
	sums     Sums
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
	s := int(i % Buckets)
	if s < 0 {
		s += Buckets
	}
	return s
}

// advance moves the head forward to h, subtracting the buckets that leave
// the ring. A head at or behind h stays.
func (w *window) advance(h int64) {
	if !w.started {
		w.head, w.started = h, true
		return
	}
	if h <= w.head {
		return
	}
	if h-w.head >= Buckets {
		w.ring = [Buckets]bucket{}
		w.sums = Sums{}
		w.head = h
		return
	}
	for i := w.head + 1; i <= h; i++ {
		s := slot(i)
		w.sums.sub(w.ring[s])
		w.ring[s] = bucket{}
	}
	w.head = h
}

// add counts one input in bucket i after moving the head to at least
// max(i, floor). It reports false, and counts nothing, for an input older
// than the ring (i ≤ head − Buckets): a late input, dropped.
func (w *window) add(i, floor int64, o Outcome) bool {
	w.advance(max(i, floor))
	if i <= w.head-Buckets {
		return false
	}
	b := &w.ring[slot(i)]
	switch o {
	case Matched:
		b.n++
		w.sums.N++
	case Succeeded:
		b.s++
		w.sums.S++
	case Failed:
		b.f++
		w.sums.F++
	}
	return true
}

// at returns bucket i, empty when outside the ring.
func (w *window) at(i int64) bucket {
	if !w.started || i > w.head || i <= w.head-Buckets {
		return bucket{}
	}
	return w.ring[slot(i)]
}

// sumsAt is the content of the window ending at bucket c (buckets
// c-Buckets+1 … c) as far as the ring holds it; buckets after c are not
// counted, so a boundary is decided on closed buckets only.
func (w *window) sumsAt(c int64) Sums {
	if !w.started || c <= w.head-Buckets {
		return Sums{}
	}
	if c-Buckets >= w.head {
		return Sums{}
	}
	if c >= w.head {
		s := w.sums
		for i := w.head - Buckets + 1; i <= c-Buckets; i++ {
			s.sub(w.ring[slot(i)])
		}
		return s
	}
	var s Sums
	for i := max(c-Buckets+1, w.head-Buckets+1); i <= c; i++ {
		s.add(w.ring[slot(i)])
	}
	return s
}

// empty says whether the ring holds nothing.
func (w *window) empty() bool { return w.sums == Sums{} }

// nextChange is the first boundary after c at which the window's content
// can differ from its content at c: a bucket with data enters (j) or one
// leaves (j − Buckets). It returns ok=false when the window stays as it is
// at c for ever (no input arrives).
func (w *window) nextChange(c int64) (int64, bool) {
	if !w.started {
		return 0, false
	}
	best, ok := int64(0), false
	for i := w.head - Buckets + 1; i <= w.head; i++ {
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
