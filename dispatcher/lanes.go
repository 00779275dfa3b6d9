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
	rate      float64 // tokens per second
	tokens    float64
	refilled  time.Time
	failures  int       // consecutive failed attempts
	openUntil time.Time // breaker open until then
	probing   bool      // half-open: one probe in flight
	// Health (health.go): when the breaker first opened in this run of
	// failures (zero: closed), whether it was reported unhealthy, whether
	// an alert (not a test or notice delivery) failed or was held by it,
	// and the class of the last failure.
	unhealthySince time.Time
	noticed        bool
	alerts         bool
	lastClass      string
}

// lanes holds a lane per endpoint.
type lanes struct {
	concurrency int
	rate        float64 // tokens per second of an endpoint without its own rate
	threshold   int
	cooldown    time.Duration
	now         func() time.Time // the clock of the token buckets and breakers
	// opens counts the breakers that opened (closed or half-open to open).
	opens prometheus.Counter

	mu sync.Mutex
	m  map[string]*lane
}

func newLanes(cfg *Config) *lanes {
	return &lanes{concurrency: cfg.EndpointConcurrency, rate: cfg.EndpointRate,
		threshold: cfg.BreakerThreshold, cooldown: cfg.BreakerCooldown, now: time.Now, m: map[string]*lane{},
		opens: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "exo_dispatcher_breaker_opens_total", Help: "Circuit breakers that opened: an endpoint reached the threshold of consecutive failures, or its probe failed.",
		})}
}

// get returns the lane of key, whose token bucket fills at rate per second
// (0: the operator's default); a changed rate applies from now on.
func (ls *lanes) get(key string, rate float64) *lane {
	if rate <= 0 {
		rate = ls.rate
	}
	ls.mu.Lock()
	l := ls.m[key]
	if l == nil {
		l = &lane{slots: make(chan struct{}, ls.concurrency), rate: rate, tokens: max(rate, 1), refilled: ls.now()}
		ls.m[key] = l
	}
	ls.mu.Unlock()
	l.mu.Lock()
	if l.rate != rate {
		l.refill(ls.now())
		l.rate = rate
		l.tokens = min(l.tokens, l.burst())
	}
	l.mu.Unlock()
	return l
}

// refill adds the tokens earned since the last refill (l.mu held).
func (l *lane) refill(now time.Time) {
	l.tokens = min(l.burst(), l.tokens+now.Sub(l.refilled).Seconds()*l.rate)
	l.refilled = now
}

// burst is how many tokens the bucket holds: a second's worth, at least one.
func (l *lane) burst() float64 { return max(l.rate, 1) }

// rateOf is the lane's rate in tokens per second.
func (l *lane) rateOf() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rate
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
		l.refill(ls.now())
		if l.tokens >= 1 {
			l.tokens--
			l.mu.Unlock()
			return true
		}
		wait := time.Duration((1 - l.tokens) / l.rate * float64(time.Second))
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
// threshold-th consecutive failure (or a failed probe) opens it. A success
// that closes a breaker returns its stretch (healed) when it was reported
// unhealthy or alerts failed in it: the stretch may be the tail of one an
// earlier instance (before a restart, or of another tier) reported, whose
// notice only a healthy report resolves.
func (ls *lanes) report(l *lane, ok bool) (healed *stretch) {
	l.mu.Lock()
	defer l.mu.Unlock()
	probe := l.probing
	l.probing = false
	if ok {
		if l.noticed || (l.alerts && !l.unhealthySince.IsZero()) {
			healed = &stretch{since: l.unhealthySince, failures: l.failures}
		}
		l.failures, l.unhealthySince, l.noticed, l.alerts, l.lastClass = 0, time.Time{}, false, false, ""
		return healed
	}
	l.failures++
	if l.failures >= ls.threshold {
		// An attempt that was in flight when the breaker opened extends it
		// without opening it again.
		if probe || l.failures == ls.threshold {
			ls.opens.Inc()
		}
		if l.unhealthySince.IsZero() {
			l.unhealthySince = ls.now()
		}
		l.openUntil = ls.now().Add(ls.cooldown)
	}
	return nil
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
