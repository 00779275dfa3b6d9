package engine

import (
	"time"
)

// noise is a rule's rate-limit and cooldown state, in event time.
type noise struct {
	window    time.Time // start of the current minute
	count     int       // alerts admitted in the window
	lastFired time.Time
}

// noiseKey is a rule's key in Engine.noise: a struct, so a lookup builds
// no string.
type noiseKey struct{ tenant, rule string }

// admit decides whether rule r may alert at event time at, counting what it
// suppresses. Rate limit: at most RateLimitPerMinute alerts per minute of
// event time. Cooldown: no alert within CooldownMS of the previous one.
func (e *Engine) admit(r *Rule, at time.Time) bool {
	if r.RateLimitPerMinute <= 0 && r.CooldownMS <= 0 {
		return true
	}
	key := noiseKey{r.TenantID, r.ID}
	n := e.noise[key]
	e.saveNoise(key, n)
	if n == nil {
		n = &noise{}
		e.noise[key] = n
	}
	if r.CooldownMS > 0 && !n.lastFired.IsZero() && at.Sub(n.lastFired) < time.Duration(r.CooldownMS)*time.Millisecond {
		e.count(&e.Stats.SuppressedCooldown)
		return false
	}
	if r.RateLimitPerMinute > 0 {
		// The window only moves forward: an alert whose event time lies in
		// an earlier minute (events of different runs arrive slightly out
		// of order) counts against the current window instead of resetting
		// the budget of a minute already spent.
		if w := at.Truncate(time.Minute); w.After(n.window) {
			n.window, n.count = w, 0
		}
		if n.count >= r.RateLimitPerMinute {
			e.count(&e.Stats.SuppressedRate)
			return false
		}
		n.count++
	}
	n.lastFired = at
	return true
}

// quota asks the delivery quota, if any, after the rule's own noise
// control admitted the alert: a tenant at its cap spends no global budget,
// and a rule's rate limit spends none of the tenant's.
func (e *Engine) quota(p int32, tenant string, at time.Time) bool {
	return e.cfg.Quota == nil || e.cfg.Quota.Admit(p, tenant, at)
}
