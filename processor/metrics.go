package processor

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	events *prometheus.CounterVec
	txns   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, p *Processor) (*metrics, error) {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exo_processor_events_total",
			Help: "Workflow events consumed, by outcome (matched, unmatched, duplicate, invalid, ignored_type).",
		}, []string{"outcome"}),
		txns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exo_processor_transactions_total", Help: "Kafka transactions ended, by result (committed, aborted).",
		}, []string{"result"}),
	}
	st := p.eng.Stats
	counter := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f)
	}
	suppressed := prometheus.NewDesc("exo_processor_alerts_suppressed_total", "Alerts a rule's noise control suppressed, by reason (rate_limit, cooldown).", []string{"reason"}, nil)
	cs := []prometheus.Collector{
		m.events, m.txns,
		counter("exo_processor_deliveries_total", "Delivery records emitted.", func() float64 { return float64(st.Deliveries.Load()) }),
		counter("exo_processor_duplicate_events_total", "Events the engine sent again for a run, suppressed.", func() float64 { return float64(st.Duplicates.Load()) }),
		counter("exo_processor_condition_errors_total", "Conditions that failed at run time (treated as no match).", func() float64 { return float64(st.ConditionErrors.Load()) }),
		counter("exo_processor_duration_alerts_total", "Duration-exceeded alerts emitted.", func() float64 { return float64(st.DurationFired.Load()) }),
		counter("exo_processor_run_states_tombstoned_total", "Run states removed after their grace period.", func() float64 { return float64(st.Tombstones.Load()) }),
		suppressedCollector{desc: suppressed, p: p},
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
