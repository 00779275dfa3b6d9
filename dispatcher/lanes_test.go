package dispatcher

import (
	"context"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// opens is the value of the breaker opens counter.
func opens(t *testing.T, ls *lanes) float64 {
	t.Helper()
	var m dto.Metric
	if err := ls.opens.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// The breaker opens after the threshold of consecutive failures, lets one
// probe through once the cooldown has passed, and closes on its success.
// Each opening is counted once; the open breakers are counted while open.
func TestBreaker(t *testing.T) {
	t.Parallel()
	ls := newLanes(&Config{EndpointConcurrency: 2, EndpointRate: 1000, BreakerThreshold: 3, BreakerCooldown: 50 * time.Millisecond})
	// The breakers' clock moves only when the test moves it: the cooldown
	// cannot pass unseen on a slow machine.
	clock := time.Now()
	ls.now = func() time.Time { return clock }
	l := ls.get("acme/whk_1", 0)
	for i := range 3 {
		if !ls.allow(l) {
			t.Fatalf("attempt %d refused before the threshold", i+1)
		}
		ls.report(l, false)
	}
	if ls.allow(l) {
		t.Fatal("open breaker let an attempt through")
	}
	if n, o := opens(t, ls), ls.open(); n != 1 || o != 1 {
		t.Fatalf("after the threshold: %v opens, %d open breakers; want 1, 1", n, o)
	}
	ls.report(l, false) // an attempt in flight when it opened: no new opening
	if n := opens(t, ls); n != 1 {
		t.Fatalf("a late failure of an open breaker counted as an opening: %v opens", n)
	}
	if d := ls.openFor(l); d <= 0 || d > 50*time.Millisecond {
		t.Fatalf("openFor = %v", d)
	}
	clock = clock.Add(49 * time.Millisecond)
	if ls.allow(l) {
		t.Fatal("breaker half-opened before its cooldown")
	}
	clock = clock.Add(time.Millisecond)
	if !ls.allow(l) {
		t.Fatal("breaker did not half-open after its cooldown")
	}
	if ls.allow(l) {
		t.Fatal("a second probe went out while the first was in flight")
	}
	ls.report(l, false) // failed probe: open again
	if ls.allow(l) {
		t.Fatal("failed probe did not reopen the breaker")
	}
	if n := opens(t, ls); n != 2 {
		t.Fatalf("after a failed probe: %v opens, want 2", n)
	}
	// Another endpoint is unaffected.
	if !ls.allow(ls.get("acme/whk_2", 0)) {
		t.Fatal("one endpoint's breaker blocked another")
	}
	if o := ls.open(); o != 1 {
		t.Fatalf("%d open breakers with one endpoint failing, want 1", o)
	}
	clock = clock.Add(50 * time.Millisecond)
	if !ls.allow(l) {
		t.Fatal("breaker did not half-open again after its cooldown")
	}
	// A probe that sent nothing (endpoint deleted meanwhile, say) neither
	// closes the breaker nor keeps the next probe back.
	ls.abandon(l)
	if o := ls.open(); o != 1 {
		t.Fatalf("an abandoned probe changed the breaker: %d open", o)
	}
	if !ls.allow(l) {
		t.Fatal("after an abandoned probe, no other probe may go out")
	}
	ls.report(l, true)
	for range 2 {
		if !ls.allow(l) {
			t.Fatal("successful probe did not close the breaker")
		}
	}
	if n, o := opens(t, ls), ls.open(); n != 2 || o != 0 {
		t.Fatalf("after a successful probe: %v opens, %d open breakers; want 2, 0", n, o)
	}
}

// The concurrency limit and the token bucket bound one endpoint.
func TestLaneLimits(t *testing.T) {
	t.Parallel()
	ls := newLanes(&Config{EndpointConcurrency: 2, EndpointRate: 5, BreakerThreshold: 5, BreakerCooldown: time.Second})
	// The buckets' clock stands still, so no token refills during the test,
	// however slow the machine (a refill would take 200 ms of real time).
	t0 := time.Now()
	ls.now = func() time.Time { return t0 }
	l := ls.get("acme/whk_1", 0)
	ctx := context.Background()
	for range 2 {
		if !ls.acquire(ctx, l) {
			t.Fatal("could not take the two slots")
		}
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if ls.acquire(short, l) {
		t.Fatal("a third slot was granted with a limit of two")
	}
	ls.release(l)
	ls.release(l)
	// The bucket holds 5 tokens (burst = rate); 2 are spent; 3 more go at once,
	// the next one must wait for a refill.
	for range 3 {
		if !ls.acquire(ctx, l) {
			t.Fatal("token refused within the burst")
		}
		ls.release(l)
	}
	short2, cancel2 := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel2()
	if ls.acquire(short2, l) {
		t.Fatal("a token was granted beyond the burst without waiting")
	}
	// A fifth of a second later one token has come back.
	t0 = t0.Add(200 * time.Millisecond)
	if !ls.acquire(ctx, l) {
		t.Fatal("no token after the refill time")
	}
}
