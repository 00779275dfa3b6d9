package dispatcher

import (
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"2", 2 * time.Second, true},
		{"0", 0, true},
		{"86400", 24 * time.Hour, true},
		{"86401", MaxRetryAfter, true},
		{"9223372037", MaxRetryAfter, true},  // once overflowed to a negative duration
		{"18446744074", MaxRetryAfter, true}, // once wrapped around to 290 ms
		{"Sun, 29 Nov 2026 10:00:30 GMT", 30 * time.Second, true},
		{"Sun, 29 Nov 2026 09:00:00 GMT", 0, true}, // in the past: now
		{"99999999999999999999", 0, false},         // beyond int64: neither seconds nor a date
		{"-5", 0, false},
		{"soon", 0, false},
		{"", 0, false},
	} {
		got, ok := parseRetryAfter(c.in, now)
		if got != c.want || ok != c.ok {
			t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

// A wait longer than the tier of the attempt moves the retry to the first
// tier whose hold covers it, never to a tier that would hold it (and the
// records behind it) much longer than its own delay.
func TestNextTierFitsTheWait(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		attempt  int
		wait     time.Duration
		wantTier time.Duration
		minDue   time.Duration
	}{
		{1, 0, 5 * time.Second, 4 * time.Second},
		{3, 0, 2 * time.Minute, 96 * time.Second},
		{20, 0, 6 * time.Hour, 288 * time.Minute},
		{1, 2 * time.Second, 5 * time.Second, 5 * time.Second},    // a short Retry-After never makes it earlier than the tier
		{1, 29 * time.Second, 30 * time.Second, 29 * time.Second}, // was: the 5s tier, holding its partition 29 s
		{1, 100 * time.Second, 2 * time.Minute, 100 * time.Second},
		{1, 24 * time.Hour, 6 * time.Hour, 24 * time.Hour}, // beyond every tier: the last, hopping (holdAction)
		{1, 48 * time.Hour, 6 * time.Hour, 24 * time.Hour}, // clamped to MaxRetryAfter
	} {
		for range 20 { // jitter
			idx, due := nextTier(DefaultTiers, c.attempt, c.wait, now)
			tier, wait := DefaultTiers[idx], due.Sub(now)
			if tier != c.wantTier || wait < c.minDue || (c.wait < MaxRetryAfter && wait > max(maxHold(tier), min(c.wait, MaxRetryAfter))) {
				t.Fatalf("nextTier(attempt %d, wait %v) = tier %v due in %v; want tier %v, due in at least %v", c.attempt, c.wait, tier, wait, c.wantTier, c.minDue)
			}
		}
	}
}

func TestHoldAction(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	tier := time.Hour
	for _, c := range []struct {
		name      string
		nb, prod  time.Time
		want      holdVerdict
		wantUntil time.Time
	}{
		{"due", now, now.Add(-time.Hour), holdDeliver, time.Time{}},
		{"no header", time.Time{}, now, holdDeliver, time.Time{}},
		{"within the hold", now.Add(50 * time.Minute), now.Add(-10 * time.Minute), holdPause, now.Add(50 * time.Minute)},
		{"far out, fresh", now.Add(20 * time.Hour), now.Add(-time.Minute), holdPause, now.Add(71 * time.Minute)},
		{"far out, waited its turn", now.Add(20 * time.Hour), now.Add(-time.Hour), holdHop, time.Time{}},
		{"forged, beyond any retry", now.Add(100 * 24 * time.Hour), now.Add(-time.Minute), holdDeliver, time.Time{}},
	} {
		got, until := holdAction(c.nb, c.prod, now, tier)
		if got != c.want || !until.Equal(c.wantUntil) {
			t.Errorf("%s: holdAction = %v until %v; want %v until %v", c.name, got, until, c.want, c.wantUntil)
		}
	}
}
