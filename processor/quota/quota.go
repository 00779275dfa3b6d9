package quota

import (
	"sync/atomic"
	"time"

	"github.com/exospherehost/exo-alerts/schemas"
)

// Limits gives a tenant's operator-set cap (the tenant-limits table).
type Limits interface {
	// TenantLimit returns the tenant's cap per minute (0: unlimited) and
	// whether the operator set one; unset, the default applies.
	TenantLimit(tenant string) (perMinute int64, set bool)
}

// Config configures the quota.
type Config struct {
	// TenantDefault is each tenant's cap per minute without an override
	// (EXO_TENANT_DELIVERY_QUOTA); 0: none.
	TenantDefault int64
	// Global caps all tenants' deliveries per minute together
	// (EXO_GLOBAL_DELIVERY_QUOTA); 0: none.
	Global int64
	// Partitions is the partition count P of the topic consumed: each
	// partition admits ceil(cap/P).
	Partitions int
}

// Quota admits alerts under the caps. Not safe for concurrent use but for
// Suppressed, which any goroutine may read.
type Quota struct {
	cfg    Config
	limits Limits
	parts  map[int32]*part

	// pending are the suppressions of the batch not drained by Usage yet,
	// in the order first seen; index finds a record by tenant/minute/scope.
	pending []schemas.QuotaUsageRecord
	index   map[usageKey]int
	// batch counts the suppressions of the batch per scope, added to
	// suppressed on Commit (or at once outside a batch).
	batch      [2]uint64
	suppressed [2]atomic.Uint64
	undo       map[int32]*saved // nil outside a batch
}

// part is a partition's counters for its current minute.
type part struct {
	minute  time.Time
	global  int64
	tenants map[string]int64
}

// saved is what a batch found of a partition when it first touched it.
type saved struct {
	existed bool
	minute  time.Time
	global  int64
	tenants map[string]int64 // the map as it was (a roll replaces it, never clears it)
	rolled  bool             // the batch rolled the minute: later changes are in a new map
	counts  map[string]int64 // tenant -> count before the batch changed it in tenants; -1: absent
}

type usageKey struct {
	tenant string
	minute int64
	scope  string
}

const (
	tenantScope = 0
	globalScope = 1
)

// New returns a quota. limits may be nil (no overrides).
func New(cfg Config, limits Limits) *Quota {
	if cfg.Partitions < 1 {
		cfg.Partitions = 1
	}
	return &Quota{cfg: cfg, limits: limits, parts: map[int32]*part{}, index: map[usageKey]int{}}
}

// TenantCap is tenant's cap per minute over all partitions (0: none): the
// operator's override, else the default.
func (q *Quota) TenantCap(tenant string) int64 {
	if q.limits != nil {
		if c, ok := q.limits.TenantLimit(tenant); ok {
			return c
		}
	}
	return q.cfg.TenantDefault
}

// share is one partition's part of a cap: ceil(c/P).
func (q *Quota) share(c int64) int64 {
	p := int64(q.cfg.Partitions)
	return (c + p - 1) / p
}

// Admit reports whether tenant may have one more alert delivered at event
// time at from partition p, and counts it if so; a refusal is counted as a
// suppression of the tenant's scope (its share is spent) or the global one.
// The minute only moves forward: an alert of an earlier minute than the
// partition's current one counts against the current one.
func (q *Quota) Admit(p int32, tenant string, at time.Time) bool {
	ct, g := q.TenantCap(tenant), q.cfg.Global
	if ct <= 0 && g <= 0 {
		return true
	}
	pt := q.touch(p)
	if m := at.UTC().Truncate(time.Minute); m.After(pt.minute) {
		pt.minute, pt.global, pt.tenants = m, 0, map[string]int64{}
		if q.undo != nil {
			q.undo[p].rolled = true
		}
	}
	n := pt.tenants[tenant]
	if ct > 0 && n >= q.share(ct) {
		q.suppress(tenant, pt.minute, tenantScope, ct)
		return false
	}
	if g > 0 && pt.global >= q.share(g) {
		q.suppress(tenant, pt.minute, globalScope, g)
		return false
	}
	if ct > 0 {
		q.saveCount(p, pt, tenant)
		pt.tenants[tenant] = n + 1
	}
	if g > 0 {
		pt.global++
	}
	return true
}

// touch returns partition p's counters, saving them for Abort the first
// time a batch touches them.
func (q *Quota) touch(p int32) *part {
	pt := q.parts[p]
	if q.undo != nil {
		if _, done := q.undo[p]; !done {
			s := &saved{existed: pt != nil, counts: map[string]int64{}}
			if pt != nil {
				s.minute, s.global, s.tenants = pt.minute, pt.global, pt.tenants
			}
			q.undo[p] = s
		}
	}
	if pt == nil {
		pt = &part{tenants: map[string]int64{}}
		q.parts[p] = pt
	}
	return pt
}

// saveCount remembers tenant's count before the batch first changes it in
// the map the batch found; a map made by a roll in the batch is dropped
// whole by Abort.
func (q *Quota) saveCount(p int32, pt *part, tenant string) {
	if q.undo == nil {
		return
	}
	s := q.undo[p]
	if !s.existed || s.rolled {
		return
	}
	if _, done := s.counts[tenant]; done {
		return
	}
	if n, ok := pt.tenants[tenant]; ok {
		s.counts[tenant] = n
	} else {
		s.counts[tenant] = -1
	}
}

func (q *Quota) suppress(tenant string, minute time.Time, scope int, limit int64) {
	name := schemas.QuotaScopeTenant
	if scope == globalScope {
		name = schemas.QuotaScopeGlobal
	}
	k := usageKey{tenant: tenant, minute: minute.UnixNano(), scope: name}
	if i, ok := q.index[k]; ok {
		q.pending[i].Suppressed++
	} else {
		q.index[k] = len(q.pending)
		q.pending = append(q.pending, schemas.QuotaUsageRecord{TenantID: tenant, Minute: minute, Scope: name, Suppressed: 1, Limit: limit})
	}
	if q.undo != nil {
		q.batch[scope]++
	} else {
		q.suppressed[scope].Add(1)
	}
}

// Usage returns the suppressions counted since the last call, one record
// per tenant, minute and scope, in the order first seen, and forgets them:
// the caller produces them in the batch's transaction.
func (q *Quota) Usage() []schemas.QuotaUsageRecord {
	out := q.pending
	q.pending = nil
	clear(q.index)
	return out
}

// Begin starts a batch: every change until Commit or Abort can be undone.
func (q *Quota) Begin() {
	q.undo = map[int32]*saved{}
	q.batch = [2]uint64{}
}

// Commit keeps the batch's counters and adds its suppressions to
// Suppressed.
func (q *Quota) Commit() {
	if q.undo == nil {
		return
	}
	q.suppressed[tenantScope].Add(q.batch[tenantScope])
	q.suppressed[globalScope].Add(q.batch[globalScope])
	q.undo, q.batch = nil, [2]uint64{}
}

// Abort puts the counters back as the batch found them and drops its
// suppressions not drained yet (the batch is processed again).
func (q *Quota) Abort() {
	u := q.undo
	q.undo, q.batch = nil, [2]uint64{}
	q.pending = nil
	clear(q.index)
	for p, s := range u {
		if !s.existed {
			delete(q.parts, p)
			continue
		}
		for tenant, n := range s.counts {
			if n < 0 {
				delete(s.tenants, tenant)
			} else {
				s.tenants[tenant] = n
			}
		}
		q.parts[p] = &part{minute: s.minute, global: s.global, tenants: s.tenants}
	}
}

// Suppressed returns the alerts suppressed in committed batches (and
// outside batches) by scope: schemas.QuotaScopeTenant or QuotaScopeGlobal.
func (q *Quota) Suppressed(scope string) uint64 {
	if scope == schemas.QuotaScopeGlobal {
		return q.suppressed[globalScope].Load()
	}
	return q.suppressed[tenantScope].Load()
}
