package e2e_test

import (
	"context"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	svix "github.com/svix/svix-webhooks/go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/workload"
	"github.com/exospherehost/exo-alerts/schemas"
	"github.com/exospherehost/exo-alerts/signature"
)

// verifies reports whether a delivery carries a valid signature by secret
// under both schemes: by our receiver package, by a reading of the spec
// written apart from it, and by the official Standard Webhooks library and
// Svix's, unmodified.
func verifies(r request, secret string) bool {
	now := time.Now()
	std, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return false
	}
	svx, err := svix.NewWebhook(secret)
	if err != nil {
		return false
	}
	return std.Verify(r.body, r.header) == nil && svx.Verify(r.body, r.header) == nil &&
		verifyStandardWebhooks(r.header, r.body, secret) &&
		signature.VerifyExosphere(r.header, r.body, secret, now, 5*time.Minute) == nil &&
		signature.VerifyStandard(r.header, r.body, secret, now, 5*time.Minute) == nil
}

// A secret rotated through the API never leaves a delivery the receiver
// cannot verify (with the official Standard Webhooks and Svix libraries too): during the grace period deliveries verify with the old and
// the new secret; a rotation without grace drops the old one.
func TestSecretRotationThroughAPI(t *testing.T) {
	t.Parallel()
	s := start(t)
	recv := newReceiver(t)
	wh := s.post(t, "acme", "/v1/webhooks", map[string]any{"name": "ops", "target_url": recv.srv.URL + "/hook"})
	s.post(t, "acme", "/v1/alert-rules", map[string]any{"name": "failures", "event_type": schemas.TypeRunFailed, "webhook_endpoint_id": wh["id"]})
	s.waitGauge(t, "exo_processor_rules_active", 1)
	cl, err := kgo.NewClient(kafka.ClientOpts(s.brokers, nil)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	deliver := func() request {
		t.Helper()
		ev := workload.Event(workload.Spec{Tenant: "acme", Type: schemas.TypeRunFailed, WorkflowName: "etl", Duration: time.Second})
		rec, _ := workload.Record(s.topics.Events, ev)
		if err := workload.Produce(context.Background(), cl, rec); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-recv.ch:
			if id := eventID(t, r.body); id != ev.ID {
				t.Fatalf("delivered event %s, want %s", id, ev.ID)
			}
			return r
		case <-time.After(30 * time.Second):
			t.Fatal("no delivery within 30s")
			return request{}
		}
	}
	path := "/v1/webhooks/" + wh["id"].(string) + "/rotate-secret"
	s0 := wh["secret"].(string)
	if r := deliver(); !verifies(r, s0) {
		t.Fatal("delivery before rotation does not verify with the secret")
	}

	s1 := s.call(t, "acme", "POST", path, `{"grace_period":"1h"}`, 200)["secret"].(string)
	// Until the dispatcher has the new snapshot it signs with s0 alone; from
	// then on with both. No delivery may fail the old secret meanwhile.
	for i := 0; ; i++ {
		r := deliver()
		if !verifies(r, s0) {
			t.Fatalf("delivery %d in the grace period does not verify with the previous secret", i)
		}
		if verifies(r, s1) {
			break
		}
		if i == 20 {
			t.Fatal("20 deliveries after the rotation, none verifies with the new secret")
		}
	}

	s2 := s.call(t, "acme", "POST", path, `{"grace_period":"0s"}`, 200)["secret"].(string)
	for i := 0; ; i++ {
		r := deliver()
		if !verifies(r, s1) && !verifies(r, s2) {
			t.Fatalf("delivery %d after the second rotation verifies with neither the new nor the replaced secret", i)
		}
		if verifies(r, s2) {
			if verifies(r, s1) || verifies(r, s0) {
				t.Error("after a rotation without grace, a replaced secret still verifies")
			}
			break
		}
		if i == 20 {
			t.Fatal("20 deliveries after the second rotation, none verifies with the new secret")
		}
	}
}
