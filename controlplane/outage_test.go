package controlplane_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/exospherehost/exo-alerts/controlplane"
	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/keyring"
	"github.com/exospherehost/exo-alerts/internal/testenv"
)

// lockedBuffer is a log destination the test reads while the server writes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) lines(substr string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for l := range strings.Lines(b.buf.String()) {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return out
}

// While Postgres is unreachable every authenticated request answers 503 as
// before, but the outage is logged once at ERROR, and its end once, not
// once per request; the failures are counted in a metric.
func TestPostgresOutageLoggedOnce(t *testing.T) {
	t.Parallel()
	cfg, err := pgxpool.ParseConfig(testenv.DatabaseURL(t, true))
	if err != nil {
		t.Fatal(err)
	}
	var down atomic.Bool
	cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if down.Load() {
			return nil, errors.New("test: postgres is down")
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	ring, err := keyring.Parse(keyring.Generate("k1"))
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	reg := prometheus.NewRegistry()
	s, err := controlplane.New(controlplane.Config{
		Pool: pool, Brokers: []string{"127.0.0.1:1"}, Topics: kafka.NewTopics("t."), Keyring: ring, Registry: reg,
		Log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	key := controlplane.NewAPIKey()
	if _, err := controlplane.CreateAPIKey(context.Background(), pool, "acme", "test", controlplane.RoleAdmin, key); err != nil {
		t.Fatal(err)
	}
	get := func() int {
		req, _ := http.NewRequestWithContext(context.Background(), "GET", srv.URL+"/v1/webhooks", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	if status := get(); status != 200 {
		t.Fatalf("before the outage: %d", status)
	}

	const failures = 60
	for outage := 1; outage <= 2; outage++ {
		down.Store(true)
		pool.Reset() // the pooled connections break with the server
		var wg sync.WaitGroup
		for range failures {
			wg.Go(func() {
				if status := get(); status != http.StatusServiceUnavailable {
					t.Errorf("during the outage: %d, want 503", status)
				}
			})
		}
		wg.Wait()
		if errs := logs.lines("level=ERROR"); len(errs) != outage {
			t.Fatalf("outage %d: %d ERROR lines, want %d (one per outage):\n%s", outage, len(errs), outage, strings.Join(errs, ""))
		}
		if got := testenv.Metric(t, reg, "exo_controlplane_dependency_failures_total", "dependency", "postgres"); got != float64(outage*failures) {
			t.Errorf("failures counted: %v, want %d", got, outage*failures)
		}
		down.Store(false)
		if status := get(); status != 200 {
			t.Fatalf("after the outage: %d", status)
		}
		ends := logs.lines("postgres reachable again")
		if len(ends) != outage || !strings.Contains(ends[outage-1], "failed_requests=60") {
			t.Errorf("outage %d: end logged as %q, want one line per outage with failed_requests=60", outage, ends)
		}
	}
}
