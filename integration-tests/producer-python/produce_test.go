// Package producerpython runs the Python example producer (produce.py, the
// official CloudEvents SDK and confluent-kafka) against the whole running
// system, so the example a workflow engine's team copies is known to work.
// The Go test installs what the script needs: a virtualenv from PyPI, cached
// under the user's cache directory and keyed by requirements.txt.
package producerpython

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/controlplane"
	"github.com/exospherehost/exo-alerts/e2e/harness"
	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/schemas"
	"github.com/exospherehost/exo-alerts/signature"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// wait bounds every wait on the running system.
const wait = 60 * time.Second

// A failed run sent by produce.py in binary and in structured mode is
// delivered exactly once, signed, and lands nothing on the invalid topic; a
// broken event (no tenantid) sent by the script lands on the invalid topic
// with its reason and is delivered to no one.
func TestPythonProducer(t *testing.T) {
	t.Parallel()
	python := venv(t)
	s := harness.Start(t, harness.Options{})
	const tenant = "acme"
	apiKey := controlplane.NewAPIKey()
	if _, err := controlplane.CreateAPIKey(t.Context(), s.Pool, tenant, "python-producer", controlplane.RoleAdmin, apiKey); err != nil {
		t.Fatal(err)
	}
	recv := newReceiver(t)
	wh := post(t, s.API, apiKey, "/v1/webhooks", map[string]any{"name": "ops", "target_url": recv.URL + "/hook"})
	secret, _ := wh["secret"].(string)
	post(t, s.API, apiKey, "/v1/alert-rules", map[string]any{
		"name": "failed runs", "event_type": schemas.TypeRunFailed, "webhook_endpoint_id": wh["id"],
	})
	testenv.WaitMetric(t, s.Registry, wait, "the rule is live", func(v float64) bool { return v >= 1 }, "exo_processor_rules_active")

	produce := func(run string, args ...string) []sent {
		t.Helper()
		return runScript(t, python, append([]string{"--brokers", strings.Join(s.Brokers, ","), "--topic", s.Topics.Events,
			"--tenant", tenant, "--run-id", run}, args...)...)
	}
	runs := map[string]string{} // run id -> id of its failed event
	for _, mode := range []string{"binary", "structured"} {
		run := "run_py_" + mode
		got := produce(run, "--mode", mode)
		if len(got) != 2 || got[0].Type != schemas.TypeRunStarted || got[1].Type != schemas.TypeRunFailed {
			t.Fatalf("%s: the script reported %+v, want a started then a failed event", mode, got)
		}
		for _, r := range got {
			if r.Key != tenant+"/"+run || r.Mode != mode || r.Partition != got[0].Partition {
				t.Errorf("%s: record %+v: want key %s/%s on one partition", mode, r, tenant, run)
			}
		}
		runs[run] = got[1].ID
	}
	broken := produce("run_py_broken", "--mode", "binary", "--break")
	if len(broken) != 1 || broken[0].Type != schemas.TypeRunFailed {
		t.Fatalf("--break: the script reported %+v, want one failed event", broken)
	}

	// Every event is judged: 2 runs x (started + failed) + the broken one.
	// Counting them (rather than waiting a while) is what makes "exactly
	// one delivery" below mean something.
	events := func() float64 { return testenv.Metric(t, s.Registry, "exo_processor_events_total") }
	deadline := time.Now().Add(wait)
	for events() < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("the processor judged %v of the 5 events within %s", events(), wait)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if m, inv := testenv.Metric(t, s.Registry, "exo_processor_events_total", "outcome", "matched"),
		testenv.Metric(t, s.Registry, "exo_processor_events_total", "outcome", "invalid"); events() != 5 || m != 2 || inv != 1 {
		t.Fatalf("processor events: %v in all, %v matched, %v invalid; want 5, 2 (the failed runs), 1 (the broken one)", events(), m, inv)
	}
	// Both alerts attempted and delivered, nothing else attempted.
	testenv.WaitMetric(t, s.Registry, wait, "both alerts delivered", func(v float64) bool { return v >= 2 },
		"exo_dispatcher_attempts_total", "outcome", schemas.OutcomeDelivered)
	if n := testenv.Metric(t, s.Registry, "exo_dispatcher_attempts_total"); n != 2 {
		t.Errorf("%v delivery attempts, want 2", n)
	}

	perRun := map[string]int{}
	for _, d := range recv.all() {
		now := time.Now()
		if err := signature.VerifyStandard(d.header, d.body, secret, now, 5*time.Minute); err != nil {
			t.Errorf("webhook-signature: %v", err)
		}
		if err := signature.VerifyExosphere(d.header, d.body, secret, now, 5*time.Minute); err != nil {
			t.Errorf("X-Exosphere-Signature: %v", err)
		}
		var p schemas.WebhookPayload
		if err := json.Unmarshal(d.body, &p); err != nil {
			t.Fatalf("payload: %v\n%s", err, d.body)
		}
		perRun[p.Data.Run.ID]++
		want, ok := runs[p.Data.Run.ID]
		if !ok || p.Data.Event.ID != want || p.Data.TenantID != tenant || p.Data.Workflow.Name != "nightly-etl" ||
			p.Data.Error == nil || p.Data.Error.Code != "NODE_ERRORED" || p.Data.Labels["env"] != "prod" ||
			p.Data.Run.DurationMS == nil || *p.Data.Run.DurationMS != 84211 {
			t.Errorf("delivery does not carry the script's failed event (run %q, event %q; want event %q):\n%s",
				p.Data.Run.ID, p.Data.Event.ID, want, d.body)
		}
	}
	for run := range runs {
		if perRun[run] != 1 {
			t.Errorf("run %s: %d deliveries, want exactly 1 (all: %v)", run, perRun[run], perRun)
		}
	}
	if len(perRun) != len(runs) {
		t.Errorf("deliveries for runs %v, want only %v", perRun, runs)
	}

	// On the wire: binary mode is ce_* headers and the data object as the
	// value; structured mode is the whole event as the value.
	for _, r := range readTopic(t, s.Brokers, s.Topics.Events, 5) {
		var doc map[string]json.RawMessage
		if err := json.Unmarshal(r.Value, &doc); err != nil {
			t.Fatalf("record %s: value is not a JSON object: %v", r.Key, err)
		}
		ct := kafka.Header(r, "content-type")
		switch string(r.Key) {
		case tenant + "/run_py_binary", tenant + "/run_py_broken":
			if kafka.Header(r, "ce_specversion") != "1.0" || kafka.Header(r, "ce_source") == "" || ct != "application/json" ||
				doc["workflow"] == nil || doc["specversion"] != nil {
				t.Errorf("binary record %s: want ce_* headers, content-type application/json and the data object; headers %v, value %s", r.Key, headers(r), r.Value)
			}
		case tenant + "/run_py_structured":
			if kafka.Header(r, "ce_specversion") != "" || ct != "application/cloudevents+json" ||
				string(doc["specversion"]) != `"1.0"` || string(doc["tenantid"]) != `"acme"` || doc["data"] == nil {
				t.Errorf("structured record %s: want the whole event as application/cloudevents+json; headers %v, value %s", r.Key, headers(r), r.Value)
			}
		default:
			t.Errorf("record with key %q on the events topic", r.Key)
		}
	}

	// The broken event, and only it, is on the invalid topic with its reason.
	inv := readTopic(t, s.Brokers, s.Topics.EventsInvalid, 1)[0]
	if string(inv.Key) != tenant+"/run_py_broken" || !strings.Contains(kafka.Header(inv, schemas.HeaderInvalidReason), "tenantid") {
		t.Errorf("invalid record key %q, reason %q; want the broken run's, naming tenantid", inv.Key, kafka.Header(inv, schemas.HeaderInvalidReason))
	}
	if kafka.Header(inv, "ce_tenantid") != "" || kafka.Header(inv, "ce_id") != broken[0].ID {
		t.Errorf("invalid record is not the script's broken event: ce_id %q, want %q", kafka.Header(inv, "ce_id"), broken[0].ID)
	}
	s.Alive(t)
}

// sent is one line produce.py prints per acknowledged record.
type sent struct {
	ID, Type, Key, Topic, Mode string
	Partition                  int32
	Offset                     int64
}

// runScript runs produce.py with args and returns what it reports sent; the
// script exits non-zero unless the broker acknowledged every record.
func runScript(t *testing.T, python string, args ...string) []sent {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, append([]string{"produce.py"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("produce.py %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, &stdout, &stderr)
	}
	var out []sent
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		var r sent
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("produce.py printed %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

// readTopic reads topic from the start until it has n records, and fails
// if it holds more than the polls that reached n returned (called once
// nothing more can be written to it).
func readTopic(t *testing.T, brokers []string, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(append(kafka.ClientOpts(brokers, nil), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) < n {
		f := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%d of %d records on %s within %s", len(recs), n, topic, wait)
		}
		recs = append(recs, f.Records()...)
	}
	if len(recs) != n {
		t.Fatalf("%d records on %s, want %d", len(recs), topic, n)
	}
	return recs
}

// headers lists a record's headers readably.
func headers(r *kgo.Record) string {
	var b strings.Builder
	for _, h := range r.Headers {
		fmt.Fprintf(&b, "%s=%q ", h.Key, h.Value)
	}
	return b.String()
}

// delivery is one POST the receiver got.
type delivery struct {
	header http.Header
	body   []byte
}

type receiver struct {
	*httptest.Server
	mu  sync.Mutex
	got []delivery
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, delivery{req.Header.Clone(), body})
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) all() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

// post sends an API request with the tenant's key and wants 201 Created.
func post(t *testing.T, api, key, path string, body any) map[string]any {
	t.Helper()
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, api+path, bytes.NewReader(raw))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST %s: %d %v", path, resp.StatusCode, out)
	}
	return out
}

// venv returns the python of a virtualenv holding requirements.txt,
// creating it from PyPI the first time. It lives under the user's cache
// directory (testenv.Installed), named by a hash of requirements.txt and of
// the interpreter, so a changed pin or Python gets a new one.
func venv(t *testing.T) string {
	t.Helper()
	base, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("the Python example needs python3 (3.11 or later) on PATH: %v", err)
	}
	version, err := exec.CommandContext(t.Context(), base, "-c", "import sys; print(sys.executable, sys.version)").Output()
	if err != nil {
		t.Fatalf("%s: %v", base, err)
	}
	dir := testenv.Installed(t, "venv/producer-python-"+testenv.Hash(t, []string{"requirements.txt"}, version), func(tmp string) error {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
		defer cancel()
		for _, args := range [][]string{
			{base, "-m", "venv", tmp},
			{filepath.Join(tmp, "bin", "python"), "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
				"--only-binary=:all:", "-r", "requirements.txt"},
		} {
			if out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput(); err != nil {
				return fmt.Errorf("%s: %w\n%s", strings.Join(args, " "), err, out)
			}
		}
		return nil
	})
	python := filepath.Join(dir, "bin", "python")
	if !usable(t, python) {
		t.Fatalf("virtualenv %s does not import the example's packages", dir)
	}
	return python
}

func usable(t *testing.T, python string) bool {
	t.Helper()
	if _, err := os.Stat(python); err != nil {
		return false
	}
	err := exec.CommandContext(t.Context(), python, "-c", "import cloudevents.core.bindings.kafka, confluent_kafka").Run()
	if err != nil {
		t.Logf("%s: %v", python, err)
	}
	return err == nil
}
