package drill

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/schemas"
)

// The checker is the drill's verdict: each column must count what it says,
// and only for its own scenario.
func TestTallyCountsEachColumn(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	c := NewChecker()
	for i, run := range []string{"r1", "r2", "r3", "r4"} {
		c.Expect("a", run, at(float64(i)))
	}
	c.Expect("b", "other", at(0))
	// r1 arrives once; r2 twice with the same webhook-id (a redelivery);
	// r3 under two alert ids (a duplicate the receiver sees); r4 never.
	c.Received("r1", "alrt_1", at(0.5))
	c.Received("r2", "alrt_2", at(1.5))
	c.Received("r2", "alrt_2", at(30))
	c.Received("r3", "alrt_3", at(12))
	c.Received("r3", "alrt_3b", at(12.5))
	c.Received("other", "alrt_o", at(1))
	// r1's delivery record is on the topic twice: a processor duplicate.
	c.Delivery("alrt_1", "r1")
	c.Delivery("alrt_1", "r1")
	c.Delivery("alrt_2", "r2")
	c.Delivery("alrt_o", "other")
	c.Delivery("alrt_o", "other")

	got := c.Tally("a")
	want := Row{Scenario: "a", Expected: 4, Received: 3, Missing: 1, ProcessorDuplicates: 2, Redelivered: 1,
		LongestGap: 10500 * time.Millisecond, MaxLatency: 10 * time.Second}
	if got.Scenario != want.Scenario || got.Expected != want.Expected || got.Received != want.Received ||
		got.Missing != want.Missing || got.ProcessorDuplicates != want.ProcessorDuplicates ||
		got.Redelivered != want.Redelivered || got.LongestGap != want.LongestGap || got.MaxLatency != want.MaxLatency {
		t.Fatalf("Tally(a) = %+v, want %+v", got, want)
	}
	if got.OK(true) {
		t.Error("a scenario with a missing alert and duplicates passed")
	}
	if b := c.Tally("b"); b.Expected != 1 || b.Missing != 0 || b.ProcessorDuplicates != 1 || b.OK(true) {
		t.Errorf("Tally(b) = %+v, want 1 expected, 1 duplicate, failed", b)
	}
}

func TestRowOK(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name         string
		row          Row
		allowCrashes bool
		ok           bool
	}{
		{"clean", Row{Expected: 10, Received: 10}, false, true},
		{"redeliveries are allowed", Row{Expected: 10, Received: 10, Redelivered: 4}, false, true},
		{"missing", Row{Expected: 10, Received: 9, Missing: 1}, true, false},
		{"processor duplicate", Row{Expected: 10, Received: 10, ProcessorDuplicates: 1}, true, false},
		{"a component died", Row{Expected: 10, Received: 10, Crashes: []string{"processor-1 exited"}}, false, false},
		{"a component died, allowed", Row{Expected: 10, Received: 10, Crashes: []string{"processor-1 exited"}}, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.row.OK(tc.allowCrashes); got != tc.ok {
				t.Errorf("OK() = %v, want %v", got, tc.ok)
			}
		})
	}
}

// Settled waits for both the receiver and the deliveries topic, so the
// duplicate count is not taken before the topic was read.
func TestSettledNeedsReceiptAndRecord(t *testing.T) {
	t.Parallel()
	c := NewChecker()
	c.Expect("a", "r1", time.Now())
	if c.Settled("a") {
		t.Fatal("settled with nothing received")
	}
	c.Received("r1", "alrt_1", time.Now())
	if c.Settled("a") {
		t.Fatal("settled before the delivery record was read")
	}
	c.Delivery("alrt_1", "r1")
	if !c.Settled("a") {
		t.Fatal("not settled with the alert received and its record read")
	}
}

// The receiver keys a POST on the payload's run id and the webhook-id header.
func TestReceiverRecordsWebhookIDAndRun(t *testing.T) {
	t.Parallel()
	c := NewChecker()
	c.Expect("a", "run_1", time.Now())
	srv := httptest.NewServer(c)
	defer srv.Close()
	var p schemas.WebhookPayload
	p.Type = schemas.TypeRunFailed
	p.Data.Run.ID = "run_1"
	p.Data.Labels = map[string]string{labelScenario: "a"}
	body, _ := json.Marshal(p)
	for range 2 {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/hook/t", strings.NewReader(string(body)))
		req.Header.Set("webhook-id", "alrt_x")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	resp, err := http.Post(srv.URL+"/hook/t", "application/json", strings.NewReader("{not json"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	row := c.Tally("a")
	if row.Received != 1 || row.Redelivered != 1 || row.ProcessorDuplicates != 0 {
		t.Errorf("row = %+v, want 1 received, 1 redelivered, no duplicate", row)
	}
	if c.Unknown() != 1 {
		t.Errorf("Unknown() = %d, want 1 (the undecodable POST)", c.Unknown())
	}
}
