package controlplane_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/exospherehost/exo-alerts/controlplane"
	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/keyring"
	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/schemas"
)

// ringBundle serves the API over pool with the key ring spec, with an admin
// key for acme (adminKey) and one for globex (otherKey).
func ringBundle(t *testing.T, pool *pgxpool.Pool, spec string, topics kafka.Topics) *bundle {
	t.Helper()
	ring, err := keyring.Parse(spec)
	if err != nil {
		t.Fatal(err)
	}
	s, err := controlplane.New(controlplane.Config{Pool: pool, Brokers: []string{"127.0.0.1:1"}, Topics: topics, Keyring: ring, Log: testenv.Log(t)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	b := &bundle{pool: pool, srv: srv, ring: ring, adminKey: controlplane.NewAPIKey(), otherKey: controlplane.NewAPIKey()}
	for tenant, key := range map[string]string{"acme": b.adminKey, "globex": b.otherKey} {
		if _, err := controlplane.CreateAPIKey(context.Background(), pool, tenant, "test", controlplane.RoleAdmin, key); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// storedEndpoint is what Postgres holds of an endpoint's encrypted values.
type storedEndpoint struct {
	tenant, id string
	secret     schemas.Sealed
	previous   *schemas.Sealed
	headers    map[string]schemas.Sealed
	version    int64
	deleted    bool
}

func readEndpoints(t *testing.T, pool *pgxpool.Pool) map[string]*storedEndpoint {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT tenant_id, id, secret, previous_secret, headers, version, deleted_at IS NOT NULL FROM webhook_endpoints`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]*storedEndpoint{}
	for rows.Next() {
		var e storedEndpoint
		var secret, previous, headers []byte
		if err := rows.Scan(&e.tenant, &e.id, &secret, &previous, &headers, &e.version, &e.deleted); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(secret, &e.secret); err != nil {
			t.Fatal(err)
		}
		if previous != nil {
			if err := json.Unmarshal(previous, &e.previous); err != nil {
				t.Fatal(err)
			}
		}
		if err := json.Unmarshal(headers, &e.headers); err != nil {
			t.Fatal(err)
		}
		out[e.id] = &e
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// plain is what an endpoint's values decrypt to.
type plain struct {
	secret, previous string
	headers          map[string]string
}

// open decrypts what ring can of e, failing the test on what it cannot.
func open(t *testing.T, ring *keyring.Ring, tenant, id string, secret schemas.Sealed, previous *schemas.Sealed, headers map[string]schemas.Sealed) plain {
	t.Helper()
	aad := tenant + "/" + id
	var p plain
	var err error
	if p.secret, err = ring.Open(secret, aad); err != nil {
		t.Fatalf("endpoint %s: secret does not open: %v", id, err)
	}
	if previous != nil {
		if p.previous, err = ring.Open(*previous, aad); err != nil {
			t.Fatalf("endpoint %s: previous secret does not open: %v", id, err)
		}
	}
	p.headers = map[string]string{}
	for name, v := range headers {
		if p.headers[name], err = ring.Open(v, aad+"/"+name); err != nil {
			t.Fatalf("endpoint %s: header %s does not open: %v", id, name, err)
		}
	}
	return p
}

func (e *storedEndpoint) keyIDs() []string {
	ids := []string{e.secret.KeyID}
	if e.previous != nil {
		ids = append(ids, e.previous.KeyID)
	}
	for _, h := range e.headers {
		ids = append(ids, h.KeyID)
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

func TestReencrypt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testenv.Pool(t)
	topics := kafka.NewTopics("t.reencrypt.")
	oldSpec := keyring.Generate("k1")
	b := ringBundle(t, pool, oldSpec, topics)
	oldRing := b.ring

	create := func(key, body string) string {
		t.Helper()
		status, _, wh := b.do(t, "POST", "/v1/webhooks", key, body)
		if status != 201 {
			t.Fatalf("create webhook %s: %d %v", body, status, wh)
		}
		return wh["id"].(string)
	}
	withHeaders := create(b.adminKey, `{"name":"h","target_url":"https://e.com/h","headers":{"X-Token":"tok-123","X-Team":"data"}}`)
	plainSecret := create(b.adminKey, `{"name":"s","target_url":"https://e.com/s"}`)
	pagerduty := create(b.adminKey, `{"name":"pd","kind":"pagerduty","target_url":"https://events.pagerduty.com/v2/enqueue","secret":"0123456789abcdef0123456789ABCDEF"}`)
	deleted := create(b.adminKey, `{"name":"gone","target_url":"https://e.com/gone","headers":{"X-Gone":"bye"}}`)
	theirs := create(b.otherKey, `{"name":"theirs","target_url":"https://e.com/g","headers":{"Authorization":"Bearer theirs"}}`)
	// A rotation in its grace period keeps the previous secret, sealed the same way.
	prev, _ := json.Marshal(oldRing.Seal("whsec_cHJldmlvdXMtc2VjcmV0LWJ5dGVz", "acme/"+withHeaders))
	if _, err := pool.Exec(ctx, `UPDATE webhook_endpoints SET previous_secret = $2, previous_secret_expires_at = now() + interval '1 hour' WHERE id = $1`, withHeaders, prev); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE webhook_endpoints SET deleted_at = now() WHERE id = $1`, deleted); err != nil {
		t.Fatal(err)
	}
	live := []string{withHeaders, plainSecret, pagerduty, theirs}

	before := readEndpoints(t, pool)
	if len(before) != 5 {
		t.Fatalf("%d endpoints, want 5", len(before))
	}
	want := map[string]plain{}
	for id, e := range before {
		if !slices.Equal(e.keyIDs(), []string{"k1"}) {
			t.Fatalf("endpoint %s sealed under %v before the rotation", id, e.keyIDs())
		}
		want[id] = open(t, oldRing, e.tenant, id, e.secret, e.previous, e.headers)
	}
	if want[withHeaders].previous == "" || want[withHeaders].headers["X-Token"] != "tok-123" || want[pagerduty].secret != "0123456789abcdef0123456789ABCDEF" {
		t.Fatalf("plaintexts before: %+v", want)
	}
	outboxBefore := countRows(t, pool, `SELECT coalesce(max(id), 0) FROM outbox`)

	// The operator puts a new key first in the ring, the old one after it.
	newSpec := keyring.Generate("k2")
	ring, err := keyring.Parse(newSpec + "," + oldSpec)
	if err != nil {
		t.Fatal(err)
	}
	n, err := controlplane.Reencrypt(ctx, pool, ring, topics)
	if err != nil || n != 5 {
		t.Fatalf("Reencrypt = %d, %v; want 5 endpoints", n, err)
	}

	// Every stored value is under k2, decrypts to the same plaintext, and each
	// endpoint's version moved on by one.
	after := readEndpoints(t, pool)
	for id, e := range after {
		if !slices.Equal(e.keyIDs(), []string{"k2"}) {
			t.Errorf("endpoint %s still has values under %v", id, e.keyIDs())
		}
		if got := open(t, ring, e.tenant, id, e.secret, e.previous, e.headers); !samePlain(got, want[id]) {
			t.Errorf("endpoint %s decrypts to %+v after, %+v before", id, got, want[id])
		}
		if e.version != before[id].version+1 {
			t.Errorf("endpoint %s version %d, want %d", id, e.version, before[id].version+1)
		}
		if e.secret.Ciphertext == before[id].secret.Ciphertext {
			t.Errorf("endpoint %s secret not re-sealed", id)
		}
	}

	// One outbox row per live endpoint carries the new snapshot; the deleted
	// endpoint's tombstone stays the last word. With the old key removed from
	// the ring, the snapshots still open.
	newOnly, err := keyring.Parse(newSpec)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := pool.Query(ctx, `SELECT topic, key, value FROM outbox WHERE id > $1 ORDER BY id`, outboxBefore)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close() // a failed check must not leave the connection busy
	var keys []string
	for rows.Next() {
		var topic, key string
		var value []byte
		if err := rows.Scan(&topic, &key, &value); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, key)
		if topic != topics.Endpoints {
			t.Errorf("outbox row on %s, want %s", topic, topics.Endpoints)
		}
		if err := schemas.Validate(schemas.KindEndpoint, value); err != nil {
			t.Errorf("snapshot %s invalid: %v", key, err)
		}
		var snap schemas.EndpointRecord
		if err := json.Unmarshal(value, &snap); err != nil {
			t.Fatal(err)
		}
		if snap.TenantID+"/"+snap.ID != key || snap.Version != after[snap.ID].version {
			t.Errorf("snapshot %s: tenant/id %s/%s version %d, want version %d", key, snap.TenantID, snap.ID, snap.Version, after[snap.ID].version)
		}
		got := open(t, newOnly, snap.TenantID, snap.ID, snap.Secret, snap.PreviousSecret, snap.Headers)
		w := want[snap.ID]
		if !samePlain(got, w) {
			t.Errorf("snapshot %s decrypts to %+v, want %+v", key, got, w)
		}
		for _, p := range []string{w.secret, w.previous, "tok-123", "Bearer theirs"} {
			if p != "" && strings.Contains(string(value), p) {
				t.Errorf("snapshot %s holds a plaintext secret", key)
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	var wantKeys []string
	for _, id := range live {
		wantKeys = append(wantKeys, after[id].tenant+"/"+id)
	}
	slices.Sort(keys)
	slices.Sort(wantKeys)
	if !slices.Equal(keys, wantKeys) {
		t.Errorf("outbox keys %v, want %v (one per live endpoint)", keys, wantKeys)
	}

	// One audit row per endpoint, by system, in the endpoint's tenant, naming
	// key ids only.
	arows, err := pool.Query(ctx, `SELECT tenant_id, resource_id, actor, resource_type, before::text, after::text FROM audit_events WHERE action = 'webhook.reencrypt'`)
	if err != nil {
		t.Fatal(err)
	}
	defer arows.Close()
	audited := map[string]bool{}
	for arows.Next() {
		var tenant, id, actor, typ, b4, af string
		if err := arows.Scan(&tenant, &id, &actor, &typ, &b4, &af); err != nil {
			t.Fatal(err)
		}
		audited[id] = true
		if tenant != after[id].tenant || actor != "system" || typ != "webhook" ||
			!strings.Contains(b4, `"key_ids": ["k1"]`) || !strings.Contains(af, `"key_ids": ["k2"]`) {
			t.Errorf("audit row %s %s %s %s before %s after %s", tenant, id, actor, typ, b4, af)
		}
		for _, leak := range []string{before[id].secret.Ciphertext, after[id].secret.Ciphertext, want[id].secret} {
			if strings.Contains(b4+af, leak) {
				t.Errorf("audit row of %s holds a secret", id)
			}
		}
	}
	arows.Close()
	if len(audited) != 5 {
		t.Errorf("%d endpoints audited, want 5", len(audited))
	}

	// A second run, with the full ring or with the old key already removed,
	// changes nothing.
	outboxN, auditN := countRows(t, pool, `SELECT count(*) FROM outbox`), countRows(t, pool, `SELECT count(*) FROM audit_events`)
	for _, r := range []*keyring.Ring{ring, newOnly} {
		if n, err := controlplane.Reencrypt(ctx, pool, r, topics); n != 0 || err != nil {
			t.Fatalf("second Reencrypt = %d, %v; want 0, nil", n, err)
		}
	}
	again := readEndpoints(t, pool)
	for id, e := range again {
		if e.version != after[id].version || e.secret != after[id].secret {
			t.Errorf("second run changed endpoint %s", id)
		}
	}
	if o, a := countRows(t, pool, `SELECT count(*) FROM outbox`), countRows(t, pool, `SELECT count(*) FROM audit_events`); o != outboxN || a != auditN {
		t.Errorf("second run wrote %d outbox and %d audit rows", o-outboxN, a-auditN)
	}
}

func samePlain(a, b plain) bool {
	if a.secret != b.secret || a.previous != b.previous || len(a.headers) != len(b.headers) {
		return false
	}
	for k, v := range a.headers {
		if b.headers[k] != v {
			return false
		}
	}
	return true
}

// An endpoint sealed under a key the ring no longer has fails alone: the
// others are re-sealed, the error names it without any secret, and it is
// left untouched.
func TestReencryptUnknownKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testenv.Pool(t)
	topics := kafka.NewTopics("t.reencrypt.")
	k1, lost := keyring.Generate("k1"), keyring.Generate("k0")
	ok := ringBundle(t, pool, k1, topics)
	status, _, good := ok.do(t, "POST", "/v1/webhooks", ok.adminKey, `{"name":"ok","target_url":"https://e.com/ok"}`)
	if status != 201 {
		t.Fatalf("create: %d", status)
	}
	lostRing, _ := keyring.Parse(lost)
	bad := "whk_sealedunderalostkey"
	secret, _ := json.Marshal(lostRing.Seal("whsec_bG9zdC1rZXktc2VjcmV0LWJ5dGVz", "acme/"+bad))
	if _, err := pool.Exec(ctx, `INSERT INTO webhook_endpoints (id, tenant_id, name, target_url, secret, secret_hint, created_by)
		VALUES ($1, 'acme', 'lost', 'https://e.com/lost', $2, '…Jlcw', 'test')`, bad, secret); err != nil {
		t.Fatal(err)
	}
	ring, _ := keyring.Parse(keyring.Generate("k2") + "," + k1)
	n, err := controlplane.Reencrypt(ctx, pool, ring, topics)
	if n != 1 || !errors.Is(err, keyring.ErrUnknownKey) || !strings.Contains(err.Error(), bad) {
		t.Fatalf("Reencrypt = %d, %v; want 1 and ErrUnknownKey naming %s", n, err, bad)
	}
	if strings.Contains(err.Error(), "whsec_") {
		t.Fatalf("error shows a secret: %v", err)
	}
	got := readEndpoints(t, pool)
	if got[good["id"].(string)].secret.KeyID != "k2" || got[bad].secret.KeyID != "k0" || got[bad].version != 1 {
		t.Fatalf("after: good under %s, bad under %s version %d", got[good["id"].(string)].secret.KeyID, got[bad].secret.KeyID, got[bad].version)
	}
	if c := countRows(t, pool, `SELECT count(*) FROM outbox WHERE key = $1`, "acme/"+bad); c != 0 {
		t.Fatalf("%d outbox rows for the endpoint that failed", c)
	}
	if _, err := controlplane.Reencrypt(ctx, pool, nil, topics); err == nil {
		t.Fatal("Reencrypt without a ring succeeded")
	}
}
