package dispatcher

import (
	"context"
	"sync"
	"time"
)

// lane is one endpoint's share of the dispatcher: a concurrency limit, a
// token bucket and a circuit breaker, so a slow or dead endpoint uses only
// its own slots and never the capacity healthy endpoints need.
type lane struct {
	slots chan struct{}

	mu        sync.Mutex
	tokens    float64
	refilled  time.Time
	failures  int       // consecutive failed attempts
	openUntil time.Time // breaker open until then
	probing   bool      // half-open: one probe in flight
}

// lanes holds a lane per endpoint.
type lanes struct {
	concurrency int
	rate        float64 // tokens per second
	burst       float64
	threshold   int
	cooldown    time.Duration

	mu sync.Mutex
	m  map[string]*lane
}

func newLanes(cfg *Config) *lanes {
	return &lanes{concurrency: cfg.EndpointConcurrency, rate: cfg.EndpointRate, burst: cfg.EndpointRate,
		threshold: cfg.BreakerThreshold, cooldown: cfg.BreakerCooldown, m: map[string]*lane{}}
}

func (ls *lanes) get(key string) *lane {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	l := ls.m[key]
	if l == nil {
		l = &lane{slots: make(chan struct{}, ls.concurrency), tokens: ls.burst, refilled: time.Now()}
		ls.m[key] = l
	}
	return l
}

// acquire takes a concurrency slot and a token, waiting for both.
func (ls *lanes) acquire(ctx context.Context, l *lane) bool {
	select {
	case l.slots <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	for {
		l.mu.Lock()
		now := time.Now()
		l.tokens = min(ls.burst, l.tokens+now.Sub(l.refilled).Seconds()*ls.rate)
		l.refilled = now
		if l.tokens >= 1 {
			l.tokens--
			l.mu.Unlock()
			return true
		}
		wait := time.Duration((1 - l.tokens) / ls.rate * float64(time.Second))
		l.mu.Unlock()
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			<-l.slots
			return false
		}
	}
}

func (ls *lanes) release(l *lane) { <-l.slots }

// allow reports whether an attempt may go out: the breaker is closed, or it
// is half-open and this is the one probe.
func (ls *lanes) allow(l *lane) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if l.failures < ls.threshold {
		return true
	}
	if now.Before(l.openUntil) || l.probing {
		return false
	}
	l.probing = true
	return true
}

// report records an attempt's result: a success closes the breaker; the
// threshold-th consecutive failure (or a failed probe) opens it.
func (ls *lanes) report(l *lane, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.probing = false
	if ok {
		l.failures = 0
		return
	}
	l.failures++
	if l.failures >= ls.threshold {
		l.openUntil = time.Now().Add(ls.cooldown)
	}
}

// openFor is how long the breaker stays open (0 when closed).
func (ls *lanes) openFor(l *lane) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return max(time.Until(l.openUntil), 0)
}
