package controlplane_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

// clearForms are the ways a secret could sit in storage without being
// encrypted: as is, and base64 (std, URL, padded or not, at any byte
// offset inside a longer encoded value) and hex of it.
func clearForms(secret []byte) [][]byte {
	forms := [][]byte{secret, []byte(hex.EncodeToString(secret)), []byte(strings.ToUpper(hex.EncodeToString(secret)))}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		forms = append(forms, []byte(enc.EncodeToString(secret)))
		// Inside a longer value the encoding depends on the offset mod 3:
		// the characters that encode only the secret's bytes.
		for off := range 3 {
			s := enc.WithPadding(base64.NoPadding).EncodeToString(append(make([]byte, off), secret...))
			start := (off*8 + 5) / 6           // the first character made only of the secret's bits
			end := (off + len(secret)) * 8 / 6 // after the last one
			if end-start > 8 {
				forms = append(forms, []byte(s[start:end]))
			}
		}
	}
	return forms
}

type secretSet struct {
	names []string
	forms [][][]byte
}

func (s *secretSet) add(name string, secret []byte) {
	s.names = append(s.names, name)
	s.forms = append(s.forms, clearForms(secret))
}

// find returns the secrets haystack holds in clear.
func (s *secretSet) find(haystack []byte) []string {
	var found []string
	for i, forms := range s.forms {
		for _, f := range forms {
			if bytes.Contains(haystack, f) {
				found = append(found, fmt.Sprintf("%s (as %q)", s.names[i], f))
				break
			}
		}
	}
	return found
}

func pgDump(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("pg_dump"); err == nil {
		return p
	}
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_dump")
	if len(found) == 0 {
		t.Fatal("no pg_dump on PATH or in /usr/lib/postgresql/*/bin (install the PostgreSQL client)")
	}
	slices.Sort(found)
	return found[len(found)-1]
}

// scanTables reads every column of every table of the database, raw
// (bytea as bytes, text and jsonb as text), and as JSON rows.
func scanTables(t *testing.T, pool *pgxpool.Pool, visit func(where string, b []byte)) {
	t.Helper()
	ctx := context.Background()
	rows, err := pool.Query(ctx, `SELECT table_name, column_name, data_type FROM information_schema.columns
		WHERE table_schema = 'public' ORDER BY table_name, ordinal_position`)
	if err != nil {
		t.Fatal(err)
	}
	type col struct{ table, name, typ string }
	var cols []col
	for rows.Next() {
		var c col
		if err := rows.Scan(&c.table, &c.name, &c.typ); err != nil {
			t.Fatal(err)
		}
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(cols) == 0 {
		t.Fatal("no columns found")
	}
	tables := map[string]bool{}
	for _, c := range cols {
		tables[c.table] = true
		expr := `"` + c.name + `"::text`
		if c.typ == "bytea" {
			expr = `"` + c.name + `"`
		}
		rows, err := pool.Query(ctx, `SELECT `+expr+` FROM "`+c.table+`" WHERE "`+c.name+`" IS NOT NULL`)
		if err != nil {
			t.Fatalf("%s.%s: %v", c.table, c.name, err)
		}
		for rows.Next() {
			var b []byte
			if err := rows.Scan(&b); err != nil {
				t.Fatalf("%s.%s: %v", c.table, c.name, err)
			}
			visit(c.table+"."+c.name, b)
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("%s.%s: %v", c.table, c.name, err)
		}
	}
	for table := range tables {
		rows, err := pool.Query(ctx, `SELECT row_to_json(x)::text FROM "`+table+`" x`)
		if err != nil {
			t.Fatalf("%s: %v", table, err)
		}
		for rows.Next() {
			var b []byte
			if err := rows.Scan(&b); err != nil {
				t.Fatal(err)
			}
			visit(table, b)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	}
}

func randomText(prefix string) string { return prefix + randomHex(12) }

// No endpoint secret, routing key or header value is stored in clear, in
// any table or in a dump of the database; the API shows a secret only in
// the answer that creates (or rotates) it.
func TestNoSecretInClearAtRest(t *testing.T) {
	t.Parallel()
	b := setup(t)
	secrets := &secretSet{}

	givenKey := make([]byte, 32)
	_, _ = rand.Read(givenKey)
	given := "whsec_" + base64.StdEncoding.EncodeToString(givenKey)
	secrets.add("given whsec secret", []byte(given))
	secrets.add("given whsec key bytes", givenKey)
	routingKey := strings.ToUpper(randomHex(16)) // 32 letters and digits
	secrets.add("pagerduty routing key", []byte(routingKey))
	rotated := make([]byte, 24)
	_, _ = rand.Read(rotated)
	rotatedSecret := "whsec_" + base64.StdEncoding.EncodeToString(rotated)
	secrets.add("rotated whsec secret", []byte(rotatedSecret))
	secrets.add("rotated whsec key bytes", rotated)
	slackToken := randomText("slk")
	secrets.add("slack incoming-webhook token", []byte(slackToken))
	queryToken := randomText("qtok")
	secrets.add("token in a target URL's query", []byte(queryToken))

	headers := func(kind string) (string, []string) {
		vals := []string{randomText("hv-" + kind + "-"), randomText("Bearer tok-" + kind + "-")}
		raw, _ := json.Marshal(map[string]string{"X-Api-Key": vals[0], "Authorization": vals[1]})
		return string(raw), vals
	}
	var shown []map[string]any // create answers
	for _, c := range []struct{ name, body string }{
		{"webhook, given secret", `{"name":"given","target_url":"https://hooks.example.com/a?token=` + queryToken + `","secret":"` + given + `","headers":%s}`},
		{"webhook, generated secret", `{"name":"generated","target_url":"https://hooks.example.com/b","headers":%s}`},
		{"slack", `{"name":"slack","kind":"slack","target_url":"https://hooks.slack.com/services/T0/B0/` + slackToken + `","headers":%s}`},
		{"pagerduty", `{"name":"pd","kind":"pagerduty","target_url":"https://events.pagerduty.com/v2/enqueue","secret":"` + routingKey + `","headers":%s}`},
	} {
		hdr, vals := headers(strings.Fields(c.name)[0])
		for i, v := range vals {
			secrets.add(fmt.Sprintf("%s header value %d", c.name, i), []byte(v))
		}
		wh := create(t, b.srv.URL, "/v1/webhooks", b.adminKey, fmt.Sprintf(c.body, hdr))
		secret, _ := wh["secret"].(string)
		if secret == "" {
			t.Fatalf("%s: the create answer does not show the secret: %v", c.name, wh)
		}
		if strings.HasPrefix(secret, "whsec_") && secret != given {
			key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
			if err != nil {
				t.Fatalf("%s: generated secret %q: %v", c.name, secret, err)
			}
			secrets.add(c.name+" secret", []byte(secret))
			secrets.add(c.name+" key bytes", key)
		}
		shown = append(shown, wh)
	}
	ids := make([]string, len(shown))
	for i, wh := range shown {
		ids[i] = wh["id"].(string)
	}
	// A rule, an update and a rotation: more audit rows and snapshots.
	create(t, b.srv.URL, "/v1/alert-rules", b.adminKey, `{"name":"r","event_type":"workflow.run.failed","webhook_endpoint_id":"`+ids[0]+`"}`)
	if status, _, raw := call(t, b.srv.URL, http.MethodPatch, "/v1/webhooks/"+ids[1], b.adminKey, `{"name":"renamed","headers":{"X-Extra":"`+randomText("hv-extra-")+`"}}`); status != http.StatusOK {
		t.Fatalf("PATCH: %d %s", status, raw)
	} else if found := secrets.find(raw); len(found) > 0 {
		t.Errorf("PATCH answer shows %v", found)
	}
	status, _, raw := call(t, b.srv.URL, http.MethodPost, "/v1/webhooks/"+ids[0]+"/rotate-secret", b.adminKey, `{"secret":"`+rotatedSecret+`","grace_period":"1h"}`)
	if status != http.StatusOK || !bytes.Contains(raw, []byte(rotatedSecret)) {
		t.Fatalf("rotate-secret: %d %s; want 200 showing the new secret once", status, raw)
	}

	// The API never shows them again.
	reads := []string{"/v1/webhooks", "/v1/audit-events?limit=200", "/v1/alert-rules"}
	for _, id := range ids {
		reads = append(reads, "/v1/webhooks/"+id)
	}
	for _, path := range reads {
		status, _, raw := call(t, b.srv.URL, http.MethodGet, path, b.adminKey, "")
		if status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, status, raw)
		}
		if found := secrets.find(raw); len(found) > 0 {
			t.Errorf("GET %s shows %v", path, found)
		}
	}
	_, _, raw = call(t, b.srv.URL, http.MethodGet, "/v1/audit-events?limit=200", b.adminKey, "")
	if !bytes.Contains(raw, []byte("webhook.create")) {
		t.Fatalf("audit events do not list the creates: %s", raw)
	}

	// Every column of every table.
	scanned := 0
	scanTables(t, b.pool, func(where string, v []byte) {
		scanned++
		if found := secrets.find(v); len(found) > 0 {
			t.Errorf("%s holds %v in clear", where, found)
		}
	})
	if scanned == 0 {
		t.Fatal("nothing scanned")
	}

	// A dump of the database, as an operator's backup would hold it.
	out, err := exec.CommandContext(context.Background(), pgDump(t), "--no-owner", "-d", b.pool.Config().ConnString()).Output()
	if err != nil {
		var stderr []byte
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			stderr = ee.Stderr
		}
		t.Fatalf("pg_dump: %v %s", err, stderr)
	}
	for _, id := range ids {
		if !bytes.Contains(out, []byte(id)) {
			t.Fatalf("the dump does not hold endpoint %s: dumped the wrong database?", id)
		}
	}
	if found := secrets.find(out); len(found) > 0 {
		t.Errorf("pg_dump holds %v in clear", found)
	}
	// The check can fail: the secrets are in the create answers.
	var answers bytes.Buffer
	for _, wh := range shown {
		raw, _ := json.Marshal(wh)
		answers.Write(raw)
	}
	if found := secrets.find(answers.Bytes()); len(found) < 3 {
		t.Fatalf("the checker finds only %v in the create answers", found)
	}
	for off := range 3 {
		embedded := base64.StdEncoding.EncodeToString(append(append(make([]byte, off), routingKey...), "tail"...))
		if len(secrets.find([]byte(embedded))) == 0 {
			t.Fatalf("the checker misses the routing key base64-encoded at offset %d", off)
		}
	}
	t.Logf("checked %d secrets in %d forms each; %d values scanned; dump of %d bytes", len(secrets.names), len(secrets.forms[0]), scanned, len(out))
}
