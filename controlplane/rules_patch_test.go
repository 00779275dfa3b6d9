package controlplane_test

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// answer is what a request in the background got.
type answer struct {
	status  int
	problem map[string]any
}

// patchInBackground sends a PATCH from another goroutine.
func (b *bundle) patchInBackground(t *testing.T, path, body string, hdr map[string]string) <-chan answer {
	done := make(chan answer, 1)
	go func() {
		status, _, got := b.doH(t, "PATCH", path, b.adminKey, body, hdr)
		done <- answer{status, got}
	}()
	return done
}

// lockWaiters counts the sessions of the test's database waiting for a
// lock.
func (b *bundle) lockWaiters(t *testing.T) int {
	t.Helper()
	var n int
	if err := b.pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// awaitAnswer waits for a request's answer, failing as soon as the request
// waits for a lock instead.
func (b *bundle) awaitAnswer(t *testing.T, name string, done <-chan answer) answer {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case a := <-done:
			return a
		default:
		}
		if b.lockWaiters(t) > 0 {
			t.Fatalf("%s: the patch waits for a lock another transaction holds", name)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no answer", name)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// awaitLockWait waits until a request waits for a lock (and has not been
// answered).
func (b *bundle) awaitLockWait(t *testing.T, name string, done <-chan answer) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for b.lockWaiters(t) == 0 {
		select {
		case a := <-done:
			t.Fatalf("%s: answered %d %v without waiting for the lock", name, a.status, a.problem)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: never waited for the lock", name)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// holdLock begins a transaction and runs stmts in it; the caller ends it.
func (b *bundle) holdLock(t *testing.T, stmts ...string) pgx.Tx {
	t.Helper()
	ctx := context.Background()
	tx, err := b.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(ctx) })
	for _, q := range stmts {
		if _, err := tx.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	return tx
}

// A rule patch is merged and validated without the rule's row lock (#8:
// the merge ran inside the transaction holding FOR UPDATE): while another
// transaction holds the lock, refused patches and a patch that changes
// nothing are answered at once; a real change waits only for its write,
// and then merges again on the row as that transaction left it.
func TestRulePatchOutsideTheRowLock(t *testing.T) {
	t.Parallel()
	b := setup(t)
	wh := b.webhook(t, b.adminKey, `{"name":"ops","target_url":"https://hooks.example.com/a"}`)
	r := b.rule(t, b.adminKey, `{"name":"r","event_type":"workflow.run.failed","condition":"labels.env == \"prod\"","webhook_endpoint_id":"`+wh["id"].(string)+`"}`)
	id := r["id"].(string)
	path := "/v1/alert-rules/" + id
	holder := b.holdLock(t, `SELECT 1 FROM alert_rules WHERE id = '`+id+`' FOR UPDATE`)

	deep := `{"name":` + strings.Repeat(`{"a":`, 9000) + `1` + strings.Repeat(`}`, 9000) + `}`
	cases := []struct {
		name, body string
		status     int
		location   string
	}{
		{"9000 levels", deep, 400, "body"},
		{"bad condition", `{"condition":"workflow.nam == 1"}`, 422, "body.condition"},
		{"unknown field", `{"colour":"red"}`, 422, "colour"},
		{"wrong type", `{"max_attempts":"many"}`, 422, "max_attempts"},
		{"duration type without threshold", `{"event_type":"workflow.run.duration_exceeded"}`, 422, "body.duration_threshold"},
		{"no change", `{"name":"r","severity":"error"}`, 200, ""},
	}
	for _, c := range cases {
		a := b.awaitAnswer(t, c.name, b.patchInBackground(t, path, c.body, nil))
		raw, _ := json.Marshal(a.problem["errors"])
		if a.status != c.status || !strings.Contains(string(raw), c.location) {
			t.Errorf("%s: %d %v, want %d naming %q", c.name, a.status, a.problem, c.status, c.location)
		}
	}

	// A real change waits for the lock; the other transaction changes the
	// rule meanwhile: with the old ETag the patch is refused (412), without
	// one it is merged again on the new row, keeping both changes.
	ctx := context.Background()
	if _, err := holder.Exec(ctx, `UPDATE alert_rules SET name = 'renamed meanwhile', version = version + 1 WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	stale := b.patchInBackground(t, path, `{"severity":"critical"}`, map[string]string{"If-Match": `"1"`})
	b.awaitLockWait(t, "a change with If-Match", stale)
	blind := b.patchInBackground(t, path, `{"severity":"critical"}`, nil)
	if err := holder.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if a := <-stale; a.status != 412 {
		t.Errorf("patch with the ETag from before the concurrent change: %d %v, want 412", a.status, a.problem)
	}
	if a := <-blind; a.status != 200 || a.problem["name"] != "renamed meanwhile" || a.problem["severity"] != "critical" || a.problem["version"] != 3.0 {
		t.Errorf("patch without If-Match: %d %v, want both changes at version 3", a.status, a.problem)
	}
	if n := len(b.audits(t, id)); n != 2 {
		t.Errorf("audit rows = %d, want 2 (create and one update; refused and no-op patches none)", n)
	}
}

// A rule reactivated while its endpoint is being deleted does not stay
// active: the patch was merged on a read that saw the endpoint live, but
// its write share-locks the endpoint, waits for the deletion and is
// refused (422) when the endpoint is gone.
func TestRuleReactivatedDuringItsEndpointsDelete(t *testing.T) {
	t.Parallel()
	b := setup(t)
	wh := b.webhook(t, b.adminKey, `{"name":"ops","target_url":"https://hooks.example.com/a"}`)
	whID := wh["id"].(string)
	r := b.rule(t, b.adminKey, `{"name":"r","event_type":"workflow.run.failed","is_active":false,"webhook_endpoint_id":"`+whID+`"}`)
	path := "/v1/alert-rules/" + r["id"].(string)

	// The deletion as deleteWebhook does it: the endpoint locked and
	// marked deleted, not yet committed (its active rules, none here, would
	// be deactivated next).
	deletion := b.holdLock(t,
		`SELECT 1 FROM webhook_endpoints WHERE id = '`+whID+`' FOR UPDATE`,
		`UPDATE webhook_endpoints SET deleted_at = now(), is_active = false, version = version + 1 WHERE id = '`+whID+`'`)
	done := b.patchInBackground(t, path, `{"is_active":true}`, nil)
	b.awaitLockWait(t, "reactivation", done)
	if err := deletion.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	a := <-done
	raw, _ := json.Marshal(a.problem["errors"])
	if a.status != 422 || !strings.Contains(string(raw), "body.endpoint_id") {
		t.Errorf("reactivation during the endpoint's delete: %d %v, want 422 naming body.endpoint_id", a.status, a.problem)
	}
	if _, _, got := b.do(t, "GET", path, b.adminKey, ""); got["is_active"] != false || got["version"] != 1.0 {
		t.Errorf("rule after its endpoint's delete: %v, want inactive at version 1", got)
	}
}

// The answers of create and PATCH show the rule as GET does, its last
// error included (#8: PATCH answered last_error null while the rule had
// one); a new condition clears it.
func TestRuleAnswersShowLastError(t *testing.T) {
	t.Parallel()
	b := setup(t)
	wh := b.webhook(t, b.adminKey, `{"name":"ops","target_url":"https://hooks.example.com/a"}`)
	created := b.rule(t, b.adminKey, `{"name":"r","event_type":"workflow.run.failed","condition":"labels.env == \"prod\"","webhook_endpoint_id":"`+wh["id"].(string)+`"}`)
	id := created["id"].(string)
	path := "/v1/alert-rules/" + id
	if _, _, got := b.do(t, "GET", path, b.adminKey, ""); !reflect.DeepEqual(created, got) {
		t.Errorf("create answered %v, GET %v", created, got)
	}
	// What the recorder keeps from the rule-errors topic.
	if _, err := b.pool.Exec(context.Background(), `UPDATE alert_rules SET last_error = 'condition exceeded its evaluation budget (memory)',
		last_error_at = now(), last_error_event_id = 'ev_1', last_error_rule_version = 1, error_count = 3 WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, body string }{
		{"a change", `{"name":"renamed","severity":"critical"}`},
		{"no change", `{"name":"renamed"}`},
	} {
		status, _, patched := b.doH(t, "PATCH", path, b.adminKey, c.body, nil)
		_, _, got := b.do(t, "GET", path, b.adminKey, "")
		le, _ := got["last_error"].(map[string]any)
		if le == nil || le["event_id"] != "ev_1" || le["count"] != 3.0 {
			t.Fatalf("%s: GET shows last_error %v, want the recorded one", c.name, got["last_error"])
		}
		if status != 200 || !reflect.DeepEqual(patched, got) {
			t.Errorf("%s: PATCH answered %d %v, GET shows %v", c.name, status, patched, got)
		}
	}
	status, _, patched := b.doH(t, "PATCH", path, b.adminKey, `{"condition":"run.attempt > 2"}`, nil)
	_, _, got := b.do(t, "GET", path, b.adminKey, "")
	if status != 200 || patched["last_error"] != nil || !reflect.DeepEqual(patched, got) {
		t.Errorf("new condition: PATCH answered %d %v, GET shows %v; want both without last_error", status, patched, got)
	}
}
