package schemas

import (
	"bytes"
	"encoding/json"
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

// The new wire names of aggregate rules, quotas and notices are read by
// other versions of the services and stored in Postgres CHECK constraints.
func TestAggregateWireNamesAreStable(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ got, want string }{
		{RuleKindPerEvent, "per_event"},
		{RuleKindCount, "count"},
		{RuleKindRate, "rate"},
		{TypeRunFinished, "workflow.run.finished"},
		{TypeAlertFiring, "workflow.alert.firing"},
		{TypeAlertResolved, "workflow.alert.resolved"},
		{TypeTenantNotice, "tenant.notice"},
		{NoticeRuleID, "notice"},
		{WatermarkKeyPrefix, "~wm/"},
		{WatermarksKey, "~wm"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	if IsAlertType(TypeRunFinished) {
		t.Error("workflow.run.finished is in AlertTypes: per-event rules could watch it")
	}
}

// A rule snapshot written before aggregate rules existed has no kind: it
// must still read as a per-event rule, and re-encode without the new
// members.
func TestRuleKindDefaultsToPerEvent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		file      string
		kind      string
		aggregate bool
	}{
		{"examples/rule.json", RuleKindPerEvent, false},
		{"examples/rule.duration-exceeded.json", RuleKindPerEvent, false},
		{"examples/rule.per-event-explicit.json", RuleKindPerEvent, false},
		{"examples/rule.count.json", RuleKindCount, true},
		{"examples/rule.rate.json", RuleKindRate, true},
	} {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			raw, err := os.ReadFile(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			var r RuleRecord
			if err := json.Unmarshal(raw, &r); err != nil {
				t.Fatal(err)
			}
			if r.RuleKind() != tc.kind || r.IsAggregate() != tc.aggregate {
				t.Fatalf("RuleKind() = %q, IsAggregate() = %v; want %q, %v", r.RuleKind(), r.IsAggregate(), tc.kind, tc.aggregate)
			}
			if r.Kind != "" {
				return
			}
			out, err := json.Marshal(&r)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range []string{"kind", "window_ms", "threshold", "success_ratio_below_bp", "min_runs", "group_by", "max_groups", "hold_ms", "repeat_interval_ms"} {
				if bytes.Contains(out, []byte(`"`+m+`"`)) {
					t.Errorf("per-event rule re-encodes with %s: %s", m, out)
				}
			}
		})
	}
}
