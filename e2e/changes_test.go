package e2e_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/workload"
	"github.com/exospherehost/exo-alerts/schemas"
)

// call sends an API request and requires status want.
func (s *system) call(t *testing.T, tenant, method, path, body string, want int) map[string]any {
	t.Helper()
	status, out := s.do(t, tenant, method, path, body)
	if status != want {
		t.Fatalf("%s %s: %d %v, want %d", method, path, status, out, want)
	}
	return out
}

// do sends an API request and returns its status and JSON answer.
func (s *system) do(t *testing.T, tenant, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), method, s.api+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+s.keys[tenant])
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// eventID is the workflow event a delivered payload is about.
func eventID(t *testing.T, body []byte) string {
	t.Helper()
	var p schemas.WebhookPayload
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("payload: %v", err)
	}
	return p.Data.Event.ID
}

// topicEventIDs reads topic up to its current end and returns the event ids
// of the delivery records for endpoint.
func topicEventIDs(t *testing.T, brokers []string, topic, endpoint string) map[string]bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(append(kafka.ClientOpts(brokers, nil), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	next := map[int32]int64{}
	behind := func() bool {
		b := false
		ends.Each(func(o kadm.ListedOffset) {
			if next[o.Partition] < o.Offset {
				b = true
			}
		})
		return b
	}
	out := map[string]bool{}
	for behind() {
		f := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s to its end: %v", topic, ctx.Err())
		}
		f.EachRecord(func(r *kgo.Record) {
			next[r.Partition] = r.Offset + 1
			if r.Attrs.IsControl() {
				return
			}
			var d schemas.DeliveryRecord
			if json.Unmarshal(r.Value, &d) == nil && d.EndpointID == endpoint {
				out[eventID(t, d.Payload)] = true
			}
		})
	}
	return out
}

// A rule or endpoint changed, deactivated or deleted through the API stops
// alerting within moments, and for good: events stream every 50 ms from the
// moment the API answered; the ones that still reach the endpoint are a
// prefix of the stream, and the last ones do not. A second rule on a second
// endpoint, untouched, tells when every event has been processed. The time
// from the answer to the change being in force is logged (speed is for
// benchmarks; docs/benchmarks.md records it).
func TestChangesThroughAPITakeEffect(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		change func(t *testing.T, s *system, rule, endpoint string)
	}{
		{"rule deactivated", func(t *testing.T, s *system, rule, _ string) {
			s.call(t, "acme", "PATCH", "/v1/alert-rules/"+rule, `{"is_active":false}`, 200)
		}},
		{"rule condition changed", func(t *testing.T, s *system, rule, _ string) {
			s.call(t, "acme", "PATCH", "/v1/alert-rules/"+rule, `{"condition":"workflow.name == \"another-workflow\""}`, 200)
		}},
		{"rule deleted", func(t *testing.T, s *system, rule, _ string) {
			s.call(t, "acme", "DELETE", "/v1/alert-rules/"+rule, "", 200)
		}},
		{"endpoint deactivated", func(t *testing.T, s *system, _, endpoint string) {
			s.call(t, "acme", "PATCH", "/v1/webhooks/"+endpoint, `{"is_active":false}`, 200)
		}},
		{"endpoint deleted", func(t *testing.T, s *system, _, endpoint string) {
			s.call(t, "acme", "DELETE", "/v1/webhooks/"+endpoint, "", 200)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := start(t)
			watched, control := newReceiver(t), newReceiver(t)
			wh := s.post(t, "acme", "/v1/webhooks", map[string]any{"name": "watched", "target_url": watched.srv.URL + "/hook"})
			ctl := s.post(t, "acme", "/v1/webhooks", map[string]any{"name": "control", "target_url": control.srv.URL + "/hook"})
			rule := s.post(t, "acme", "/v1/alert-rules", map[string]any{"name": "watched", "event_type": schemas.TypeRunFailed, "webhook_endpoint_id": wh["id"]})
			s.post(t, "acme", "/v1/alert-rules", map[string]any{"name": "control", "event_type": schemas.TypeRunFailed, "webhook_endpoint_id": ctl["id"]})
			// The rules reach the processor through the outbox and Kafka,
			// moments after the API answered.
			s.waitGauge(t, "exo_processor_rules_active", 2)
			cl, err := kgo.NewClient(kafka.ClientOpts(s.brokers, nil)...)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			emit := func() string {
				ev := workload.Event(workload.Spec{Tenant: "acme", Type: schemas.TypeRunFailed, WorkflowName: "etl", Duration: time.Second})
				rec, _ := workload.Record(s.topics.Events, ev)
				if err := workload.Produce(context.Background(), cl, rec); err != nil {
					t.Fatal(err)
				}
				return ev.ID
			}
			// Both rules work before the change.
			warm := emit()
			for _, r := range []*receiver{watched, control} {
				select {
				case got := <-r.ch:
					if eventID(t, got.body) != warm {
						t.Fatalf("warm-up delivered %s, want %s", eventID(t, got.body), warm)
					}
				case <-time.After(30 * time.Second):
					t.Fatal("warm-up event not delivered")
				}
			}

			c.change(t, s, rule["id"].(string), wh["id"].(string))
			changed := time.Now()
			const n = 40
			ids := make([]string, 0, n)
			sentAt := map[string]time.Time{}
			tick := time.NewTicker(50 * time.Millisecond)
			for range n {
				<-tick.C
				id := emit()
				ids = append(ids, id)
				sentAt[id] = time.Now()
			}
			tick.Stop()

			// Every event processed: the control endpoint has them all.
			pending := map[string]bool{}
			for _, id := range ids {
				pending[id] = true
			}
			timeout := time.After(30 * time.Second)
			for len(pending) > 0 {
				select {
				case got := <-control.ch:
					delete(pending, eventID(t, got.body))
				case <-timeout:
					t.Fatalf("control endpoint got %d of %d events", n-len(pending), n)
				}
			}
			// Every delivery the processor still made for the watched
			// endpoint has an outcome: received, or dead-lettered.
			delivered := topicEventIDs(t, s.brokers, s.topics.Deliveries, wh["id"].(string))
			reached := map[string]bool{warm: true}
			deadline := time.Now().Add(30 * time.Second)
			for {
				dead := topicEventIDs(t, s.brokers, s.topics.DeliveriesDLQ, wh["id"].(string))
			drain:
				for {
					select {
					case got := <-watched.ch:
						reached[eventID(t, got.body)] = true
					default:
						break drain
					}
				}
				open := 0
				for id := range delivered {
					if !reached[id] && !dead[id] {
						open++
					}
				}
				if open == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d deliveries to the watched endpoint have no outcome", open)
				}
				time.Sleep(100 * time.Millisecond)
			}
			// The events that reached the watched endpoint are a prefix.
			k := 0
			for k < n && reached[ids[k]] {
				k++
			}
			for _, id := range ids[k:] {
				if reached[id] {
					t.Errorf("event %d reached the endpoint after event %d did not: the change flapped", indexOf(ids, id), k)
				}
			}
			if k == n {
				t.Fatalf("the change did not take effect within the %d events of the stream", n)
			}
			inForce := sentAt[ids[k]].Sub(changed)
			t.Logf("%s: %d of %d events after the API answered still alerted; in force within %v of the answer",
				c.name, k, n, inForce.Round(time.Millisecond))
		})
	}
}

func indexOf(ids []string, id string) int {
	for i, x := range ids {
		if x == id {
			return i
		}
	}
	return -1
}
