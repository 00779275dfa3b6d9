package controlplane

import (
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/exospherehost/exo-alerts/internal/metrics"
)

// httpMetrics counts the API's requests by operation id (a bounded set,
// unlike raw paths, which hold resource ids) and status class.
type httpMetrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer) (*httpMetrics, error) {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exo_controlplane_http_requests_total", Help: "API requests by operation id and status class (2xx, 4xx, 5xx).",
		}, []string{"operation", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "exo_controlplane_http_request_seconds", Help: "Latency of API requests by operation id, until the handler returned.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 10), // 1 ms to 3.8 s
		}, []string{"operation"}),
	}
	var err error
	if m.requests, err = metrics.Register(reg, m.requests); err != nil {
		return nil, err
	}
	if m.latency, err = metrics.Register(reg, m.latency); err != nil {
		return nil, err
	}
	return m, nil
}

// statusClasses are the code label values the API answers with.
var statusClasses = []string{"2xx", "4xx", "5xx"}

// track creates the request counters of every operation added to o from
// now on, at 0 for each status class, so the dashboard shows 0 rather
// than "No data" for an operation or a class not seen yet.
func (m *httpMetrics) track(o *huma.OpenAPI) {
	o.OnAddOperation = append(o.OnAddOperation, func(_ *huma.OpenAPI, op *huma.Operation) {
		for _, class := range statusClasses {
			m.requests.WithLabelValues(op.OperationID, class)
		}
	})
}

// middleware observes every API operation, including the ones the
// authentication middleware after it refuses.
func (m *httpMetrics) middleware(ctx huma.Context, next func(huma.Context)) {
	op := ctx.Operation()
	if op == nil {
		next(ctx)
		return
	}
	start := time.Now()
	next(ctx)
	status := ctx.Status()
	if status == 0 {
		status = 200 // nothing written: net/http answers 200
	}
	m.requests.WithLabelValues(op.OperationID, strconv.Itoa(status/100)+"xx").Inc()
	m.latency.WithLabelValues(op.OperationID).Observe(time.Since(start).Seconds())
}
