package dispatcher

import (
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The health state of a lane on the breakers' clock: unhealthy is decided
// once per stretch, only after UnhealthyAfter and only when an alert (not a
// test or notice delivery) failed; a success ends the stretch and returns
// it when it was reported.
func TestLaneHealth(t *testing.T) {
	t.Parallel()
	cfg := &Config{EndpointConcurrency: 2, EndpointRate: 1000, BreakerThreshold: 2, BreakerCooldown: time.Second,
		UnhealthyAfter: time.Minute, Registerer: prometheus.NewRegistry()}
	d := &Dispatcher{cfg: *cfg, log: slog.New(slog.DiscardHandler), lanes: newLanes(cfg)}
	if err := d.newHealth(); err != nil {
		t.Fatal(err)
	}
	clock := time.Now()
	d.lanes.now = func() time.Time { return clock }
	noticed := func(l *lane) bool { l.mu.Lock(); defer l.mu.Unlock(); return l.noticed }
	fail := func(key string, l *lane, rule string) {
		d.noteHealth(key, l, rule, true, "http_500", d.lanes.report(l, false))
	}

	for _, c := range []struct {
		name, rule string
		reported   bool
	}{{"alerts", "rul_1", true}, {"notices only", "notice", false}, {"tests only", "test", false}} {
		key := "acme/whk_" + c.name
		l := d.lanes.get(key, 0)
		fail(key, l, c.rule)
		fail(key, l, c.rule) // the breaker opens
		opened := clock
		clock = clock.Add(59 * time.Second)
		fail(key, l, c.rule)
		if noticed(l) {
			t.Fatalf("%s: reported before UnhealthyAfter", c.name)
		}
		clock = clock.Add(time.Second)
		d.checkHealth(key, l) // the timer
		if noticed(l) != c.reported {
			t.Fatalf("%s: reported %v after UnhealthyAfter, want %v", c.name, noticed(l), c.reported)
		}
		healed := d.lanes.report(l, true)
		if (healed != nil) != c.reported || (healed != nil && (!healed.since.Equal(opened) || healed.failures != 3)) {
			t.Fatalf("%s: success returned %+v", c.name, healed)
		}
		if noticed(l) || d.lanes.report(l, true) != nil {
			t.Fatalf("%s: the stretch did not end with the success", c.name)
		}
	}
}
