package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/keyring"
	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/schemas"
)

// runCmd runs the command line args and returns what it printed.
// The commands print to os.Stdout, so tests that use it are not parallel.
func runCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	done := make(chan []byte)
	go func() {
		out, _ := io.ReadAll(r)
		done <- out
	}()
	runErr := run(context.Background(), args)
	os.Stdout = stdout
	_ = w.Close()
	out := <-done
	_ = r.Close()
	return string(out), runErr
}

// The control plane (and the commands that seal or open secrets) refuse to
// start without a well-formed EXO_KEYRING, saying what is wrong and never
// echoing key material.
func TestKeyringRequired(t *testing.T) {
	short := base64.StdEncoding.EncodeToString([]byte("sixteen-byte-key"))
	good := keyring.Generate("k1")
	cases := []struct {
		name, spec string
		want       string
	}{
		{"missing", "", "EXO_KEYRING is not set (generate one with: exo-alerts keyring generate)"},
		{"blank", "   ", "EXO_KEYRING is not set"},
		{"no id", "c2l4dGVlbi1ieXRlLWtleQ==", "EXO_KEYRING: keyring: entry 1: want id:base64key"},
		{"bad id", "k 1:" + strings.SplitN(good, ":", 2)[1], "EXO_KEYRING: keyring: entry 1: want id:base64key"},
		{"short key", "k1:" + short, `EXO_KEYRING: keyring: key "k1": want standard base64 of exactly 32 bytes`},
		{"not base64", "k1:@@@@", `key "k1": want standard base64 of exactly 32 bytes`},
		{"duplicate id", good + "," + good, `key "k1" appears twice`},
		{"empty entry", good + ",", "entry 2: want id:base64key"},
	}
	for _, cmd := range [][]string{{"controlplane"}, {"keyring", "reencrypt"}} {
		for _, c := range cases {
			t.Run(cmd[0]+" "+c.name, func(t *testing.T) {
				// Everything else is set (to addresses nothing listens on): the
				// key ring alone fails the start, before any connection.
				t.Setenv("DATABASE_URL", "postgres://exo@127.0.0.1:1/exo")
				t.Setenv("KAFKA_BROKERS", "127.0.0.1:1")
				t.Setenv("EXO_KEYRING", c.spec)
				_, err := runCmd(t, cmd...)
				if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "configuration: ") {
					t.Fatalf("%v with EXO_KEYRING=%q: err = %v, want a configuration error containing %q", cmd, c.spec, err, c.want)
				}
				for _, secret := range []string{short, strings.SplitN(good, ":", 2)[1]} {
					if strings.Contains(err.Error(), secret) {
						t.Fatalf("the error shows key material: %v", err)
					}
				}
			})
		}
	}
}

var idRE = regexp.MustCompile(`(?m)^id: +(key_\w+)$`)
var keyRE = regexp.MustCompile(`(?m)^key: +(exo_\w+)$`)

func TestAPIKeyCommands(t *testing.T) {
	dbURL := testenv.DatabaseURL(t, true)
	t.Setenv("DATABASE_URL", dbURL)
	pool, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)

	out, err := runCmd(t, "apikey", "create", "--tenant", "acme", "--name", "ci bot", "--role", "viewer")
	if err != nil {
		t.Fatalf("apikey create: %v\n%s", err, out)
	}
	idm, keym := idRE.FindStringSubmatch(out), keyRE.FindStringSubmatch(out)
	if idm == nil || keym == nil {
		t.Fatalf("apikey create printed:\n%s", out)
	}
	id, key := idm[1], keym[1]
	if _, err := runCmd(t, "apikey", "create", "--tenant", "globex"); err != nil {
		t.Fatal(err)
	}

	out, err = runCmd(t, "apikey", "list", "--tenant", "acme")
	if err != nil {
		t.Fatalf("apikey list: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "ID ") || !strings.Contains(lines[0], "LAST USED") {
		t.Fatalf("apikey list --tenant acme:\n%s", out)
	}
	if f := strings.Fields(lines[1]); f[0] != id || f[1] != "acme" || !strings.Contains(lines[1], "viewer") || !strings.Contains(lines[1], key[:10]+"…") {
		t.Fatalf("row of the key: %q", lines[1])
	}
	if strings.Contains(out, key) {
		t.Fatal("apikey list shows the key")
	}
	out, _ = runCmd(t, "apikey", "list")
	if n := len(strings.Split(strings.TrimSpace(out), "\n")); n != 3 {
		t.Fatalf("apikey list (every tenant) shows %d lines:\n%s", n, out)
	}

	if out, err := runCmd(t, "apikey", "revoke", id); err != nil || !strings.Contains(out, "revoked "+id) {
		t.Fatalf("apikey revoke: %v\n%s", err, out)
	}
	if _, err := runCmd(t, "apikey", "revoke", id); err == nil || !strings.Contains(err.Error(), "not already revoked") {
		t.Fatalf("second revoke: %v", err)
	}
	for _, args := range [][]string{{"apikey"}, {"apikey", "delete"}, {"apikey", "revoke"}, {"apikey", "revoke", "a", "b"}, {"apikey", "list", "extra"}} {
		if _, err := runCmd(t, args...); err == nil || !strings.Contains(err.Error(), "usage") {
			t.Errorf("%v: err = %v, want usage", args, err)
		}
	}
	out, _ = runCmd(t, "apikey", "list", "--tenant", "acme")
	if row := strings.Split(strings.TrimSpace(out), "\n")[1]; strings.HasSuffix(row, "-") {
		t.Fatalf("revoked key shows no revocation time: %q", row)
	}

	// Both changes are in acme's audit trail, by cli, without the key.
	rows, err := pool.Query(context.Background(), `SELECT action, actor, coalesce(before::text, ''), coalesce(after::text, '') FROM audit_events
		WHERE tenant_id = 'acme' AND resource_type = 'api_key' AND resource_id = $1 ORDER BY id`, id)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var actions []string
	for rows.Next() {
		var action, actor, before, after string
		if err := rows.Scan(&action, &actor, &before, &after); err != nil {
			t.Fatal(err)
		}
		actions = append(actions, action)
		if actor != "cli" || strings.Contains(before+after, key[:10]) {
			t.Errorf("audit %s by %s: %s %s", action, actor, before, after)
		}
	}
	if strings.Join(actions, ",") != "api_key.create,api_key.revoke" {
		t.Fatalf("audit actions %v", actions)
	}
}

func TestKeyringReencryptCommand(t *testing.T) {
	dbURL := testenv.DatabaseURL(t, true)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	old := keyring.Generate("k1")
	oldRing, _ := keyring.Parse(old)
	secret, _ := json.Marshal(oldRing.Seal("whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ", "acme/whk_one"))
	if _, err := pool.Exec(ctx, `INSERT INTO tenants (id, name) VALUES ('acme', 'acme')`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO webhook_endpoints (id, tenant_id, name, target_url, secret, secret_hint, created_by)
		VALUES ('whk_one', 'acme', 'one', 'https://e.com/1', $1, '…cmV0', 'test')`, secret); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DATABASE_URL", dbURL)
	t.Setenv("EXO_TOPIC_PREFIX", "t.cmd.")
	newKey := keyring.Generate("k2")
	t.Setenv("EXO_KEYRING", newKey+","+old)
	for _, want := range []string{"re-encrypted 1 endpoint(s) under key k2", "re-encrypted 0 endpoint(s) under key k2"} {
		out, err := runCmd(t, "keyring", "reencrypt")
		if err != nil || !strings.Contains(out, want) {
			t.Fatalf("keyring reencrypt: %v\n%s\nwant %q", err, out, want)
		}
	}
	var stored schemas.Sealed
	var topic string
	if err := pool.QueryRow(ctx, `SELECT e.secret->>'key_id', o.topic FROM webhook_endpoints e, outbox o WHERE e.id = 'whk_one'`).Scan(&stored.KeyID, &topic); err != nil {
		t.Fatal(err)
	}
	if stored.KeyID != "k2" || topic != "t.cmd.webhook-endpoints" {
		t.Fatalf("after the command: key %s, outbox topic %s", stored.KeyID, topic)
	}
	// A ring without the key an endpoint is sealed under fails, and says so.
	t.Setenv("EXO_KEYRING", keyring.Generate("k3"))
	if _, err := pool.Exec(ctx, `UPDATE webhook_endpoints SET secret = $1`, secret); err != nil {
		t.Fatal(err)
	}
	_, err = runCmd(t, "keyring", "reencrypt")
	if !errors.Is(err, keyring.ErrUnknownKey) || !strings.Contains(err.Error(), "keep their keys in EXO_KEYRING") {
		t.Fatalf("reencrypt without the old key: %v", err)
	}
	out, err := runCmd(t, "keyring", "generate", "--id", "k9")
	if _, perr := keyring.Parse(strings.TrimSpace(out)); err != nil || perr != nil || !strings.HasPrefix(out, "k9:") {
		t.Fatalf("keyring generate: %q %v %v", out, err, perr)
	}
	for _, args := range [][]string{{"keyring"}, {"keyring", "rotate"}, {"keyring", "reencrypt", "now"}} {
		if _, err := runCmd(t, args...); err == nil || !strings.Contains(err.Error(), "usage") {
			t.Errorf("%v: err = %v, want usage", args, err)
		}
	}
	if !bytes.Contains([]byte(usage), []byte("reencrypt")) {
		t.Error("the usage does not mention keyring reencrypt")
	}
}

// quarantine list shows a quarantined record with its coordinates and a
// quarantined outbox row (topic, key, size, reason; never its value); replay
// produces the record raw to its topic and marks it replayed; replay
// outbox:<id> hands the row back to the relay, once.
func TestQuarantineCommands(t *testing.T) {
	dbURL := testenv.DatabaseURL(t, true)
	brokers := testenv.Brokers(t)
	topic := testenv.Topics(t).DeliveryResults
	t.Setenv("DATABASE_URL", dbURL)
	t.Setenv("KAFKA_BROKERS", strings.Join(brokers, ","))
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var id int64
	if err := pool.QueryRow(ctx, `INSERT INTO quarantined_records (consumer, topic, "partition", "offset", key, value, headers, error)
		VALUES ('recorder', $1, 2, 41, 'acme/rul_1', '{"x":1}', '[{"key":"h","value":"AAE="}]', 'ERROR: refused (SQLSTATE 23514)')
		RETURNING id`, topic).Scan(&id); err != nil {
		t.Fatal(err)
	}
	admin, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := kadm.NewClient(admin).CreateTopic(ctx, 1, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	var outboxID int64
	if err := pool.QueryRow(ctx, `INSERT INTO outbox (topic, key, value) VALUES ($1, 'acme/whk_1', '{"secret":"sealed-s3cret"}') RETURNING id`,
		topic).Scan(&outboxID); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE outbox SET quarantined_at = now(), quarantine_reason = 'MESSAGE_TOO_LARGE' WHERE id = $1`, outboxID); err != nil {
		t.Fatal(err)
	}
	out, err := runCmd(t, "quarantine", "list")
	if err != nil || !regexp.MustCompile(fmt.Sprintf(`(?m)^recorder\s+%d\s+%s\s+2\s+41\s+"acme/rul_1"\s+7\s.*SQLSTATE 23514`, id, regexp.QuoteMeta(topic))).MatchString(out) {
		t.Fatalf("quarantine list: %v\n%s", err, out)
	}
	if !regexp.MustCompile(fmt.Sprintf(`(?m)^outbox\s+outbox:%d\s+%s\s+-\s+-\s+"acme/whk_1"\s+26\s+\S+\s+-\s+MESSAGE_TOO_LARGE$`, outboxID, regexp.QuoteMeta(topic))).MatchString(out) ||
		strings.Contains(out, "s3cret") {
		t.Fatalf("quarantine list: the outbox row is not listed, or its value is shown:\n%s", out)
	}
	if out, err := runCmd(t, "quarantine", "replay", fmt.Sprintf("outbox:%d", outboxID)); err != nil || !strings.Contains(out, "relay publishes it") {
		t.Fatalf("quarantine replay outbox:%d: %v\n%s", outboxID, err, out)
	}
	var cleared bool
	if err := pool.QueryRow(ctx, `SELECT quarantined_at IS NULL AND quarantine_reason IS NULL AND sent_at IS NULL FROM outbox WHERE id = $1`,
		outboxID).Scan(&cleared); err != nil || !cleared {
		t.Errorf("outbox row %d still quarantined after its replay: %v", outboxID, err)
	}
	if _, err := runCmd(t, "quarantine", "replay", fmt.Sprintf("outbox:%d", outboxID)); err == nil || !strings.Contains(err.Error(), "not a quarantined") {
		t.Errorf("second replay of outbox:%d: %v, want an error (no longer quarantined)", outboxID, err)
	}
	if out, err := runCmd(t, "quarantine", "replay", fmt.Sprint(id)); err != nil || !strings.Contains(out, "replayed") {
		t.Fatalf("quarantine replay: %v\n%s", err, out)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var got *kgo.Record
	for got == nil && pctx.Err() == nil {
		cl.PollFetches(pctx).EachRecord(func(r *kgo.Record) { got = r })
	}
	if got == nil || string(got.Key) != "acme/rul_1" || string(got.Value) != `{"x":1}` ||
		len(got.Headers) != 1 || got.Headers[0].Key != "h" || !bytes.Equal(got.Headers[0].Value, []byte{0, 1}) {
		t.Fatalf("replayed record: %+v", got)
	}
	var replayed bool
	if err := pool.QueryRow(ctx, `SELECT replayed_at IS NOT NULL FROM quarantined_records WHERE id = $1`, id).Scan(&replayed); err != nil || !replayed {
		t.Errorf("replayed_at not set: %v", err)
	}
	if _, err := runCmd(t, "quarantine", "replay"); err == nil || !strings.Contains(err.Error(), "usage") {
		t.Errorf("replay without id: %v", err)
	}
}
