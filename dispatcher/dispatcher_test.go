package dispatcher_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/dispatcher"
	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/keyring"
	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/schemas"
	"github.com/exospherehost/exo-alerts/signature"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const (
	tenant   = "acme"
	deadline = 30 * time.Second
)

// local is the allowlist of every test that is not about SSRF: the
// receivers are httptest servers on 127.0.0.1.
var local = []string{"127.0.0.1"}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// --- receivers ------------------------------------------------------------

// request is one request a receiver got.
type request struct {
	method string
	header http.Header
	body   []byte
}

// receiver is a tenant's endpoint: it records every request, then answers
// with answer.
type receiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []request
}

func newReceiver(t *testing.T, answer http.HandlerFunc) *receiver {
	t.Helper()
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, request{method: req.Method, header: req.Header.Clone(), body: body})
		r.mu.Unlock()
		answer(w, req)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func status(code int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(code)
		_, _ = io.WriteString(w, body)
	}
}

func (r *receiver) requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]request(nil), r.got...)
}

// port is the receiver's port, for URLs with another host name.
func (r *receiver) port() string {
	_, p, _ := net.SplitHostPort(r.srv.Listener.Addr().String())
	return p
}

// --- harness --------------------------------------------------------------

// logSink keeps what the dispatcher logged, for leak checks, and echoes it
// to the test log.
type logSink struct {
	t   testing.TB
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	s.buf.Write(p)
	s.mu.Unlock()
	func() {
		defer func() { _ = recover() }() // a line logged after the test ended is dropped
		s.t.Log(strings.TrimRight(string(p), "\n"))
	}()
	return len(p), nil
}

func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// harness is one test's topics on the real broker, its key ring, a producer
// and the dispatcher's log.
type harness struct {
	t       *testing.T
	brokers []string
	topics  kafka.Topics
	ring    *keyring.Ring
	prod    *kgo.Client
	logs    *logSink
	reg     *prometheus.Registry // the running dispatcher's metrics
}

func setup(t *testing.T) *harness {
	t.Helper()
	brokers := testenv.Brokers(t)
	topics := testenv.Topics(t)
	ring, err := keyring.Parse(keyring.Generate("k1"))
	if err != nil {
		t.Fatal(err)
	}
	prod, err := kgo.NewClient(kafka.ClientOpts(brokers, nil)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	if err := kafka.EnsureTopics(ctx, kadm.NewClient(prod), topics.Specs(3)); err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, brokers: brokers, topics: topics, ring: ring, prod: prod, logs: &logSink{t: t}}
}

func (h *harness) produce(recs ...*kgo.Record) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	if err := h.prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		h.t.Fatalf("produce: %v", err)
	}
}

// endpoint is a webhook endpoint as the control plane publishes it.
type endpoint struct {
	id       string
	url      string
	inactive bool
	headers  map[string]string // the endpoint's own headers, in clear
	rate     int               // rate_limit_per_second (0: the dispatcher's default)
	secret   string            // set by addEndpoint
}

// addEndpoint publishes an endpoint snapshot, its secret and header values
// sealed as the control plane seals them.
func (h *harness) addEndpoint(ep endpoint) endpoint {
	h.t.Helper()
	if ep.id == "" {
		ep.id = "whk_" + randHex(6)
	}
	ep.secret = signature.NewSecret()
	aad := tenant + "/" + ep.id
	rec := schemas.EndpointRecord{
		TenantID: tenant, ID: ep.id, Name: "ops receiver", Kind: "webhook", TargetURL: ep.url,
		Secret: h.ring.Seal(ep.secret, aad), IsActive: !ep.inactive, Version: 1, UpdatedAt: time.Now().UTC(),
		RateLimitPerSecond: ep.rate,
	}
	if len(ep.headers) > 0 {
		rec.Headers = map[string]schemas.Sealed{}
		for k, v := range ep.headers {
			name := http.CanonicalHeaderKey(k)
			rec.Headers[name] = h.ring.Seal(v, aad+"/"+name)
		}
	}
	value, _ := json.Marshal(rec)
	if err := schemas.Validate(schemas.KindEndpoint, value); err != nil {
		h.t.Fatalf("test endpoint does not validate: %v", err)
	}
	h.produce(&kgo.Record{Topic: h.topics.Endpoints, Key: schemas.RecordKey(tenant, ep.id), Value: value})
	return ep
}

// deleteEndpoint publishes the tombstone of an endpoint.
func (h *harness) deleteEndpoint(id string) {
	h.t.Helper()
	h.produce(&kgo.Record{Topic: h.topics.Endpoints, Key: schemas.RecordKey(tenant, id)})
}

// delivery builds a delivery record for an endpoint, as the processor
// builds it, with a fresh alert id.
func (h *harness) delivery(endpointID string) (*kgo.Record, schemas.DeliveryRecord) {
	h.t.Helper()
	alertID := "alrt_" + randHex(16)
	ruleID := "rul_" + randHex(6)
	now := time.Now().UTC().Truncate(time.Millisecond)
	started, dur := now.Add(-84211*time.Millisecond), int64(84211)
	payload := schemas.WebhookPayload{
		Type: schemas.TypeRunFailed, Timestamp: now,
		Data: schemas.PayloadData{
			AlertID: alertID, TenantID: tenant,
			Rule:     schemas.RuleRef{ID: ruleID, Name: "ETL failures"},
			Event:    schemas.EventRef{ID: "01JD" + strings.ToUpper(randHex(11)), Type: schemas.TypeRunFailed, OccurredAt: now},
			Workflow: schemas.Workflow{ID: "wf_9", Name: "nightly-etl"},
			Run: schemas.PayloadRun{ID: "run_" + randHex(4), Status: "failed", StartedAt: &started, FinishedAt: &now,
				DurationMS: &dur},
			Error:  &schemas.PayloadError{Code: "NODE_ERRORED"},
			Labels: map[string]string{"env": "prod"},
		},
	}
	body, _ := json.Marshal(payload)
	if err := schemas.Validate(schemas.KindWebhookPayload, body); err != nil {
		h.t.Fatalf("test payload does not validate: %v", err)
	}
	d := schemas.DeliveryRecord{
		AlertID: alertID, TenantID: tenant, RuleID: ruleID, EndpointID: endpointID,
		EventType: schemas.TypeRunFailed, MaxAttempts: 1, CreatedAt: now, Payload: body,
	}
	value, _ := json.Marshal(d)
	if err := schemas.Validate(schemas.KindDelivery, value); err != nil {
		h.t.Fatalf("test delivery does not validate: %v", err)
	}
	return &kgo.Record{
		Topic: h.topics.Deliveries, Key: schemas.RecordKey(tenant, endpointID), Value: value,
		Headers: []kgo.RecordHeader{{Key: "exo-alert-id", Value: []byte(alertID)}},
	}, d
}

// start runs the dispatcher until the test ends and waits until it is ready.
func (h *harness) start(allowlist []string) {
	h.t.Helper()
	h.startWith(allowlist, nil)
}

// startWith starts the dispatcher with the test configuration, changed by
// edit when given.
func (h *harness) startWith(allowlist []string, edit func(*dispatcher.Config)) {
	h.t.Helper()
	ready := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	h.reg = prometheus.NewRegistry()
	cfg := dispatcher.Config{
		Brokers: h.brokers, Topics: h.topics, Keyring: h.ring, Allowlist: allowlist, Registerer: h.reg,
		AttemptTimeout: 2 * time.Second, Log: slog.New(slog.NewTextHandler(h.logs, nil)), Ready: ready,
		Tiers: []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond},
	}
	if edit != nil {
		edit(&cfg)
	}
	go func() { done <- dispatcher.Run(ctx, cfg) }()
	h.t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				h.t.Errorf("dispatcher.Run returned %v after its context ended; want nil", err)
			}
		case <-time.After(deadline):
			h.t.Errorf("dispatcher.Run did not return within %v of its context ending", deadline)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		h.t.Fatalf("dispatcher.Run returned before it was ready: %v", err)
	case <-time.After(deadline):
		h.t.Fatalf("dispatcher not ready within %v", deadline)
	}
}

// consumer reads topic from the start, committed records only.
func (h *harness) consumer(topic string) *kgo.Client {
	h.t.Helper()
	cl, err := kgo.NewClient(append(kafka.ClientOpts(h.brokers, nil), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(100*time.Millisecond))...)
	if err != nil {
		h.t.Fatal(err)
	}
	return cl
}

// waitFor reads topic from the start until a record matches, and fails
// after the deadline with what it saw.
func (h *harness) waitFor(topic, what string, match func(*kgo.Record) bool) *kgo.Record {
	h.t.Helper()
	cl := h.consumer(topic)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	var seen []string
	for {
		f := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			h.t.Fatalf("%s: not on %s within %v; saw %d records: %s", what, topic, deadline, len(seen), strings.Join(seen, "\n"))
		}
		for _, r := range f.Records() {
			if match(r) {
				return r
			}
			seen = append(seen, string(r.Value))
		}
	}
}

// readAll reads every record topic holds now.
func (h *harness) readAll(topic string) []*kgo.Record {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	ends, err := kadm.NewClient(h.prod).ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		h.t.Fatalf("list end offsets of %s: %v", topic, err)
	}
	left := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left[o.Partition] = o.Offset
		}
	})
	cl := h.consumer(topic)
	defer cl.Close()
	var out []*kgo.Record
	for len(left) > 0 {
		f := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			h.t.Fatalf("read %s: partitions %v not read to their end within %v", topic, left, deadline)
		}
		for _, r := range f.Records() {
			out = append(out, r)
			if end, ok := left[r.Partition]; ok && r.Offset+1 >= end {
				delete(left, r.Partition)
			}
		}
	}
	return out
}

// result waits for the result of alertID's attempt, checks it validates,
// and returns it with its raw value.
func (h *harness) result(alertID string) (schemas.ResultRecord, *kgo.Record) {
	h.t.Helper()
	r := h.waitFor(h.topics.DeliveryResults, "result of "+alertID, func(r *kgo.Record) bool {
		return bytes.Contains(r.Value, []byte(`"alert_id":"`+alertID+`"`))
	})
	if err := schemas.Validate(schemas.KindResult, r.Value); err != nil {
		h.t.Errorf("result record does not validate: %v\n%s", err, r.Value)
	}
	var res schemas.ResultRecord
	if err := json.Unmarshal(r.Value, &res); err != nil {
		h.t.Fatalf("result record: %v", err)
	}
	return res, r
}

// dlq waits for the dead letter whose value is value.
func (h *harness) dlq(value []byte) *kgo.Record {
	h.t.Helper()
	return h.waitFor(h.topics.DeliveriesDLQ, "dead letter", func(r *kgo.Record) bool { return bytes.Equal(r.Value, value) })
}

// barrier sends an undecodable record on an endpoint's partition and waits
// for it on the DLQ: every record sent before it on that partition has
// then been attempted, and its dead letter, if any, is on the DLQ before
// the barrier's (same key, same DLQ partition, produced no later). It
// returns the dead letters of that key that came before the barrier.
func (h *harness) barrier(endpointID string) []*kgo.Record {
	h.t.Helper()
	key := schemas.RecordKey(tenant, endpointID)
	value := []byte("barrier " + randHex(8))
	h.produce(&kgo.Record{Topic: h.topics.Deliveries, Key: key, Value: value})
	h.dlq(value)
	var before []*kgo.Record
	for _, r := range h.readAll(h.topics.DeliveriesDLQ) {
		if bytes.Equal(r.Value, value) {
			return before
		}
		if bytes.Equal(r.Key, key) {
			before = append(before, r)
		}
	}
	h.t.Fatal("barrier vanished from the DLQ")
	return nil
}

// resultsOf returns every result record of alertID the topic holds now.
func (h *harness) resultsOf(alertID string) []*kgo.Record {
	h.t.Helper()
	var out []*kgo.Record
	for _, r := range h.readAll(h.topics.DeliveryResults) {
		if bytes.Contains(r.Value, []byte(`"alert_id":"`+alertID+`"`)) {
			out = append(out, r)
		}
	}
	return out
}

func header(r *kgo.Record, k string) string { return kafka.Header(r, k) }

// checkDeadLetter checks a dead letter is the original record with its
// provenance and the reason.
func checkDeadLetter(t *testing.T, dl, orig *kgo.Record, reason string) {
	t.Helper()
	if !bytes.Equal(dl.Key, orig.Key) {
		t.Errorf("dead letter key = %q, want %q", dl.Key, orig.Key)
	}
	if got := header(dl, "exo-last-error"); !strings.Contains(got, reason) {
		t.Errorf("exo-last-error = %q, want it to name %q", got, reason)
	}
	if got := header(dl, "exo-original-topic"); got != orig.Topic {
		t.Errorf("exo-original-topic = %q, want %q", got, orig.Topic)
	}
	if got := header(dl, "exo-original-offset"); got != strconv.FormatInt(orig.Offset, 10) {
		t.Errorf("exo-original-offset = %q, want %d", got, orig.Offset)
	}
}

// --- tests ----------------------------------------------------------------

// A 2xx answer: the receiver gets exactly one POST carrying the payload as
// it was queued, signed with the endpoint's secret, with the Exosphere and
// Standard Webhooks headers and the endpoint's own header; the attempt is
// reported as delivered.
func TestDelivered(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		code int
		body string
	}{
		{code: http.StatusNoContent},
		{code: http.StatusOK, body: `{"ok":true}`},
	} {
		t.Run(strconv.Itoa(tc.code), func(t *testing.T) {
			t.Parallel()
			h := setup(t)
			recv := newReceiver(t, status(tc.code, tc.body))
			ep := h.addEndpoint(endpoint{url: recv.srv.URL + "/hook", headers: map[string]string{"X-Team-Token": "team-" + randHex(4)}})
			rec, del := h.delivery(ep.id)
			h.produce(rec)
			h.start(local)

			res, _ := h.result(del.AlertID)
			h.barrier(ep.id)
			got := recv.requests()
			if len(got) != 1 {
				t.Fatalf("receiver got %d requests, want exactly 1", len(got))
			}
			req := got[0]
			if req.method != http.MethodPost {
				t.Errorf("method = %s, want POST", req.method)
			}
			if !bytes.Equal(req.body, del.Payload) {
				t.Errorf("body differs from the queued payload:\n got %s\nwant %s", req.body, del.Payload)
			}
			for name, want := range map[string]string{
				"Content-Type":         "application/json",
				"User-Agent":           "exosphere-alerts/" + dispatcher.Version,
				"X-Exosphere-Event":    schemas.TypeRunFailed,
				"X-Exosphere-Delivery": res.DeliveryID,
				"Webhook-Id":           del.AlertID,
				"X-Team-Token":         ep.headers["X-Team-Token"],
			} {
				if got := req.header.Get(name); got != want {
					t.Errorf("header %s = %q, want %q", name, got, want)
				}
			}
			if res.DeliveryID == "" {
				t.Error("result has no delivery id")
			}
			if err := signature.VerifyExosphere(req.header, req.body, ep.secret, time.Now(), 5*time.Minute); err != nil {
				t.Errorf("X-Exosphere-Signature does not verify with the endpoint's secret: %v", err)
			}
			if err := signature.VerifyStandard(req.header, req.body, ep.secret, time.Now(), 5*time.Minute); err != nil {
				t.Errorf("webhook-signature does not verify with the endpoint's secret: %v", err)
			}
			if err := signature.VerifyStandard(req.header, req.body, signature.NewSecret(), time.Now(), 5*time.Minute); err == nil {
				t.Error("webhook-signature verifies with another secret")
			}

			if res.Outcome != schemas.OutcomeDelivered || res.StatusCode != tc.code || res.Attempt != 1 ||
				res.TenantID != tenant || res.RuleID != del.RuleID || res.EndpointID != ep.id || res.ErrorClass != "" {
				t.Errorf("result = %+v; want delivered, status %d, attempt 1, no error class", res, tc.code)
			}
			if res.ResponseExcerpt != tc.body {
				t.Errorf("response excerpt = %q, want %q", res.ResponseExcerpt, tc.body)
			}
			if n := len(h.resultsOf(del.AlertID)); n != 1 {
				t.Errorf("%d result records for the alert, want 1", n)
			}
			// A delivered attempt is counted, not logged at info (the
			// harness's log level): no line per successful delivery.
			if attemptLogged(h.logs.String(), del.AlertID) {
				t.Errorf("a delivered attempt was logged at info:\n%s", h.logs.String())
			}
		})
	}
}

// attemptLogged reports whether logs have a "delivery attempt" line of
// alertID.
func attemptLogged(logs, alertID string) bool {
	for line := range strings.Lines(logs) {
		if strings.Contains(line, `msg="delivery attempt"`) && strings.Contains(line, "alert_id="+alertID) {
			return true
		}
	}
	return false
}

// 410 and 404 mean the endpoint is gone: one attempt, reported as
// endpoint_gone (the recorder disables the rule), never dead-lettered.
func TestEndpointGone(t *testing.T) {
	t.Parallel()
	for _, code := range []int{http.StatusGone, http.StatusNotFound} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			t.Parallel()
			h := setup(t)
			recv := newReceiver(t, status(code, "no such hook"))
			ep := h.addEndpoint(endpoint{url: recv.srv.URL + "/hook"})
			rec, del := h.delivery(ep.id)
			h.produce(rec)
			h.start(local)

			res, _ := h.result(del.AlertID)
			if res.Outcome != schemas.OutcomeEndpointGone || res.StatusCode != code || res.Attempt != 1 ||
				res.ErrorClass != "http_"+strconv.Itoa(code) {
				t.Errorf("result = %+v; want endpoint_gone, status %d, attempt 1, error class http_%d", res, code, code)
			}
			if dl := h.barrier(ep.id); len(dl) != 0 {
				t.Errorf("%d dead letters for a gone endpoint, want none: %s", len(dl), dl[0].Value)
			}
			if n := len(recv.requests()); n != 1 {
				t.Errorf("receiver got %d requests, want exactly 1", n)
			}
			if n := len(h.resultsOf(del.AlertID)); n != 1 {
				t.Errorf("%d result records for the alert, want 1", n)
			}
			// A failed attempt is still logged at info, for operators.
			if !attemptLogged(h.logs.String(), del.AlertID) {
				t.Errorf("no info line for the failed attempt:\n%s", h.logs.String())
			}
		})
	}
}

// A 500 is a failed attempt; with no retry tiers yet it is dead-lettered:
// the result says dead with the status class, the original record lands on
// the DLQ with the reason, and however large the answer, the result keeps
// at most 4 KiB of it, cut cleanly.
func TestServerErrorIsDeadLettered(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		body string
	}{
		{name: "1 MiB of ASCII", body: strings.Repeat("x", 1<<20)},
		// 4096 is not a multiple of 3: the 4 KiB cut falls inside a rune.
		{name: "1 MiB of 3-byte runes", body: strings.Repeat("€", 1<<20/3)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := setup(t)
			recv := newReceiver(t, status(http.StatusInternalServerError, tc.body))
			ep := h.addEndpoint(endpoint{url: recv.srv.URL + "/hook"})
			rec, del := h.delivery(ep.id)
			h.produce(rec)
			h.start(local)

			res, _ := h.result(del.AlertID)
			if res.Outcome != schemas.OutcomeDead || res.StatusCode != http.StatusInternalServerError ||
				res.ErrorClass != "http_500" || res.Attempt != 1 {
				t.Errorf("result = %+v; want dead, status 500, error class http_500, attempt 1", res)
			}
			ex := res.ResponseExcerpt
			if len(ex) > dispatcher.MaxResponseExcerpt {
				t.Errorf("response excerpt is %d bytes, want at most %d", len(ex), dispatcher.MaxResponseExcerpt)
			}
			if !strings.HasPrefix(tc.body, ex) || len(ex) < dispatcher.MaxResponseExcerpt-3 {
				t.Errorf("response excerpt (%d bytes, ends %q) is not the answer's first 4 KiB", len(ex), ex[max(0, len(ex)-8):])
			}

			dl := h.dlq(rec.Value)
			checkDeadLetter(t, dl, rec, "500")
			if got := header(dl, "exo-attempts"); got != "1" {
				t.Errorf("exo-attempts = %q, want 1", got)
			}
			if n := len(recv.requests()); n != 1 {
				t.Errorf("receiver got %d requests, want exactly 1", n)
			}
		})
	}
}

// Without an allowlist the SSRF guard refuses loopback, whether the URL
// names the address or a host name that resolves to it: the receiver is
// never reached, the attempt is reported as ssrf_refused and dead-lettered.
func TestSSRFGuardRefusesLoopback(t *testing.T) {
	t.Parallel()
	h := setup(t)
	recv := newReceiver(t, status(http.StatusNoContent, ""))
	eps := []endpoint{
		h.addEndpoint(endpoint{url: recv.srv.URL + "/hook"}),
		h.addEndpoint(endpoint{url: "http://localhost:" + recv.port() + "/hook"}),
	}
	var recs []*kgo.Record
	var dels []schemas.DeliveryRecord
	for _, ep := range eps {
		rec, del := h.delivery(ep.id)
		recs, dels = append(recs, rec), append(dels, del)
	}
	h.produce(recs...)
	h.start(nil)

	for i, ep := range eps {
		res, _ := h.result(dels[i].AlertID)
		if res.Outcome != schemas.OutcomeDead || res.ErrorClass != "ssrf_refused" || res.StatusCode != 0 {
			t.Errorf("%s: result = %+v; want dead, ssrf_refused, no status", ep.url, res)
		}
		checkDeadLetter(t, h.dlq(recs[i].Value), recs[i], "ssrf_refused")
	}
	if n := len(recv.requests()); n != 0 {
		t.Errorf("the loopback receiver got %d requests through the SSRF guard", n)
	}
}

// Redirects are not followed: a 302 to another receiver is a failed attempt
// and the other receiver gets nothing.
func TestRedirectNotFollowed(t *testing.T) {
	t.Parallel()
	h := setup(t)
	other := newReceiver(t, status(http.StatusNoContent, ""))
	recv := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.srv.URL+"/elsewhere", http.StatusFound)
	})
	ep := h.addEndpoint(endpoint{url: recv.srv.URL + "/hook"})
	rec, del := h.delivery(ep.id)
	h.produce(rec)
	h.start(local)

	res, _ := h.result(del.AlertID)
	if n := len(other.requests()); n != 0 {
		t.Errorf("the redirect target got %d requests", n)
	}
	if n := len(recv.requests()); n != 1 {
		t.Errorf("the endpoint got %d requests, want 1", n)
	}
	if res.Outcome != schemas.OutcomeDead || res.StatusCode != http.StatusFound || res.ErrorClass != "http_302" {
		t.Errorf("result = %+v; want dead, status 302, error class http_302", res)
	}
}

// A target URL with user info authenticates with it (HTTP Basic), as
// net/http's client does, unless the endpoint sets an Authorization header
// of its own: the dispatcher sends through the transport, not the client.
func TestURLUserInfoIsBasicAuth(t *testing.T) {
	t.Parallel()
	h := setup(t)
	recv := newReceiver(t, status(http.StatusNoContent, ""))
	withUser := h.addEndpoint(endpoint{url: "http://alice:s3cr%40t@" + recv.srv.Listener.Addr().String() + "/hook"})
	withOwn := h.addEndpoint(endpoint{url: "http://bob:pw@" + recv.srv.Listener.Addr().String() + "/own",
		headers: map[string]string{"Authorization": "Bearer own-token"}})
	rec1, del1 := h.delivery(withUser.id)
	rec2, del2 := h.delivery(withOwn.id)
	h.produce(rec1, rec2)
	h.start(local)
	for _, id := range []string{del1.AlertID, del2.AlertID} {
		if res, _ := h.result(id); res.Outcome != schemas.OutcomeDelivered {
			t.Fatalf("result = %+v; want delivered", res)
		}
	}
	want := map[string]string{
		del1.AlertID: "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:s3cr@t")),
		del2.AlertID: "Bearer own-token",
	}
	got := recv.requests()
	if len(got) != 2 {
		t.Fatalf("the receiver got %d requests, want 2", len(got))
	}
	for _, r := range got {
		id := r.header.Get("webhook-id")
		if a := r.header.Values("Authorization"); len(a) != 1 || a[0] != want[id] {
			t.Errorf("delivery %s: Authorization %q; want %q", id, a, want[id])
		}
	}
}

// An endpoint that was deleted, is inactive, or never existed receives
// nothing: the alert is reported dead (endpoint_inactive) and dead-lettered.
func TestInactiveEndpoint(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		prepare func(h *harness, url string) string // returns the endpoint id
	}{
		{name: "deleted", prepare: func(h *harness, url string) string {
			ep := h.addEndpoint(endpoint{url: url})
			h.deleteEndpoint(ep.id)
			return ep.id
		}},
		{name: "inactive", prepare: func(h *harness, url string) string {
			return h.addEndpoint(endpoint{url: url, inactive: true}).id
		}},
		{name: "unknown", prepare: func(h *harness, url string) string {
			h.addEndpoint(endpoint{url: url}) // another endpoint exists
			return "whk_unknown"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := setup(t)
			recv := newReceiver(t, status(http.StatusNoContent, ""))
			id := tc.prepare(h, recv.srv.URL+"/hook")
			rec, del := h.delivery(id)
			h.produce(rec)
			h.start(local)

			res, _ := h.result(del.AlertID)
			if res.Outcome != schemas.OutcomeDead || res.ErrorClass != "endpoint_inactive" || res.StatusCode != 0 {
				t.Errorf("result = %+v; want dead, endpoint_inactive, no status", res)
			}
			checkDeadLetter(t, h.dlq(rec.Value), rec, "endpoint_inactive")
			if n := len(recv.requests()); n != 0 {
				t.Errorf("receiver got %d requests for a %s endpoint", n, tc.name)
			}
		})
	}
}

// Records that are not deliveries go to the DLQ unchanged, and the good
// record queued after them on the same partition is still delivered.
func TestBadRecordsDoNotStall(t *testing.T) {
	t.Parallel()
	h := setup(t)
	recv := newReceiver(t, status(http.StatusNoContent, ""))
	ep := h.addEndpoint(endpoint{url: recv.srv.URL + "/hook"})
	key := schemas.RecordKey(tenant, ep.id)
	var recs []*kgo.Record
	// JSON with an alert id, but not a delivery: no endpoint, no payload.
	// (It used to be attempted: a 5 s wait for an endpoint named "", then
	// a result record with empty ids that the history cannot store.)
	invalidID := "alrt_" + randHex(16)
	invalid := `{"alert_id":"` + invalidID + `","tenant_id":"acme","max_attempts":3}`
	for _, v := range []string{"{not json", "null", `{"tenant_id":"acme"}`, "\xff\xfe", "", invalid} {
		recs = append(recs, &kgo.Record{Topic: h.topics.Deliveries, Key: key, Value: []byte(v)})
	}
	// Valid envelopes around payloads that are not one well-formed object
	// (the dispatcher does not validate the payload's contents, but it
	// never sends an ambiguous or non-object body).
	for _, payload := range []string{`[1]`, `{"type":"workflow.run.failed","type":"webhook.test"}`} {
		_, bad := h.delivery(ep.id)
		v, err := json.Marshal(bad)
		if err != nil {
			t.Fatal(err)
		}
		v = bytes.Replace(v, bad.Payload, []byte(payload), 1)
		recs = append(recs, &kgo.Record{Topic: h.topics.Deliveries, Key: key, Value: v})
	}
	good, del := h.delivery(ep.id)
	h.produce(append(recs, good)...)
	h.start(local)

	res, _ := h.result(del.AlertID)
	if res.Outcome != schemas.OutcomeDelivered {
		t.Errorf("the good record after the bad ones: result %+v, want delivered", res)
	}
	if got := recv.requests(); len(got) != 1 || !bytes.Equal(got[0].body, del.Payload) {
		t.Errorf("receiver got %d requests, want exactly the good delivery", len(got))
	}
	dls := h.barrier(ep.id)
	if len(dls) != len(recs) {
		t.Fatalf("%d dead letters before the barrier, want %d (one per bad record)", len(dls), len(recs))
	}
	// The barrier is undecodable too.
	if n := testenv.Metric(h.t, h.reg, "exo_dispatcher_dead_letters_total", "reason", "undecodable"); n != float64(len(recs)+1) {
		t.Errorf("exo_dispatcher_dead_letters_total{reason=\"undecodable\"} = %v, want %d (the bad records and the barrier)", n, len(recs)+1)
	}
	// Records of one partition finish in any order (each endpoint has its
	// own lane): compare the dead letters as a set.
	wantValues := map[string]bool{}
	for _, r := range recs {
		wantValues[string(r.Value)] = true
	}
	for i, dl := range dls {
		if !wantValues[string(dl.Value)] {
			t.Errorf("dead letter %d = %q, not one of the bad records", i, dl.Value)
		}
		delete(wantValues, string(dl.Value))
		if !strings.HasPrefix(header(dl, "exo-last-error"), "undecodable") || header(dl, "exo-original-topic") != h.topics.Deliveries ||
			header(dl, "exo-original-offset") == "" {
			t.Errorf("dead letter %d lacks its reason (undecodable) or provenance: %v", i, dl.Headers)
		}
	}
	if res := h.resultsOf(invalidID); len(res) != 0 {
		t.Errorf("the invalid record got %d result records, want none: %s", len(res), res[0].Value)
	}
}

// Neither the endpoint's secret, nor its header values, nor a token in its
// URL appear in result records, dead letters or the dispatcher's logs,
// whatever the failure.
func TestSecretsDoNotLeak(t *testing.T) {
	t.Parallel()
	const token = "s3cr3t"
	const shortPin = "Qz7" // a header value shorter than a token is redacted too
	for _, tc := range []struct {
		name      string
		url       func(t *testing.T) string
		allowlist []string
		class     string
	}{
		{name: "500 answer", class: "http_500", allowlist: local, url: func(t *testing.T) string {
			return newReceiver(t, status(http.StatusInternalServerError, "boom")).srv.URL
		}},
		{name: "connection refused", class: "connection", allowlist: local, url: func(t *testing.T) string {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := ln.Addr().String()
			_ = ln.Close()
			return "http://" + addr
		}},
		{name: "timeout", class: "timeout", allowlist: local, url: func(t *testing.T) string {
			return newReceiver(t, func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }).srv.URL
		}},
		{name: "ssrf refused", class: "ssrf_refused", url: func(t *testing.T) string {
			return newReceiver(t, status(http.StatusNoContent, "")).srv.URL
		}},
		// A receiver that echoes its whole request (line, headers, body) in
		// its error answer: the excerpt kept in the result is redacted.
		{name: "echoed request", class: "http_400", allowlist: local, url: func(t *testing.T) string {
			return newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusBadRequest)
				_ = r.Write(w)
			}).srv.URL
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := setup(t)
			ep := h.addEndpoint(endpoint{
				url:     tc.url(t) + "/hook/" + token + "-path?token=" + token,
				headers: map[string]string{"Authorization": "Bearer hdr-" + token, "X-Pin": shortPin},
			})
			rec, del := h.delivery(ep.id)
			h.produce(rec)
			h.start(tc.allowlist)

			res, resRec := h.result(del.AlertID)
			if res.Outcome != schemas.OutcomeDead || res.ErrorClass != tc.class {
				t.Errorf("result = %+v; want dead, error class %s", res, tc.class)
			}
			if tc.class == "http_400" && !strings.Contains(res.ResponseExcerpt, "[redacted]") {
				t.Errorf("the echoed request is not in the excerpt, redacted: %q", res.ResponseExcerpt)
			}
			if !strings.HasPrefix(tc.class, "http_") && res.Error == "" {
				t.Errorf("result has no error text for a %s", tc.name)
			}
			dl := h.dlq(rec.Value)
			key, _ := signature.Key(ep.secret)
			secrets := []string{token, shortPin, ep.secret, string(key), hex.EncodeToString(key), strings.TrimPrefix(ep.secret, signature.SecretPrefix)}
			check := func(where, s string) {
				for _, sec := range secrets {
					if strings.Contains(s, sec) {
						t.Errorf("%s leaks %q: %s", where, sec, s)
					}
				}
			}
			check("result record", string(resRec.Value))
			for _, hd := range resRec.Headers {
				check("result header "+hd.Key, string(hd.Value))
			}
			check("dead letter", string(dl.Value))
			for _, hd := range dl.Headers {
				check("dead letter header "+hd.Key, string(hd.Value))
			}
			check("dispatcher log", h.logs.String())
		})
	}
}
