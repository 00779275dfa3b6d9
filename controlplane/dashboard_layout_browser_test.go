package controlplane_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/exospherehost/exo-alerts/internal/store"
	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/schemas"
)

// The dashboard's layout at a laptop's width and at a phone's: every list
// fits its card (tables become stacked cards on a phone), nothing makes the
// page wider than the window, the navigation folds into a menu on a phone.
// EXO_SCREENSHOTS=dir keeps a full-page screenshot of each for a person to
// look at (controlplane/testdata/screenshots/ is ignored by git).

// viewport is a window size the dashboard must fit.
type viewport struct {
	name   string
	w, h   int64
	mobile bool
}

var viewports = []viewport{{"desktop", 1280, 800, false}, {"phone", 390, 844, true}}

// setViewport resizes the tab; a phone is emulated as one (the page's
// viewport meta tag applies, touch events).
func (d *dash) setViewport(v viewport) {
	d.t.Helper()
	opts := []chromedp.EmulateViewportOption{}
	if v.mobile {
		opts = append(opts, chromedp.EmulateMobile, chromedp.EmulateTouch)
	}
	d.do(chromedp.EmulateViewport(v.w, v.h, opts...))
	d.waitFor(fmt.Sprintf(`document.documentElement.clientWidth === %d`, v.w), fmt.Sprintf("a window %d px wide", v.w))
}

// openDashboardAt opens the dashboard (base + path) in a window of size v.
func openDashboardAt(t *testing.T, v viewport, base, path, key string) *dash {
	t.Helper()
	d := &dash{t: t, ctx: newTab(t), base: base}
	d.do(chromedp.Navigate(base + path))
	d.setViewport(v)
	d.setValue("#key", key)
	d.click("#use-key")
	d.waitText("#key-status", "endpoints")
	return d
}

// overflowJS lists what sticks out: the document wider than the window
// (width), and every box (cards, tables and their cells, forms, panels,
// lists, charts) whose content is wider than the box. Form controls
// scroll their own text and are left out.
const overflowJS = `((width) => {
  const out = [];
  const de = document.documentElement;
  if (de.scrollWidth > width) out.push("the page is " + de.scrollWidth + " px wide in a " + width + " px window");
  if (window.innerWidth > width) out.push("the layout viewport grew to " + window.innerWidth + " px");
  const name = (e) => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + (e.className && typeof e.className === "string" ? "." + e.className.trim().split(/\s+/).join(".") : "");
  for (const e of document.querySelectorAll("header, nav, main, section, div, form, table, thead, tbody, tr, td, th, ul, ol, li, pre, details, p, h2, h3, label")) {
    if (e.offsetParent === null && e.tagName !== "MAIN") continue;
    // uPlot's own layers (cursor, selection) move inside the chart, which
    // clips them; the chart's box itself is checked.
    if (e.closest(".uplot") && !e.classList.contains("uplot")) continue;
    if (e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX === "visible") {
      let path = name(e);
      for (let p = e.parentElement; p && p !== document.body && path.length < 160; p = p.parentElement) if (p.id) { path = name(p) + " › " + path; break; }
      out.push(path + ": content " + e.scrollWidth + " px in " + e.clientWidth + " px");
    }
    // Of the boxes beyond the window's edges, the outermost one: its
    // parent is inside.
    const outside = (x) => { const r = x.getBoundingClientRect(); return r.width > 0 && (r.right + scrollX > width + 1 || r.left + scrollX < -1); };
    if (outside(e) && !outside(e.parentElement)) {
      const r = e.getBoundingClientRect();
      out.push(name(e) + ": spans " + Math.round(r.left + scrollX) + "…" + Math.round(r.right + scrollX) + " px of " + width);
    }
  }
  return [...new Set(out)].slice(0, 40);
})`

// requireFits fails the test with every box that sticks out at v.
func (d *dash) requireFits(v viewport, where string) {
	d.t.Helper()
	if bad := eval[[]string](d, fmt.Sprintf("%s(%d)", overflowJS, v.w)); len(bad) > 0 {
		d.t.Errorf("%s at %s (%d px): %d boxes stick out:\n  %s", where, v.name, v.w, len(bad), strings.Join(bad, "\n  "))
	}
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// screenshot saves a full-page PNG as dir/<test>-<name>.png when
// EXO_SCREENSHOTS=dir.
func (d *dash) screenshot(name string) {
	d.t.Helper()
	dir := os.Getenv("EXO_SCREENSHOTS")
	if dir == "" {
		return
	}
	eval[bool](d, `(window.scrollTo(0, 0), true)`)
	ctx, cancel := context.WithTimeout(d.ctx, dashWait)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		d.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		d.t.Fatal(err)
	}
	file := filepath.Join(dir, unsafeName.ReplaceAllString(d.t.Name()+"-"+name, "_")+".png")
	if err := os.WriteFile(file, png, 0o600); err != nil {
		d.t.Fatal(err)
	}
	d.t.Logf("screenshot: %s", file)
}

// busy is what busyTenant made.
type busy struct {
	endpoint, slack, rule string
	// alerts of rule to endpoint, oldest first: attempts delivered (1),
	// retry (2), dead (1), delivered, retry, dead.
	alerts []schemas.DeliveryRecord
	// test is a test delivery to slack, delivered at its first attempt.
	test schemas.DeliveryRecord
}

// The attempts busyTenant recorded, by outcome.
const busyDelivered, busyRetrying, busyDead = 3, 4, 2

// busyTenant gives acme what makes a page crowded: long names, URLs,
// headers and conditions, aggregate rules, deliveries with several
// attempts, dead letters, audit events with long changes.
func busyTenant(t *testing.T, l *histEnv) busy {
	t.Helper()
	var b busy
	endpoint := l.mustDo(t, "POST", "/v1/webhooks", `{"name":"on-call pager for the data platform team (primary)","kind":"webhook",
		"target_url":"https://hooks.example.com/services/T00000000/B00000000/a-rather-long-path-segment-that-does-not-break?token=abcdefghijklmnopqrstuvwxyz",
		"headers":{"X-Team":"data","X-Environment-Name":"production-eu-west-1"},"rate_limit_per_second":50}`, 201)["id"].(string)
	b.endpoint = endpoint
	b.slack = l.mustDo(t, "POST", "/v1/webhooks", `{"name":"slack #alerts","kind":"slack","target_url":"https://hooks.slack.example.com/services/T1/B2/xyz"}`, 201)["id"].(string)
	rule := l.mustDo(t, "POST", "/v1/alert-rules", fmt.Sprintf(`{"name":"Nightly ETL failures in production (all regions)","description":"Pages the on-call engineer of the data platform when the nightly ETL fails",
		"event_type":"workflow.run.failed","condition":"labels.env == \"prod\" && workflow.name in [\"nightly-etl\", \"hourly-rollup\", \"customer-export\"]",
		"webhook_endpoint_id":%q,"rate_limit_per_minute":10,"cooldown":"10m"}`, endpoint), 201)["id"].(string)
	l.mustDo(t, "POST", "/v1/alert-rules", fmt.Sprintf(`{"name":"team success rate","kind":"rate","event_type":"workflow.run.finished","window":"1h",
		"success_ratio_below":0.95,"group_by":["labels.team","workflow.name"],"webhook_endpoint_id":%q}`, endpoint), 201)
	l.mustDo(t, "PATCH", "/v1/alert-rules/"+rule, `{"description":"Pages the on-call engineer of the data platform when the nightly ETL or one of its siblings fails in production"}`, 200)
	t0 := time.Now().UTC().Add(-10 * time.Minute).Truncate(time.Millisecond)
	for i := range 6 {
		a, raw := testenv.Delivery(t, "acme", rule, endpoint, t0.Add(time.Duration(i)*time.Minute))
		b.alerts = append(b.alerts, a)
		l.record(t, func(ctx context.Context, tx *store.Tx) error {
			if err := tx.InsertAlerts(ctx, []store.Alert{{Record: a, Raw: raw}}); err != nil {
				return err
			}
			at := a.CreatedAt.Add(time.Second)
			switch i % 3 {
			case 0:
				_, err := tx.InsertAttempts(ctx, []schemas.ResultRecord{testenv.Attempt(a, 1, schemas.OutcomeDelivered, 200, at)})
				return err
			case 1:
				_, err := tx.InsertAttempts(ctx, []schemas.ResultRecord{testenv.Attempt(a, 1, schemas.OutcomeRetry, 503, at),
					testenv.Attempt(a, 2, schemas.OutcomeRetry, 502, at.Add(time.Second))})
				return err
			default:
				if _, err := tx.InsertAttempts(ctx, []schemas.ResultRecord{testenv.Attempt(a, 1, schemas.OutcomeDead, 500, at)}); err != nil {
					return err
				}
				return tx.UpsertDeadLetters(ctx, []store.DeadLetter{{Record: a, Raw: raw, Attempts: 1,
					LastError: "http_status: HTTP 500 from https://hooks.example.com/services/T00000000/B00000000/a-rather-long-path", DeadAt: at}})
			}
		})
	}
	b.rule = rule
	test, raw := testenv.Delivery(t, "acme", schemas.TestRuleID, b.slack, t0.Add(7*time.Minute))
	b.test = test
	l.record(t, func(ctx context.Context, tx *store.Tx) error {
		if err := tx.InsertAlerts(ctx, []store.Alert{{Record: test, Raw: raw}}); err != nil {
			return err
		}
		_, err := tx.InsertAttempts(ctx, []schemas.ResultRecord{testenv.Attempt(test, 1, schemas.OutcomeDelivered, 200, test.CreatedAt.Add(time.Second))})
		return err
	})
	return b
}

// Every part of the page fits a 1280 px window and a 390 px phone, with a
// crowded tenant, the rule's history open and a form in edit mode.
func TestDashboardLayoutFits(t *testing.T) {
	t.Parallel()
	requireBrowser(t)
	l := startHistEnv(t, nil)
	b := busyTenant(t, l)
	rule, alerts := b.rule, b.alerts
	// And a tablet's width, between the phone's cards and the laptop's
	// tables: the widest tables must still fit.
	for _, v := range append(slices.Clone(viewports), viewport{"tablet", 768, 1024, false}) {
		t.Run(v.name, func(t *testing.T) {
			d := openDashboardAt(t, v, l.url, "/", l.adminKey)
			d.waitText("#key-status", "2 endpoints, 2 rules")
			d.waitText(rowSel("rules", rule), "Nightly ETL failures")
			d.waitText(rowSel("deadletters", alerts[2].AlertID), "HTTP 500")
			d.waitText("#audit", "alert_rule.update")
			d.click(rowSel("rules", rule) + " button.history")
			d.waitText(rowSel("history", alerts[1].AlertID), "#2 · retry · HTTP 502")
			d.click(rowSel("rules", rule) + " button.edit")
			d.waitText("#rule-form-title", "Edit rule")
			d.screenshot(v.name)
			d.requireFits(v, "the whole page")

			// An alert id's copy button copies it: onto the clipboard, or,
			// where the browser refuses, selected for Ctrl+C.
			copyBtn := rowSel("deliveries", alerts[1].AlertID) + " .id-line button.copy"
			d.click(copyBtn)
			d.waitFor(`["Copied", "Select"].includes(document.querySelector(`+jsString(copyBtn)+`).textContent)`, "the copy button's answer")
			if eval[string](d, `document.querySelector(`+jsString(copyBtn)+`).textContent`) == "Select" {
				if got := eval[string](d, `String(window.getSelection())`); got != alerts[1].AlertID {
					t.Errorf("the browser refused the clipboard and the selection is %q, want the alert id %s", got, alerts[1].AlertID)
				}
			}

			// On a phone the navigation folds behind the menu button and
			// folds again once a link is followed; wide, it is always shown.
			if !v.mobile {
				if !d.visible("#nav a[href='#deliveries-section']") || d.visible("#menu-toggle") {
					t.Error("at 1280 px the navigation is hidden or a menu button shown")
				}
				return
			}
			if d.visible("#nav a[href='#deliveries-section']") {
				t.Error("on a phone the navigation is unfolded before the menu is opened")
			}
			d.click("#menu-toggle")
			d.waitFor(`document.querySelector("#nav a[href='#deliveries-section']").offsetParent !== null`, "the navigation unfolded")
			if got := eval[string](d, `document.getElementById("menu-toggle").getAttribute("aria-expanded")`); got != "true" {
				t.Errorf("menu button aria-expanded=%s once open", got)
			}
			d.requireFits(v, "the page with the menu open")
			d.click("#nav a[href='#deliveries-section']")
			d.waitFor(`document.querySelector("#nav a[href='#deliveries-section']").offsetParent === null`, "the navigation folded after a link")
			if got := eval[float64](d, `document.getElementById("deliveries-section").getBoundingClientRect().top`); got < -1 || got > 5 {
				t.Errorf("after the Deliveries link the section starts %v px from the window's top", got)
			}
		})
	}
}
