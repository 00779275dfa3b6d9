package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/schemas"
)

// HexID is n random bytes in hex, for unique ids and names in a test.
func HexID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Delivery is a valid delivery record of a failed run, as the processor
// emits it, with its encoding (checked against the schema).
func Delivery(t testing.TB, tenant, rule, endpoint string, at time.Time) (schemas.DeliveryRecord, []byte) {
	t.Helper()
	id := "alrt_" + HexID(16)
	payload, _ := json.Marshal(schemas.WebhookPayload{
		Type: schemas.TypeRunFailed, Timestamp: at,
		Data: schemas.PayloadData{
			AlertID: id, TenantID: tenant, Rule: schemas.RuleRef{ID: rule, Name: "ETL failures"},
			Event:    schemas.EventRef{ID: "ev_" + HexID(4), Type: schemas.TypeRunFailed, OccurredAt: at},
			Workflow: schemas.Workflow{ID: "wf_9", Name: "nightly-etl"}, Run: schemas.PayloadRun{ID: "run_" + HexID(4), Status: "failed"},
			Error: &schemas.PayloadError{Code: "NODE_ERRORED"}, Labels: map[string]string{"env": "prod"},
		},
	})
	d := schemas.DeliveryRecord{AlertID: id, TenantID: tenant, RuleID: rule, EndpointID: endpoint, EventType: schemas.TypeRunFailed,
		MaxAttempts: 8, Severity: "error", CreatedAt: at, Payload: payload}
	raw, _ := json.Marshal(d)
	if err := schemas.Validate(schemas.KindDelivery, raw); err != nil {
		t.Fatal(err)
	}
	return d, raw
}

// Attempt is a valid report of attempt number attempt of d, as the
// dispatcher emits it; an outcome other than delivered carries an HTTP
// error with status.
func Attempt(d schemas.DeliveryRecord, attempt int, outcome string, status int, at time.Time) schemas.ResultRecord {
	r := schemas.ResultRecord{
		AlertID: d.AlertID, DeliveryID: "dlv_" + HexID(8), TenantID: d.TenantID, RuleID: d.RuleID, EndpointID: d.EndpointID,
		Attempt: attempt, Outcome: outcome, StatusCode: status, LatencyMS: 12, AttemptedAt: at,
	}
	if outcome != schemas.OutcomeDelivered {
		r.ErrorClass, r.Error, r.ResponseExcerpt = "http_status", fmt.Sprintf("HTTP %d", status), "upstream says no"
	}
	return r
}

// Result is Attempt encoded, as it travels on delivery-results.
func Result(d schemas.DeliveryRecord, attempt int, outcome string, status int, at time.Time) []byte {
	b, _ := json.Marshal(Attempt(d, attempt, outcome, status, at))
	return b
}

// Eventually polls cond until it holds or 30s pass, then fails the test
// with what cond last saw.
func Eventually(t testing.TB, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, seen := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 30s; last seen: %s", what, seen)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
