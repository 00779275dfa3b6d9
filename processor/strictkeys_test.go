package processor_test

import (
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/internal/workload"
	"github.com/exospherehost/exo-alerts/processor"
	"github.com/exospherehost/exo-alerts/processor/engine"
	"github.com/exospherehost/exo-alerts/schemas"
)

// With strict keys on, an event whose record key does not start with
// "<its tenant>/" — another tenant's prefix, a prefix that merely begins
// like the tenant, no slash at all — lands on the invalid topic with the
// reason and alerts nobody, while a rightly keyed one alerts. Off, the same
// events alert as they always did, and are only counted.
func TestStrictKeys(t *testing.T) {
	t.Parallel()
	for _, strict := range []bool{true, false} {
		name := map[bool]string{true: "on", false: "off"}[strict]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			const tn = "tk"
			e.putEndpoint(tn, "ep", true)
			e.putRule(schemas.RuleRecord{TenantID: tn, ID: "fail", EventType: schemas.TypeRunFailed, WebhookEndpointID: "ep", IsActive: true})
			p := e.startProcessor("strict-"+name, func(c *processor.Config) { c.StrictKeys = strict })

			failed := func(key string) (*kgo.Record, string) {
				ev := workload.Event(workload.Spec{Tenant: tn, Type: schemas.TypeRunFailed, WorkflowName: "etl"})
				r := e.record(ev)
				if key != "" {
					r.Key = []byte(key)
				}
				r.Partition = 1 // one partition: the last good event proves the others were judged
				return r, engine.AlertID(tn, "fail", ev.ID)
			}
			matching, matchingAlert := failed("")
			sameTenantOtherRun, sameTenantAlert := failed(tn + "/not-its-run")
			mismatched := map[string]string{} // key -> alert id
			var recs []*kgo.Record
			recs = append(recs, matching, sameTenantOtherRun)
			for _, key := range []string{"globex/run_1", tn + "x/run_1", tn, ""} {
				r, alert := failed(key)
				r.Key = []byte(key)
				mismatched[key] = alert
				recs = append(recs, r)
			}
			last, lastAlert := failed("")
			recs = append(recs, last)
			e.produceOn(recs...)

			want := map[string]bool{matchingAlert: true, sameTenantAlert: true, lastAlert: true}
			if !strict {
				for _, a := range mismatched {
					want[a] = true
				}
			}
			deliveries := e.collect(e.topics.Deliveries)
			deliveries.waitFor(30*time.Second, "the alerts of the rightly keyed events", deliveries.has(want), deliveries.missing(want))
			e.waitCaughtUp(30 * time.Second)
			deliveries.drain()
			assertExactlyOnce(t, deliveries.counts(), want)

			invalid := e.collect(e.topics.EventsInvalid)
			invalid.drain()
			if !strict {
				if len(invalid.recs) != 0 {
					t.Errorf("%d records on the invalid topic with strict keys off", len(invalid.recs))
				}
				if n := testenv.Metric(t, p.reg, "exo_processor_miskeyed_events_total"); n != 5 {
					t.Errorf("miskeyed_events_total = %v, want 5", n)
				}
				return
			}
			got := map[string]bool{}
			for _, r := range invalid.recs {
				reason := kafka.Header(r, schemas.HeaderInvalidReason)
				if _, ok := mismatched[string(r.Key)]; !ok || !strings.Contains(reason, "does not start with the event's tenant") {
					t.Errorf("invalid topic: key %q, reason %q", r.Key, reason)
				}
				got[string(r.Key)] = true
			}
			for key := range mismatched {
				if !got[key] {
					t.Errorf("event keyed %q is not on the invalid topic", key)
				}
			}
			if n := testenv.Metric(t, p.reg, "exo_processor_events_total", "outcome", "invalid"); n != 4 {
				t.Errorf("events_total{outcome=invalid} = %v, want 4", n)
			}
		})
	}
}
