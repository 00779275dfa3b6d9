package controlplane

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/exospherehost/exo-alerts/internal/metrics"
)

// outage tracks whether a dependency the API needs on every request
// (Postgres) is reachable, so that an outage is logged twice, when it
// starts (ERROR) and when it ends (INFO, with its length and how many
// requests failed), instead of once per failed request; the failures are
// counted in a metric. Requests keep answering 503 meanwhile.
type outage struct {
	log        *slog.Logger
	dependency string
	failures   prometheus.Counter
	now        func() time.Time

	down  atomic.Bool // fast path of ok
	mu    sync.Mutex
	since time.Time
	count int64
}

func newOutage(log *slog.Logger, reg prometheus.Registerer, dependency string) (*outage, error) {
	failures, err := metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "exo_controlplane_dependency_failures_total",
		Help: "API requests that failed because a dependency (postgres) was unreachable; answered 503.",
	}, []string{"dependency"}))
	if err != nil {
		return nil, err
	}
	return &outage{log: log, dependency: dependency, failures: failures.WithLabelValues(dependency), now: time.Now}, nil
}

// fail records a failure of op: the first one of an outage is logged.
func (o *outage) fail(op string, err error) {
	o.failures.Inc()
	o.mu.Lock()
	defer o.mu.Unlock()
	o.count++
	if o.down.Load() {
		o.log.Debug(o.dependency+" still unreachable", "op", op, "err", err)
		return
	}
	o.since = o.now()
	o.down.Store(true)
	o.log.Error(o.dependency+" unreachable: API requests answer 503 until it is back (logged once per outage)", "op", op, "err", err)
}

// ok records a success: it ends an outage, if there is one.
func (o *outage) ok() {
	if !o.down.Load() {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.down.Load() {
		return
	}
	o.log.Info(o.dependency+" reachable again", "down_for", o.now().Sub(o.since).Round(time.Millisecond).String(), "failed_requests", o.count)
	o.down.Store(false)
	o.count = 0
}

// unavailable reports whether err says Postgres cannot be reached or is not
// accepting work (rather than refusing a query): a connection that could
// not be made or broke, a timeout, or an SQLSTATE of class 08 (connection
// exception), 57P01-57P03 (shutdown, cannot connect now) or 53300 (too
// many connections).
func unavailable(err error) bool {
	if err == nil {
		return false
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &pe):
		return strings.HasPrefix(pe.Code, "08") || pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03" || pe.Code == "53300"
	case errors.As(err, &ce), errors.As(err, &ne), pgconn.Timeout(err),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return true
	}
	return false
}

// canceled reports whether err is only the end of the request's context
// (the client went away): no failure of the dependency.
func canceled(ctx context.Context, err error) bool {
	return ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded))
}
