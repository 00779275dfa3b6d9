package aggregate

import (
	"math/rand/v2"
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
	w := newWindow(60_000) // 1 s buckets
	add := func(i int64, o Outcome) bool { ok, _, _ := w.add(i, o); return ok }
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
		t.Fatal("an input older than the ring was counted")
	}
	if !add(160, Matched) || w.sums != (Sums{N: 2, S: 1}) || w.sumsAt(159) != (Sums{N: 2, S: 1, F: 1}) {
		t.Fatalf("sums at 160 = %+v, at 159 = %+v", w.sums, w.sumsAt(159))
	}
	// An input older than the window at the head but inside the ring counts
	// for the boundaries that still see it, not for the window at the head.
	if !add(99, Matched) || w.sums != (Sums{N: 2, S: 1}) || w.sumsAt(100) != (Sums{N: 2, F: 1}) {
		t.Fatalf("sums %+v, at 100 %+v", w.sums, w.sumsAt(100))
	}
	// Moving the head evicts bucket 99, 100, 101: the newest evicted is
	// reported, so the group can skip the boundaries that needed them.
	if ok, lost, lostOK := w.add(101+ringSize, Matched); !ok || !lostOK || lost != 101 {
		t.Fatalf("add far ahead: ok %v lost %d %v", ok, lost, lostOK)
	}
	if ok, lost, lostOK := w.add(1000, Matched); !ok || !lostOK || lost != 101+ringSize {
		t.Fatalf("jump: ok %v lost %d %v", ok, lost, lostOK)
	}
	if got := w.sumsAt(10); got != (Sums{}) {
		t.Fatalf("sums before the ring = %+v", got)
	}
	var fresh window
	if _, ok := fresh.nextChange(0); ok || fresh.sumsAt(0) != (Sums{}) || fresh.at(0) != (bucket{}) || fresh.buckets() != nil || !fresh.empty() {
		t.Fatal("an unstarted window has content")
	}
}

// TestWindowMatchesModel compares the ring with a plain list of inputs over
// random streams: every count at every boundary, every change point, and
// the sparse buckets restore the same window.
func TestWindowMatchesModel(t *testing.T) {
	t.Parallel()
	for seed := range uint64(20) {
		r := rand.New(rand.NewPCG(seed, 7))
		w := newWindow(60_000)
		type in struct {
			i int64
			o Outcome
		}
		var kept []in
		head := int64(-1 << 62)
		floor := int64(r.IntN(50))
		for range 200 {
			floor += int64(r.IntN(4))
			i := floor - 80 + int64(r.IntN(160))
			o := Outcome(1 + r.IntN(3))
			h := max(head, i)
			wantOK := i > h-ringSize
			if got, _, _ := w.add(i, o); got != wantOK {
				t.Fatalf("seed %d: add(%d) head %d = %v, want %v", seed, i, h, got, wantOK)
			}
			head = h
			if wantOK {
				kept = append(kept, in{i, o})
			}
			for c := head - 80; c <= head+70; c++ {
				var want Sums
				for _, k := range kept {
					if k.i <= c && k.i > c-Buckets && k.i > head-ringSize {
						switch k.o {
						case Matched:
							want.N++
						case Succeeded:
							want.S++
						case Failed:
							want.F++
						}
					}
				}
				if got := w.sumsAt(c); got != want {
					t.Fatalf("seed %d: sumsAt(%d) head %d = %+v, want %+v", seed, c, head, got, want)
				}
				if c < head-Buckets || c%3 != 0 {
					continue
				}
				next, ok := w.nextChange(c)
				end := head + 2*Buckets
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
			if back != w {
				t.Fatalf("seed %d: restore(buckets) differs", seed)
			}
		}
	}
}
