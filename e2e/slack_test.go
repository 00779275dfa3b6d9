package e2e_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/workload"
	"github.com/exospherehost/exo-alerts/schemas"
)

// A Slack endpoint's URL is its credential: the API and the topics show it
// masked, and the dispatcher still posts the Slack message to the whole URL.
func TestSlackURLSealedEndToEnd(t *testing.T) {
	t.Parallel()
	s := start(t)
	type post struct {
		path string
		body []byte
	}
	got := make(chan post, 10)
	slack := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- post{r.URL.Path, body}
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(slack.Close)
	const token = "xoxSecretTokenPart0123456789"
	path := "/services/T0AAAA/B0BBBB/" + token
	wh := s.post(t, "acme", "/v1/webhooks", map[string]any{"name": "slack", "kind": "slack", "target_url": slack.URL + path})
	if shown := wh["target_url"].(string); strings.Contains(shown, token) || !strings.HasSuffix(shown, "/****6789") {
		t.Fatalf("the API shows the Slack URL as %q", shown)
	}
	s.post(t, "acme", "/v1/alert-rules", map[string]any{"name": "failures", "event_type": schemas.TypeRunFailed, "webhook_endpoint_id": wh["id"]})
	s.waitGauge(t, "exo_processor_rules_active", 1)
	cl, err := kgo.NewClient(kafka.ClientOpts(s.brokers, nil)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ev := workload.Event(workload.Spec{Tenant: "acme", Type: schemas.TypeRunFailed, WorkflowName: "nightly-etl", Duration: time.Second})
	rec, _ := workload.Record(s.topics.Events, ev)
	if err := workload.Produce(context.Background(), cl, rec); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-got:
		if p.path != path {
			t.Errorf("Slack message posted to %q, want %q", p.path, path)
		}
		var msg struct {
			Text string `json:"text"`
		}
		if err := json.Unmarshal(p.body, &msg); err != nil || !strings.Contains(msg.Text, "nightly-etl") || !strings.Contains(msg.Text, "failed") {
			t.Errorf("Slack message %s: %v", p.body, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no Slack message within 30s")
	}
	for _, r := range readAll(t, s.brokers, s.topics.Endpoints, 1) {
		if strings.Contains(string(r.Value), token) {
			t.Errorf("the endpoint snapshot on %s shows the token: %s", s.topics.Endpoints, r.Value)
		}
	}
}
