package schemas

import (
	"os"
	"regexp"
	"strconv"
	"testing"
)

// The wire conventions are read by other versions of the services (records
// already on the topics) and by the key ring (ciphertexts already stored):
// a changed string breaks both, so the exact bytes are pinned here.
func TestWireConventionsAreStable(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ got, want string }{
		{string(RecordKey("t1", "r1")), "t1/r1"},
		{TenantKey("t1", "e1"), "t1/e1"},
		{SecretAAD("t1", "e1"), "t1/e1"},
		{HeaderAAD("t1", "e1", "X-Token"), "t1/e1/X-Token"},
		{TargetURLAAD("t1", "e1"), "t1/e1/target_url"},
		{HeaderAlertID, "exo-alert-id"},
		{HeaderEventType, "exo-event-type"},
		{HeaderInvalidReason, "exo-invalid-reason"},
		{HeaderInvalidTruncatedFrom, "exo-invalid-truncated-from"},
		{HeaderOrigTopic, "exo-original-topic"},
		{HeaderOrigPartition, "exo-original-partition"},
		{HeaderOrigOffset, "exo-original-offset"},
		{HeaderAttempt, "exo-attempt"},
		{HeaderNotBefore, "exo-not-before"},
		{HeaderDeferrals, "exo-deferrals"},
		{HeaderLastError, "exo-last-error"},
		{HeaderLastErrorClass, "exo-last-error-class"},
		{HeaderAttempts, "exo-attempts"},
		{EndpointKindWebhook, "webhook"},
		{EndpointKindSlack, "slack"},
		{EndpointKindPagerDuty, "pagerduty"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

// DefaultMaxAttempts is also the rules table's column default: a rule
// inserted without max_attempts must get the same number.
func TestDefaultMaxAttemptsMatchesMigration(t *testing.T) {
	t.Parallel()
	sql, err := os.ReadFile("../migrations/0001_initial.up.sql")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`max_attempts\s+integer NOT NULL DEFAULT (\d+)`).FindSubmatch(sql)
	if m == nil {
		t.Fatal("no max_attempts default in migration 0001")
	}
	if n, _ := strconv.Atoi(string(m[1])); n != DefaultMaxAttempts {
		t.Errorf("migration default %d, DefaultMaxAttempts %d", n, DefaultMaxAttempts)
	}
}
