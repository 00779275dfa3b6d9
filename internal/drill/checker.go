package drill

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/exospherehost/exo-alerts/schemas"
)

// Checker knows every expected alert (one per failed run the broker
// acknowledged), every POST the receiver got and every record on the
// deliveries topic, and tallies them per scenario.
type Checker struct {
	mu       sync.Mutex
	expected map[string]expectation // run id -> what was produced
	received map[string]*receipt    // run id -> what arrived
	records  map[string]int         // alert id -> delivery records on the deliveries topic
	alertRun map[string]string      // alert id -> run id, from the deliveries topic
	unknown  int                    // POSTs for runs the producer never had acknowledged
}

type expectation struct {
	scenario string
	at       time.Time // when the event was produced
}

type receipt struct {
	first      time.Time
	posts      int
	webhookIDs map[string]bool
}

// NewChecker returns an empty checker.
func NewChecker() *Checker {
	return &Checker{
		expected: map[string]expectation{}, received: map[string]*receipt{},
		records: map[string]int{}, alertRun: map[string]string{},
	}
}

// Expect records that the broker acknowledged the failed-run event of run,
// produced at at for scenario: exactly one alert must arrive for it.
func (c *Checker) Expect(scenario, run string, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expected[run] = expectation{scenario: scenario, at: at}
}

// Received records a POST of the alert webhookID for run at at.
func (c *Checker) Received(run, webhookID string, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.received[run]
	if r == nil {
		r = &receipt{first: at, webhookIDs: map[string]bool{}}
		c.received[run] = r
	}
	r.posts++
	r.webhookIDs[webhookID] = true
}

// Delivery records one delivery record of alertID for run read (read_committed)
// from the deliveries topic.
func (c *Checker) Delivery(alertID, run string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.records[alertID]++
	c.alertRun[alertID] = run
}

// Row is the result of one scenario.
type Row struct {
	Scenario string
	// Expected alerts: failed runs whose event the broker acknowledged.
	Expected int
	// Received: expected alerts that reached the receiver at least once.
	Received int
	// Missing = Expected - Received.
	Missing int
	// ProcessorDuplicates: delivery records beyond the first per alert id on
	// the deliveries topic (read_committed), plus alerts beyond the first per
	// run at the receiver. Exactly-once processing makes it 0.
	ProcessorDuplicates int
	// Redelivered: POSTs of a webhook-id the receiver had already got
	// (at-least-once delivery; allowed, and reported).
	Redelivered int
	// LongestGap: the longest time, between the scenario's first event and
	// its last first-arrival, in which no new alert of it arrived.
	LongestGap time.Duration
	// MaxLatency: the longest time from an event's production to its alert's
	// first arrival.
	MaxLatency time.Duration
	// Crashes: components that exited by themselves during the scenario.
	Crashes []string
}

// OK says whether the scenario passed: nothing missing, no processor
// duplicate and, unless allowCrashes, no component that died by itself.
func (r Row) OK(allowCrashes bool) bool {
	return r.Missing == 0 && r.ProcessorDuplicates == 0 && (allowCrashes || len(r.Crashes) == 0)
}

// Settled says whether every expected alert of scenario has arrived and its
// delivery record was read from the deliveries topic.
func (c *Checker) Settled(scenario string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	onTopic := map[string]bool{}
	for _, run := range c.alertRun {
		onTopic[run] = true
	}
	for run, e := range c.expected {
		if e.scenario != scenario {
			continue
		}
		if c.received[run] == nil || !onTopic[run] {
			return false
		}
	}
	return true
}

// Tally computes the row of scenario from what was seen so far.
func (c *Checker) Tally(scenario string) Row {
	c.mu.Lock()
	defer c.mu.Unlock()
	row := Row{Scenario: scenario}
	var start time.Time
	var arrivals []time.Time
	for run, e := range c.expected {
		if e.scenario != scenario {
			continue
		}
		row.Expected++
		if start.IsZero() || e.at.Before(start) {
			start = e.at
		}
		r := c.received[run]
		if r == nil {
			row.Missing++
			continue
		}
		row.Received++
		row.Redelivered += r.posts - len(r.webhookIDs)
		row.ProcessorDuplicates += len(r.webhookIDs) - 1
		arrivals = append(arrivals, r.first)
		if l := r.first.Sub(e.at); l > row.MaxLatency {
			row.MaxLatency = l
		}
	}
	for alert, n := range c.records {
		if e, ok := c.expected[c.alertRun[alert]]; ok && e.scenario == scenario && n > 1 {
			row.ProcessorDuplicates += n - 1
		}
	}
	slices.SortFunc(arrivals, func(a, b time.Time) int { return a.Compare(b) })
	prev := start
	for _, a := range arrivals {
		if g := a.Sub(prev); g > row.LongestGap {
			row.LongestGap = g
		}
		prev = a
	}
	return row
}

// Unknown returns the number of POSTs for runs no scenario produced.
func (c *Checker) Unknown() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.unknown
}

// ServeHTTP is the receiver: it answers 204 to every POST and records its
// webhook-id and the run of its payload.
func (c *Checker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	var p schemas.WebhookPayload
	if err := json.Unmarshal(body, &p); err != nil || p.Data.Run.ID == "" {
		c.mu.Lock()
		c.unknown++
		c.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		return
	}
	c.mu.Lock()
	_, known := c.expected[p.Data.Run.ID]
	c.mu.Unlock()
	if !known && p.Data.Labels[labelScenario] == "" {
		c.mu.Lock()
		c.unknown++
		c.mu.Unlock()
	}
	c.Received(p.Data.Run.ID, r.Header.Get("webhook-id"), now)
	w.WriteHeader(http.StatusNoContent)
}

// labelScenario is the event label that names the scenario an event belongs to.
const labelScenario = "drill_scenario"
