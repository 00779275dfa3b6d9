package aggregate

import (
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
)

func TestWindowIndexAndEnd(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		windowMS int64
		ms       int64
		want     int64
	}{
		{"1m window, 1s buckets", 60_000, 1_500, 1},
		{"on a boundary", 60_000, 2_000, 2},
		{"before 1970 floors down", 60_000, -1, -1},
		{"before 1970 on a boundary", 60_000, -2_000, -2},
		{"15m window, 15s buckets", 900_000, 44_999, 2},
		{"tiny window still 1ms buckets", 10, 7, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWindow(tc.windowMS)
			if got := w.index(tc.ms); got != tc.want {
				t.Fatalf("index(%d) = %d, want %d", tc.ms, got, tc.want)
			}
			if got := w.end(tc.want); got != (tc.want+1)*w.bucketMS {
				t.Fatalf("end(%d) = %d", tc.want, got)
			}
		})
	}
}

func TestWindowAddLateAndExpire(t *testing.T) {
	t.Parallel()
	w := newWindow(60_000)     // 1 s buckets
	const none = math.MaxInt64 // keep nothing older than the ring
	add := func(i int64, o Outcome) bool { ok, _, _ := w.add(i, o, none); return ok }
	if !add(100, Matched) || !add(100, Failed) || !add(101, Succeeded) {
		t.Fatal("inputs inside the ring refused")
	}
	if got := w.sumsAt(101); got != (Sums{N: 1, S: 1, F: 1}) {
		t.Fatalf("sums = %+v", got)
	}
	if got := w.sumsAt(100); got != (Sums{N: 1, F: 1}) {
		t.Fatalf("sums at 100 = %+v, want bucket 101 excluded", got)
	}
	// Moving the head to 159 keeps bucket 100 in the window (159-59 = 100);
	// 160 takes it out of the window but the ring still has it.
	if !add(159, Matched) {
		t.Fatal("refused 159")
	}
	if got := w.sums; got != (Sums{N: 2, S: 1, F: 1}) {
		t.Fatalf("sums at 159 = %+v", got)
	}
	if add(159-ringSize, Matched) {
		t.Fatal("an input older than the ring and than keep was counted")
	}
	if !add(160, Matched) || w.sums != (Sums{N: 2, S: 1}) || w.sumsAt(159) != (Sums{N: 2, S: 1, F: 1}) {
		t.Fatalf("sums at 160 = %+v, at 159 = %+v", w.sums, w.sumsAt(159))
	}
	// An input older than the window at the head but inside the ring counts
	// for the boundaries that still see it, not for the window at the head.
	if !add(99, Matched) || w.sums != (Sums{N: 2, S: 1}) || w.sumsAt(100) != (Sums{N: 2, F: 1}) || w.at(99) != (bucket{n: 1}) {
		t.Fatalf("sums %+v, at 100 %+v", w.sums, w.sumsAt(100))
	}
	// Kept from 98 on, buckets 99, 100 and 101 go to the tail when the head
	// moves past them; the others are forgotten.
	if ok, _, lostOK := w.add(101+ringSize, Matched, 98); !ok || lostOK || len(w.tail) != 3 || w.at(100) != (bucket{n: 1, f: 1}) ||
		w.at(99) != (bucket{n: 1}) || w.sumsAt(101) != (Sums{N: 2, S: 1, F: 1}) || w.at(87) != (bucket{}) {
		t.Fatalf("tail %+v", w.tail)
	}
	// An input older than the ring but kept joins the tail, in order.
	if ok, _, _ := w.add(98, Failed, 98); !ok || len(w.tail) != 4 || w.tail[0].i != 98 || w.sumsAt(101).F != 2 {
		t.Fatalf("tail %+v", w.tail)
	}
	if ok, _, _ := w.add(100, Failed, 98); !ok || w.tail[2].b != (bucket{n: 1, f: 2}) {
		t.Fatalf("tail %+v", w.tail)
	}
	if ok, _, _ := w.add(97, Failed, 98); ok {
		t.Fatal("an input older than keep joined the tail")
	}
	w.prune(100)
	if len(w.tail) != 2 || w.tail[0].i != 100 {
		t.Fatalf("pruned tail %+v", w.tail)
	}
	if next, ok := w.nextChange(0); !ok || next != 100 {
		t.Fatalf("next change %d %v", next, ok)
	}
	// A jump with nothing kept forgets the ring; only a full tail reports a
	// loss.
	if ok, _, lostOK := w.add(1000, Matched, none); !ok || lostOK || w.at(101+ringSize) != (bucket{}) || w.sums != (Sums{N: 1}) {
		t.Fatalf("jump: ok %v lost %v", ok, lostOK)
	}
	if got := w.sumsAt(10); got != (Sums{}) {
		t.Fatalf("sums before the ring = %+v", got)
	}
	var fresh window
	if _, ok := fresh.nextChange(0); ok || fresh.sumsAt(0) != (Sums{}) || fresh.at(0) != (bucket{}) || fresh.buckets() != nil || !fresh.empty() {
		t.Fatal("an unstarted window has content")
	}
}

// TestWindowTailIsBounded: a full tail drops its oldest bucket and says so;
// an input older than a full tail is refused and reported.
func TestWindowTailIsBounded(t *testing.T) {
	t.Parallel()
	w := newWindow(60_000)
	for k := range int64(maxTail) {
		w.add(2*k, Matched, 0)
	}
	w.add(10_000, Matched, 0) // every bucket of the ring to the tail
	if len(w.tail) != maxTail {
		t.Fatalf("tail %d", len(w.tail))
	}
	first := w.tail[0].i
	if ok, lost, lostOK := w.add(first+1, Matched, 0); !ok || !lostOK || lost != first || len(w.tail) != maxTail {
		t.Fatalf("insert in a full tail: ok %v lost %d (%v), want %d", ok, lost, lostOK, first)
	}
	if ok, lost, lostOK := w.add(first-5, Matched, -100); ok || !lostOK || lost != first-5 {
		t.Fatalf("older than a full tail: ok %v lost %d %v", ok, lost, lostOK)
	}
}

// TestWindowMatchesModel compares the window with a plain list of inputs
// over random streams: every boundary still to evaluate (after keep and
// after anything reported lost) sees exactly the inputs in its window, the
// change points are right, and the sparse buckets restore the same window.
func TestWindowMatchesModel(t *testing.T) {
	t.Parallel()
	var tails, losses int
	for seed := range uint64(12) {
		r := rand.New(rand.NewPCG(seed, 7))
		w := newWindow(60_000)
		type in struct {
			i int64
			o Outcome
		}
		var kept []in
		evaluated := int64(r.IntN(50))
		from := evaluated + 1             // the first boundary the window must get right
		stall, spread := seed%2 == 0, 200 // half the streams: a stalled watermark, inputs far ahead
		if stall {
			spread = 600
		}
		for step := range 300 {
			if !stall || step > 200 {
				evaluated += int64(r.IntN(3))
			}
			from = max(from, evaluated+1)
			keep := evaluated - Buckets + 1
			i := evaluated - 70 + int64(r.IntN(60+r.IntN(spread)))
			o := Outcome(1 + r.IntN(3))
			ok, lost, lostOK := w.add(i, o, keep)
			if lostOK {
				from = max(from, lost+Buckets)
				losses++
			}
			w.prune(keep)
			if len(w.tail) > 0 {
				tails++
			}
			if ok {
				kept = append(kept, in{i, o})
			} else if i >= keep && !lostOK {
				t.Fatalf("seed %d: input %d refused without a loss (keep %d)", seed, i, keep)
			}
			for c := from; c <= w.head+70; c++ {
				if c > from+130 && c < w.head-70 {
					c = w.head - 70 // the middle of a long span adds nothing
				}
				var want Sums
				for _, k := range kept {
					if k.i <= c && k.i > c-Buckets {
						want.add(bucket{n: b2u(k.o == Matched), s: b2u(k.o == Succeeded), f: b2u(k.o == Failed)})
					}
				}
				if got := w.sumsAt(c); got != want {
					t.Fatalf("seed %d: sumsAt(%d) head %d from %d = %+v, want %+v", seed, c, w.head, from, got, want)
				}
				if c%3 != 0 {
					continue
				}
				next, ok := w.nextChange(c)
				end := w.head + 2*Buckets
				if ok {
					end = next
				}
				for j := c + 1; j < end; j++ {
					if w.sumsAt(j) != w.sumsAt(c) {
						t.Fatalf("seed %d: window changes at %d before nextChange(%d) = %d", seed, j, c, next)
					}
				}
			}
			back := window{bucketMS: w.bucketMS}
			back.restore(w.buckets())
			if !reflect.DeepEqual(back, w) {
				t.Fatalf("seed %d: restore(buckets) differs\n%+v\n%+v", seed, back.tail, w.tail)
			}
		}
	}
	if tails == 0 || losses == 0 {
		t.Fatalf("the streams never used the tail (%d) or overflowed it (%d)", tails, losses)
	}
}

func b2u(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}
