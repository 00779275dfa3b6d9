package controlplane

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/exospherehost/exo-alerts/internal/store"
	"github.com/exospherehost/exo-alerts/schemas"
)

// The overview API behind the dashboard's charts: delivery attempts by
// outcome over time with latency percentiles (GET /v1/stats/deliveries)
// and each endpoint's health at a glance (GET /v1/stats/endpoints). Both
// aggregate in Postgres (internal/store/stats.go) in the caller's tenant
// transaction; a viewer key may read them.

// statsTag groups the overview operations in the OpenAPI document.
const statsTag = "Statistics"

// statsWindow is a window the overview can show and the size of its
// buckets: a fixed number of them, so a chart's x axis is the same
// length whatever the traffic.
type statsWindow struct {
	length, bucket time.Duration
}

// statsWindows are the windows of ?window=.
var statsWindows = map[string]statsWindow{
	"1h":  {time.Hour, time.Minute},            // 60 buckets
	"24h": {24 * time.Hour, 15 * time.Minute},  // 96 buckets
	"7d":  {7 * 24 * time.Hour, 2 * time.Hour}, // 84 buckets
}

// maxStatsSeries caps the series of a grouped answer: the rules or
// endpoints with the most attempts get their own, the rest share one
// series "other".
const maxStatsSeries = 10

// span is the window ending with the bucket that holds now: [from, to),
// both multiples of the bucket since the Unix epoch (UTC), so the buckets
// of two calls line up.
func (w statsWindow) span(now time.Time) (from, to time.Time) {
	to = now.UTC().Truncate(w.bucket).Add(w.bucket)
	return to.Add(-w.length), to
}

// DeliveryCounts counts delivery attempts by what became of the alert.
type DeliveryCounts struct {
	Delivered int64 `json:"delivered" doc:"Attempts that delivered the alert (2xx)"`
	Retrying  int64 `json:"retrying" doc:"Attempts that failed with another attempt scheduled"`
	Dead      int64 `json:"dead" doc:"Attempts that failed for good: the alert was dead-lettered (out of attempts, or a permanent failure)"`
	Gone      int64 `json:"gone" doc:"Attempts answered 404 or 410: the endpoint is gone and the alert's rule was disabled"`
}

// LatencyPercentiles are percentiles of the latency of successful
// attempts, in milliseconds: observed values (percentile_disc), null when
// no attempt succeeded.
type LatencyPercentiles struct {
	P50 *int64 `json:"p50" doc:"Median latency (ms) of the delivered attempts; null when none"`
	P95 *int64 `json:"p95" doc:"95th percentile latency (ms); null when none"`
	P99 *int64 `json:"p99" doc:"99th percentile latency (ms); null when none"`
}

// StatsBucket is the attempts of one time bucket.
type StatsBucket struct {
	Start     time.Time          `json:"start" doc:"Start of the bucket (inclusive); it lasts bucket_seconds"`
	Delivered int64              `json:"delivered" doc:"Attempts that delivered the alert"`
	Retrying  int64              `json:"retrying" doc:"Attempts that failed with another attempt scheduled"`
	Dead      int64              `json:"dead" doc:"Attempts after which the alert was dead-lettered"`
	Gone      int64              `json:"gone" doc:"Attempts answered 404 or 410 (endpoint gone, rule disabled)"`
	LatencyMS LatencyPercentiles `json:"latency_ms" doc:"Latency percentiles of the bucket's delivered attempts"`
}

// DeliverySeries is the attempts of one rule or endpoint (or of the
// others past the cap) over the window.
type DeliverySeries struct {
	Key        string             `json:"key" doc:"The rule id or endpoint id of the series; \"other\" for the series of every rule or endpoint past the cap"`
	RuleID     string             `json:"rule_id,omitempty" doc:"The rule of the series (group_by=rule; absent for \"other\"); \"test\" are test deliveries, \"notice\" health notices"`
	EndpointID string             `json:"endpoint_id,omitempty" doc:"The endpoint of the series (group_by=endpoint; absent for \"other\")"`
	Name       string             `json:"name" doc:"Name of the rule or endpoint (deleted ones keep theirs); a description for \"other\", test deliveries and health notices"`
	Other      bool               `json:"other" doc:"Whether this is the series of the rules or endpoints past the cap"`
	Totals     DeliveryCounts     `json:"totals" doc:"The series' attempts over the whole window"`
	LatencyMS  LatencyPercentiles `json:"latency_ms" doc:"Latency percentiles of the series' delivered attempts over the window"`
	Buckets    []StatsBucket      `json:"buckets" doc:"Every bucket of the window, oldest first, empty ones with zeros"`
}

// DeliveryStats answers GET /v1/stats/deliveries.
type DeliveryStats struct {
	Window        string             `json:"window" enum:"1h,24h,7d" doc:"The window shown"`
	GroupBy       string             `json:"group_by" enum:"none,rule,endpoint" doc:"How the series are grouped"`
	BucketSeconds int                `json:"bucket_seconds" doc:"Length of each bucket in seconds: 60 for 1h (60 buckets), 900 for 24h (96), 7200 for 7d (84)" example:"900"`
	From          time.Time          `json:"from" doc:"Start of the first bucket (inclusive); a multiple of the bucket length since the Unix epoch"`
	To            time.Time          `json:"to" doc:"End of the last bucket (exclusive); the last bucket holds the current time and is still filling"`
	Totals        DeliveryCounts     `json:"totals" doc:"Every attempt of the window"`
	LatencyMS     LatencyPercentiles `json:"latency_ms" doc:"Latency percentiles of the window's delivered attempts"`
	Buckets       []StatsBucket      `json:"buckets" doc:"Every bucket of the window, oldest first, empty ones with zeros (all series together)"`
	Series        []DeliverySeries   `json:"series" doc:"Per rule or endpoint (group_by), most attempts first, at most 10 and then \"other\"; empty when group_by=none"`
}

type deliveryStatsIn struct {
	Window  string `query:"window" enum:"1h,24h,7d" default:"24h" doc:"The window: the last hour (1-minute buckets), day (15-minute buckets) or week (2-hour buckets)"`
	GroupBy string `query:"group_by" enum:"none,rule,endpoint" default:"none" doc:"Also count per rule or per endpoint (the 10 with the most attempts, then the rest as \"other\")"`
}

// EndpointError is the latest failed attempt to an endpoint.
type EndpointError struct {
	AlertID     string    `json:"alert_id" doc:"The alert of the attempt (GET /v1/deliveries/{alert_id} shows it)"`
	Outcome     string    `json:"outcome" enum:"retry,endpoint_gone,dead" doc:"What became of the alert after the attempt"`
	StatusCode  *int      `json:"status_code" doc:"HTTP status of the answer; null when none came (timeout, connection error)"`
	ErrorClass  *string   `json:"error_class" doc:"Machine-readable class of the failure, e.g. http_500, timeout, connection"`
	Error       *string   `json:"error" doc:"Short description of the failure, URLs redacted"`
	AttemptedAt time.Time `json:"attempted_at" doc:"When the attempt was made"`
}

// EndpointBreaker is what the dispatchers reported of an endpoint's
// circuit breaker.
type EndpointBreaker struct {
	State               string     `json:"state" enum:"open,closed" doc:"open: a dispatcher reported the endpoint's breaker open for longer than EXO_DISPATCHER_UNHEALTHY_AFTER and not closed since (alerts to it wait in the retry tiers); closed otherwise"`
	Since               *time.Time `json:"since" doc:"When the breaker opened (open) or last closed after being reported open (closed); null when it was never reported open"`
	ConsecutiveFailures *int64     `json:"consecutive_failures" doc:"Failures in a row the report counted; null when it was never reported open"`
}

// EndpointHealth is one endpoint's health over the window.
type EndpointHealth struct {
	EndpointID      string             `json:"endpoint_id" doc:"The endpoint"`
	Name            string             `json:"name" doc:"Its name"`
	Kind            string             `json:"kind" enum:"webhook,slack,pagerduty" doc:"Its kind"`
	IsActive        bool               `json:"is_active" doc:"Whether alerts are delivered to it"`
	DisabledReason  *string            `json:"disabled_reason" doc:"Why it was disabled; null when active or disabled by a user without a reason"`
	Totals          DeliveryCounts     `json:"totals" doc:"Its attempts over the window"`
	Attempts        int64              `json:"attempts" doc:"Every attempt of the window (the sum of totals)"`
	SuccessRate     *float64           `json:"success_rate" minimum:"0" maximum:"1" doc:"Delivered attempts over all attempts of the window, from 0 to 1; null when there were none"`
	LatencyMS       LatencyPercentiles `json:"latency_ms" doc:"Latency percentiles of its delivered attempts over the window"`
	LastError       *EndpointError     `json:"last_error,omitempty" doc:"Its latest failed attempt (at any time); absent when none failed"`
	LastDeliveredAt *time.Time         `json:"last_delivered_at" doc:"When an attempt to it last succeeded (at any time); null when none did"`
	Breaker         EndpointBreaker    `json:"breaker" doc:"Its circuit breaker, as the dispatchers reported it"`
}

// EndpointHealthList answers GET /v1/stats/endpoints.
type EndpointHealthList struct {
	Window     string           `json:"window" enum:"1h,24h,7d" doc:"The window of the counts"`
	From       time.Time        `json:"from" doc:"Start of the window (inclusive)"`
	To         time.Time        `json:"to" doc:"End of the window (exclusive)"`
	Items      []EndpointHealth `json:"items" doc:"The endpoints (not deleted), in the order of GET /v1/webhooks (oldest first)"`
	NextCursor string           `json:"next_cursor" doc:"Pass as ?cursor= (with the same window) to get the next page; empty on the last page"`
}

type endpointHealthIn struct {
	Window string `query:"window" enum:"1h,24h,7d" default:"24h" doc:"The window of the counts and the success rate"`
	Cursor string `query:"cursor" maxLength:"200" doc:"Opaque cursor from next_cursor"`
	Limit  int    `query:"limit" minimum:"1" maximum:"200" default:"50" doc:"At most this many endpoints"`
}

type deliveryStatsOut struct {
	Body DeliveryStats
}

type endpointHealthOut struct {
	Link string `header:"Link" doc:"rel=next link when there are more items"`
	Body EndpointHealthList
}

func (s *Server) registerOverview(api huma.API) {
	sec := []map[string][]string{bearer}
	huma.Register(api, huma.Operation{
		OperationID: "get-delivery-stats", Method: http.MethodGet, Path: "/v1/stats/deliveries", Tags: []string{statsTag},
		Summary: "Count delivery attempts over time",
		Description: "Delivery attempts of the last hour, day or week by outcome (delivered, retrying, dead, gone) in fixed time buckets " +
			"(empty ones with zeros, for a continuous chart), with latency percentiles p50/p95/p99 of the delivered ones over the window " +
			"and per bucket; optionally per rule or per endpoint (the 10 with the most attempts, then \"other\"). Test deliveries and health " +
			"notices count too (rule ids \"test\" and \"notice\"). A viewer key may read it.",
		Security: sec, Errors: []int{400, 401, 422},
	}, s.deliveryStats)
	huma.Register(api, huma.Operation{
		OperationID: "list-endpoint-health", Method: http.MethodGet, Path: "/v1/stats/endpoints", Tags: []string{statsTag},
		Summary: "Show each endpoint's health",
		Description: "Per webhook endpoint (not deleted), in the order of the endpoint list: its attempts and success rate over the window, " +
			"latency percentiles, its latest failure and latest success, whether it is disabled and why, and its circuit breaker as the " +
			"dispatchers reported it. A viewer key may read it.",
		Security: sec, Errors: []int{400, 401, 422},
	}, s.endpointHealth)
}

// seriesName names the series of a rule or endpoint id: its name, or what
// the system's own rule ids stand for.
func seriesName(names map[string]string, id string) string {
	if n, ok := names[id]; ok {
		return n
	}
	switch id {
	case schemas.TestRuleID:
		return "Test deliveries"
	case schemas.NoticeRuleID:
		return "Health notices"
	}
	return ""
}

func countsOf(c store.Counts) (DeliveryCounts, LatencyPercentiles) {
	return DeliveryCounts{Delivered: c.Delivered, Retrying: c.Retrying, Dead: c.Dead, Gone: c.Gone},
		LatencyPercentiles{P50: c.P50, P95: c.P95, P99: c.P99}
}

func (s *Server) deliveryStats(ctx context.Context, in *deliveryStatsIn) (*deliveryStatsOut, error) {
	p := principalFrom(ctx)
	w, ok := statsWindows[in.Window]
	if !ok { // the enum refuses it first; kept so a new enum value cannot panic
		return nil, huma.Error422UnprocessableEntity("validation failed", &huma.ErrorDetail{Location: "query.window", Message: "unknown window", Value: in.Window})
	}
	from, to := w.span(time.Now())
	q := store.StatsQuery{From: from, To: to, Bucket: w.bucket, MaxSeries: maxStatsSeries}
	if in.GroupBy != "none" {
		q.GroupBy = in.GroupBy
	}
	out := &deliveryStatsOut{Body: DeliveryStats{
		Window: in.Window, GroupBy: in.GroupBy, BucketSeconds: int(w.bucket / time.Second), From: from, To: to,
		Buckets: []StatsBucket{}, Series: []DeliverySeries{},
	}}
	err := s.tenantTx(ctx, p.TenantID, func(tx *store.Tx) error {
		rows, err := tx.DeliveryStats(ctx, q)
		if err != nil {
			return err
		}
		var keys []string
		series := map[string]*DeliverySeries{}
		var order []*DeliverySeries
		for _, r := range rows {
			counts, lat := countsOf(r.Counts)
			if r.Series == store.SeriesAll {
				if r.Bucket == nil {
					out.Body.Totals, out.Body.LatencyMS = counts, lat
				} else {
					out.Body.Buckets = append(out.Body.Buckets, bucketOf(*r.Bucket, r.Counts))
				}
				continue
			}
			key := r.Key
			if r.Series == store.SeriesOther {
				key = "other"
			}
			ds := series[key]
			if ds == nil {
				ds = &DeliverySeries{Key: key, Other: r.Series == store.SeriesOther, Buckets: []StatsBucket{}}
				series[key] = ds
				order = append(order, ds)
				if !ds.Other {
					keys = append(keys, r.Key)
				}
			}
			if r.Bucket == nil {
				ds.Totals, ds.LatencyMS = counts, lat
			} else {
				ds.Buckets = append(ds.Buckets, bucketOf(*r.Bucket, r.Counts))
			}
		}
		if len(order) == 0 {
			return nil
		}
		names, err := tx.Names(ctx, q.GroupBy, keys)
		if err != nil {
			return err
		}
		for _, ds := range order {
			switch {
			case ds.Other:
				ds.Name = fmt.Sprintf("Every other %s", q.GroupBy)
			case q.GroupBy == "rule":
				ds.RuleID, ds.Name = ds.Key, seriesName(names, ds.Key)
			default:
				ds.EndpointID, ds.Name = ds.Key, seriesName(names, ds.Key)
			}
		}
		// Most attempts first, "other" last; ties by key, so the order is
		// stable from one refresh to the next.
		sort.SliceStable(order, func(i, j int) bool {
			a, b := order[i], order[j]
			if a.Other != b.Other {
				return b.Other
			}
			if va, vb := volume(a.Totals), volume(b.Totals); va != vb {
				return va > vb
			}
			return a.Key < b.Key
		})
		for _, ds := range order {
			out.Body.Series = append(out.Body.Series, *ds)
		}
		return nil
	})
	if err != nil {
		return nil, s.apiError("delivery stats", err)
	}
	return out, nil
}

func volume(c DeliveryCounts) int64 { return c.Delivered + c.Retrying + c.Dead + c.Gone }

func bucketOf(start time.Time, c store.Counts) StatsBucket {
	return StatsBucket{Start: start.UTC(), Delivered: c.Delivered, Retrying: c.Retrying, Dead: c.Dead, Gone: c.Gone,
		LatencyMS: LatencyPercentiles{P50: c.P50, P95: c.P95, P99: c.P99}}
}

func (s *Server) endpointHealth(ctx context.Context, in *endpointHealthIn) (*endpointHealthOut, error) {
	p := principalFrom(ctx)
	cur, err := queryCursor(in.Cursor, store.ParseCursor)
	if err != nil {
		return nil, err
	}
	w, ok := statsWindows[in.Window]
	if !ok {
		return nil, huma.Error422UnprocessableEntity("validation failed", &huma.ErrorDetail{Location: "query.window", Message: "unknown window", Value: in.Window})
	}
	// The window ends now (not at a bucket's end): a rate, not a chart.
	to := time.Now().UTC()
	from := to.Add(-w.length)
	out := &endpointHealthOut{Body: EndpointHealthList{Window: in.Window, From: from, To: to, Items: []EndpointHealth{}}}
	err = s.tenantTx(ctx, p.TenantID, func(tx *store.Tx) error {
		rows, next, err := tx.EndpointHealth(ctx, store.EndpointHealthQuery{From: from, To: to, After: cur, Limit: in.Limit})
		if err != nil {
			return err
		}
		out.Body.NextCursor = next
		for _, r := range rows {
			out.Body.Items = append(out.Body.Items, endpointHealthOf(r))
		}
		return nil
	})
	if err != nil {
		return nil, s.apiError("endpoint health", err)
	}
	if out.Body.NextCursor != "" {
		q := url.Values{"cursor": {out.Body.NextCursor}, "limit": {fmt.Sprint(in.Limit)}, "window": {in.Window}}
		out.Link = fmt.Sprintf(`</v1/stats/endpoints?%s>; rel="next"`, q.Encode())
	}
	return out, nil
}

func endpointHealthOf(r *store.EndpointHealthRow) EndpointHealth {
	totals, lat := countsOf(r.Counts)
	h := EndpointHealth{
		EndpointID: r.ID, Name: r.Name, Kind: r.Kind, IsActive: r.IsActive, DisabledReason: r.DisabledReason,
		Totals: totals, Attempts: volume(totals), LatencyMS: lat, LastDeliveredAt: r.LastDeliveredAt,
		Breaker: EndpointBreaker{State: "closed", Since: r.BreakerSince, ConsecutiveFailures: r.ConsecutiveFailures},
	}
	if h.Attempts > 0 {
		rate := float64(totals.Delivered) / float64(h.Attempts)
		h.SuccessRate = &rate
	}
	if r.BreakerOpen {
		h.Breaker.State = "open"
	}
	if e := r.LastError; e != nil {
		h.LastError = &EndpointError{AlertID: r.LastErrorAlertID, Outcome: e.Outcome, StatusCode: e.StatusCode, ErrorClass: e.ErrorClass,
			Error: e.Error, AttemptedAt: e.AttemptedAt}
	}
	return h
}
