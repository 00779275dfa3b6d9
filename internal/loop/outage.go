// Package loop holds what the long-running consumer loops (the recorder,
// the outbox relay) share: logging an outage of a dependency once and
// backing off while it lasts.
package loop

import (
	"context"
	"log/slog"
	"time"
)

// Outage tracks a dependency that keeps failing, so a loop logs its
// outage once (at ERROR, with the first error) and its end once (at INFO,
// with how long it lasted), not every retry, and retries promptly: the
// backoff doubles from minWait to maxWait, a cap low enough that the loop
// resumes within maxWait of the dependency's return.
type Outage struct {
	Log              *slog.Logger
	What             string // e.g. "postgres"
	MinWait, MaxWait time.Duration

	since    time.Time
	failures int
	wait     time.Duration
}

// Failed records a failed try and returns how long to wait before the next.
func (o *Outage) Failed(err error) time.Duration {
	o.failures++
	if o.failures == 1 {
		o.since = time.Now()
		o.wait = o.MinWait
		o.Log.Error(o.What+" unavailable; retrying until it answers", "err", err)
	} else {
		o.wait = min(2*o.wait, o.MaxWait)
		o.Log.Debug(o.What+" still unavailable", "err", err, "failures", o.failures, "retry_in", o.wait)
	}
	return o.wait
}

// OK records a successful try, logging the end of an outage.
func (o *Outage) OK() {
	if o.failures == 0 {
		return
	}
	o.Log.Info(o.What+" available again", "down_for", time.Since(o.since).Round(time.Millisecond), "failures", o.failures)
	o.failures = 0
}

// Sleep waits d, or until ctx ends (false).
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
