package controlplane_test

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/exospherehost/exo-alerts/internal/store"
	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/schemas"
)

// The overview, the first part of the page: charts of the delivery
// attempts the recorder stored (their totals are the legend), latency
// percentiles, the split per rule and per endpoint, and each endpoint's
// health — drawn at a laptop's width and at a phone's, fitting both.

// chartDrawn reports the size of the canvas uPlot drew in the chart el.
func (d *dash) chartDrawn(el string) (w, h int) {
	d.t.Helper()
	d.waitFor(fmt.Sprintf(`(() => { const c = document.querySelector(%s); return !!c && c.width > 0 && c.height > 0 && c.getBoundingClientRect().width > 0; })()`,
		jsString("#"+el+" canvas")), "a drawn canvas in #"+el)
	size := eval[[]int](d, fmt.Sprintf(`(() => { const r = document.querySelector(%s).getBoundingClientRect(); return [Math.round(r.width), Math.round(r.height)]; })()`,
		jsString("#"+el+" canvas")))
	return size[0], size[1]
}

// totals reads a chart's legend: series key → value shown.
func (d *dash) totals(el string) map[string]string {
	d.t.Helper()
	return eval[map[string]string](d, fmt.Sprintf(`Object.fromEntries([...document.querySelectorAll(%s)].map(li => [li.dataset.series, li.querySelector(".value").textContent]))`,
		jsString("#"+el+" li")))
}

// waitTotals waits until the legend of el shows want.
func (d *dash) waitTotals(el string, want map[string]string) {
	d.t.Helper()
	cond := `(() => { const got = Object.fromEntries([...document.querySelectorAll(` + jsString("#"+el+" li") + `)].map(li => [li.dataset.series, li.querySelector(".value").textContent]));`
	for k, v := range want {
		cond += fmt.Sprintf(` if (got[%s] !== %s) return false;`, jsString(k), jsString(v))
	}
	cond += ` return true; })()`
	d.waitFor(cond, fmt.Sprintf("legend %s = %v (it shows %v)", el, want, d.totals(el)))
}

// hoverSums moves the mouse along the chart el, 2 px at a time, reads
// what the page writes under it for each bucket pointed at, and adds up
// the delivered, retrying and dead attempts of the distinct buckets.
func (d *dash) hoverSums(el string) []int {
	d.t.Helper()
	over := "#" + el + " .u-over"
	box := eval[[]float64](d, `(() => { const o = document.querySelector(`+jsString(over)+`); o.scrollIntoView({block: "center"});
		const r = o.getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; })()`)
	seen := map[string]string{}
	for x := 1.0; x < box[2]; x += 2 {
		d.do(chromedp.MouseEvent("mouseMoved", box[0]+x, box[1]+box[3]/2)) // a real pointer move (Input.dispatchMouseEvent)
		text := d.text("#" + el + "-hover")
		if at, _, ok := strings.Cut(text, ": "); ok && strings.Contains(text, "delivered ") {
			seen[at] = text
		}
	}
	sums := make([]int, 3)
	for _, text := range seen {
		for i, name := range []string{"delivered", "retrying", "dead"} {
			if m := regexp.MustCompile(`\b` + name + ` (\d+)`).FindStringSubmatch(text); m != nil {
				n, _ := strconv.Atoi(m[1])
				sums[i] += n
			}
		}
	}
	return sums
}

func TestDashboardOverviewCharts(t *testing.T) {
	t.Parallel()
	requireBrowser(t)
	l := startHistEnv(t, nil)
	b := busyTenant(t, l)
	all := map[string]string{"delivered": strconv.Itoa(busyDelivered), "retrying": strconv.Itoa(busyRetrying), "dead": strconv.Itoa(busyDead), "gone": "0"}
	for _, v := range viewports {
		t.Run(v.name, func(t *testing.T) {
			d := openDashboardAt(t, v, l.url, "/", l.adminKey)

			// All deliveries of the last day (the default window).
			w, h := d.chartDrawn("chart-deliveries")
			if w < 200 || h < 100 || w > int(v.w) {
				t.Errorf("deliveries chart drawn %d×%d px in a %d px window", w, h, v.w)
			}
			d.waitTotals("totals-deliveries", all)
			if w, h := d.chartDrawn("chart-latency"); w < 200 || h < 100 {
				t.Errorf("latency chart drawn %d×%d px", w, h)
			}
			// Every seeded delivered attempt took 12 ms.
			d.waitTotals("totals-latency", map[string]string{"p50": "12 ms", "p95": "12 ms", "p99": "12 ms"})
			// The bars: the chart has one bucket per 15 minutes, and the
			// attempts are in the data it drew.
			if n := eval[int](d, `(() => { let n = 0; for (const b of document.querySelectorAll("#chart-deliveries canvas")) n++; return n; })()`); n != 1 {
				t.Errorf("%d canvases in the deliveries chart", n)
			}

			// Pointing along the chart, bucket by bucket, reads each
			// bucket's numbers under it; they add up to the totals.
			if got := d.hoverSums("chart-deliveries"); fmt.Sprint(got) != fmt.Sprintf("[%d %d %d]", busyDelivered, busyRetrying, busyDead) {
				t.Errorf("delivered, retrying, dead read bucket by bucket under the chart add up to %v, want [%d %d %d]", got, busyDelivered, busyRetrying, busyDead)
			}

			// Endpoint health: the primary endpoint failed 6 of 8 attempts,
			// its latest failure a dead 500; the slack one delivered its test.
			row := fmt.Sprintf(`#health tr[data-id=%q]`, b.endpoint)
			d.waitText(row+" .success-rate", "25.0%")
			d.waitText(row, "2 of 8 attempts")
			d.waitText(row+" .last-error", "HTTP 500")
			d.waitText(row, b.alerts[5].AlertID)
			d.waitText(row, "closed")
			d.waitText(row, "active")
			d.waitText(fmt.Sprintf(`#health tr[data-id=%q] .success-rate`, b.slack), "100%")

			d.screenshot("overview-all")
			d.requireFits(v, "the overview")

			// Per rule: each rule's attempts in its colour (the legend has
			// each rule's total), a row per rule with its own counts;
			// choosing one charts it alone, by outcome.
			d.choose("#ov-group", "rule")
			d.waitText("#chart-deliveries-title", "Delivery attempts per rule")
			d.waitTotals("totals-deliveries", map[string]string{b.rule: "8", "test": "1"})
			d.waitText(fmt.Sprintf(`#totals-deliveries li[data-series=%q]`, b.rule), "Nightly ETL failures")
			d.chartDrawn("chart-deliveries")
			d.screenshot("overview-per-rule")
			d.requireFits(v, "the overview per rule")
			ruleRow := fmt.Sprintf(`#ov-series-table tr[data-series=%q]`, b.rule)
			d.waitText(ruleRow, "Nightly ETL failures")
			cells := eval[[]string](d, `[...document.querySelectorAll(`+jsString(ruleRow+" td")+`)].slice(1, 5).map(td => td.textContent)`)
			if fmt.Sprint(cells) != "[2 4 2 0]" {
				t.Errorf("the rule's row shows delivered, retrying, dead, gone = %v, want [2 4 2 0]", cells)
			}
			d.waitText(`#ov-series-table tr[data-series="test"]`, "Test deliveries")
			d.click(ruleRow + " button.show-series")
			d.waitText("#chart-deliveries-title", "Nightly ETL failures")
			d.waitTotals("totals-deliveries", map[string]string{"delivered": "2", "retrying": "4", "dead": "2", "gone": "0"})
			d.chartDrawn("chart-deliveries")
			d.choose("#ov-series", "test")
			d.waitText("#chart-deliveries-title", "Test deliveries")
			d.waitTotals("totals-deliveries", map[string]string{"delivered": "1", "retrying": "0", "dead": "0", "gone": "0"})

			// Per endpoint.
			d.choose("#ov-group", "endpoint")
			d.waitText(fmt.Sprintf(`#ov-series-table tr[data-series=%q]`, b.slack), "slack #alerts")
			d.waitTotals("totals-deliveries", map[string]string{b.endpoint: "8", b.slack: "1"})
			d.waitTotals("totals-latency", map[string]string{b.endpoint: "12 ms", b.slack: "12 ms"})
			d.choose("#ov-series", b.slack)
			d.waitTotals("totals-deliveries", map[string]string{"delivered": "1", "retrying": "0", "dead": "0"})
			d.screenshot("overview-per-endpoint")
			d.requireFits(v, "the overview per endpoint")

			// The last hour and the last week hold the same attempts (all
			// made in the last 10 minutes).
			d.choose("#ov-group", "none")
			for _, win := range []string{"1h", "7d"} {
				d.choose("#ov-window", win)
				d.waitText("#ov-range", map[string]string{"1h": "1-minute buckets", "7d": "2-hour buckets"}[win])
				d.waitTotals("totals-deliveries", all)
				d.chartDrawn("chart-deliveries")
				// The chart kept its canvas (same series) and took the new
				// window's buckets.
				if got := d.hoverSums("chart-deliveries"); fmt.Sprint(got) != fmt.Sprintf("[%d %d %d]", busyDelivered, busyRetrying, busyDead) {
					t.Errorf("%s: the buckets under the chart add up to %v, want [%d %d %d]", win, got, busyDelivered, busyRetrying, busyDead)
				}
			}
		})
	}
}

// A tenant with nothing yet sees empty states that say what to do next,
// and without a key the page says how to get one.
func TestDashboardEmptyStatesSayWhatToDo(t *testing.T) {
	t.Parallel()
	requireBrowser(t)
	l := startHistEnv(t, nil)
	for _, v := range viewports {
		t.Run(v.name, func(t *testing.T) {
			d := &dash{t: t, ctx: newTab(t), base: l.url}
			d.do(chromedp.Navigate(l.url + "/"))
			d.setViewport(v)
			if !d.visible("#key-howto") {
				t.Fatal("no word on how to get an API key before one is pasted")
			}
			d.waitText("#key-howto", "exo-alerts apikey create --tenant <tenant-id>")
			d.screenshot("no-key")
			d.requireFits(v, "the page without a key")

			d.setValue("#key", l.adminKey)
			d.click("#use-key")
			d.waitText("#key-status", "0 endpoints, 0 rules")
			if d.visible("#key-howto") {
				t.Error("the API key how-to stays once a key works")
			}
			d.waitText("#webhooks .empty", "Add one below")
			d.waitText("#rules .empty", "Add an endpoint first")
			d.waitText("#deliveries .empty", "Send test")
			d.waitText("#health .empty", "Add an endpoint")
			d.waitText("#deadletters .empty", "replay them")
			d.waitTotals("totals-deliveries", map[string]string{"delivered": "0", "retrying": "0", "dead": "0", "gone": "0"})
			d.chartDrawn("chart-deliveries")
			d.screenshot("empty")
			d.requireFits(v, "the empty page")

			// A wrong key brings the how-to back.
			d.setValue("#key", "exo_not_a_real_key_000000000")
			d.click("#use-key")
			d.waitText("#key-problem", "401")
			if !d.visible("#key-howto") {
				t.Error("no word on how to get an API key after a refused one")
			}
		})
	}
}

// The overview and the first page of deliveries reload by themselves
// (every second here: ?refresh=1), and not while a form is being edited.
func TestDashboardAutoRefresh(t *testing.T) {
	t.Parallel()
	requireBrowser(t)
	l := startHistEnv(t, nil)
	b := busyTenant(t, l)
	d := openDashboardAt(t, viewports[0], l.url, "/?refresh=1", l.adminKey)
	d.waitTotals("totals-deliveries", map[string]string{"dead": strconv.Itoa(busyDead)})

	// The recorder stores one more dead attempt: the page shows it
	// without a click.
	a, raw := testenv.Delivery(t, "acme", b.rule, b.endpoint, time.Now().UTC())
	l.record(t, func(ctx context.Context, tx *store.Tx) error {
		if err := tx.InsertAlerts(ctx, []store.Alert{{Record: a, Raw: raw}}); err != nil {
			return err
		}
		_, err := tx.InsertAttempts(ctx, []schemas.ResultRecord{testenv.Attempt(a, 1, schemas.OutcomeDead, 500, time.Now().UTC())})
		return err
	})
	d.waitTotals("totals-deliveries", map[string]string{"dead": strconv.Itoa(busyDead + 1)})
	d.waitText(rowSel("deliveries", a.AlertID), "dead")
	d.waitText(`#deliveries tr:first-child`, a.AlertID)

	// Typing in a form pauses it; unticking the box stops it.
	d.do(chromedp.Focus("#wf-name"))
	d.waitText("#refresh-status", "paused while you edit")
	eval[bool](d, `(document.activeElement.blur(), true)`)
	d.click("#auto-refresh")
	d.waitText("#refresh-status", "(paused)")
	if eval[bool](d, `document.getElementById("auto-refresh").checked`) {
		t.Error("auto-refresh still ticked after a click")
	}
}

// Names full of markup are text in the overview's legend, breakdown and
// endpoint health and in the deliveries list, as everywhere else.
func TestDashboardOverviewShowsNamesAsText(t *testing.T) {
	t.Parallel()
	requireBrowser(t)
	l := startHistEnv(t, nil)
	hostile := `<img src=x onerror="window.__pwned=1">`
	endpoint := l.mustDo(t, "POST", "/v1/webhooks", fmt.Sprintf(`{"name":%s,"target_url":"https://hooks.example.com/x"}`, jsString(hostile)), 201)["id"].(string)
	rule := l.mustDo(t, "POST", "/v1/alert-rules", fmt.Sprintf(`{"name":%s,"event_type":"workflow.run.failed","webhook_endpoint_id":%q}`,
		jsString(hostile+" rule"), endpoint), 201)["id"].(string)
	a, raw := testenv.Delivery(t, "acme", rule, endpoint, time.Now().UTC().Add(-time.Minute))
	l.record(t, func(ctx context.Context, tx *store.Tx) error {
		if err := tx.InsertAlerts(ctx, []store.Alert{{Record: a, Raw: raw}}); err != nil {
			return err
		}
		_, err := tx.InsertAttempts(ctx, []schemas.ResultRecord{testenv.Attempt(a, 1, schemas.OutcomeDelivered, 200, time.Now().UTC())})
		return err
	})
	d := openDashboardAt(t, viewports[0], l.url, "/", l.adminKey)
	d.waitText(fmt.Sprintf(`#health tr[data-id=%q] .name`, endpoint), hostile)
	d.waitText(rowSel("deliveries", a.AlertID)+" .rule", hostile+" rule")
	d.choose("#ov-group", "rule")
	d.waitText(fmt.Sprintf(`#totals-deliveries li[data-series=%q] .label`, rule), hostile+" rule")
	d.waitText(fmt.Sprintf(`#ov-series-table tr[data-series=%q] .name`, rule), hostile+" rule")
	d.choose("#ov-series", rule)
	d.waitText("#chart-deliveries-title", hostile+" rule")
	if n := eval[int](d, `document.querySelectorAll("body img, main script, [onerror]").length`); n != 0 {
		t.Errorf("%d elements made from API data", n)
	}
	if got := eval[string](d, `String(window.__pwned)`); got != "undefined" {
		t.Errorf("a script from API data ran: window.__pwned = %s", got)
	}
}
