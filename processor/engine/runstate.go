// The compact form of a tracked run's state. A partition holds one run per
// tracked run (a million running runs on one processor is the sizing
// target), so the form costs what it must: the changelog key (which holds
// the tenant and run ids), the start event id, a pointer to the workflow and
// labels shared by every run with the same ones, times as Unix nanoseconds,
// the event types seen as a few bits. What is rare — duration rules fired,
// event types other than the three the engine knows, times that are not
// plain UTC instants, attempts beyond int32 — lives in an extra record,
// nil for most runs. A schemas.RunState is built only for an output record
// (state) and read back only on restore (restoredRun).

package engine

import (
	"encoding/binary"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
	"unsafe"

	"github.com/exospherehost/exo-alerts/schemas"
)

// maxTenantLen is the longest tenant a run's tenantLen holds.
const maxTenantLen = math.MaxUint8

// noTime is an absent time (a nil StartedAt or FinishedAt; a zero
// LastEventAt) in a run's nanosecond fields.
const noTime = math.MinInt64

// Indexes of a run's times in runExtra.exact.
const (
	tStarted = iota
	tFinished
	tLast
)

// run is the compact state of one tracked run. Runs are changed in place;
// undo saves a run's value (a shallow copy) before its first change in a
// batch, so what a run points to (ctx, ext) is never changed once set: a
// change sets a new one.
type run struct {
	// ids is the run's key (tenant/run, the changelog key) followed by
	// the id of its started event, in one string: ids[:keyLen] and
	// ids[keyLen:] (unless ext.key is set: then ids is the event id).
	ids string
	ctx *runContext // workflow and labels; nil: none
	// Unix nanoseconds, noTime when absent; when ext.exact holds a time,
	// the field is that time's nanoseconds saturated to the int64 range.
	startedAt, finishedAt, lastEventAt int64
	attempt                            int32 // when ext.attempt is 0
	seen                               seenSet
	tenantLen                          uint8 // key[:tenantLen] is the tenant, unless ext.tenant is set
	// keyLen is the key's length (unless ext.key is set) in its low 15
	// bits, and runGone: the run is no longer its partition's run of its
	// key (tombstoned, or undone by Abort), so timers and expiries still
	// pointing to it are stale.
	keyLen uint16
	ext    *runExtra
}

// runExtra is what few runs need. Never changed once a run points to it.
type runExtra struct {
	key     string // a key longer than maxKeyLen bytes
	tenant  string // a tenant longer than maxTenantLen bytes
	attempt int    // an attempt beyond int32
	// seenList, when seenExact, is the run's seen list (types other than
	// the three of seenSet, or more than it holds).
	seenList  []string
	seenExact bool
	fired     []string // duration rules fired for the current attempt
	// exact holds the times that are not plain UTC instants within the
	// int64 nanosecond range (another zone, a monotonic reading), as given.
	exact [3]*time.Time
}

// runContext is the workflow and labels of runs, shared by content within
// a partition.
type runContext struct {
	wf     schemas.Workflow
	labels map[string]string
	// labelsJSON is labels as a payload writes them, made when a payload
	// first needs them (the only change to a context once made: derived
	// from what never changes).
	labelsJSON []byte
	key        string // its key in the partition's table (contextKey)
	// labelsAt is where key's labels begin (after the flag saying
	// whether there are labels): key[labelsAt:] is their canonical form,
	// schemas.WorkflowEventData.LabelsKey's.
	labelsAt int
}

// labelsKey is c's labels in canonical form ("" for none).
func (c *runContext) labelsKey() string { return c.key[c.labelsAt:] }

// payloadLabels is c's labels as schemas.AppendLabelsJSON writes them, for
// schemas.PayloadParts.Labels; nil when c has none (a payload writes
// {} for them, not null).
func (c *runContext) payloadLabels() []byte {
	if c == nil || c.labels == nil {
		return nil
	}
	if c.labelsJSON == nil {
		c.labelsJSON = schemas.AppendLabelsJSON(nil, c.labels)
	}
	return c.labelsJSON
}

// key is the run's changelog key, tenant/run.
func (r *run) key() string {
	if r.ext != nil && r.ext.key != "" {
		return r.ext.key
	}
	return r.ids[:r.keyLen&^runGone]
}

// startEventID is the id of the run's started event ("" before it).
func (r *run) startEventID() string {
	if r.ext != nil && r.ext.key != "" {
		return r.ids
	}
	return r.ids[r.keyLen&^runGone:]
}

// setStartEventID sets the id of the run's started event.
func (r *run) setStartEventID(id string) {
	switch {
	case r.ext != nil && r.ext.key != "":
		r.ids = id
	case id == "":
		r.ids = r.key()
	default:
		r.ids = r.key() + id
	}
}

func (r *run) tenant() string {
	if r.ext != nil && r.ext.tenant != "" {
		return r.ext.tenant
	}
	return r.key()[:r.tenantLen]
}

func (r *run) runID() string {
	return r.key()[len(r.tenant())+1:]
}

func (r *run) attemptN() int {
	if r.ext != nil && r.ext.attempt != 0 {
		return r.ext.attempt
	}
	return int(r.attempt)
}

func (r *run) setAttempt(a int) {
	if a >= math.MinInt32 && a <= math.MaxInt32 {
		r.attempt = int32(a)
		if r.ext != nil && r.ext.attempt != 0 {
			r.setExt(func(x *runExtra) { x.attempt = 0 })
		}
		return
	}
	r.attempt = 0
	r.setExt(func(x *runExtra) { x.attempt = a })
}

func (r *run) fired() []string {
	if r.ext == nil {
		return nil
	}
	return r.ext.fired
}

func (r *run) hasFired(rule string) bool { return slices.Contains(r.fired(), rule) }

// addFired records that duration rule fired for the current attempt. A
// run whose extra record holds nothing but its fired list (most runs that
// have one) gets a record shared through pt.fired: runs of a tenant fire
// its duration rules in the same order, so their records are few, and
// firing allocates nothing once they exist. Another run's record is
// copied with the rule added.
func (pt *partition) addFired(r *run, rule string) {
	if r.ext == nil || r.ext.firedOnly() {
		k := firedKey{prev: r.ext, rule: rule}
		x := pt.fired[k]
		if x == nil {
			if len(pt.fired) > 2*len(pt.runs)+compactSlack {
				clear(pt.fired) // runs keep theirs; only sharing starts over
			}
			x = &runExtra{fired: append(slices.Clip(r.fired()), rule)}
			pt.fired[k] = x
		}
		r.ext = x
		return
	}
	f := r.fired()
	r.setExt(func(x *runExtra) { x.fired = append(slices.Clip(f), rule) })
}

// firedKey is a shared extra record's key in partition.fired: the run's
// record before (nil: none) and the rule it adds. Records never change, so
// the key's record always has the same fired list.
type firedKey struct {
	prev *runExtra
	rule string
}

// firedOnly says whether x holds nothing but a fired list.
func (x *runExtra) firedOnly() bool {
	return x.key == "" && x.tenant == "" && x.attempt == 0 && !x.seenExact && x.exact == [3]*time.Time{}
}

// setExt sets a changed copy of ext (ext is never changed in place); an
// extra record left empty is dropped.
func (r *run) setExt(change func(*runExtra)) {
	var x runExtra
	if r.ext != nil {
		x = *r.ext
	}
	change(&x)
	if x.key == "" && x.tenant == "" && x.attempt == 0 && !x.seenExact && len(x.fired) == 0 && x.exact == [3]*time.Time{} {
		r.ext = nil
		return
	}
	r.ext = &x
}

// The range of times a run's nanosecond fields hold exactly.
var (
	minNanos = time.Unix(0, math.MinInt64+1).UTC()
	maxNanos = time.Unix(0, math.MaxInt64).UTC()
)

// nanos is t in Unix nanoseconds, saturated to the int64 range (without
// noTime), and whether time.Unix(0, ns).UTC() gives t back exactly.
func nanos(t time.Time) (ns int64, exact bool) {
	switch {
	case t.Before(minNanos):
		return math.MinInt64 + 1, false
	case t.After(maxNanos):
		return math.MaxInt64, false
	}
	// A time in UTC has no monotonic reading (only time.Now's, in Local,
	// have one), so its instant is all of it.
	return t.UnixNano(), t.Location() == time.UTC
}

// field returns the field of a run's time i.
func (r *run) field(i int) *int64 {
	switch i {
	case tStarted:
		return &r.startedAt
	case tFinished:
		return &r.finishedAt
	}
	return &r.lastEventAt
}

// setTime sets time i of the run; nil clears it.
func (r *run) setTime(i int, t *time.Time) {
	f := r.field(i)
	had := r.ext != nil && r.ext.exact[i] != nil
	if t == nil {
		*f = noTime
		if had {
			r.setExt(func(x *runExtra) { x.exact[i] = nil })
		}
		return
	}
	ns, exact := nanos(*t)
	*f = ns
	switch {
	case !exact:
		tc := *t
		r.setExt(func(x *runExtra) { x.exact[i] = &tc })
	case had:
		r.setExt(func(x *runExtra) { x.exact[i] = nil })
	}
}

// time returns time i of the run, and whether it is set.
func (r *run) time(i int) (time.Time, bool) {
	if r.ext != nil && r.ext.exact[i] != nil {
		return *r.ext.exact[i], true
	}
	ns := *r.field(i)
	if ns == noTime {
		return time.Time{}, false
	}
	return time.Unix(0, ns).UTC(), true
}

func (r *run) started() (time.Time, bool)  { return r.time(tStarted) }
func (r *run) finished() (time.Time, bool) { return r.time(tFinished) }
func (r *run) lastEvent() time.Time        { t, _ := r.time(tLast); return t }

func (r *run) running() bool { return r.startedAt != noTime && r.finishedAt == noTime }

// seenSet is the ordered list of the event types seen for a run's current
// attempt, each of the three types the engine knows in 2 bits (up to
// four); a run seeing any other type, or more, keeps its list in ext.
type seenSet uint8

// maxSeen is how many types a seenSet holds.
const maxSeen = 4

func seenCode(t string) seenSet {
	switch t {
	case schemas.TypeRunStarted:
		return 1
	case schemas.TypeRunSucceeded:
		return 2
	case schemas.TypeRunFailed:
		return 3
	}
	return 0
}

var seenTypes = [4]string{"", schemas.TypeRunStarted, schemas.TypeRunSucceeded, schemas.TypeRunFailed}

// seenLists is the seen list of every seenSet (nil when empty), made once:
// a state record's Seen is one of them, shared and never written (each is
// clipped, so an append copies it).
var seenLists = func() (lists [1 << 8][]string) {
	for s := range lists {
		var l []string
		for b := seenSet(s); b != 0; b >>= 2 {
			l = append(l, seenTypes[b&3])
		}
		lists[s] = slices.Clip(l)
	}
	return lists
}()

func (r *run) hasSeen(t string) bool {
	if r.ext != nil && r.ext.seenExact {
		return slices.Contains(r.ext.seenList, t)
	}
	c := seenCode(t)
	if c == 0 {
		return false
	}
	for s := r.seen; s != 0; s >>= 2 {
		if s&3 == c {
			return true
		}
	}
	return false
}

// seenLen is how many types the bits hold.
func (s seenSet) len() int {
	n := 0
	for ; s != 0; s >>= 2 {
		n++
	}
	return n
}

func (r *run) addSeen(t string) {
	if r.ext != nil && r.ext.seenExact {
		l := r.ext.seenList
		r.setExt(func(x *runExtra) { x.seenList = append(slices.Clip(l), t) })
		return
	}
	if c, n := seenCode(t), r.seen.len(); c != 0 && n < maxSeen {
		r.seen |= c << (2 * n)
		return
	}
	l := append(r.seenTypes(), t)
	r.setExt(func(x *runExtra) { x.seenList, x.seenExact = l, true })
}

// setSeen sets the run's seen list as restored.
func (r *run) setSeen(l []string) {
	r.seen = 0
	if l != nil && len(l) <= maxSeen {
		var s seenSet
		ok := true
		for i, t := range l {
			c := seenCode(t)
			if c == 0 {
				ok = false
				break
			}
			s |= c << (2 * i)
		}
		if ok && len(l) > 0 {
			r.seen = s
			if r.ext != nil && r.ext.seenExact {
				r.setExt(func(x *runExtra) { x.seenList, x.seenExact = nil, false })
			}
			return
		}
	}
	if l == nil && (r.ext == nil || !r.ext.seenExact) {
		return
	}
	cp := slices.Clone(l) // an empty list stays empty, not nil
	r.setExt(func(x *runExtra) { x.seenList, x.seenExact = cp, true })
}

// resetAttempt forgets what the run's previous attempt saw, fired,
// started and finished.
func (r *run) resetAttempt() {
	r.seen = 0
	r.setStartEventID("")
	r.startedAt, r.finishedAt = noTime, noTime
	if r.ext != nil {
		r.setExt(func(x *runExtra) {
			x.seenList, x.seenExact, x.fired = nil, false, nil
			x.exact[tStarted], x.exact[tFinished] = nil, nil
		})
	}
}

// seenTypes is the run's seen list (nil when empty).
func (r *run) seenTypes() []string {
	if r.ext != nil && r.ext.seenExact {
		return slices.Clone(r.ext.seenList)
	}
	var out []string
	for s := r.seen; s != 0; s >>= 2 {
		out = append(out, seenTypes[s&3])
	}
	return out
}

// stateBox holds a materialized state and the times it points to,
// allocated together.
type stateBox struct {
	st                schemas.RunState
	started, finished time.Time
}

// state is the run as a schemas.RunState, for an output record. What it
// shares with the run (labels, fired) is never changed.
func (r *run) state() *schemas.RunState { return r.stateIn(&stateBox{}) }

// stateIn is state, built in b.
func (r *run) stateIn(b *stateBox) *schemas.RunState {
	st := &b.st
	st.TenantID, st.RunID = r.tenant(), r.runID()
	st.Attempt = r.attemptN()
	st.StartEventID = r.startEventID()
	if r.ctx != nil {
		st.Workflow, st.Labels = r.ctx.wf, r.ctx.labels
	}
	if t, ok := r.started(); ok {
		b.started = t
		st.StartedAt = &b.started
	}
	if t, ok := r.finished(); ok {
		b.finished = t
		st.FinishedAt = &b.finished
	}
	st.LastEventAt = r.lastEvent()
	switch {
	case r.ext != nil && r.ext.seenExact:
		st.Seen = slices.Clone(r.ext.seenList)
	default:
		st.Seen = seenLists[r.seen]
	}
	if f := r.fired(); len(f) > 0 {
		st.Fired = slices.Clip(f)
	}
	return st
}

// restoredRun is the run of a restored state (its times already made sane).
func (pt *partition) restoredRun(st *schemas.RunState) *run {
	r := newRun(runKey(st.TenantID, st.RunID), st.TenantID, st.StartEventID)
	r.setAttempt(st.Attempt)
	r.ctx = pt.context(st.Workflow, st.Labels, "")
	r.setTime(tStarted, st.StartedAt)
	r.setTime(tFinished, st.FinishedAt)
	if st.LastEventAt != (time.Time{}) {
		last := st.LastEventAt
		r.setTime(tLast, &last)
	}
	r.setSeen(st.Seen)
	if len(st.Fired) > 0 {
		f := slices.Clone(st.Fired)
		r.setExt(func(x *runExtra) { x.fired = f })
	}
	return r
}

// maxKeyLen is the longest key a run's keyLen holds.
const maxKeyLen = runGone - 1

// runGone is the bit of keyLen marking a run gone.
const runGone = 1 << 15

// gone marks r as no longer its partition's run of its key.
func (r *run) gone() { r.keyLen |= runGone }

// newRun is a run with nothing seen but its started event's id, keyed key
// (runKey of tenant). ids, when not "", is key followed by startEventID
// in one string (the caller built them together).
func newRun(key, tenant, startEventID string) *run {
	r := &run{}
	initRun(r, key, tenant, startEventID)
	return r
}

// initRun makes *r newRun's run.
func initRun(r *run, key, tenant, startEventID string) {
	*r = run{startedAt: noTime, finishedAt: noTime, lastEventAt: noTime}
	var longTenant, longKey string
	if n := len(tenant); n <= maxTenantLen {
		r.tenantLen = uint8(n)
	} else {
		longTenant = key[:n]
	}
	if n := len(key); n <= maxKeyLen {
		r.keyLen = uint16(n)
		r.ids = key
		if startEventID != "" {
			r.ids = key + startEventID
		}
	} else {
		longKey, r.ids = key, startEventID
	}
	if longTenant != "" || longKey != "" {
		r.ext = &runExtra{tenant: longTenant, key: longKey}
	}
}

// runInline32 and runInline48 are a run allocated with the bytes of its
// ids (key and started event id) when they fit: one allocation of the size
// class the run and a separate string would take together (64 + 32 or
// 64 + 48 bytes), instead of two.
type (
	runInline32 struct {
		r   run
		ids [32]byte
	}
	runInline48 struct {
		r   run
		ids [48]byte
	}
)

// newRunOf is newRun from a lookup key in *kb: one string holds the key
// and the started event's id, allocated with the run when they fit in
// runInline48. *kb may grow (it is a scratch buffer) and keeps the key.
func newRunOf(kb *[]byte, tenant, startEventID string) *run {
	n := len(*kb)
	var r *run
	var buf []byte
	switch total := n + len(startEventID); {
	case total == 0:
	case total <= 32:
		b := &runInline32{}
		r, buf = &b.r, b.ids[:total]
	case total <= 48:
		b := &runInline48{}
		r, buf = &b.r, b.ids[:total]
	}
	if r != nil {
		copy(buf[copy(buf, *kb):], startEventID)
		// buf is written only here, before the string exists.
		ids := unsafe.String(&buf[0], len(buf)) //nolint:gosec // G103: buf is never written after this
		initRun(r, ids[:n], tenant, "")
		r.ids = ids
		return r
	}
	if n > maxKeyLen || startEventID == "" {
		return newRun(string(*kb), tenant, startEventID)
	}
	*kb = append(*kb, startEventID...)
	ids := string(*kb)
	*kb = (*kb)[:n]
	r = newRun(ids[:n], tenant, "")
	r.ids = ids
	return r
}

// context returns the shared context of wf and labels (nil for neither).
// Contexts are shared by contextKey, which tells any two workflows and
// label sets apart, built in one pass over the labels. The table is
// cleared when it holds many more contexts than the partition has runs
// (runs keep theirs; only sharing starts over), so contexts of finished
// runs do not pile up.
func (pt *partition) context(wf schemas.Workflow, labels map[string]string, labelsKey string) *runContext {
	if wf == (schemas.Workflow{}) && labels == nil {
		return nil
	}
	b, at := contextKey(pt.ctxKey[:0], &pt.ctxPairs, wf, labels, labelsKey)
	pt.ctxKey = b
	// Runs in a row often share one (a workflow's runs).
	if c := pt.lastCtx; c != nil && c.key == string(b) {
		return c
	}
	if c := pt.contexts[string(b)]; c != nil {
		pt.lastCtx = c
		return c
	}
	if len(pt.contexts) > 2*len(pt.runs)+compactSlack {
		clear(pt.contexts)
	}
	c := &runContext{wf: wf, labels: labels, key: string(b), labelsAt: at}
	pt.contexts[c.key] = c
	pt.lastCtx = c
	return c
}

// labelPair is a label, for sorting.
type labelPair struct{ k, v string }

// contextKey appends to b the key of wf and labels: each string after
// its length (so that no two contexts share a key, whatever bytes their
// strings hold), workflow id and name, whether labels is nil, and the
// labels in key order — labelsKey when not "" (their canonical form,
// schemas.WorkflowEventData.LabelsKey, the same bytes). It returns the key
// and where its labels begin. pairs is scratch room, left empty.
func contextKey(b []byte, pairs *[]labelPair, wf schemas.Workflow, labels map[string]string, labelsKey string) ([]byte, int) {
	str := func(b []byte, s string) []byte { return append(binary.AppendUvarint(b, uint64(len(s))), s...) }
	b = str(b, wf.ID)
	b = str(b, wf.Name)
	if labels == nil {
		b = append(b, 0)
		return b, len(b)
	}
	b = append(b, 1) // an empty map is not nil
	at := len(b)
	if labelsKey != "" {
		return append(b, labelsKey...), at
	}
	ps := (*pairs)[:0]
	for k, v := range labels {
		ps = append(ps, labelPair{k, v})
	}
	slices.SortFunc(ps, func(x, y labelPair) int { return strings.Compare(x.k, y.k) })
	for _, p := range ps {
		b = str(str(b, p.k), p.v)
	}
	clear(ps)
	*pairs = ps[:0]
	return b, at
}

// sameContext says whether c holds wf and labels, whose canonical form
// is labelsKey when not "".
func sameContext(c *runContext, wf schemas.Workflow, labels map[string]string, labelsKey string) bool {
	if c == nil {
		return wf == (schemas.Workflow{}) && labels == nil
	}
	if c.wf != wf || (c.labels == nil) != (labels == nil) {
		return false
	}
	if labelsKey != "" {
		return c.labelsKey() == labelsKey
	}
	return maps.Equal(c.labels, labels)
}

// keyOf builds runKey(tenant, run) in buf, so a lookup builds no string.
func keyOf(buf []byte, tenant, runID string) []byte {
	buf = append(buf[:0], tenant...)
	buf = append(buf, '/')
	return append(buf, runID...)
}

// compareKeys orders keys as strings (the changelog keys' order).
func compareKeys(a, b string) int { return strings.Compare(a, b) }
