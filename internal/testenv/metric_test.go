package testenv_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/exospherehost/exo-alerts/internal/testenv"
)

func TestMetric(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "c_total", Help: "c"}, []string{"outcome", "tier"})
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "g", Help: "g"})
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "h", Help: "h"})
	reg.MustRegister(c, g, h)
	c.WithLabelValues("ok", "1s").Add(2)
	c.WithLabelValues("ok", "5s").Add(3)
	c.WithLabelValues("failed", "1s").Add(7)
	g.Set(-4)
	h.Observe(1)
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"c_total", nil, 12},
		{"c_total", []string{"outcome", "ok"}, 5},
		{"c_total", []string{"outcome", "ok", "tier", "5s"}, 3},
		{"c_total", []string{"tier", "1s"}, 9},
		{"c_total", []string{"outcome", "missing"}, 0},
		{"c_total", []string{"other", "x"}, 0},
		{"g", nil, -4},
		{"h", nil, 0},
		{"absent", nil, 0},
	} {
		if got := testenv.Metric(t, reg, tc.name, tc.labels...); got != tc.want {
			t.Errorf("Metric(%s, %q) = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
}

func TestWaitMetric(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "g", Help: "g"})
	reg.MustRegister(g)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 3; i++ {
			g.Inc()
		}
	}()
	testenv.WaitMetric(t, reg, time.Minute, "g reaches 3", func(v float64) bool { return v >= 3 }, "g")
	<-done
	if got := testenv.Metric(t, reg, "g"); got != 3 {
		t.Errorf("g = %v, want 3", got)
	}
}
