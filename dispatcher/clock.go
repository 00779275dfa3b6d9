package dispatcher

import (
	"context"
	"time"
)

// attemptClock bounds the attempts of one worker, made one after another,
// to timeout each: the context of an attempt ends when the attempt has
// taken timeout (its cause then context.DeadlineExceeded, as a context
// made with context.WithTimeout would say) or when parent ends.
//
// It does what a context.WithTimeout per attempt did, without making one
// per attempt: a context and its timer are made once and kept for the
// worker's next attempts until one of them times out; between attempts
// the timer is stopped, and it is reset when the next one starts. A
// context and a timer per attempt — with the channel and the map of
// children net/http's own context under it added to it — cost 2–3 µs of
// the ~55 µs of CPU a delivery took in BenchmarkDispatcherThroughput
// (docs/benchmarks.md, "The dispatcher, fourth pass").
//
// What an attempt sees is what context.WithTimeout gave it: net/http
// reports context.Cause, context.DeadlineExceeded, when the time runs out
// (classified "timeout"), and the attempt's context ends with its
// source's. Only its Deadline is not set: the dial keeps its own timeout
// (newTransport) and is cut by the cancellation when the attempt's time
// runs out first.
//
// A clock is used by one goroutine, its worker; only the timer's function
// runs elsewhere, and it touches nothing but the cancel of its own context.
type attemptClock struct {
	parent  context.Context
	timeout time.Duration
	ctx     context.Context
	cancel  context.CancelCauseFunc
	timer   *time.Timer // nil: no context yet, or the last one timed out
}

func newAttemptClock(parent context.Context, timeout time.Duration) *attemptClock {
	return &attemptClock{parent: parent, timeout: timeout}
}

// start starts an attempt and returns its context. Every start is
// followed by a stop before the next start.
func (c *attemptClock) start() context.Context {
	if c.timer == nil {
		ctx, cancel := context.WithCancelCause(c.parent)
		c.ctx, c.cancel = ctx, cancel
		c.timer = time.AfterFunc(c.timeout, func() { cancel(context.DeadlineExceeded) })
		return ctx
	}
	c.timer.Reset(c.timeout)
	return c.ctx
}

// stop ends the attempt started last. If its time ran out, its context is
// done (with the cause context.DeadlineExceeded) and is not used again.
func (c *attemptClock) stop() {
	if c.timer.Stop() {
		return
	}
	// The timer fired: its function has canceled the context, or is about
	// to. Cancel it here too, so that it is done by the time stop returns.
	c.cancel(context.DeadlineExceeded)
	c.timer = nil
}

// close releases the clock's context when its worker is done.
func (c *attemptClock) close() {
	if c.timer != nil {
		c.timer.Stop()
		c.cancel(context.Canceled)
	}
}
