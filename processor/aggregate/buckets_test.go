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
	if !w.add(100, 0, Matched) || !w.add(100, 0, Failed) || !w.add(101, 0, Succeeded) {
		t.Fatal("inputs inside the ring refused")
	}
	if got := w.sumsAt(101); got != (Sums{N: 1, S: 1, F: 1}) {
		t.Fatalf("sums = %+v", got)
	}
	if got := w.sumsAt(100); got != (Sums{N: 1, F: 1}) {
		t.Fatalf("sums at 100 = %+v, want bucket 101 excluded", got)
	}
	// Moving the head to 159 keeps bucket 100 (159-59 = 100); 160 drops it.
	if !w.add(159, 0, Matched) {
		t.Fatal("refused 159")
	}
	if got := w.sums; got != (Sums{N: 2, S: 1, F: 1}) {
		t.Fatalf("sums at 159 = %+v", got)
	}
	if w.add(41, 100, Matched) { // head 159: 41 ≤ 99 is late
		t.Fatal("a late input was counted")
	}
	w.advance(160)
	if got := w.sums; got != (Sums{N: 1, S: 1}) {
		t.Fatalf("sums at 160 = %+v", got)
	}
	if w.add(100, 0, Matched) {
		t.Fatal("input older than the ring counted")
	}
	// An input ahead of the floor moves the head to the floor first.
	if w.add(170, 240, Matched) {
		t.Fatal("input older than the window at the floor counted")
	}
	if !w.empty() || w.head != 240 {
		t.Fatalf("head %d empty %v, want 240 and empty", w.head, w.empty())
	}
	if got := w.sumsAt(10); got != (Sums{}) {
		t.Fatalf("sums before the ring = %+v", got)
	}
	var fresh window
	if _, ok := fresh.nextChange(0); ok || fresh.sumsAt(0) != (Sums{}) || fresh.at(0) != (bucket{}) {
		t.Fatal("an unstarted window has content")
	}
}

// TestWindowMatchesModel compares the ring with a plain list of inputs over
// random streams: every count at every boundary, and every change point.
func TestWindowMatchesModel(t *testing.T) {
	t.Parallel()
	for seed := range uint64(50) {
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
			i := floor - 70 + int64(r.IntN(140))
			o := Outcome(1 + r.IntN(3))
			h := max(head, i, floor)
			wantOK := i > h-Buckets
			if got := w.add(i, floor, o); got != wantOK {
				t.Fatalf("seed %d: add(%d, floor %d) head %d = %v, want %v", seed, i, floor, h, got, wantOK)
			}
			head = h
			if wantOK {
				kept = append(kept, in{i, o})
			}
			for c := head - 70; c <= head+70; c++ {
				var want Sums
				for _, k := range kept {
					if k.i <= c && k.i > c-Buckets && k.i > head-Buckets {
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
				if c < head {
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
		}
	}
}
