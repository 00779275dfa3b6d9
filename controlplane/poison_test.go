package controlplane_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/exospherehost/exo-alerts/controlplane"
	"github.com/exospherehost/exo-alerts/internal/testenv"
)

// logSink collects log records (with their attributes) for assertions.
type logSink struct {
	mu    sync.Mutex
	lines []string
}

type sinkHandler struct {
	s     *logSink
	attrs []slog.Attr
	next  slog.Handler
}

func (h *sinkHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *sinkHandler) Handle(ctx context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Message)
	for _, a := range h.attrs {
		b.WriteString(" " + a.String())
	}
	r.Attrs(func(a slog.Attr) bool { b.WriteString(" " + a.String()); return true })
	h.s.mu.Lock()
	h.s.lines = append(h.s.lines, b.String())
	h.s.mu.Unlock()
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}
func (h *sinkHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &sinkHandler{s: h.s, attrs: append(append([]slog.Attr{}, h.attrs...), as...), next: h.next.WithAttrs(as)}
}
func (h *sinkHandler) WithGroup(name string) slog.Handler {
	return &sinkHandler{s: h.s, attrs: h.attrs, next: h.next.WithGroup(name)}
}

// matching returns the lines that contain every part.
func (s *logSink) matching(parts ...string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
lines:
	for _, l := range s.lines {
		for _, p := range parts {
			if !strings.Contains(l, p) {
				continue lines
			}
		}
		out = append(out, l)
	}
	return out
}

// pgGate dials Postgres for a pool and can cut every connection and refuse
// new ones until restored.
type pgGate struct {
	mu    sync.Mutex
	cut   bool
	conns []net.Conn
}

func (g *pgGate) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cut {
		return nil, fmt.Errorf("test: connection refused (postgres cut)")
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err == nil {
		g.conns = append(g.conns, c)
	}
	return c, err
}

func (g *pgGate) Cut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.cut = true
	for _, c := range g.conns {
		_ = c.Close()
	}
	g.conns = nil
}

func (g *pgGate) Restore() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.cut = false
}

// While Postgres is away the outbox relay retries, and its outage is
// logged once (and its end), not once per retry. (The recorder's own
// outage test is recorder.TestRecorderResumesPromptlyAfterPostgresOutage.)
func TestOutboxRelayLogsPostgresOutageOnce(t *testing.T) {
	t.Parallel()
	gate := &pgGate{}
	sink := &logSink{}
	startHistEnv(t, func(c *controlplane.Config) {
		// The control plane reaches the test's database through the gate.
		cfg, err := pgxpool.ParseConfig(c.Pool.Config().ConnString())
		if err != nil {
			t.Fatal(err)
		}
		cfg.ConnConfig.DialFunc = gate.dial
		gated, err := pgxpool.NewWithConfig(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(gated.Close)
		c.Pool = gated
		c.Log = slog.New(&sinkHandler{s: sink, next: testenv.Log(t).Handler()})
	})

	gate.Cut()
	testenv.Eventually(t, "the relay retrying", func() (bool, string) {
		n := len(sink.matching("part=outbox", "still unavailable"))
		return n >= 3, fmt.Sprintf("%d retries logged at DEBUG", n)
	})
	gate.Restore()
	testenv.Eventually(t, "the relay's recovery logged", func() (bool, string) {
		got := sink.matching("part=outbox", "available again")
		return len(got) == 1, strings.Join(got, "\n")
	})
	var loud []string
	// Lines about retrying (not the Kafka client's own, on a healthy broker).
	for _, line := range sink.matching("part=outbox", "retry") {
		if strings.HasPrefix(line, "WARN") || strings.HasPrefix(line, "ERROR") {
			loud = append(loud, line)
		}
	}
	if len(loud) != 1 || !strings.Contains(loud[0], "unavailable") {
		t.Errorf("the relay logged its outage %d times at WARN/ERROR, want once:\n%s", len(loud), strings.Join(loud, "\n"))
	}
}
