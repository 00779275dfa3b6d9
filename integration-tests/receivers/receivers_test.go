package receivers_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/controlplane"
	"github.com/exospherehost/exo-alerts/e2e/harness"
	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/internal/workload"
	"github.com/exospherehost/exo-alerts/schemas"
	"github.com/exospherehost/exo-alerts/signature"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// receiver is one running example receiver.
type receiver struct {
	name   string
	secret string
	url    string // http://127.0.0.1:port/hook

	mu     sync.Mutex
	lines  []map[string]string // what it printed for each verified, new delivery
	stderr bytes.Buffer
}

// handled returns the webhook-ids the receiver handled, in order.
func (r *receiver) handled() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ids []string
	for _, l := range r.lines {
		ids = append(ids, l["webhook_id"])
	}
	return ids
}

func (r *receiver) Write(p []byte) (int, error) { // stderr
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stderr.Write(p)
}

// start runs cmd (an example receiver, told to listen on a free port) with
// a fresh secret and waits for the line saying where it listens.
func start(t *testing.T, name string, cmd *exec.Cmd) *receiver {
	t.Helper()
	r := &receiver{name: name, secret: signature.NewSecret()}
	cmd.Env = append(cmd.Env, "EXO_WEBHOOK_SECRET="+r.secret)
	cmd.Stderr = r
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	listening := make(chan string, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var l map[string]string
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				_, _ = fmt.Fprintf(r, "test: stdout line is not JSON: %s\n", sc.Bytes())
				continue
			}
			if addr, ok := l["listening"]; ok {
				listening <- addr
				continue
			}
			r.mu.Lock()
			r.lines = append(r.lines, l)
			r.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("%s stderr:\n%s", name, r.stderr.String())
		}
	})
	select {
	case addr := <-listening:
		r.url = "http://" + addr + "/hook"
	case <-done:
		t.Fatalf("%s exited before listening:\n%s", name, r.stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("%s not listening within 30s:\n%s", name, r.stderr.String())
	}
	return r
}

// startAll builds or installs each example and starts it.
func startAll(t *testing.T) []*receiver {
	t.Helper()
	goCmd := exec.Command(goReceiver(t), "0")
	pyCmd := exec.Command(pythonVenv(t), "receiver.py", "0")
	pyCmd.Dir = "../receiver-python"
	pyCmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	nodeCmd := exec.Command("node", "receiver.js", "0")
	nodeCmd.Dir = "../receiver-node"
	nodeCmd.Env = append(os.Environ(), "NODE_PATH="+nodeModules(t))
	return []*receiver{start(t, "go", goCmd), start(t, "python", pyCmd), start(t, "node", nodeCmd)}
}

// waitHandled waits until r has handled id and returns everything it
// handled by then. The examples handle deliveries in the order they
// accepted them, so whatever they accepted before id shows up before it.
func waitHandled(t *testing.T, r *receiver, id string) []string {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		ids := r.handled()
		for _, got := range ids {
			if got == id {
				return ids
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not handle %s within 60s; handled %v", r.name, id, ids)
		}
	}
}

// api calls the control plane as tenant acme's admin.
type api struct {
	base, key string
}

func (a api) call(t *testing.T, method, path string, body any, want int) map[string]any {
	t.Helper()
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequestWithContext(context.Background(), method, a.base+path, rd)
	req.Header.Set("Authorization", "Bearer "+a.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %v, want %d", method, path, resp.StatusCode, out, want)
	}
	return out
}

// Each example receiver, set up as a receiving team would (its endpoint's
// secret in its environment), verifies a real delivery of a failed run
// from the running system and handles it exactly once; and each refuses a
// tampered body, a stale timestamp and another secret's signature, accepts
// the two signatures of a secret rotation, and does not handle a replayed
// webhook-id twice.
func TestExampleReceivers(t *testing.T) {
	t.Parallel()
	recvs := startAll(t)
	sys := harness.Start(t, harness.Options{})
	ctx := context.Background()
	key := controlplane.NewAPIKey()
	if _, err := controlplane.CreateAPIKey(ctx, sys.Pool, "acme", "receivers", controlplane.RoleAdmin, key); err != nil {
		t.Fatal(err)
	}
	a := api{base: sys.API, key: key}

	endpoints := map[*receiver]string{}
	for _, r := range recvs {
		wh := a.call(t, http.MethodPost, "/v1/webhooks", map[string]any{"name": r.name + " receiver", "target_url": r.url, "secret": r.secret}, http.StatusCreated)
		endpoints[r] = wh["id"].(string)
		a.call(t, http.MethodPost, "/v1/alert-rules", map[string]any{
			"name": "failed runs to the " + r.name + " receiver", "event_type": schemas.TypeRunFailed, "webhook_endpoint_id": wh["id"],
		}, http.StatusCreated)
	}
	testenv.WaitMetric(t, sys.Registry, 30*time.Second, "every rule live", func(v float64) bool { return v >= float64(len(recvs)) }, "exo_processor_rules_active")

	cl, err := kgo.NewClient(kafka.ClientOpts(sys.Brokers, nil)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	failed := workload.Event(workload.Spec{Tenant: "acme", Type: schemas.TypeRunFailed, WorkflowName: "nightly-etl", RunID: "run_42", Duration: time.Minute})
	rec, err := workload.Record(sys.Topics.Events, failed)
	if err != nil {
		t.Fatal(err)
	}
	if err := workload.Produce(ctx, cl, rec); err != nil {
		t.Fatal(err)
	}

	// The real delivery: each receiver verified it and handled it once,
	// and the system recorded one attempt, delivered.
	for _, r := range recvs {
		var alertID string
		for deadline := time.Now().Add(60 * time.Second); alertID == ""; time.Sleep(50 * time.Millisecond) {
			r.mu.Lock()
			if len(r.lines) > 0 {
				l := r.lines[0]
				alertID = l["webhook_id"]
				if l["type"] != schemas.TypeRunFailed || l["alert_id"] != alertID || l["tenant_id"] != "acme" ||
					l["workflow"] != "nightly-etl" || l["run_id"] != "run_42" {
					t.Errorf("%s handled %v; want the failed run_42 of nightly-etl", r.name, l)
				}
			}
			r.mu.Unlock()
			if alertID == "" && time.Now().After(deadline) {
				t.Fatalf("%s handled no delivery within 60s", r.name)
			}
		}
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			d := a.call(t, http.MethodGet, "/v1/deliveries/"+alertID, nil, http.StatusOK)
			attempts, _ := d["attempts"].([]any)
			if d["status"] == "delivered" {
				if len(attempts) != 1 || d["endpoint_id"] != endpoints[r] {
					t.Errorf("%s: delivery %v; want one attempt, delivered, to its endpoint", r.name, d)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: delivery %s not delivered within 60s: %v", r.name, alertID, d)
			}
		}
	}

	// Forged deliveries, sent straight to each receiver and signed with its
	// secret by the project's signature package.
	body, err := os.ReadFile("../../schemas/examples/webhook-payload-v1.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recvs {
		t.Run(r.name, func(t *testing.T) {
			sendSignedBy := func(secrets []string, id string, signedAt time.Time, signed, sent []byte) int {
				t.Helper()
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, r.url, bytes.NewReader(sent))
				req.Header.Set("Content-Type", "application/json")
				if err := signature.Sign(req.Header, secrets, id, signedAt, signed); err != nil {
					t.Fatal(err)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				return resp.StatusCode
			}
			send := func(id string, signedAt time.Time, signed, sent []byte) int {
				t.Helper()
				return sendSignedBy([]string{r.secret}, id, signedAt, signed, sent)
			}
			tampered := bytes.Replace(body, []byte(`"nightly-etl"`), []byte(`"nightly-etL"`), 1)
			if bytes.Equal(tampered, body) {
				t.Fatal("the example payload has no nightly-etl to tamper with")
			}
			now := time.Now()
			refused := func(code int) bool { return code == http.StatusUnauthorized }
			if code := send("alrt_direct_1", now, body, body); code/100 != 2 {
				t.Errorf("a correctly signed delivery: %d, want 2xx", code)
			}
			if code := send("alrt_direct_1", now, body, body); code/100 != 2 {
				t.Errorf("the same webhook-id again (a retry or replay): %d, want 2xx (acknowledged, not handled)", code)
			}
			if code := send("alrt_direct_2", now, body, tampered); !refused(code) {
				t.Errorf("a tampered body: %d, want 401", code)
			}
			if code := send("alrt_direct_3", now.Add(-6*time.Minute), body, body); !refused(code) {
				t.Errorf("a timestamp 6 minutes old: %d, want 401", code)
			}
			if code := send("alrt_direct_6", now.Add(6*time.Minute), body, body); !refused(code) {
				t.Errorf("a timestamp 6 minutes ahead: %d, want 401", code)
			}
			if code := send("alrt_direct_7", now, []byte("{not json"), []byte("{not json")); code != http.StatusBadRequest {
				t.Errorf("a signed body that is not JSON: %d, want 400", code)
			}
			// During a secret rotation the new secret signs first, the
			// receiver's (now previous) one second: it still verifies.
			if code := sendSignedBy([]string{signature.NewSecret(), r.secret}, "alrt_direct_4", now, body, body); code/100 != 2 {
				t.Errorf("a delivery signed by a new and the receiver's secret (rotation): %d, want 2xx", code)
			}
			if code := sendSignedBy([]string{signature.NewSecret()}, "alrt_direct_5", now, body, body); !refused(code) {
				t.Errorf("a delivery signed by another secret only: %d, want 401", code)
			}
			// The refusal was the signature's, not a dedup: alrt_direct_2 signed
			// correctly is handled. Handled in order, so once it shows, every
			// earlier acceptance has shown too.
			if code := send("alrt_direct_2", now, body, body); code/100 != 2 {
				t.Errorf("a correctly signed delivery: %d, want 2xx", code)
			}
			got := waitHandled(t, r, "alrt_direct_2")
			if want := []string{got[0], "alrt_direct_1", "alrt_direct_4", "alrt_direct_2"}; strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("handled %v; want %v (the real alert, then each correctly signed id once; nothing tampered, stale, signed by another secret or not JSON)", got, want)
			}
		})
	}
}
