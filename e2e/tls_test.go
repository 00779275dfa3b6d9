package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/keyring"
	"github.com/exospherehost/exo-alerts/internal/postgres"
	"github.com/exospherehost/exo-alerts/schemas"
	"github.com/exospherehost/exo-alerts/signature"
)

// managed are the services of a deployment on a managed Kafka and Postgres
// (deploy/local/secure.sh: a PostgreSQL that serves TLS only, a Kafka broker
// whose SASL_SSL listener is the only one the components are given, each
// with a test CA of its own), and the exo-alerts binary built from this
// tree, run as an operator runs it: configured by environment variables.
type managed struct {
	env map[string]string // secure.sh env: DATABASE_URL, KAFKA_BROKERS, EXO_KAFKA_*, EXO_TEST_*
	bin string
}

// startManaged starts the services unless they are up already (then they
// are left running; otherwise they are stopped when the test ends) and
// builds the binary meanwhile.
func startManaged(t *testing.T) *managed {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(root, "deploy", "local", "secure.sh")
	m := &managed{bin: filepath.Join(t.TempDir(), "exo-alerts")}

	built := make(chan error, 1)
	go func() {
		args := []string{"build", "-o", m.bin}
		if raceEnabled {
			args = append(args, "-race") // the packages the test binary was built from, cached
		}
		cmd := exec.Command(goTool(), append(args, "./cmd/exo-alerts")...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			built <- fmt.Errorf("go build ./cmd/exo-alerts: %w\n%s", err, out)
			return
		}
		built <- nil
	}()

	if err := exec.Command(script, "status").Run(); err != nil {
		t.Cleanup(func() {
			if out, err := exec.Command(script, "down").CombinedOutput(); err != nil {
				t.Errorf("secure.sh down: %v\n%s", err, out)
			}
		})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if out, err := exec.CommandContext(ctx, script, "up").CombinedOutput(); err != nil {
			t.Fatalf("secure.sh up: %v\n%s", err, out)
		}
	}
	out, err := exec.Command(script, "env").Output()
	if err != nil {
		t.Fatalf("secure.sh env: %v", err)
	}
	m.env = map[string]string{}
	line := regexp.MustCompile(`^export ([A-Z_]+)='([^']*)'$`)
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if g := line.FindStringSubmatch(sc.Text()); g != nil {
			m.env[g[1]] = g[2]
		}
	}
	for _, k := range []string{"DATABASE_URL", "KAFKA_BROKERS", "EXO_KAFKA_TLS_CA_FILE", "EXO_KAFKA_SASL_MECHANISM", "EXO_KAFKA_SASL_USERNAME",
		"EXO_KAFKA_SASL_PASSWORD", "EXO_TEST_KAFKA_MTLS_BROKERS", "EXO_TEST_KAFKA_CLIENT_CERT", "EXO_TEST_KAFKA_CLIENT_KEY"} {
		if m.env[k] == "" {
			t.Fatalf("secure.sh env does not set %s:\n%s", k, out)
		}
	}
	if err := <-built; err != nil {
		t.Fatal(err)
	}
	return m
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(os.Getenv("GOROOT"), "bin", "go")
}

// pgCA is the CA of the TLS PostgreSQL (sslrootcert of its URL).
func (m *managed) pgCA(t *testing.T) string {
	u, err := url.Parse(m.env["DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	return u.Query().Get("sslrootcert")
}

// security are the Kafka settings secure.sh env gives the binary.
func (m *managed) security() kafka.Security {
	return kafka.Security{TLS: true, CAFile: m.env["EXO_KAFKA_TLS_CA_FILE"], Mechanism: m.env["EXO_KAFKA_SASL_MECHANISM"],
		Username: m.env["EXO_KAFKA_SASL_USERNAME"], Password: m.env["EXO_KAFKA_SASL_PASSWORD"]}
}

// database creates a database on the TLS PostgreSQL for the test (through
// verify-full), dropped when it ends, and returns its URL.
func (m *managed) database(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin, err := pgx.Connect(ctx, m.env["DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = admin.Close(ctx) }()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "exo_tls_" + hex.EncodeToString(b)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if c, err := pgx.Connect(ctx, m.env["DATABASE_URL"]); err == nil {
			_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			_ = c.Close(ctx)
		}
	})
	u, _ := url.Parse(m.env["DATABASE_URL"])
	u.Path = "/" + name
	return u.String()
}

// topics returns a topic prefix for the test; its topics are deleted (over
// SASL_SSL) when it ends.
func (m *managed) topics(t *testing.T) kafka.Topics {
	t.Helper()
	topics := kafka.NewTopics(fmt.Sprintf("t.tls.%d.", time.Now().UnixNano()))
	t.Cleanup(func() {
		opts, err := m.security().Opts()
		if err != nil {
			return
		}
		cl, err := kgo.NewClient(append(kafka.ClientOpts(kafka.SplitBrokers(m.env["KAFKA_BROKERS"]), nil), opts...)...)
		if err != nil {
			return
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		adm := kadm.NewClient(cl)
		listed, err := adm.ListTopics(ctx)
		if err != nil {
			return
		}
		var names []string
		for _, n := range listed.Names() {
			if strings.HasPrefix(n, topics.Prefix) {
				names = append(names, n)
			}
		}
		_, _ = adm.DeleteTopics(ctx, names...)
	})
	return topics
}

// environ is the environment of a subprocess: this one's without the
// settings of the shared services, then secure.sh's, then vars.
func (m *managed) environ(vars map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "DATABASE_URL" || k == "KAFKA_BROKERS" || strings.HasPrefix(k, "EXO_") {
			continue
		}
		env = append(env, kv)
	}
	for _, set := range []map[string]string{m.env, vars} {
		for k, v := range set {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// lockedBuffer collects a subprocess's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// proc is a component running as a subprocess.
type proc struct {
	name string
	out  *lockedBuffer
	done chan struct{}
	err  error // set when done is closed
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// start starts the binary with args and vars; it is stopped (SIGTERM) when
// the test ends, and its output logged if the test failed.
func (m *managed) start(t *testing.T, vars map[string]string, args ...string) *proc {
	t.Helper()
	p := &proc{name: strings.Join(args, " "), out: &lockedBuffer{}, done: make(chan struct{})}
	cmd := exec.Command(m.bin, args...)
	cmd.Env = m.environ(vars)
	cmd.Stdout, cmd.Stderr = p.out, p.out
	// A test process that is killed takes its components with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("---- output of exo-alerts %s ----\n%s", p.name, p.out.String())
		}
	})
	return p
}

// run runs the binary to its end (at most timeout) and returns its output.
func (m *managed) run(t *testing.T, timeout time.Duration, vars map[string]string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, m.bin, args...)
	cmd.Env = m.environ(vars)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return string(out), fmt.Errorf("exo-alerts %s still running after %s: %w", strings.Join(args, " "), timeout, ctx.Err())
	}
	return string(out), err
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// A deployment on a managed Kafka (TLS with the provider's CA, SASL
// SCRAM-SHA-512) and a managed Postgres (sslmode=verify-full) works through
// the binary's environment variables alone: every component reaches the
// broker only through its SASL_SSL listener and Postgres only over TLS, and
// an alert goes all the way; a wrong password or CA stops each component
// at once with an error that says so; every SASL mechanism and client
// certificates work; Postgres refuses a server its CA did not sign.
func TestManagedKafkaAndPostgres(t *testing.T) {
	t.Parallel()
	m := startManaged(t)

	t.Run("an alert goes through the whole pipeline", func(t *testing.T) {
		t.Parallel()
		pipelineOverTLS(t, m)
	})
	t.Run("wrong password stops every component", func(t *testing.T) {
		t.Parallel()
		refusedAtStart(t, m, map[string]string{"EXO_KAFKA_SASL_PASSWORD": "not-the-password"}, "SASL_AUTHENTICATION_FAILED")
	})
	t.Run("untrusted CA stops every component", func(t *testing.T) {
		t.Parallel()
		// The Postgres CA did not sign the broker's certificate.
		refusedAtStart(t, m, map[string]string{"EXO_KAFKA_TLS_CA_FILE": m.pgCA(t)}, "x509: certificate signed by unknown authority")
	})
	t.Run("SASL mechanisms and client certificates", func(t *testing.T) {
		t.Parallel()
		mechanisms(t, m)
	})
	t.Run("quarantine replay", func(t *testing.T) {
		t.Parallel()
		quarantineReplay(t, m)
	})
	t.Run("postgres verify-full", func(t *testing.T) {
		t.Parallel()
		postgresVerifyFull(t, m)
	})
}

func pipelineOverTLS(t *testing.T, m *managed) {
	db, topics := m.database(t), m.topics(t)
	if out, err := m.run(t, 2*time.Minute, map[string]string{"DATABASE_URL": db}, "migrate", "up"); err != nil {
		t.Fatalf("migrate up over verify-full: %v\n%s", err, out)
	}
	out, err := m.run(t, time.Minute, map[string]string{"DATABASE_URL": db}, "apikey", "create", "--tenant", "acme")
	if err != nil {
		t.Fatalf("apikey create: %v\n%s", err, out)
	}
	key := regexp.MustCompile(`(?m)^key:\s+(\S+)`).FindStringSubmatch(out)
	if key == nil {
		t.Fatalf("apikey create printed no key:\n%s", out)
	}
	vars := map[string]string{
		"DATABASE_URL": db, "EXO_TOPIC_PREFIX": topics.Prefix, "EXO_PARTITIONS": "1",
		"EXO_KEYRING": keyring.Generate("k1"), "EXO_SSRF_ALLOWLIST": "127.0.0.1",
	}
	addr := freeAddr(t)
	// The control plane runs the recorder in its process (the default).
	procs := []*proc{
		m.start(t, vars, "controlplane", "--addr", addr),
		m.start(t, vars, "processor", "--metrics-addr", ""),
		m.start(t, vars, "dispatcher", "--metrics-addr", ""),
	}
	alive := func() {
		t.Helper()
		for _, p := range procs {
			if p.exited() {
				t.Fatalf("exo-alerts %s exited: %v\n%s", p.name, p.err, p.out.String())
			}
		}
	}
	s := &system{api: "http://" + addr, keys: map[string]string{"acme": key[1]}}
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		alive()
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, s.api+"/readyz", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the control plane was not ready within 2 minutes")
		}
	}

	recv := newReceiver(t)
	wh := s.post(t, "acme", "/v1/webhooks", map[string]any{"name": "ops", "target_url": recv.srv.URL + "/hook"})
	rule := s.post(t, "acme", "/v1/alert-rules", map[string]any{
		"name": "failures", "event_type": schemas.TypeRunFailed, "webhook_endpoint_id": wh["id"],
	})

	// Events go in through `exo-alerts emit` (TLS + SCRAM too), one at a
	// time until the rule is in force at the processor and one alerts.
	var got request
	for deadline := time.Now().Add(3 * time.Minute); got.body == nil; {
		alive()
		if out, err := m.run(t, time.Minute, vars, "emit", "--tenant", "acme", "--topic-prefix", topics.Prefix); err != nil {
			t.Fatalf("emit: %v\n%s", err, out)
		}
		select {
		case got = <-recv.ch:
		case <-time.After(3 * time.Second):
		}
		if got.body == nil && time.Now().After(deadline) {
			t.Fatal("no webhook within 3 minutes of events emitted every few seconds")
		}
	}
	var p schemas.WebhookPayload
	if err := json.Unmarshal(got.body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Type != schemas.TypeRunFailed || p.Data.TenantID != "acme" || p.Data.Rule.ID != rule["id"] {
		t.Errorf("payload: %s", got.body)
	}
	if err := signature.VerifyStandard(got.header, got.body, wh["secret"].(string), time.Now(), 5*time.Minute); err != nil {
		t.Errorf("webhook-signature: %v", err)
	}
	// The recorder (consumer over SASL_SSL, writer over verify-full) has
	// the delivery in the history the API serves.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		alive()
		status, d := s.do(t, "acme", http.MethodGet, "/v1/deliveries/"+p.Data.AlertID, "")
		if status == http.StatusOK && d["status"] == "delivered" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivery %s in the history: %d %v after a minute, want delivered", p.Data.AlertID, status, d)
		}
	}
	// Nothing complained about the connections meanwhile.
	for _, p := range procs {
		for _, bad := range []string{"SASL", "x509", "tls:"} {
			if strings.Contains(p.out.String(), bad) {
				t.Errorf("exo-alerts %s logged %q:\n%s", p.name, bad, p.out.String())
			}
		}
	}
}

// refusedAtStart runs every component with vars changed from the working
// settings and wants each to exit with an error containing want, long
// before its start-up would have given up on an outage.
func refusedAtStart(t *testing.T, m *managed, vars map[string]string, want string) {
	db, topics := m.database(t), m.topics(t)
	if out, err := m.run(t, 2*time.Minute, map[string]string{"DATABASE_URL": db}, "migrate", "up"); err != nil {
		t.Fatalf("migrate up: %v\n%s", err, out)
	}
	base := map[string]string{"DATABASE_URL": db, "EXO_TOPIC_PREFIX": topics.Prefix, "EXO_KEYRING": keyring.Generate("k1")}
	for k, v := range vars {
		base[k] = v
	}
	id := quarantined(t, db, topics.Prefix+"replayed")
	for _, args := range [][]string{
		{"controlplane", "--addr", "127.0.0.1:0"},
		{"recorder", "--metrics-addr", ""},
		{"processor", "--metrics-addr", ""},
		{"dispatcher", "--metrics-addr", ""},
		{"emit", "--tenant", "acme"},
		{"quarantine", "replay", fmt.Sprint(id)},
	} {
		t.Run(args[0], func(t *testing.T) {
			t.Parallel()
			out, err := m.run(t, 90*time.Second, base, args...)
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("exo-alerts %s: %v, want it to exit with an error\n%s", args[0], err, out)
			}
			if !strings.Contains(out, want) {
				t.Errorf("exo-alerts %s exited (%v) without saying %q:\n%s", args[0], err, want, out)
			}
		})
	}
}

// quarantined stores a record the recorder set aside, for topic, in the
// database at dbURL and returns its id.
func quarantined(t *testing.T, dbURL, topic string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(ctx) }()
	var id int64
	if err := conn.QueryRow(ctx, `INSERT INTO quarantined_records (consumer, topic, "partition", "offset", key, value, headers, error)
		VALUES ('recorder', $1, 0, 7, 'acme/rul_1', '{"x":1}', '[]', 'refused') RETURNING id`, topic).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

// `exo-alerts quarantine replay` produces over SASL_SSL too.
func quarantineReplay(t *testing.T, m *managed) {
	db, topics := m.database(t), m.topics(t)
	if out, err := m.run(t, 2*time.Minute, map[string]string{"DATABASE_URL": db}, "migrate", "up"); err != nil {
		t.Fatalf("migrate up: %v\n%s", err, out)
	}
	topic := topics.Prefix + "replayed"
	id := quarantined(t, db, topic)
	opts, err := m.security().Opts()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(append(kafka.ClientOpts(kafka.SplitBrokers(m.env["KAFKA_BROKERS"]), nil),
		append(opts, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, -1, nil, topic); err != nil {
		t.Fatal(err)
	}
	if out, err := m.run(t, time.Minute, map[string]string{"DATABASE_URL": db}, "quarantine", "replay", fmt.Sprint(id)); err != nil || !strings.Contains(out, "replayed") {
		t.Fatalf("quarantine replay %d: %v\n%s", id, err, out)
	}
	for {
		f := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal("the replayed record is not on its topic after a minute")
		}
		if recs := f.Records(); len(recs) > 0 {
			if string(recs[0].Key) != "acme/rul_1" || string(recs[0].Value) != `{"x": 1}` && string(recs[0].Value) != `{"x":1}` {
				t.Errorf("replayed record %q = %q", recs[0].Key, recs[0].Value)
			}
			return
		}
	}
}

// unsecuredJWT is an OAUTHBEARER token the test broker accepts (Kafka's
// unsecured validator: no signature).
func unsecuredJWT(sub string) string {
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	now := time.Now().Unix()
	return enc(map[string]any{"alg": "none"}) + "." + enc(map[string]any{"sub": sub, "iat": now, "exp": now + 3600}) + "."
}

func mechanisms(t *testing.T, m *managed) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(unsecuredJWT("exo")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	saslBrokers, mtlsBrokers := m.env["KAFKA_BROKERS"], m.env["EXO_TEST_KAFKA_MTLS_BROKERS"]
	ca, user, pass := m.env["EXO_KAFKA_TLS_CA_FILE"], m.env["EXO_KAFKA_SASL_USERNAME"], m.env["EXO_KAFKA_SASL_PASSWORD"]
	cert, key := m.env["EXO_TEST_KAFKA_CLIENT_CERT"], m.env["EXO_TEST_KAFKA_CLIENT_KEY"]
	topics := m.topics(t)
	for i, tc := range []struct {
		name    string
		brokers string
		s       kafka.Security
		want    string // in the error; "" when a record goes there and back
	}{
		{"PLAIN", saslBrokers, kafka.Security{TLS: true, CAFile: ca, Mechanism: kafka.MechanismPlain, Username: user, Password: pass}, ""},
		{"SCRAM-SHA-256", saslBrokers, kafka.Security{TLS: true, CAFile: ca, Mechanism: kafka.MechanismScramSHA256, Username: user, Password: pass}, ""},
		{"SCRAM-SHA-512", saslBrokers, kafka.Security{TLS: true, CAFile: ca, Mechanism: kafka.MechanismScramSHA512, Username: user, Password: pass}, ""},
		{"OAUTHBEARER", saslBrokers, kafka.Security{TLS: true, CAFile: ca, Mechanism: kafka.MechanismOAuthBearer, TokenFile: tokenFile}, ""},
		{"client certificate", mtlsBrokers, kafka.Security{TLS: true, CAFile: ca, CertFile: cert, KeyFile: key}, ""},
		{"no client certificate", mtlsBrokers, kafka.Security{TLS: true, CAFile: ca}, "remote error: tls:"},
		{"server name the certificate lacks", saslBrokers, kafka.Security{TLS: true, CAFile: ca, ServerName: "kafka.example.com",
			Mechanism: kafka.MechanismScramSHA512, Username: user, Password: pass}, "x509: certificate is valid for"},
		{"SCRAM user unknown", saslBrokers, kafka.Security{TLS: true, CAFile: ca, Mechanism: kafka.MechanismScramSHA256, Username: "nobody", Password: pass},
			"SASL_AUTHENTICATION_FAILED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			opts, err := tc.s.Opts()
			if err != nil {
				t.Fatal(err)
			}
			topic := fmt.Sprintf("%smechanism-%d", topics.Prefix, i)
			cl, err := kgo.NewClient(append(kafka.ClientOpts(kafka.SplitBrokers(tc.brokers), nil), append(opts,
				kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)...)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_, err = kadm.NewClient(cl).CreateTopic(ctx, 1, -1, nil, topic)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) || !kafka.Fatal(err) {
					t.Fatalf("create a topic: %v; want an error saying %q that no start-up retries (kafka.Fatal)", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(tc.name)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
			for {
				f := cl.PollFetches(ctx)
				if ctx.Err() != nil {
					t.Fatal("the record did not come back within a minute")
				}
				if recs := f.Records(); len(recs) > 0 {
					if string(recs[0].Value) != tc.name {
						t.Fatalf("read %q, want %q", recs[0].Value, tc.name)
					}
					return
				}
			}
		})
	}
}

func postgresVerifyFull(t *testing.T, m *managed) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dbURL := m.env["DATABASE_URL"]
	if !strings.Contains(dbURL, "sslmode=verify-full") {
		t.Fatalf("DATABASE_URL %s is not verify-full", dbURL)
	}
	pool, err := postgres.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var ssl bool
	var version string
	if err := pool.QueryRow(ctx, `SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()`).Scan(&ssl, &version); err != nil {
		t.Fatal(err)
	}
	if !ssl || !strings.HasPrefix(version, "TLS") {
		t.Errorf("connection: ssl=%t version=%q, want TLS", ssl, version)
	}

	// Another CA (the broker's) did not sign the server's certificate: the
	// connection fails at once, saying why.
	wrong := strings.Replace(dbURL, "sslrootcert="+url.QueryEscape(m.pgCA(t)), "sslrootcert="+m.env["EXO_KAFKA_TLS_CA_FILE"], 1)
	if wrong == dbURL {
		wrong = strings.Replace(dbURL, m.pgCA(t), m.env["EXO_KAFKA_TLS_CA_FILE"], 1)
	}
	start := time.Now()
	pool, err = postgres.Connect(ctx, wrong)
	if err == nil {
		pool.Close()
		t.Fatal("verify-full with a CA that did not sign the server's certificate connected")
	}
	if !strings.Contains(err.Error(), "x509: certificate signed by unknown authority") || time.Since(start) > 15*time.Second {
		t.Errorf("verify-full with the wrong CA: %v after %s; want the certificate refused, at once", err, time.Since(start))
	}

	// The server takes no connection without TLS.
	plain := strings.SplitN(dbURL, "?", 2)[0] + "?sslmode=disable"
	pool, err = postgres.Connect(ctx, plain)
	if err == nil {
		pool.Close()
		t.Fatal("a connection without TLS was accepted")
	}
	if !strings.Contains(err.Error(), "no encryption") {
		t.Errorf("sslmode=disable: %v; want the server's refusal of a connection without encryption", err)
	}
}
