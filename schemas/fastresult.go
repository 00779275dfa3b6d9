package schemas

// DecodeResult validates doc against the result schema and decodes it, with
// the same answers as Validate followed by json.Unmarshal (errors: ErrNotJSON,
// *ValidationError, *DecodeError). Like DecodeWorkflowEvent it takes a
// one-pass decoder for ordinary records and the schema validator for
// the rest (FuzzDecodeResultAgreesWithSchema holds the two together).
func DecodeResult(doc []byte) (*ResultRecord, error) {
	return decode(KindResult, doc, fastResult)
}

// Member bits of a result's pass.
const (
	rAlertID uint64 = 1 << iota
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

// outcomes is the enum of a result's outcome, returned without allocating.
var outcomes = [...]string{OutcomeDelivered, OutcomeRetry, OutcomeEndpointGone, OutcomeDead}

// fastResult decodes doc in one pass and reports true only when doc
// certainly satisfies result.schema.json and the record is what
// encoding/json decodes from it; see fastWorkflowEvent.
func fastResult(doc []byte) (*ResultRecord, bool) {
	r := new(ResultRecord)
	p := pass{b: doc}
	ok := p.members(func(name []byte) bool {
		var ok bool
		var n int64
		switch string(name) {
		case "alert_id":
			r.AlertID, ok = p.string()
			return ok && p.set(rAlertID)
		case "delivery_id":
			r.DeliveryID, ok = p.string()
			return ok && p.set(rDeliveryID)
		case "tenant_id":
			r.TenantID, ok = p.string()
			return ok && p.set(rTenantID)
		case "rule_id":
			r.RuleID, ok = p.string()
			return ok && p.set(rRuleID)
		case "endpoint_id":
			r.EndpointID, ok = p.string()
			return ok && p.set(rEndpointID)
		case "outcome":
			r.Outcome, ok = p.enum(outcomes[:])
			return ok && p.set(rOutcome)
		case "error_class":
			r.ErrorClass, ok = p.string()
			return ok && p.set(rErrorClass)
		case "error":
			r.Error, ok = p.string()
			return ok && p.set(rError)
		case "response_excerpt":
			r.ResponseExcerpt, ok = p.string()
			return ok && p.set(rExcerpt)
		case "attempt":
			n, ok = p.int64()
			r.Attempt = int(n)
			return ok && n >= 1 && n <= 1<<31-1 && p.set(rAttempt)
		case "status_code":
			n, ok = p.int64()
			r.StatusCode = int(n)
			return ok && n >= 100 && n <= 599 && p.set(rStatusCode)
		case "latency_ms":
			r.LatencyMS, ok = p.int64()
			return ok && p.set(rLatency)
		case "rule_version":
			r.RuleVersion, ok = p.int64()
			return ok && p.set(rRuleVersion)
		case "attempted_at":
			r.AttemptedAt, ok = p.time()
			return ok && p.set(rAttemptedAt)
		}
		return false
	})
	if !ok || !p.end() || p.seen&requiredResultMembers != requiredResultMembers || !resultValuesValid(r, p.seen) {
		return nil, false
	}
	return r, true
}

func resultValuesValid(r *ResultRecord, seen uint64) bool {
	return alertIDValid(r.AlertID) && tenantIDValid(r.TenantID) &&
		runes(r.DeliveryID, 1, 256) && runes(r.RuleID, 1, 256) && runes(r.EndpointID, 1, 256) &&
		r.LatencyMS >= 0 &&
		(seen&rRuleVersion == 0 || r.RuleVersion >= 1) &&
		(seen&rErrorClass == 0 || runes(r.ErrorClass, 1, 64)) &&
		(seen&rError == 0 || runes(r.Error, 1, 4096)) &&
		(seen&rExcerpt == 0 || runes(r.ResponseExcerpt, 1, 4096))
}

// alertIDValid: ^alrt_[0-9a-f]{32}$
func alertIDValid[T string | []byte](s T) bool {
	if len(s) != len("alrt_")+32 || string(s[:5]) != "alrt_" {
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
