package dispatcher

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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
	now         func() time.Time // the clock of the token buckets and breakers
	// opens counts the breakers that opened (closed or half-open to open).
	opens prometheus.Counter

	mu sync.Mutex
	m  map[string]*lane
}

func newLanes(cfg *Config) *lanes {
	return &lanes{concurrency: cfg.EndpointConcurrency, rate: cfg.EndpointRate, burst: cfg.EndpointRate,
		threshold: cfg.BreakerThreshold, cooldown: cfg.BreakerCooldown, now: time.Now, m: map[string]*lane{},
		opens: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "exo_dispatcher_breaker_opens_total", Help: "Circuit breakers that opened: an endpoint reached the threshold of consecutive failures, or its probe failed.",
		})}
}

func (ls *lanes) get(key string) *lane {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	l := ls.m[key]
	if l == nil {
		l = &lane{slots: make(chan struct{}, ls.concurrency), tokens: ls.burst, refilled: ls.now()}
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
		now := ls.now()
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
	now := ls.now()
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
	probe := l.probing
	l.probing = false
	if ok {
		l.failures = 0
		return
	}
	l.failures++
	if l.failures >= ls.threshold {
		// An attempt that was in flight when the breaker opened extends it
		// without opening it again.
		if probe || l.failures == ls.threshold {
			ls.opens.Inc()
		}
		l.openUntil = ls.now().Add(ls.cooldown)
	}
}

// abandon ends an attempt that sent nothing: a probe it held may go out
// again; the breaker's state is unchanged.
func (ls *lanes) abandon(l *lane) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.probing = false
}

// open is the number of endpoints whose breaker is not closed (open, or
// half-open waiting for or running its probe).
func (ls *lanes) open() int {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	n := 0
	for _, l := range ls.m {
		l.mu.Lock()
		if l.failures >= ls.threshold {
			n++
		}
		l.mu.Unlock()
	}
	return n
}

// openFor is how long the breaker stays open (0 when closed).
func (ls *lanes) openFor(l *lane) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return max(l.openUntil.Sub(ls.now()), 0)
}
