package recorder_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/schemas"
)

// quota-usage records are stored once each, by their Kafka coordinates:
// GET /v1/quota's sums are exact, and a second recorder reading the topic
// from the start adds nothing. An invalid record is quarantined, not
// stored, and does not hold the others back.
func TestRecorderQuotaUsageOnce(t *testing.T) {
	t.Parallel()
	l := start(t, nil)
	minute := time.Now().UTC().Truncate(time.Minute).Add(-5 * time.Minute)
	usage := func(tenant, scope string, n, limit int64, at time.Time) []byte {
		b, _ := json.Marshal(schemas.QuotaUsageRecord{TenantID: tenant, Minute: at, Scope: scope, Suppressed: n, Limit: limit})
		if err := schemas.Validate(schemas.KindQuotaUsage, b); err != nil {
			t.Fatal(err)
		}
		return b
	}
	l.produce(t, l.topics.QuotaUsage, []byte("acme"), []byte(`{"tenant_id":"acme","suppressed":-1}`))
	l.produce(t, l.topics.QuotaUsage, []byte("acme"), usage("acme", schemas.QuotaScopeTenant, 12, 60, minute))
	// The same counts again are another batch's: stored too.
	l.produce(t, l.topics.QuotaUsage, []byte("acme"), usage("acme", schemas.QuotaScopeTenant, 12, 60, minute))
	l.produce(t, l.topics.QuotaUsage, []byte("acme"), usage("acme", schemas.QuotaScopeGlobal, 3, 1000, minute.Add(time.Minute)))
	l.produce(t, l.topics.QuotaUsage, []byte("globex"), usage("globex", schemas.QuotaScopeTenant, 7, 5, minute))

	sums := `SELECT (SELECT count(*) FROM quota_suppressions) * 10000 + (SELECT COALESCE(sum(suppressed), 0) FROM quota_suppressions WHERE tenant_id = 'acme')`
	wait(t, "quota usage recorded", func() (bool, string) {
		n := l.count(t, sums)
		return n == 4*10000+27, fmt.Sprintf("rows*10000+acme's sum = %d", n)
	})
	if n := l.count(t, `SELECT count(*) FROM quota_suppressions WHERE tenant_id = 'globex' AND suppressed = 7 AND quota_limit = 5 AND scope = 'tenant' AND minute = $1`, minute); n != 1 {
		t.Errorf("globex's row not stored as produced (%d)", n)
	}
	if n := testenv.Metric(t, l.reg, "exo_recorder_skipped_records_total"); n != 1 {
		t.Errorf("skipped %v records, want the invalid one", n)
	}

	group := "replay-" + hexID(4)
	l.run(t, group, nil)
	wait(t, "second recorder caught up", func() (bool, string) { return l.caughtUp(t, group) })
	if n := l.count(t, sums); n != 4*10000+27 {
		t.Errorf("re-reading quota-usage changed the rows: %d, want %d", n, 4*10000+27)
	}
}
