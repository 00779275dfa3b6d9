package main

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The processor, dispatcher and recorder commands answer /healthz while
// they run and /readyz only once the component is ready (503 before), the
// probes the Helm chart points at.
func TestMetricsServerProbes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan struct{})
	serveMetrics(ctx, addr, prometheus.NewRegistry(), ready)

	status := func(path string) int {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			resp, err := http.Get("http://" + addr + path)
			if err == nil {
				resp.Body.Close()
				return resp.StatusCode
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s: %v", path, err)
			}
		}
	}
	if got := status("/healthz"); got != http.StatusOK {
		t.Errorf("/healthz while starting: %d, want 200", got)
	}
	if got := status("/readyz"); got != http.StatusServiceUnavailable {
		t.Errorf("/readyz while starting: %d, want 503", got)
	}
	close(ready)
	if got := status("/readyz"); got != http.StatusOK {
		t.Errorf("/readyz once ready: %d, want 200", got)
	}
	if got := status("/metrics"); got != http.StatusOK {
		t.Errorf("/metrics: %d, want 200", got)
	}
}
