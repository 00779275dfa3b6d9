package testenv

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metric returns the sum of the counter, gauge or untyped series of the
// family name in g whose labels include every pair of labels (name, value,
// name, value, ...); 0 when there is no such series. A failure to gather
// fails the test.
func Metric(t testing.TB, g prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	if len(labels)%2 != 0 {
		t.Fatalf("testenv.Metric(%s): odd label list %q", name, labels)
	}
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			have := make(map[string]string, len(m.GetLabel()))
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue series
				}
			}
			switch {
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				sum += m.GetGauge().GetValue()
			case m.GetUntyped() != nil:
				sum += m.GetUntyped().GetValue()
			}
		}
	}
	return sum
}

// WaitMetric polls Metric every 20ms until cond holds of its value, and
// fails the test with what if it does not within timeout.
func WaitMetric(t testing.TB, g prometheus.Gatherer, timeout time.Duration, what string, cond func(float64) bool, name string, labels ...string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		v := Metric(t, g, name, labels...)
		if cond(v) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s%q is %v after %v", what, name, labels, v, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
