package engine

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/schemas"
)

func TestNoise(t *testing.T) {
	t.Parallel()
	s := time.Second
	cases := []struct {
		name     string
		limit    int   // rate_limit_per_minute
		cooldown int64 // cooldown_ms
		at       []time.Duration
		want     []int // indexes of the events that alert
		rate     uint64
		cool     uint64
	}{
		{
			name: "no limits", at: []time.Duration{0, 1 * s, 2 * s, 3 * s},
			want: []int{0, 1, 2, 3},
		},
		{
			name: "rate limit: N of N+k in a minute, the next minute admits again", limit: 3,
			at:   []time.Duration{0, 10 * s, 20 * s, 30 * s, 40 * s, 60 * s, 70 * s},
			want: []int{0, 1, 2, 5, 6}, rate: 2,
		},
		{
			name: "rate limit windows are minutes of event time", limit: 2,
			at:   []time.Duration{50 * s, 55 * s, 59*s + 999*time.Millisecond, 60 * s, 61 * s},
			want: []int{0, 1, 3, 4}, rate: 1,
		},
		{
			// Events of different runs arrive slightly out of order; a late
			// one must not reset the budget of the current minute.
			name: "late event counts against the current minute", limit: 2,
			at:   []time.Duration{60 * s, 61 * s, 59 * s, 62 * s, 119 * s, 120 * s},
			want: []int{0, 1, 5}, rate: 3,
		},
		{
			name: "cooldown", cooldown: 30_000,
			at:   []time.Duration{0, 10 * s, 30*s - time.Millisecond, 30 * s, 45 * s, 61 * s},
			want: []int{0, 3, 5}, cool: 3,
		},
		{
			name: "rate limit and cooldown", limit: 2, cooldown: 10_000,
			at:   []time.Duration{0, 5 * s, 10 * s, 15 * s, 20 * s, 60 * s},
			want: []int{0, 2, 5}, rate: 1, cool: 2,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.rules.put(t, schemas.RuleRecord{ID: "on_fail", EventType: schemas.TypeRunFailed, RateLimitPerMinute: c.limit, CooldownMS: c.cooldown})
			var got []int
			for i, d := range c.at {
				run := "run_" + strconv.Itoa(i)
				alerts := b.event(t, failed(t, run, t0.Add(d)))
				if len(alerts) > 0 {
					if alerts[0].AlertID != AlertID("acme", "on_fail", "ev_fail_"+run) {
						t.Fatalf("event %d: alert %s is not its own", i, alerts[0].AlertID)
					}
					got = append(got, i)
				}
			}
			if !slices.Equal(got, c.want) {
				t.Fatalf("events %v alerted, want %v", got, c.want)
			}
			if r, cd := b.eng.Stats.SuppressedRate.Load(), b.eng.Stats.SuppressedCooldown.Load(); r != c.rate || cd != c.cool {
				t.Fatalf("suppressed rate %d cooldown %d, want %d and %d", r, cd, c.rate, c.cool)
			}
			// Suppressed, not lost: every event is alerted or counted.
			if n := uint64(len(got)) + c.rate + c.cool; n != uint64(len(c.at)) {
				t.Fatalf("%d events, %d accounted for", len(c.at), n)
			}
		})
	}
}

// Budgets belong to one rule of one tenant.
func TestNoisePerRule(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, tenant := range []string{"acme", "globex"} {
		b.rules.put(t, schemas.RuleRecord{TenantID: tenant, ID: "a", EventType: schemas.TypeRunFailed, RateLimitPerMinute: 1})
		b.rules.put(t, schemas.RuleRecord{TenantID: tenant, ID: "b", EventType: schemas.TypeRunFailed, RateLimitPerMinute: 1})
	}
	var got []string
	for i, tenant := range []string{"acme", "acme", "globex"} {
		for _, a := range b.event(t, failed(t, "run_"+strconv.Itoa(i), t0.Add(time.Duration(i)*time.Second), withTenant(tenant))) {
			got = append(got, a.TenantID+"/"+a.RuleID)
		}
	}
	if want := []string{"acme/a", "acme/b", "globex/a", "globex/b"}; !slices.Equal(got, want) {
		t.Fatalf("alerts %v, want %v", got, want)
	}
	if n := b.eng.Stats.SuppressedRate.Load(); n != 2 {
		t.Fatalf("SuppressedRate = %d, want 2", n)
	}
}

// Duration alerts are subject to noise control too, and deadlines due
// together are admitted in a stable order (by run), so a replay admits the
// same alert.
func TestNoiseDurationAlerts(t *testing.T) {
	t.Parallel()
	for range 5 { // a map-ordered replay would pick different runs
		b := setup(t)
		b.rules.put(t, schemas.RuleRecord{ID: "slow", EventType: schemas.TypeRunDurationExceeded, DurationThresholdMS: 300_000, CooldownMS: 3_600_000})
		for _, run := range []string{"run_3", "run_1", "run_4", "run_2"} {
			none(t, "start "+run, b.event(t, started(t, run, t0)))
		}
		alerts := b.tick(t, t0.Add(5*time.Minute), true)
		if len(alerts) != 1 || alerts[0].AlertID != DurationAlertID("acme", "slow", "run_1") {
			var runs []string
			for _, a := range alerts {
				runs = append(runs, a.P.Data.Run.ID)
			}
			t.Fatalf("alerts for runs %v, want only run_1's", runs)
		}
		if n := b.eng.Stats.SuppressedCooldown.Load(); n != 3 {
			t.Fatalf("SuppressedCooldown = %d, want 3", n)
		}
	}
}
