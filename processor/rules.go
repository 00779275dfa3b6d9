package processor

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"sync"

	"github.com/exospherehost/exo-alerts/internal/ktable"
	"github.com/exospherehost/exo-alerts/processor/condition"
	"github.com/exospherehost/exo-alerts/schemas"
)

// rule is a rule snapshot with its compiled condition.
type rule struct {
	schemas.RuleRecord
	cond *condition.Program
}

// ruleIndex indexes active rules by tenant, then alert type, so matching an
// event costs only its own tenant's rules of its type.
type ruleIndex struct {
	log *slog.Logger

	mu    sync.RWMutex
	byKey map[string]*rule                       // topic key -> rule
	index map[string]map[string]map[string]*rule // tenant -> type -> rule id -> rule
}

func newRuleIndex(log *slog.Logger) *ruleIndex {
	return &ruleIndex{log: log, byKey: map[string]*rule{}, index: map[string]map[string]map[string]*rule{}}
}

func decodeRule(b []byte) (schemas.RuleRecord, error) {
	var r schemas.RuleRecord
	err := json.Unmarshal(b, &r)
	return r, err
}

// apply is the rules table's change hook.
func (x *ruleIndex) apply(c ktable.Change[schemas.RuleRecord]) {
	var next *rule
	if c.Value != nil && c.Value.IsActive {
		cond, err := condition.Compile(c.Value.Condition)
		if err != nil {
			// The control plane refuses such rules; a rule that still gets
			// here is skipped loudly rather than matching everything.
			x.log.Error("rule condition does not compile; rule ignored", "rule_id", c.Value.ID, "tenant_id", c.Value.TenantID, "err", err)
		} else {
			next = &rule{RuleRecord: *c.Value, cond: cond}
		}
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if old := x.byKey[c.Key]; old != nil {
		delete(x.index[old.TenantID][old.EventType], old.ID)
		delete(x.byKey, c.Key)
	}
	if next == nil {
		return
	}
	x.byKey[c.Key] = next
	byType := x.index[next.TenantID]
	if byType == nil {
		byType = map[string]map[string]*rule{}
		x.index[next.TenantID] = byType
	}
	if byType[next.EventType] == nil {
		byType[next.EventType] = map[string]*rule{}
	}
	byType[next.EventType][next.ID] = next
}

// candidates returns the active rules of tenant watching alertType.
func (x *ruleIndex) candidates(tenant, alertType string) []*rule {
	x.mu.RLock()
	defer x.mu.RUnlock()
	m := x.index[tenant][alertType]
	out := make([]*rule, 0, len(m))
	for _, r := range m {
		out = append(out, r)
	}
	return out
}

// AlertID is the deterministic id of the alert of rule for event: every
// retry and replay carries the same id, so receivers can deduplicate.
func AlertID(tenant, ruleID, eventID string) string {
	sum := sha256.Sum256([]byte(tenant + "\x00" + ruleID + "\x00" + eventID))
	return "alrt_" + hex.EncodeToString(sum[:16])
}

// len is the number of active rules.
func (x *ruleIndex) len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.byKey)
}
