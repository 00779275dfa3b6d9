package aggregate

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/exospherehost/exo-alerts/schemas"
)

// The changelog (processor.aggregate-state) holds, per partition, one
// record per group (key tenant/rule/grp_…), one per rule (tenant/rule: its
// spec and drop counts) and the watermarks (schemas.WatermarksKey). Assign
// rebuilds from them exactly the state that wrote them: a restored
// partition decides as the one it replaces, with the same ids.

func msTime(ms int64) *time.Time {
	t := time.UnixMilli(ms).UTC()
	return &t
}

func timePtr(t time.Time) *time.Time {
	t = t.UTC()
	return &t
}

func encodeRule(st *ruleStat) []byte {
	b, _ := json.Marshal(schemas.AggregateStateRecord{Rule: &schemas.AggregateRuleState{
		TenantID: st.tenant, RuleID: st.rule, Spec: st.spec, Dropped: st.dropped, Late: st.late}})
	return b
}

func encodeWatermarks(sources map[int32]time.Time) []byte {
	w := &schemas.AggregateWatermarks{Sources: map[string]time.Time{}}
	for s, t := range sources {
		w.Sources[sourceKey(s)] = t
	}
	b, _ := json.Marshal(schemas.AggregateStateRecord{Watermarks: w})
	return b
}

// Assign restores partition p from its processor.aggregate-state records, in
// log order (a later record of a key replaces an earlier one; a nil Value
// deletes it). The restored partition decides as the one that wrote them.
// A record that does not decode is skipped. Rule changes since are applied
// by the next Tick or Input.
func (e *Engine) Assign(p int32, recs []StateChange) {
	latest := map[string][]byte{}
	for _, r := range recs {
		if r.Value == nil {
			delete(latest, r.Key)
		} else {
			latest[r.Key] = r.Value
		}
	}
	pt := newPartition(p)
	keys := make([]string, 0, len(latest))
	for k := range latest {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		var rec schemas.AggregateStateRecord
		if err := json.Unmarshal(latest[k], &rec); err != nil {
			continue
		}
		switch {
		case rec.Watermarks != nil:
			for s, t := range rec.Watermarks.Sources {
				if n, err := strconv.ParseInt(s, 10, 32); err == nil {
					pt.sources[int32(n)] = t.UTC()
				}
			}
		case rec.Rule != nil:
			r := rec.Rule
			st := &ruleStat{tenant: r.TenantID, rule: r.RuleID, spec: r.Spec, dropped: r.Dropped, late: r.Late, holdMS: -1, repeatMS: -1}
			if rs, ok := e.rule(r.TenantID, r.RuleID); ok && rs.spec == r.Spec {
				st.holdMS, st.repeatMS = rs.rec.HoldMS, rs.rec.RepeatIntervalMS
			}
			pt.rules[k] = st
		case rec.Group != nil:
			if en := e.restoreGroup(k, rec.Group); en != nil {
				pt.groups[k] = en
			}
		}
	}
	pt.e = e.effective(pt)
	for _, k := range keys {
		en := pt.groups[k]
		if en == nil {
			continue
		}
		rk := en.ruleKey()
		st := pt.rules[rk]
		if st == nil {
			st = &ruleStat{tenant: en.g.Tenant, rule: en.g.Rule, spec: en.spec, holdMS: -1, repeatMS: -1}
			pt.rules[rk] = st
		}
		st.groups++
		pt.byState[en.g.state]++
		en.due = en.nextDue()
	}
	pt.rebuildHeap()
	e.parts[p] = pt
}

func (e *Engine) restoreGroup(key string, s *schemas.AggregateGroupState) *entry {
	if s.BucketMS <= 0 {
		return nil
	}
	sp := Spec{Kind: Count, WindowMS: s.BucketMS * Buckets}
	for _, b := range s.Buckets {
		if b.S != 0 || b.F != 0 {
			sp.Kind = Rate
		}
	}
	if rs, ok := e.rule(s.TenantID, s.RuleID); ok && rs.spec == s.Spec {
		sp = specFor(&rs.rec)
	}
	g := NewGroup(s.TenantID, s.RuleID, s.GroupKey, sp)
	g.win.bucketMS = s.BucketMS
	g.win.restore(s.Buckets)
	g.seen, g.evaluated = true, s.Evaluated
	switch s.State {
	case schemas.AggregateStateFiring:
		g.state = Firing
	case schemas.AggregateStateResolving:
		g.state = Resolving
	}
	if g.state != Inactive {
		if s.FiringSince != nil {
			g.firingSince = s.FiringSince.UTC()
		}
		if s.NotifiedAt != nil {
			g.notifiedAtMS = s.NotifiedAt.UnixMilli()
		}
		g.incident, g.repeats = s.IncidentID, s.Repeats
	}
	if g.state == Resolving && s.FalseSince != nil {
		g.falseSinceMS = s.FalseSince.UnixMilli()
	}
	if s.LastResolvedAt != nil {
		g.lastResolvedMS = s.LastResolvedAt.UnixMilli()
	}
	return &entry{key: key, g: *g, spec: s.Spec, values: s.Group, last: s.Last, notify: s.Notify, due: noDue}
}

// groupBy returns the group_by paths of a group's rule, which its spec
// fixes; "group_by.<n>" when no rule of that spec was seen by this process
// (a rule deleted while its partition had no owner).
func (e *Engine) groupBy(en *entry) []string {
	if p, ok := e.paths[en.spec]; ok && len(p) == len(en.values) {
		return p
	}
	paths := make([]string, len(en.values))
	for i := range paths {
		paths[i] = fmt.Sprintf("group_by.%d", i)
	}
	return paths
}

// groupMap is a group's values by group_by path, and its labels (the
// labels.* paths by label name).
func (e *Engine) groupMap(en *entry) (group, labels map[string]string) {
	group, labels = map[string]string{}, map[string]string{}
	for i, p := range e.groupBy(en) {
		group[p] = en.values[i]
		if name, ok := strings.CutPrefix(p, "labels."); ok {
			labels[name] = en.values[i]
		}
	}
	return group, labels
}

// valueOf is a window's content as the API and the payload show it.
func valueOf(kind Kind, x Sums) schemas.AggregateValue {
	if kind == Rate {
		s, f := int64(min(x.S, math.MaxInt64)), int64(min(x.F, math.MaxInt64))
		v := schemas.AggregateValue{Succeeded: &s, Failed: &f}
		if runs := x.S + x.F; runs > 0 {
			r := math.Round(float64(x.S)*10_000/float64(runs)) / 10_000
			v.Ratio = &r
		}
		return v
	}
	n := int64(min(x.N, math.MaxInt64))
	return schemas.AggregateValue{Matched: &n}
}

// current is the group's window now: at the later of its head and E.
func (pt *partition) current(en *entry) Sums {
	c := en.g.win.head
	if !pt.e.IsZero() {
		c = max(c, en.g.win.index(pt.e.UnixMilli()))
	}
	return en.g.win.sumsAt(c)
}

func (e *Engine) statusGroup(pt *partition, en *entry) []byte {
	g := &en.g
	group, _ := e.groupMap(en)
	info := &schemas.AggregateGroupInfo{TenantID: g.Tenant, RuleID: g.Rule, RuleVersion: 1, GroupKey: g.Key, Group: group,
		State: g.state.String(), IncidentID: g.incident, Value: valueOf(g.Spec.Kind, pt.current(en))}
	if rs, ok := e.rule(g.Tenant, g.Rule); ok && rs.rec.Version > 0 {
		info.RuleVersion = rs.rec.Version
	} else if en.notify != nil && en.notify.RuleVersion > 0 {
		info.RuleVersion = en.notify.RuleVersion
	}
	if g.state != Inactive {
		info.FiringSince = timePtr(g.firingSince)
	}
	if g.state == Resolving {
		info.ResolvingSince = msTime(g.falseSinceMS)
	}
	if g.lastResolvedMS != 0 {
		info.LastResolvedAt = msTime(g.lastResolvedMS)
	}
	if en.last != nil && !en.last.At.IsZero() {
		info.LastEventAt = timePtr(en.last.At)
	}
	if !pt.e.IsZero() {
		// Every boundary before E's bucket is decided, even those a group
		// had no reason to visit.
		info.EvaluatedAt = msTime(g.win.end(max(g.evaluated, g.win.index(pt.e.UnixMilli())-1)))
	}
	b, _ := json.Marshal(schemas.AggregateGroupStatus{Group: info})
	return b
}

func statusRule(st *ruleStat) []byte {
	b, _ := json.Marshal(schemas.AggregateGroupStatus{Rule: &schemas.AggregateRuleSummary{
		TenantID: st.tenant, RuleID: st.rule, Groups: int64(st.groups), Dropped: st.dropped, Late: st.late}})
	return b
}
