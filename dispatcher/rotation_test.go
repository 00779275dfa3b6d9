package dispatcher_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/schemas"
	"github.com/exospherehost/exo-alerts/signature"
)

// During a rotation's grace period both the new and the old secret sign, so
// a receiver holding either verifies; once it has passed, only the new one.
func TestRotationGraceSignsWithBothSecrets(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		expires  time.Duration
		oldValid bool
	}{
		{"in grace", time.Hour, true},
		{"grace over", -time.Minute, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := setup(t)
			recv := newReceiver(t, status(http.StatusNoContent, ""))
			id := "whk_" + randHex(6)
			aad := tenant + "/" + id
			current, old := signature.NewSecret(), signature.NewSecret()
			prev := h.ring.Seal(old, aad)
			exp := time.Now().Add(tc.expires).UTC().Truncate(time.Millisecond)
			rec := schemas.EndpointRecord{
				TenantID: tenant, ID: id, Name: "rotating", Kind: "webhook", TargetURL: recv.srv.URL + "/hook",
				Secret: h.ring.Seal(current, aad), PreviousSecret: &prev, PreviousSecretExpiresAt: &exp,
				IsActive: true, Version: 2, UpdatedAt: time.Now().UTC(),
			}
			value, _ := json.Marshal(rec)
			if err := schemas.Validate(schemas.KindEndpoint, value); err != nil {
				t.Fatalf("endpoint record: %v", err)
			}
			h.produce(&kgo.Record{Topic: h.topics.Endpoints, Key: schemas.RecordKey(tenant, id), Value: value})
			drec, del := h.delivery(id)
			h.produce(drec)
			h.start(local)
			if res, _ := h.result(del.AlertID); res.Outcome != schemas.OutcomeDelivered {
				t.Fatalf("result %+v", res)
			}
			got := recv.requests()[0]
			now := time.Now()
			if err := signature.VerifyStandard(got.header, got.body, current, now, time.Minute); err != nil {
				t.Errorf("new secret: %v", err)
			}
			if err := signature.VerifyExosphere(got.header, got.body, current, now, time.Minute); err != nil {
				t.Errorf("new secret, Exosphere scheme: %v", err)
			}
			errOld := signature.VerifyStandard(got.header, got.body, old, now, time.Minute)
			if tc.oldValid && errOld != nil {
				t.Errorf("old secret during the grace period: %v", errOld)
			}
			if !tc.oldValid && !errors.Is(errOld, signature.ErrMismatch) {
				t.Errorf("old secret after the grace period: %v, want a mismatch", errOld)
			}
		})
	}
}
