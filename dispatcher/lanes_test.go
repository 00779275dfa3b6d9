package dispatcher

import (
	"context"
	"testing"
	"time"
)

// The breaker opens after the threshold of consecutive failures, lets one
// probe through once the cooldown has passed, and closes on its success.
func TestBreaker(t *testing.T) {
	t.Parallel()
	ls := newLanes(&Config{EndpointConcurrency: 2, EndpointRate: 1000, BreakerThreshold: 3, BreakerCooldown: 50 * time.Millisecond})
	l := ls.get("acme/whk_1")
	for i := range 3 {
		if !ls.allow(l) {
			t.Fatalf("attempt %d refused before the threshold", i+1)
		}
		ls.report(l, false)
	}
	if ls.allow(l) {
		t.Fatal("open breaker let an attempt through")
	}
	if d := ls.openFor(l); d <= 0 || d > 50*time.Millisecond {
		t.Fatalf("openFor = %v", d)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !ls.allow(l) {
		if time.Now().After(deadline) {
			t.Fatal("breaker never half-opened")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if ls.allow(l) {
		t.Fatal("a second probe went out while the first was in flight")
	}
	ls.report(l, false) // failed probe: open again
	if ls.allow(l) {
		t.Fatal("failed probe did not reopen the breaker")
	}
	// Another endpoint is unaffected.
	if !ls.allow(ls.get("acme/whk_2")) {
		t.Fatal("one endpoint's breaker blocked another")
	}
	for !ls.allow(l) {
		time.Sleep(10 * time.Millisecond)
	}
	ls.report(l, true)
	for range 2 {
		if !ls.allow(l) {
			t.Fatal("successful probe did not close the breaker")
		}
	}
}

// The concurrency limit and the token bucket bound one endpoint.
func TestLaneLimits(t *testing.T) {
	t.Parallel()
	ls := newLanes(&Config{EndpointConcurrency: 2, EndpointRate: 5, BreakerThreshold: 5, BreakerCooldown: time.Second})
	l := ls.get("acme/whk_1")
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
}
