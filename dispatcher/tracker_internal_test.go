package dispatcher

import "testing"

// A record of a partition that was revoked and came back is finished only
// by its own ticket: a worker of the old assignment finishing the same
// offset (it found its partition gone and did nothing) must not make the
// new fetch of that record committable while it is still being attempted.
func TestTrackerIgnoresAStaleTicket(t *testing.T) {
	t.Parallel()
	tr := newTracker()
	old := tr.add(0, 5, 1)
	tr.drop([]int32{0})
	if old.alive() {
		t.Fatal("a ticket of a dropped partition reports it alive")
	}
	fresh := tr.add(0, 5, 2) // the partition is back; its next owner (us) fetched offset 5 again
	old.finish()
	if got := tr.committable(); len(got) != 0 {
		t.Fatalf("committable after a stale finish: %v; want nothing", got)
	}
	if n := tr.inflight(); n != 1 {
		t.Fatalf("in flight after a stale finish: %d; want 1", n)
	}
	fresh.finish()
	if got := tr.committable(); got[0] != [2]int64{6, 2} {
		t.Fatalf("committable after the record's own finish: %v; want partition 0 at offset 6, epoch 2", got)
	}
}

// Records finish in any order; the committed offset is the end of the
// finished prefix.
func TestTrackerCommitsTheFinishedPrefix(t *testing.T) {
	t.Parallel()
	tr := newTracker()
	a, b, c := tr.add(1, 10, 0), tr.add(1, 11, 0), tr.add(1, 12, 0)
	c.finish()
	b.finish()
	if got := tr.committable(); len(got) != 0 {
		t.Fatalf("committable with offset 10 unfinished: %v; want nothing", got)
	}
	a.finish()
	if got := tr.committable(); got[1] != [2]int64{13, 0} {
		t.Fatalf("committable: %v; want partition 1 at offset 13", got)
	}
	if n := tr.inflight(); n != 0 {
		t.Fatalf("in flight: %d; want 0", n)
	}
}
