package schemas

import "encoding/json"

// DecodeResult validates doc against the result schema and decodes it, with
// the same answers as Validate followed by json.Unmarshal (errors: ErrNotJSON,
// *ValidationError, *DecodeError). Like DecodeWorkflowEvent it takes a
// hand-written fast check for ordinary records and the schema validator for
// the rest (FuzzDecodeResultAgreesWithSchema holds the two together).
func DecodeResult(doc []byte) (*ResultRecord, error) {
	return decode(KindResult, doc, fastResult)
}

// Member bits of a result's scan.
const (
	rAlertID = 1 << iota
	rDeliveryID
	rTenantID
	rRuleID
	rEndpointID
	rAttempt
	rOutcome
	rLatency
	rAttemptedAt
	rRuleVersion
	rStatusCode
	rErrorClass
	rError
	rExcerpt
)

const requiredResultMembers = rAlertID | rDeliveryID | rTenantID | rRuleID | rEndpointID |
	rAttempt | rOutcome | rLatency | rAttemptedAt

// resultMembers maps each member of result.schema.json (additionalProperties
// false) to its bit and JSON kind.
var resultMembers = map[string]struct {
	bit  int
	kind string
}{
	"alert_id": {rAlertID, `"`}, "delivery_id": {rDeliveryID, `"`}, "tenant_id": {rTenantID, `"`},
	"rule_id": {rRuleID, `"`}, "endpoint_id": {rEndpointID, `"`}, "attempt": {rAttempt, `0`},
	"outcome": {rOutcome, `"`}, "latency_ms": {rLatency, `0`}, "rule_version": {rRuleVersion, `0`},
	"status_code": {rStatusCode, `0`}, "error_class": {rErrorClass, `"`}, "error": {rError, `"`},
	"response_excerpt": {rExcerpt, `"`},
}

// fastResult reports true only when doc certainly satisfies
// result.schema.json; see fastWorkflowEvent.
func fastResult(doc []byte) (*ResultRecord, bool) {
	var res ResultRecord
	if json.Unmarshal(doc, &res) != nil || duplicateMember(doc) != nil {
		return nil, false
	}
	s := scanner{b: doc}
	if s.kind() != '{' {
		return nil, false
	}
	err := s.members(func(name string) error {
		if name == "attempted_at" {
			s.seen |= rAttemptedAt
			return s.wantTime(false)
		}
		m, ok := resultMembers[name]
		if !ok {
			return errNotFast
		}
		s.seen |= m.bit
		return s.want(m.kind)
	})
	if err != nil || s.seen&requiredResultMembers != requiredResultMembers {
		return nil, false
	}
	return &res, resultValuesValid(&res, s.seen)
}

func resultValuesValid(r *ResultRecord, seen int) bool {
	switch r.Outcome {
	case OutcomeDelivered, OutcomeRetry, OutcomeEndpointGone, OutcomeDead:
	default:
		return false
	}
	return alertIDValid(r.AlertID) && tenantIDValid(r.TenantID) &&
		runes(r.DeliveryID, 1, 256) && runes(r.RuleID, 1, 256) && runes(r.EndpointID, 1, 256) &&
		r.Attempt >= 1 && r.Attempt <= 1<<31-1 &&
		r.LatencyMS >= 0 &&
		(seen&rRuleVersion == 0 || r.RuleVersion >= 1) &&
		(seen&rStatusCode == 0 || r.StatusCode >= 100 && r.StatusCode <= 599) &&
		(seen&rErrorClass == 0 || runes(r.ErrorClass, 1, 64)) &&
		(seen&rError == 0 || runes(r.Error, 1, 4096)) &&
		(seen&rExcerpt == 0 || runes(r.ResponseExcerpt, 1, 4096))
}

// alertIDValid: ^alrt_[0-9a-f]{32}$
func alertIDValid(s string) bool {
	if len(s) != len("alrt_")+32 || s[:5] != "alrt_" {
		return false
	}
	for i := 5; i < len(s); i++ {
		c := s[i]
		if hex := '0' <= c && c <= '9' || 'a' <= c && c <= 'f'; !hex {
			return false
		}
	}
	return true
}
