package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/internal/workload"
	"github.com/exospherehost/exo-alerts/recorder"
	"github.com/exospherehost/exo-alerts/schemas"
	"github.com/exospherehost/exo-alerts/signature"
)

// noticeReceiver records every request and answers with status.
type noticeReceiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []request
}

func newNoticeReceiver(t *testing.T, status int) *noticeReceiver {
	r := &noticeReceiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, request{header: req.Header.Clone(), body: body})
		r.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *noticeReceiver) requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]request(nil), r.got...)
}

// emitFailure produces a failed run of tenant.
func (s *system) emitFailure(t *testing.T, tenant string) {
	t.Helper()
	cl, err := kgo.NewClient(kafka.ClientOpts(s.brokers, nil)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	rec, err := workload.Record(s.topics.Events, workload.Event(workload.Spec{Tenant: tenant, Type: schemas.TypeRunFailed,
		WorkflowName: "nightly-etl", Duration: time.Minute}))
	if err != nil {
		t.Fatal(err)
	}
	if err := workload.Produce(context.Background(), cl, rec); err != nil {
		t.Fatal(err)
	}
}

// notices lists tenant's notices through the API.
func (s *system) notices(t *testing.T, tenant, query string) []map[string]any {
	t.Helper()
	out := s.call(t, tenant, http.MethodGet, "/v1/notices"+query, "", http.StatusOK)
	var items []map[string]any
	for _, it := range out["items"].([]any) {
		items = append(items, it.(map[string]any))
	}
	return items
}

// eventuallyE polls cond until it holds or 60s pass; cond says what it saw.
func eventuallyE(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ok, seen := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 60s; last seen: %s", what, seen)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A 410 endpoint disables its rule and makes exactly one notice per
// disable, delivered once, signed, to the tenant's notice endpoint; the
// rule re-enabled resolves it, and a second 410 makes a second notice; a
// recorder reading every topic again from the start adds nothing. A notice
// endpoint that itself answers 410 (tenant globex) makes no further notice
// and disables nothing.
func TestGoneEndpointNoticeOncePerDisable(t *testing.T) {
	t.Parallel()
	s := start(t)
	gone := newNoticeReceiver(t, http.StatusGone)
	inbox := newNoticeReceiver(t, http.StatusNoContent)
	brokenInbox := newNoticeReceiver(t, http.StatusGone)

	type tenantSetup struct{ rule, noticeEP, secret string }
	setup := func(tenant, inboxURL string) tenantSetup {
		target := s.post(t, tenant, "/v1/webhooks", map[string]any{"name": "gone", "target_url": gone.srv.URL + "/hook"})
		notices := s.post(t, tenant, "/v1/webhooks", map[string]any{"name": "notices", "target_url": inboxURL})
		s.call(t, tenant, http.MethodPut, "/v1/notice-settings", fmt.Sprintf(`{"webhook_endpoint_id":%q}`, notices["id"]), http.StatusOK)
		rule := s.post(t, tenant, "/v1/alert-rules", map[string]any{"name": "ETL failures", "event_type": schemas.TypeRunFailed,
			"webhook_endpoint_id": target["id"]})
		return tenantSetup{rule: rule["id"].(string), noticeEP: notices["id"].(string), secret: notices["secret"].(string)}
	}
	acme := setup("acme", inbox.srv.URL+"/notices")
	globex := setup("globex", brokenInbox.srv.URL+"/notices")
	s.waitGauge(t, "exo_processor_rules_active", 2)

	// disabled waits until tenant's rule is disabled and has n notices, and
	// returns the newest.
	disabled := func(tenant, rule string, n int) map[string]any {
		t.Helper()
		var newest map[string]any
		eventuallyE(t, fmt.Sprintf("%s: rule disabled, %d notice(s)", tenant, n), func() (bool, string) {
			r := s.call(t, tenant, http.MethodGet, "/v1/alert-rules/"+rule, "", http.StatusOK)
			items := s.notices(t, tenant, "")
			if len(items) > 0 {
				newest = items[0]
			}
			return r["is_active"] == false && len(items) == n && newest["delivery_alert_id"] != nil,
				fmt.Sprintf("active=%v notices=%v", r["is_active"], items)
		})
		return newest
	}
	// delivered waits for the nth notice delivery to reach rcv and checks
	// it: signed with the notice endpoint's secret, payload v1 of
	// tenant.notice about notice n.
	delivered := func(rcv *noticeReceiver, k int, secret string, notice map[string]any) {
		t.Helper()
		eventuallyE(t, fmt.Sprintf("notice delivery %d", k), func() (bool, string) {
			return len(rcv.requests()) >= k, fmt.Sprintf("%d requests", len(rcv.requests()))
		})
		got := rcv.requests()[k-1]
		if err := signature.VerifyStandard(got.header, got.body, secret, time.Now(), 5*time.Minute); err != nil {
			t.Errorf("notice delivery signature: %v", err)
		}
		if err := signature.VerifyExosphere(got.header, got.body, secret, time.Now(), 5*time.Minute); err != nil {
			t.Errorf("notice delivery X-Exosphere-Signature: %v", err)
		}
		if err := schemas.Validate(schemas.KindWebhookPayload, got.body); err != nil {
			t.Errorf("notice payload invalid: %v\n%s", err, got.body)
		}
		var p schemas.WebhookPayload
		_ = json.Unmarshal(got.body, &p)
		if p.Type != schemas.TypeTenantNotice || p.Data.Notice == nil || p.Data.Notice.ID != notice["id"] ||
			p.Data.Notice.Kind != "rule_disabled" || p.Data.Rule.ID != schemas.NoticeRuleID ||
			got.header.Get("webhook-id") != notice["delivery_alert_id"] || got.header.Get("X-Exosphere-Event") != schemas.TypeTenantNotice {
			t.Errorf("notice delivery %d: webhook-id %s\n%s\nwant notice %v", k, got.header.Get("webhook-id"), got.body, notice)
		}
	}

	s.emitFailure(t, "acme")
	s.emitFailure(t, "globex")
	first := disabled("acme", acme.rule, 1)
	if first["kind"] != "rule_disabled" || first["rule_id"] != acme.rule || first["resolved_at"] != nil ||
		!strings.Contains(first["title"].(string), "410") {
		t.Errorf("first notice: %v", first)
	}
	delivered(inbox, 1, acme.secret, first)

	// Enabled again: the notice is resolved; the endpoint is still gone,
	// so the next failure disables the rule again: a second notice.
	s.call(t, "acme", http.MethodPatch, "/v1/alert-rules/"+acme.rule, `{"is_active":true}`, http.StatusOK)
	if got := s.notices(t, "acme", "?state=resolved"); len(got) != 1 || got[0]["id"] != first["id"] {
		t.Errorf("after re-enable, resolved notices: %v", got)
	}
	s.emitFailure(t, "acme")
	second := disabled("acme", acme.rule, 2)
	if second["id"] == first["id"] || second["resolved_at"] != nil {
		t.Errorf("second notice %v (first %v)", second, first)
	}
	delivered(inbox, 2, acme.secret, second)

	// globex's notice endpoint answers 410 to its notice: recorded, and
	// nothing more — no notice of it, nothing disabled.
	globexNotice := disabled("globex", globex.rule, 1)
	delivered(brokenInbox, 1, globex.secret, globexNotice)
	eventuallyE(t, "the notice's 410 recorded", func() (bool, string) {
		var n int
		_ = s.pool.QueryRow(context.Background(), `SELECT count(*) FROM delivery_attempts WHERE rule_id = 'notice' AND tenant_id = 'globex'
			AND outcome = 'endpoint_gone'`).Scan(&n)
		return n == 1, fmt.Sprintf("%d attempts", n)
	})
	if got := s.notices(t, "globex", ""); len(got) != 1 {
		t.Errorf("globex has %d notices after its notice endpoint failed, want 1: %v", len(got), got)
	}
	if ep := s.call(t, "globex", http.MethodGet, "/v1/webhooks/"+globex.noticeEP, "", http.StatusOK); ep["is_active"] != true {
		t.Errorf("the failing notice endpoint was disabled: %v", ep)
	}

	// A second recorder reads every topic from the start: nothing changes.
	count := func() string {
		var notices, outbox, audits int
		_ = s.pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM notices), (SELECT count(*) FROM outbox WHERE topic = $1),
			(SELECT count(*) FROM audit_events WHERE action = 'alert_rule.disable')`, s.topics.Deliveries).Scan(&notices, &outbox, &audits)
		return fmt.Sprintf("notices=%d notice deliveries queued=%d disables=%d", notices, outbox, audits)
	}
	before := count()
	if before != "notices=3 notice deliveries queued=3 disables=3" {
		t.Errorf("before the replay: %s", before)
	}
	var alerts, attempts float64
	if err := s.pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM alerts), (SELECT count(*) FROM delivery_attempts)`).
		Scan(&alerts, &attempts); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- recorder.Run(ctx, recorder.Config{Brokers: s.brokers, Topics: s.topics, Group: "replay-" + t.Name(), Pool: s.pool,
			Log: testenv.Log(t), Registerer: reg})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("second recorder: %v", err)
		}
	})
	eventuallyE(t, "second recorder read every alert and attempt", func() (bool, string) {
		a := testenv.Metric(t, reg, "exo_recorder_records_total", "table", "alerts")
		at := testenv.Metric(t, reg, "exo_recorder_records_total", "table", "delivery_attempts")
		return a >= alerts && at >= attempts, fmt.Sprintf("%v of %v alerts, %v of %v attempts", a, alerts, at, attempts)
	})
	if after := count(); after != before {
		t.Errorf("re-reading the topics changed: %s -> %s", before, after)
	}
	if a, g := len(inbox.requests()), len(brokenInbox.requests()); a != 2 || g != 1 {
		t.Errorf("notice endpoints got %d (acme) and %d (globex) deliveries, want 2 and 1", a, g)
	}
	s.alive(t)
}
