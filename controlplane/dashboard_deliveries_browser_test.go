package controlplane_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/internal/store"
	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/schemas"
)

// The deliveries view searches every alert of the tenant (alert id, run
// id, workflow, status, rule, endpoint, time range) and pages with the
// server's cursors; the endpoint and rule lists page too. At a laptop's
// width and at a phone's, nothing sticks out.

// shownAlerts lists the alert ids of the deliveries shown, top to bottom.
func (d *dash) shownAlerts() []string {
	d.t.Helper()
	return eval[[]string](d, `[...document.querySelectorAll("#deliveries tr[data-alert-id]")].map(r => r.dataset.alertId)`)
}

// waitShown waits until the deliveries list has loaded (its table is not
// aria-busy: the answer to the latest request is shown) and shows exactly
// n alerts.
func (d *dash) waitShown(n int, what string) []string {
	d.t.Helper()
	d.waitFor(fmt.Sprintf(`document.getElementById("deliveries").closest("table").getAttribute("aria-busy") === "false" &&
		document.querySelectorAll("#deliveries tr[data-alert-id]").length === %d`, n), fmt.Sprintf("%d deliveries (%s)", n, what))
	return d.shownAlerts()
}

// search fills the search form (field name → value) and submits it.
func (d *dash) search(fields map[string]string) {
	d.t.Helper()
	d.click("#ds-clear")
	for name, v := range fields {
		if name == "status" || name == "rule_id" || name == "endpoint_id" {
			d.choose(fmt.Sprintf(`#deliveries-search [name=%q]`, name), v)
			continue
		}
		d.setValue(fmt.Sprintf(`#deliveries-search [name=%q]`, name), v)
	}
	d.click("#ds-submit")
}

func runID(t *testing.T, a schemas.DeliveryRecord) string {
	t.Helper()
	var p schemas.WebhookPayload
	if err := json.Unmarshal(a.Payload, &p); err != nil {
		t.Fatal(err)
	}
	return p.Data.Run.ID
}

func TestDashboardDeliveriesSearchAndPages(t *testing.T) {
	t.Parallel()
	requireBrowser(t)
	l := startHistEnv(t, nil)
	b := busyTenant(t, l)
	// 60 more alerts of the rule, one a second, an hour and more ago, all
	// delivered: with busyTenant's 7, three pages of 25, 25 and 17.
	old := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Second)
	var alerts []store.Alert
	var attempts []schemas.ResultRecord
	for i := range 60 {
		a, raw := testenv.Delivery(t, "acme", b.rule, b.endpoint, old.Add(time.Duration(i)*time.Second))
		alerts = append(alerts, store.Alert{Record: a, Raw: raw})
		attempts = append(attempts, testenv.Attempt(a, 1, schemas.OutcomeDelivered, 200, a.CreatedAt.Add(time.Second)))
	}
	l.record(t, func(ctx context.Context, tx *store.Tx) error {
		if err := tx.InsertAlerts(ctx, alerts); err != nil {
			return err
		}
		_, err := tx.InsertAttempts(ctx, attempts)
		return err
	})
	// Every alert, newest first.
	var want []string
	want = append(want, b.test.AlertID)
	for i := len(b.alerts) - 1; i >= 0; i-- {
		want = append(want, b.alerts[i].AlertID)
	}
	for i := len(alerts) - 1; i >= 0; i-- {
		want = append(want, alerts[i].Record.AlertID)
	}

	for _, v := range viewports {
		t.Run(v.name, func(t *testing.T) {
			d := openDashboardAt(t, v, l.url, "/", l.adminKey)

			// Pages of 25 without a duplicate or a gap, newest first;
			// Previous shows the page before again.
			var seen []string
			first := d.waitShown(25, "the first page")
			seen = append(seen, first...)
			d.click("#ds-next")
			d.waitText("#ds-page", "Page 2")
			second := d.waitShown(25, "the second page")
			seen = append(seen, second...)
			d.screenshot("deliveries-page-2")
			d.requireFits(v, "the second page of deliveries")
			d.click("#ds-next")
			d.waitText("#ds-page", "Page 3")
			seen = append(seen, d.waitShown(17, "the last page")...)
			if !eval[bool](d, `document.getElementById("ds-next").disabled`) {
				t.Error("Next is offered on the last page")
			}
			if !slices.Equal(seen, want) {
				t.Errorf("the three pages show %d alerts (want every one of %d once, newest first):\n got %v\nwant %v", len(seen), len(want), seen, want)
			}
			d.click("#ds-prev")
			d.waitText("#ds-page", "Page 2")
			if got := d.waitShown(25, "the second page again"); !slices.Equal(got, second) {
				t.Errorf("Previous from page 3 shows %v, want page 2 again %v", got, second)
			}
			d.click("#ds-prev")
			d.waitText("#ds-page", "Page 1")
			if got := d.waitShown(25, "the first page again"); !slices.Equal(got, first) {
				t.Errorf("Previous from page 2 shows %v, want page 1 again", got)
			}
			if !eval[bool](d, `document.getElementById("ds-prev").disabled`) {
				t.Error("Previous is offered on the first page")
			}

			// Each search narrows the list to what it names.
			dead := []string{b.alerts[5].AlertID, b.alerts[2].AlertID}
			for _, c := range []struct {
				name   string
				fields map[string]string
				want   []string
			}{
				{"alert id", map[string]string{"alert_id": b.alerts[3].AlertID}, []string{b.alerts[3].AlertID}},
				{"run id", map[string]string{"run_id": runID(t, b.alerts[1])}, []string{b.alerts[1].AlertID}},
				{"status", map[string]string{"status": "dead"}, dead},
				{"status and endpoint", map[string]string{"status": "delivered", "endpoint_id": b.slack}, []string{b.test.AlertID}},
				{"rule", map[string]string{"rule_id": "test"}, []string{b.test.AlertID}},
				// The last half hour: busyTenant's alerts, not the 60 old ones.
				// To the minute: a datetime-local input writes a time whose
				// seconds are 0 without them, and SetValue reads the value
				// back (a time taken at :00 failed the test one run in 30).
				{"time range", map[string]string{"since": time.Now().Add(-30 * time.Minute).Format("2006-01-02T15:04"),
					"until": time.Now().Add(2 * time.Minute).Format("2006-01-02T15:04")}, want[:7]},
				{"workflow", map[string]string{"workflow": "nightly-etl", "status": "retry"}, []string{b.alerts[4].AlertID, b.alerts[1].AlertID}},
			} {
				d.search(c.fields)
				if got := d.waitShown(len(c.want), c.name); !slices.Equal(got, c.want) {
					t.Errorf("search by %s shows %v, want %v", c.name, got, c.want)
				}
			}
			d.waitText(rowSel("deliveries", b.alerts[4].AlertID), "#2 · retry · HTTP 502")
			d.screenshot("deliveries-search")
			d.requireFits(v, "a search of deliveries")

			// "In the last hour" from the list: busyTenant's 7, not the 60
			// from two hours ago.
			d.click("#ds-clear")
			d.choose("#ds-range", "3600")
			if got := d.waitShown(7, "the last hour"); !slices.Equal(got, want[:7]) {
				t.Errorf("the last hour shows %v, want %v", got, want[:7])
			}
			if eval[string](d, `document.getElementById("ds-since").value`) == "" {
				t.Error("choosing the last hour left the from time empty")
			}

			// A search that finds nothing says how to widen it.
			d.search(map[string]string{"workflow": "no-such-workflow"})
			d.waitText("#deliveries .empty", "No delivery matches this search")
			d.click("#ds-clear")
			d.waitShown(25, "every delivery again")

			// From the overview's per-rule breakdown to the rule's deliveries.
			d.choose("#ov-group", "rule")
			d.click(`#ov-series-table tr[data-series="test"] button.search-series`)
			if got := d.waitShown(1, "the test deliveries from the overview"); got[0] != b.test.AlertID {
				t.Errorf("the overview's test deliveries link shows %v", got)
			}
		})
	}
}

// The endpoint and rule lists show 50 a page, with Next and Previous.
func TestDashboardListsPage(t *testing.T) {
	t.Parallel()
	requireBrowser(t)
	l := startHistEnv(t, nil)
	var endpoints, rules []string
	for i := range 55 {
		endpoints = append(endpoints, l.mustDo(t, "POST", "/v1/webhooks",
			fmt.Sprintf(`{"name":"hook %02d","target_url":"https://hooks.example.com/%d"}`, i, i), 201)["id"].(string))
	}
	for i := range 53 {
		rules = append(rules, l.mustDo(t, "POST", "/v1/alert-rules",
			fmt.Sprintf(`{"name":"rule %02d","event_type":"workflow.run.failed","webhook_endpoint_id":%q}`, i, endpoints[i]), 201)["id"].(string))
	}
	for _, v := range viewports {
		t.Run(v.name, func(t *testing.T) {
			d := openDashboardAt(t, v, l.url, "/", l.adminKey)
			d.waitText("#key-status", "55 endpoints, 53 rules")
			for _, c := range []struct {
				table string
				ids   []string
			}{{"webhooks", endpoints}, {"rules", rules}} {
				rows := `[...document.querySelectorAll("#` + c.table + ` tr[data-id]")].map(r => r.dataset.id)`
				d.waitFor(`document.querySelectorAll("#`+c.table+` tr[data-id]").length === 50`, "the first 50 of "+c.table)
				page1 := eval[[]string](d, rows)
				d.waitText("#"+c.table+"-page", fmt.Sprintf("Page 1 of 2 · 1–50 of %d", len(c.ids)))
				d.click("#" + c.table + "-next")
				d.waitFor(fmt.Sprintf(`document.querySelectorAll("#%s tr[data-id]").length === %d`, c.table, len(c.ids)-50), "the rest of "+c.table)
				page2 := eval[[]string](d, rows)
				if got := append(slices.Clone(page1), page2...); !slices.Equal(got, c.ids) {
					t.Errorf("%s: the two pages show %v, want each of %v once, in order", c.table, got, c.ids)
				}
				if !eval[bool](d, `document.getElementById("`+c.table+`-next").disabled`) {
					t.Errorf("%s: Next offered on the last page", c.table)
				}
				d.requireFits(v, "the second page of "+c.table)
				d.click("#" + c.table + "-prev")
				d.waitFor(`document.querySelectorAll("#`+c.table+` tr[data-id]").length === 50`, "the first page of "+c.table+" again")
				if got := eval[[]string](d, rows); !slices.Equal(got, page1) {
					t.Errorf("%s: Previous shows %v, want the first page again", c.table, got)
				}
			}

			// The endpoint health list pages with the server's cursors, 25
			// a page, in the order of the endpoint list.
			healthRows := `[...document.querySelectorAll("#health tr[data-id]")].map(r => r.dataset.id)`
			healthLoaded := func(n int) string {
				return fmt.Sprintf(`document.getElementById("health").closest("table").getAttribute("aria-busy") === "false" &&
					document.querySelectorAll("#health tr[data-id]").length === %d`, n)
			}
			var health []string
			for page, n := range []int{25, 25, 5} {
				if page > 0 {
					d.click("#health-next")
					d.waitText("#health-page", fmt.Sprintf("Page %d", page+1))
				}
				d.waitFor(healthLoaded(n), fmt.Sprintf("endpoint health page %d", page+1))
				health = append(health, eval[[]string](d, healthRows)...)
			}
			if !slices.Equal(health, endpoints) {
				t.Errorf("the endpoint health pages show %v, want each endpoint once in order %v", health, endpoints)
			}
			if !eval[bool](d, `document.getElementById("health-next").disabled`) {
				t.Error("endpoint health: Next offered on the last page")
			}
			d.click("#health-prev")
			d.waitText("#health-page", "Page 2")
			d.waitFor(healthLoaded(25), "endpoint health page 2 again")
			if got := eval[[]string](d, healthRows); !slices.Equal(got, endpoints[25:50]) {
				t.Errorf("endpoint health: Previous shows %v, want page 2 again", got)
			}
			d.requireFits(v, "the endpoint health pages")
		})
	}
}
