package quota_test

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/processor/quota"
	"github.com/exospherehost/exo-alerts/schemas"
)

type limits map[string]int64

func (l limits) TenantLimit(t string) (int64, bool) { c, ok := l[t]; return c, ok }

var t0 = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

// admitted counts how many of n alerts of tenant at at partition p admits.
func admitted(q *quota.Quota, p int32, tenant string, at time.Time, n int) int {
	ok := 0
	for range n {
		if q.Admit(p, tenant, at) {
			ok++
		}
	}
	return ok
}

func TestSharePerPartition(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		cap        int64
		partitions int
		want       int // admitted per partition
	}{
		{"divides", 12, 3, 4},
		{"rounds up", 10, 3, 4},
		{"cap below partitions", 1, 3, 1},
		{"one partition", 7, 1, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			q := quota.New(quota.Config{TenantDefault: tc.cap, Partitions: tc.partitions}, nil)
			total := 0
			for p := range int32(tc.partitions) {
				got := admitted(q, p, "acme", t0, 100)
				if got != tc.want {
					t.Errorf("partition %d admitted %d of 100, want %d", p, got, tc.want)
				}
				total += got
			}
			if lim := int(tc.cap) + tc.partitions - 1; total > lim {
				t.Errorf("admitted %d in all, more than C+P-1 = %d", total, lim)
			}
			if got := q.Suppressed(schemas.QuotaScopeTenant); got != uint64(100*tc.partitions-total) {
				t.Errorf("suppressed %d, want %d", got, 100*tc.partitions-total)
			}
		})
	}
}

func TestNoCapAdmitsEverything(t *testing.T) {
	t.Parallel()
	q := quota.New(quota.Config{Partitions: 3}, limits{"big": 0})
	if got := admitted(q, 0, "acme", t0, 1000); got != 1000 {
		t.Fatalf("admitted %d of 1000 without caps", got)
	}
	// An override of 0 is unlimited even when there is a default.
	q = quota.New(quota.Config{TenantDefault: 5, Partitions: 1}, limits{"big": 0})
	if got := admitted(q, 0, "big", t0, 50); got != 50 {
		t.Fatalf("override 0 admitted %d of 50", got)
	}
	if got := admitted(q, 0, "small", t0, 50); got != 5 {
		t.Fatalf("default 5 admitted %d of 50", got)
	}
	if len(q.Usage()) != 1 {
		t.Fatal("want one usage record (small's)")
	}
}

func TestOverrideBeatsDefault(t *testing.T) {
	t.Parallel()
	q := quota.New(quota.Config{TenantDefault: 2, Partitions: 1}, limits{"acme": 6})
	if got := admitted(q, 0, "acme", t0, 10); got != 6 {
		t.Fatalf("acme admitted %d, want its override 6", got)
	}
	if got := admitted(q, 0, "other", t0, 10); got != 2 {
		t.Fatalf("other admitted %d, want the default 2", got)
	}
	if q.TenantCap("acme") != 6 || q.TenantCap("other") != 2 {
		t.Fatal("TenantCap")
	}
}

func TestTenantBeforeGlobal(t *testing.T) {
	t.Parallel()
	// Tenant cap 3, global 5, one partition: noisy's alerts beyond 3 are
	// suppressed by its own cap and take nothing from the global budget,
	// so quiet still gets the remaining 2.
	q := quota.New(quota.Config{TenantDefault: 3, Global: 5, Partitions: 1}, nil)
	if got := admitted(q, 0, "noisy", t0, 10); got != 3 {
		t.Fatalf("noisy admitted %d, want 3", got)
	}
	if got := admitted(q, 0, "quiet", t0, 10); got != 2 {
		t.Fatalf("quiet admitted %d, want the 2 left of the global 5", got)
	}
	got := q.Usage()
	// quiet's own count stays at 2, under its cap: the global scope
	// refuses its 8 others.
	want := []schemas.QuotaUsageRecord{
		{TenantID: "noisy", Minute: t0, Scope: schemas.QuotaScopeTenant, Suppressed: 7, Limit: 3},
		{TenantID: "quiet", Minute: t0, Scope: schemas.QuotaScopeGlobal, Suppressed: 8, Limit: 5},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("usage\n got %+v\nwant %+v", got, want)
	}
	if q.Suppressed(schemas.QuotaScopeTenant) != 7 || q.Suppressed(schemas.QuotaScopeGlobal) != 8 {
		t.Fatalf("suppressed tenant %d global %d", q.Suppressed(schemas.QuotaScopeTenant), q.Suppressed(schemas.QuotaScopeGlobal))
	}
	if len(q.Usage()) != 0 {
		t.Fatal("Usage must drain")
	}
}

func TestMinuteRoll(t *testing.T) {
	t.Parallel()
	q := quota.New(quota.Config{TenantDefault: 2, Partitions: 1}, nil)
	if got := admitted(q, 0, "acme", t0.Add(10*time.Second), 5); got != 2 {
		t.Fatalf("first minute admitted %d", got)
	}
	// A late alert of an earlier minute counts against the current one.
	if q.Admit(0, "acme", t0.Add(-30*time.Second)) {
		t.Fatal("an alert of an earlier minute reset the budget")
	}
	if got := admitted(q, 0, "acme", t0.Add(time.Minute), 5); got != 2 {
		t.Fatalf("next minute admitted %d, want a fresh 2", got)
	}
	got := q.Usage()
	want := []schemas.QuotaUsageRecord{
		{TenantID: "acme", Minute: t0, Scope: schemas.QuotaScopeTenant, Suppressed: 4, Limit: 2},
		{TenantID: "acme", Minute: t0.Add(time.Minute), Scope: schemas.QuotaScopeTenant, Suppressed: 3, Limit: 2},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("usage\n got %+v\nwant %+v", got, want)
	}
}

func TestPartitionsIndependent(t *testing.T) {
	t.Parallel()
	q := quota.New(quota.Config{TenantDefault: 4, Partitions: 2}, nil)
	admitted(q, 0, "acme", t0, 10)
	if got := admitted(q, 1, "acme", t0, 10); got != 2 {
		t.Fatalf("partition 1 admitted %d after partition 0 spent its share, want its own 2", got)
	}
}

func TestAbortUndoes(t *testing.T) {
	t.Parallel()
	q := quota.New(quota.Config{TenantDefault: 3, Global: 4, Partitions: 1}, nil)
	q.Begin()
	admitted(q, 0, "acme", t0, 2)
	q.Commit()

	q.Begin()
	admitted(q, 0, "acme", t0, 5)                  // spends acme's last one, suppresses 4
	admitted(q, 0, "acme", t0.Add(time.Minute), 1) // rolls the minute
	admitted(q, 1, "other", t0, 1)                 // a partition new in the batch
	q.Abort()
	if len(q.Usage()) != 0 {
		t.Fatal("Abort must drop the batch's usage")
	}
	if q.Suppressed(schemas.QuotaScopeTenant) != 0 {
		t.Fatal("an aborted batch's suppressions were counted")
	}
	// As before the batch: acme has 1 left in t0, global 2.
	q.Begin()
	if got := admitted(q, 0, "acme", t0, 5); got != 1 {
		t.Fatalf("after abort acme admitted %d, want 1", got)
	}
	q.Commit()
	if q.Suppressed(schemas.QuotaScopeTenant) != 4 {
		t.Fatalf("suppressed %d after commit, want 4", q.Suppressed(schemas.QuotaScopeTenant))
	}
}

// TestAbortReplayIdentical: any batch aborted and processed again gives
// the same decisions and usage as if it had been processed once.
func TestAbortReplayIdentical(t *testing.T) {
	t.Parallel()
	type alert struct {
		p      int32
		tenant string
		at     time.Time
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var stream []alert
	at := t0
	for range 3000 {
		at = at.Add(time.Duration(rng.IntN(400)) * time.Millisecond)
		stream = append(stream, alert{p: int32(rng.IntN(3)), tenant: []string{"a", "b", "c", "d"}[rng.IntN(4)], at: at.Add(-time.Duration(rng.IntN(5)) * time.Second)})
	}
	cfg := quota.Config{TenantDefault: 7, Global: 15, Partitions: 3}
	run := func(abortEvery int) ([]bool, []schemas.QuotaUsageRecord) {
		q := quota.New(cfg, limits{"d": 30})
		var decisions []bool
		var usage []schemas.QuotaUsageRecord
		for i := 0; i < len(stream); {
			n := 1 + rng.IntN(50)
			batch := stream[i:min(i+n, len(stream))]
			if abortEvery > 0 && rng.IntN(abortEvery) == 0 {
				q.Begin()
				for _, a := range batch {
					q.Admit(a.p, a.tenant, a.at)
				}
				q.Usage() // produced in the aborted transaction
				q.Abort()
			}
			q.Begin()
			for _, a := range batch {
				decisions = append(decisions, q.Admit(a.p, a.tenant, a.at))
			}
			usage = append(usage, q.Usage()...)
			q.Commit()
			i += len(batch)
		}
		return decisions, usage
	}
	wantD, wantU := run(0)
	gotD, gotU := run(2)
	if !slices.Equal(gotD, wantD) {
		t.Fatal("decisions differ after aborted batches")
	}
	sum := func(us []schemas.QuotaUsageRecord) map[string]int64 {
		m := map[string]int64{}
		for _, u := range us {
			m[u.TenantID+"/"+u.Scope+"/"+u.Minute.String()] += u.Suppressed
		}
		return m
	}
	sw, sg := sum(wantU), sum(gotU)
	if len(sw) == 0 {
		t.Fatal("the stream suppressed nothing: the test proves nothing")
	}
	for k, v := range sw {
		if sg[k] != v {
			t.Fatalf("%s: suppressed %d with aborts, %d without", k, sg[k], v)
		}
	}
	if len(sg) != len(sw) {
		t.Fatal("usage keys differ")
	}
}
