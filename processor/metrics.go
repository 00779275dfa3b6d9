package processor

import (
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/exospherehost/exo-alerts/internal/condition"
	"github.com/exospherehost/exo-alerts/schemas"
)

// eventOutcomes are the outcome labels of exo_processor_events_total (the
// values Processor.count is called with, miskeyed aside).
var eventOutcomes = []string{"matched", "unmatched", "duplicate", "invalid", "ignored_type", outcomeTenantOff}

type metrics struct {
	events   *prometheus.CounterVec
	txns     *prometheus.CounterVec
	parts    *partitionGauges
	miskeyed prometheus.Counter
	// restarts counts transaction sessions ended by a transient Kafka
	// failure; kafkaDown is 1 from such a failure until Kafka answers again.
	restarts  prometheus.Counter
	kafkaDown prometheus.Gauge
	// agg is what stage 2's loop last saw, for scrapes.
	agg *aggregateGauges
}

func newMetrics(reg prometheus.Registerer, p *Processor) (*metrics, error) {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exo_processor_events_total",
			Help: "Workflow events consumed, by outcome (matched, unmatched, duplicate, invalid, ignored_type, tenant_off: the rollout does not serve the event's tenant, which gets no alert).",
		}, []string{"outcome"}),
		txns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exo_processor_transactions_total", Help: "Kafka transactions ended, by result (committed, aborted).",
		}, []string{"result"}),
		miskeyed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "exo_processor_miskeyed_events_total",
			Help: "Events whose record key is not tenantid/run id: the producer may spread one run over several partitions, and its duration alerts go wrong.",
		}),
		restarts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "exo_processor_kafka_session_restarts_total",
			Help: "Transaction sessions ended by a transient Kafka failure (unreachable, timed out, coordinator moved) and started again; the batch in flight is processed again.",
		}),
		kafkaDown: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "exo_processor_kafka_unavailable",
			Help: "1 from a transient Kafka failure of the processor's loop until a new transaction session is working again, else 0.",
		}),
		parts: &partitionGauges{
			clock: p.cfg.Clock,
			lag: prometheus.NewDesc("exo_processor_lag_records",
				"Workflow events not processed yet, per assigned partition: the last stable offset minus the next offset to process, as of the last lag check (every half second while the loop runs).",
				[]string{"partition"}, nil),
			watermark: prometheus.NewDesc("exo_processor_watermark_lag_seconds",
				"How far the partition's event-time watermark is behind the wall clock, per assigned partition; it follows the wall clock once the partition has no lag. Duration alerts fire when the watermark passes their deadline.",
				[]string{"partition"}, nil),
		},
	}
	// Every outcome and result exists from the start, at 0, so the
	// dashboard shows 0 rather than "No data" before the first event.
	for _, o := range eventOutcomes {
		m.events.WithLabelValues(o)
	}
	for _, r := range []string{"committed", "aborted"} {
		m.txns.WithLabelValues(r)
	}
	st := p.eng.Stats
	counter := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f)
	}
	ruleErrors := prometheus.NewDesc("exo_processor_rule_errors_total",
		"Rules skipped for an event because their condition could not be evaluated, by reason (budget: over its evaluation budget; runtime: failed on the event). Each is reported on the rule (last_error).",
		[]string{"reason"}, nil)
	suppressed := prometheus.NewDesc("exo_processor_alerts_suppressed_total", "Alerts a rule's noise control suppressed, by reason (rate_limit, cooldown).", []string{"reason"}, nil)
	m.agg = &aggregateGauges{
		clock: p.cfg.Clock, active: func() bool { return p.rules.AggregateCount() > 0 },
		groups: prometheus.NewDesc("exo_processor_aggregate_groups",
			"Groups of count and rate rules held for the assigned aggregate-input partitions, by state (inactive, firing, resolving).", []string{"state"}, nil),
		lag: prometheus.NewDesc("exo_processor_aggregate_watermark_lag_seconds",
			"How far the clock of count and rate rules (the minimum of every events partition's watermark, less EXO_PROCESSOR_AGGREGATE_DELAY) is behind the wall clock, per assigned aggregate-input partition, while aggregate rules exist; since the partition's assignment while some events partition has not reported yet. Resolves and rate decisions wait for it.",
			[]string{"partition"}, nil),
	}
	ast := p.agg.Stats
	aggInputs := prometheus.NewDesc("exo_processor_aggregate_inputs_total",
		"Inputs of count and rate rules read by stage 2, by outcome: counted; late (older than the window at the rules' clock, or than the group's window); dropped (a new group beyond max_groups or EXO_PROCESSOR_AGGREGATE_MAX_GROUPS); stale_spec (made under a rule version whose window, condition, threshold or grouping has changed since); invalid (not a valid input or marker: set aside on the invalid topic with its reason).",
		[]string{"outcome"}, nil)
	aggTransitions := prometheus.NewDesc("exo_processor_aggregate_transitions_total",
		"State changes of groups of count and rate rules, by the state or delivery they lead to: firing (a new episode, or back from resolving), resolving (the condition stopped holding; the hold runs), resolved, repeat (a repeat delivery while firing).",
		[]string{"to"}, nil)
	cs := []prometheus.Collector{
		m.events, m.txns, m.parts, m.miskeyed, m.restarts, m.kafkaDown, m.agg,
		constCounters{desc: aggInputs, values: map[string]func() uint64{
			"counted": ast.InputsCounted.Load, "late": ast.InputsLate.Load, "dropped": ast.InputsDropped.Load, "stale_spec": ast.InputsStaleSpec.Load,
			"invalid": p.aggInvalid.Load,
		}},
		constCounters{desc: aggTransitions, values: map[string]func() uint64{
			"firing": ast.ToFiring.Load, "resolving": ast.ToResolving.Load, "resolved": ast.ToResolved.Load, "repeat": ast.ToRepeat.Load,
		}},
		counter("exo_processor_deliveries_total", "Delivery records emitted.", func() float64 { return float64(st.Deliveries.Load()) }),
		counter("exo_processor_duplicate_events_total", "Events the engine sent again for a run, suppressed.", func() float64 { return float64(st.Duplicates.Load()) }),
		counter("exo_processor_condition_errors_total", "Conditions that could not be evaluated (the rule is skipped for the event): the sum of exo_processor_rule_errors_total over its reasons.", func() float64 { return float64(st.ConditionErrors.Load()) }),
		counter("exo_processor_duration_alerts_total", "Duration-exceeded alerts emitted.", func() float64 { return float64(st.DurationFired.Load()) }),
		counter("exo_processor_run_states_tombstoned_total", "Run states removed after their grace period.", func() float64 { return float64(st.Tombstones.Load()) }),
		suppressedCollector{desc: suppressed, p: p},
		newQuotaCollector(p),
		ruleErrorsCollector{desc: ruleErrors, p: p},
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "exo_processor_rules_active", Help: "Active alert rules the processor matches events against."},
			func() float64 { return float64(p.rules.len()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "exo_processor_endpoints", Help: "Webhook endpoints in the processor's table."},
			func() float64 { return float64(p.endpoints.Len()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "exo_processor_runs_tracked", Help: "Run states held in memory for the assigned partitions."},
			func() float64 { return float64(p.runs.Load()) }),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("processor: register metrics: %w", err)
		}
	}
	return m, nil
}

type suppressedCollector struct {
	desc *prometheus.Desc
	p    *Processor
}

func (c suppressedCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c suppressedCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.p.eng.Stats
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(st.SuppressedRate.Load()), "rate_limit")
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(st.SuppressedCooldown.Load()), "cooldown")
}

type ruleErrorsCollector struct {
	desc *prometheus.Desc
	p    *Processor
}

func (c ruleErrorsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c ruleErrorsCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.p.eng.Stats
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(st.RuleErrorsBudget.Load()), condition.ReasonBudget)
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(st.RuleErrorsRuntime.Load()), condition.ReasonRuntime)
}

// partitionGauges holds what the processor loop last saw of its assigned
// partitions, for scrapes to read from another goroutine: the engine is
// the loop's alone.
type partitionGauges struct {
	clock          interface{ Now() time.Time }
	lag, watermark *prometheus.Desc

	mu         sync.Mutex
	lags       map[int32]int64     // of the partitions the last lag check covered
	watermarks map[int32]time.Time // of the assigned partitions; zero: no event yet
}

// setLags records the lag of the partitions a lag check covered.
func (g *partitionGauges) setLags(lags map[int32]int64) {
	g.mu.Lock()
	g.lags = lags
	g.mu.Unlock()
}

// setWatermarks records the assigned partitions and their watermarks, and
// forgets the lag of partitions revoked since the last lag check.
func (g *partitionGauges) setWatermarks(wms map[int32]time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.watermarks = wms
	for part := range g.lags {
		if _, ok := wms[part]; !ok {
			delete(g.lags, part)
		}
	}
}

func (g *partitionGauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- g.lag
	ch <- g.watermark
}

func (g *partitionGauges) Collect(ch chan<- prometheus.Metric) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for part, lag := range g.lags {
		ch <- prometheus.MustNewConstMetric(g.lag, prometheus.GaugeValue, float64(max(lag, 0)), strconv.Itoa(int(part)))
	}
	now := g.clock.Now()
	for part, wm := range g.watermarks {
		if !wm.IsZero() {
			ch <- prometheus.MustNewConstMetric(g.watermark, prometheus.GaugeValue, max(now.Sub(wm).Seconds(), 0), strconv.Itoa(int(part)))
		}
	}
}

// constCounters exports counters kept elsewhere (atomics of an engine's
// Stats), one series per label value, all present from the start.
type constCounters struct {
	desc   *prometheus.Desc
	values map[string]func() uint64 // label value -> current count
}

func (c constCounters) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c constCounters) Collect(ch chan<- prometheus.Metric) {
	for label, v := range c.values {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(v()), label)
	}
}

// aggregateWatermark is an assigned aggregate-input partition's effective
// watermark (zero until every events partition reported) and when it was
// assigned (time.Now, not the injected clock: the clock is read first
// by the loop, after its first lag check).
type aggregateWatermark struct {
	e, since time.Time
}

// aggregateGauges holds what stage 2 last saw, for scrapes to read from
// another goroutine: the aggregate engine is the loop's alone.
type aggregateGauges struct {
	clock       interface{ Now() time.Time }
	active      func() bool // whether any aggregate rule is active
	groups, lag *prometheus.Desc

	mu         sync.Mutex
	byState    map[string]int
	watermarks map[int32]aggregateWatermark
}

func (g *aggregateGauges) set(byState map[string]int, wms map[int32]aggregateWatermark) {
	g.mu.Lock()
	g.byState, g.watermarks = byState, wms
	g.mu.Unlock()
}

// aggregateStates are the states of exo_processor_aggregate_groups.
var aggregateStates = []string{schemas.AggregateStateInactive, schemas.AggregateStateFiring, schemas.AggregateStateResolving}

func (g *aggregateGauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- g.groups
	ch <- g.lag
}

func (g *aggregateGauges) Collect(ch chan<- prometheus.Metric) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, st := range aggregateStates {
		ch <- prometheus.MustNewConstMetric(g.groups, prometheus.GaugeValue, float64(g.byState[st]), st)
	}
	if !g.active() {
		return // no aggregate rule: no markers, and nothing waits
	}
	now := g.clock.Now()
	for part, wm := range g.watermarks {
		lag := now.Sub(wm.e)
		if wm.e.IsZero() {
			lag = time.Since(wm.since) // wm.since is the real wall clock's
		}
		ch <- prometheus.MustNewConstMetric(g.lag, prometheus.GaugeValue, max(lag.Seconds(), 0), strconv.Itoa(int(part)))
	}
}
