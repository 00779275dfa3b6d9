package dispatcher

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

// A worker's attempts, one after another, each get the whole attempt
// timeout, as a context.WithTimeout per attempt gave them: the time between
// attempts does not count, an attempt that takes longer ends with
// context.DeadlineExceeded, the attempt after it starts with a live
// context, and the worker's parent ending ends the attempt in flight.
func TestAttemptClockBoundsEachAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const timeout = 10 * time.Second
		parent, stopParent := context.WithCancel(t.Context())
		defer stopParent()
		c := newAttemptClock(parent, timeout)
		defer c.close()
		alive := func(what string, ctx context.Context) {
			t.Helper()
			synctest.Wait() // the timer's function, if it was due, has run
			if err := ctx.Err(); err != nil {
				t.Fatalf("%s: the attempt's context ended (%v, cause %v)", what, err, context.Cause(ctx))
			}
		}

		first := c.start()
		time.Sleep(timeout - time.Second)
		alive("first attempt, a second before its timeout", first)
		c.stop()

		// Idle between attempts for longer than the timeout: nothing ends.
		time.Sleep(2 * timeout)
		second := c.start()
		alive("second attempt, at its start", second)
		time.Sleep(timeout - time.Second)
		alive("second attempt, a second before its timeout", second)
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if !errors.Is(context.Cause(second), context.DeadlineExceeded) || !errors.Is(second.Err(), context.Canceled) {
			t.Fatalf("second attempt, past its timeout: err %v, cause %v; want ended with cause %v", second.Err(), context.Cause(second), context.DeadlineExceeded)
		}
		c.stop()

		// The attempt after one that timed out starts afresh, with all its time.
		third := c.start()
		alive("third attempt, after one that timed out", third)
		time.Sleep(timeout - time.Second)
		alive("third attempt, a second before its timeout", third)
		c.stop()

		// Stopped only after its time ran out (the attempt was still
		// reading its answer): it ended as a timeout, and the next attempt
		// is not born ended.
		fourth := c.start()
		time.Sleep(timeout + time.Second)
		c.stop()
		if !errors.Is(context.Cause(fourth), context.DeadlineExceeded) {
			t.Fatalf("fourth attempt, stopped past its timeout: cause %v, want %v", context.Cause(fourth), context.DeadlineExceeded)
		}
		fifth := c.start()
		alive("fifth attempt, after one stopped past its timeout", fifth)

		// The parent ends (the source stops): the attempt in flight ends,
		// and not as a timeout.
		stopParent()
		if !errors.Is(fifth.Err(), context.Canceled) || errors.Is(context.Cause(fifth), context.DeadlineExceeded) {
			t.Fatalf("fifth attempt, its parent ended: err %v, cause %v; want canceled, not a timeout", fifth.Err(), context.Cause(fifth))
		}
		c.stop()
	})
}

// A worker that stops releases its clock's context: it is no longer a
// child its parent keeps.
func TestAttemptClockCloseEndsItsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newAttemptClock(t.Context(), time.Second)
		c.close() // never started: nothing to release, and no panic
		ctx := c.start()
		c.stop()
		c.close()
		if ctx.Err() == nil {
			t.Fatal("the clock's context is alive after close")
		}
		time.Sleep(2 * time.Second) // the stopped timer does not fire after close
		synctest.Wait()
		if errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
			t.Fatalf("closed clock's context has cause %v, want it canceled by close", context.Cause(ctx))
		}
	})
}
