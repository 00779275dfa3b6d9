package schemas

import "bytes"

// DecodeDelivery validates doc against the delivery schema (payload
// included) and decodes it, with the same answers as Validate followed by
// json.Unmarshal (errors: ErrNotJSON, *ValidationError, *DecodeError). Like
// DecodeWorkflowEvent it takes a one-pass decoder for ordinary records and
// the schema validator for the rest (FuzzDecodeDeliveryAgreesWithSchema
// holds the two together).
func DecodeDelivery(doc []byte) (*DeliveryRecord, error) {
	return decode(KindDelivery, doc, fastDelivery)
}

// Member bits of a delivery's pass.
const (
	dAlertID uint64 = 1 << iota
	dTenantID
	dRuleID
	dEndpointID
	dEventType
	dMaxAttempts
	dCreatedAt
	dPayload
	dRuleVersion
	dSeverity
	// payload
	pType
	pTimestamp
	pData
	pAlertID
	pTenantID
	pRule
	pEvent
	pWorkflow
	pRun
	pThreshold
	pError
	pLabels
	pRuleID
	pRuleName
	pEventID
	pEventType
	pOccurredAt
	pWorkflowID
	pWorkflowName
	pRunID
	pRunStatus
	pRunStarted
	pRunFinished
	pRunDuration
	pErrCode
	pErrMessage
	pThresholdNull
	pDurationType
)

const requiredDeliveryMembers = dAlertID | dTenantID | dRuleID | dEndpointID | dEventType | dMaxAttempts |
	dCreatedAt | dPayload | pType | pTimestamp | pData | pAlertID | pTenantID | pRule | pEvent |
	pWorkflow | pRun | pThreshold | pError | pLabels | pRuleID | pRuleName | pEventID | pEventType |
	pOccurredAt | pWorkflowID | pWorkflowName | pRunID

// fastDelivery decodes doc in one pass and reports true only when doc
// certainly satisfies delivery.schema.json and the record is what
// encoding/json decodes from it; see fastWorkflowEvent. The payload is
// checked in place, member by member, and kept as its bytes.
func fastDelivery(doc []byte) (*DeliveryRecord, bool) {
	d := new(DeliveryRecord)
	p := pass{b: doc}
	if !p.delivery(d, true) || !p.end() || p.seen&requiredDeliveryMembers != requiredDeliveryMembers {
		return nil, false
	}
	// The payload's if/then/else: a threshold exactly for duration alerts.
	if (p.seen&pDurationType != 0) == (p.seen&pThresholdNull != 0) {
		return nil, false
	}
	if !alertIDValid(d.AlertID) || !tenantIDValid(d.TenantID) ||
		!runes(d.RuleID, 1, 256) || !runes(d.EndpointID, 1, 256) ||
		d.MaxAttempts < 1 || d.MaxAttempts > 50 || p.seen&dRuleVersion != 0 && d.RuleVersion < 1 {
		return nil, false
	}
	return d, true
}

// The enums of a delivery, returned without allocating.
var (
	alertTypes = [...]string{TypeRunFailed, TypeRunSucceeded, TypeRunStarted, TypeRunDurationExceeded,
		TypeAlertFiring, TypeAlertResolved, TypeTenantNotice, TypeWebhookTest}
	severities = [...]string{"critical", "error", "warning", "info"}
)

// enum consumes an unescaped string that is one of values and returns it.
// An escaped one is left to the validator.
func (p *pass) enum(values []string) (string, bool) {
	raw, escaped, ok := p.str()
	if !ok || escaped {
		return "", false
	}
	for _, s := range values {
		if string(raw) == s {
			return s, true
		}
	}
	return "", false
}

// delivery consumes a delivery record into d. With full, the payload is
// checked member by member against the webhook payload schema and copied;
// without, it is only checked to be one well-formed object (see
// DecodeDeliveryEnvelope) and kept as a slice of p.b.
func (p *pass) delivery(d *DeliveryRecord, full bool) bool {
	return p.members(func(name []byte) bool {
		var ok bool
		switch string(name) {
		case "alert_id":
			d.AlertID, ok = p.string()
			return ok && p.set(dAlertID)
		case "tenant_id":
			d.TenantID, ok = p.string()
			return ok && p.set(dTenantID)
		case "rule_id":
			d.RuleID, ok = p.string()
			return ok && p.set(dRuleID)
		case "endpoint_id":
			d.EndpointID, ok = p.string()
			return ok && p.set(dEndpointID)
		case "event_type":
			d.EventType, ok = p.enum(alertTypes[:])
			return ok && p.set(dEventType)
		case "severity":
			d.Severity, ok = p.enum(severities[:])
			return ok && p.set(dSeverity)
		case "max_attempts":
			var n int64
			n, ok = p.int64()
			d.MaxAttempts = int(n)
			return ok && n >= 1 && n <= 50 && p.set(dMaxAttempts)
		case "rule_version":
			d.RuleVersion, ok = p.int64()
			return ok && p.set(dRuleVersion)
		case "created_at":
			d.CreatedAt, ok = p.time()
			return ok && p.set(dCreatedAt)
		case "payload":
			if !p.set(dPayload) || p.peek() != '{' {
				return false
			}
			start := p.i
			if !full {
				if !p.skip(0) {
					return false
				}
				// Capacity capped: an append to the payload cannot write
				// into the rest of the record.
				d.Payload = p.b[start:p.i:p.i]
				return true
			}
			if !p.payload() {
				return false
			}
			// encoding/json keeps a copy of the value's bytes.
			d.Payload = bytes.Clone(p.b[start:p.i])
			return true
		}
		return false
	})
}

func (p *pass) payload() bool {
	return p.members(func(name []byte) bool {
		switch string(name) {
		case "type":
			t, ok := p.enum(alertTypes[:])
			if t == TypeRunDurationExceeded {
				p.seen |= pDurationType
			}
			// Aggregate episodes and notices are left to the validator
			// (they carry members the pass does not read).
			return ok && t != TypeAlertFiring && t != TypeAlertResolved && t != TypeTenantNotice && p.set(pType)
		case "timestamp":
			return p.set(pTimestamp) && p.timestamp()
		case "data":
			return p.set(pData) && p.payloadData()
		}
		return false
	})
}

// timestamp consumes a string that is a timestamp of the schemas, without
// decoding it.
func (p *pass) timestamp() bool {
	raw, escaped, ok := p.str()
	return ok && !escaped && timestampValid(raw)
}

// textRunes consumes a string whose decoded text is lo to hi code points
// long.
func (p *pass) textRunes(lo, hi int) bool {
	raw, escaped, ok := p.str()
	if !ok {
		return false
	}
	return runesOf(p.text(raw, escaped), lo, hi)
}

func (p *pass) payloadData() bool {
	return p.members(func(name []byte) bool {
		switch string(name) {
		case "alert_id":
			raw, escaped, ok := p.str()
			return ok && !escaped && alertIDValid(raw) && p.set(pAlertID)
		case "tenant_id":
			raw, escaped, ok := p.str()
			return ok && !escaped && tenantIDValid(raw) && p.set(pTenantID)
		case "rule":
			return p.set(pRule) && p.members(func(name []byte) bool {
				switch string(name) {
				case "id":
					return p.set(pRuleID) && p.textRunes(1, 256)
				case "name":
					return p.set(pRuleName) && p.textRunes(1, 256)
				}
				return false
			})
		case "event":
			return p.set(pEvent) && p.members(func(name []byte) bool {
				switch string(name) {
				case "id":
					return p.set(pEventID) && p.textRunes(1, 256)
				case "type":
					return p.set(pEventType) && p.textRunes(1, 256)
				case "occurred_at":
					return p.set(pOccurredAt) && p.timestamp()
				}
				return false
			})
		case "workflow":
			return p.set(pWorkflow) && p.members(func(name []byte) bool {
				switch string(name) {
				case "id":
					return p.set(pWorkflowID) && p.textRunes(1, 256)
				case "name":
					return p.set(pWorkflowName) && p.textRunes(1, 256)
				}
				return false
			})
		case "run":
			return p.set(pRun) && p.payloadRun()
		case "threshold_ms":
			if !p.set(pThreshold) {
				return false
			}
			if p.null() {
				p.seen |= pThresholdNull
				return true
			}
			n, ok := p.int64()
			return ok && n >= 1
		case "error":
			if !p.set(pError) {
				return false
			}
			return p.null() || p.members(func(name []byte) bool {
				switch string(name) {
				case "code":
					return p.set(pErrCode) && p.textRunes(0, 256)
				case "message":
					return p.set(pErrMessage) && p.textRunes(0, 65536)
				}
				return false
			})
		case "labels":
			return p.set(pLabels) && p.payloadLabels()
		}
		return false
	})
}

func (p *pass) payloadRun() bool {
	return p.members(func(name []byte) bool {
		switch string(name) {
		case "id":
			return p.set(pRunID) && p.textRunes(1, 256)
		case "status":
			return p.set(pRunStatus) && p.textRunes(1, 64)
		case "started_at":
			return p.set(pRunStarted) && p.timestamp()
		case "finished_at":
			return p.set(pRunFinished) && p.timestamp()
		case "duration_ms":
			n, ok := p.int64()
			return ok && n >= 0 && p.set(pRunDuration)
		}
		return false
	})
}

// payloadLabels consumes the payload's labels (or null): keys 1-63 code
// points, values strings of at most 256, each key once. Escaped keys are
// left to the validator.
func (p *pass) payloadLabels() bool {
	if p.null() {
		return true
	}
	var keys nameSet
	return p.members(func(name []byte) bool {
		// str has checked that the name is UTF-8 without a NUL.
		if !runesOf(name, 1, 63) || !keys.add(name) {
			return false
		}
		raw, escaped, ok := p.str()
		return ok && runesOf(p.text(raw, escaped), 0, 256)
	})
}
