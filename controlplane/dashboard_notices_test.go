package controlplane_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/internal/store"
)

// The dashboard shows unacknowledged notices in a banner and the Notices
// list (as text), acknowledges one, and chooses the notice endpoint.
func TestDashboardNotices(t *testing.T) {
	t.Parallel()
	requireBrowser(t)
	l := startHistEnv(t, nil)
	ep := l.mustDo(t, http.MethodPost, "/v1/webhooks", `{"name":"on-call inbox","target_url":"https://hooks.example.com/notices"}`, http.StatusCreated)["id"].(string)
	n := store.Notice{TenantID: "acme", Kind: store.NoticeDeadLetters, DedupKey: "dead_letters/" + ep + "/h", EndpointID: ep, Count: 3,
		Title: "Alerts to <b>ops</b> were dead-lettered"}
	if err := store.New(l.pool, "").System(context.Background(), func(tx *store.Tx) error {
		_, err := tx.InsertNotice(context.Background(), &n, time.Now())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	d := openDashboard(t, l.url, l.adminKey)
	d.waitText("#notices-banner", "1 health notice not acknowledged: Alerts to <b>ops</b> were dead-lettered See the notices")
	row := fmt.Sprintf(`#notices tr[data-notice-id=%q]`, n.ID)
	d.waitText(row+" .notice-title", "Alerts to <b>ops</b> were dead-lettered")
	d.click(row + " button.ack-notice")
	d.waitFor(`document.querySelector("#notices-banner").hidden`, "banner hidden once acknowledged")
	var acked *time.Time
	if err := l.pool.QueryRow(context.Background(), `SELECT acknowledged_at FROM notices WHERE id = $1`, n.ID).Scan(&acked); err != nil || acked == nil {
		t.Errorf("notice not acknowledged: %v %v", acked, err)
	}

	d.choose("#ns-endpoint", ep)
	d.click("#ns-submit")
	d.waitText("#nt-note", "Notices (rule_disabled, endpoint_unhealthy, dead_letters, quota_exceeded) go to on-call inbox.")
	if got := l.mustDo(t, http.MethodGet, "/v1/notice-settings", "", http.StatusOK); got["webhook_endpoint_id"] != ep {
		t.Errorf("settings after the form: %v", got)
	}
}
