package schemas

import "encoding/json"

// DecodeDelivery validates doc against the delivery schema (payload
// included) and decodes it, with the same answers as Validate followed by
// json.Unmarshal (errors: ErrNotJSON, *ValidationError, *DecodeError). Like
// DecodeWorkflowEvent it takes a hand-written fast check for ordinary
// records and the schema validator for the rest
// (FuzzDecodeDeliveryAgreesWithSchema holds the two together).
func DecodeDelivery(doc []byte) (*DeliveryRecord, error) {
	return decode(KindDelivery, doc, fastDelivery)
}

// Member bits of a delivery's scan.
const (
	dAlertID = 1 << iota
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
	pThresholdNull
)

const requiredDeliveryMembers = dAlertID | dTenantID | dRuleID | dEndpointID | dEventType | dMaxAttempts |
	dCreatedAt | dPayload | pType | pTimestamp | pData | pAlertID | pTenantID | pRule | pEvent |
	pWorkflow | pRun | pThreshold | pError | pLabels | pRuleID | pRuleName | pEventID | pEventType |
	pOccurredAt | pWorkflowID | pWorkflowName | pRunID

// fastDelivery reports true only when doc certainly satisfies
// delivery.schema.json; see fastWorkflowEvent.
func fastDelivery(doc []byte) (*DeliveryRecord, bool) {
	var d DeliveryRecord
	if json.Unmarshal(doc, &d) != nil || duplicateMember(doc) != nil {
		return nil, false
	}
	var p WebhookPayload
	if json.Unmarshal(d.Payload, &p) != nil {
		return nil, false
	}
	s := scanner{b: doc}
	if s.delivery() != nil || s.seen&requiredDeliveryMembers != requiredDeliveryMembers {
		return nil, false
	}
	return &d, deliveryValuesValid(&d, &p, s.seen)
}

func (s *scanner) delivery() error {
	if s.kind() != '{' {
		return errNotFast
	}
	return s.members(func(name string) error {
		bit, kind := 0, `"`
		switch name {
		case "alert_id":
			bit = dAlertID
		case "tenant_id":
			bit = dTenantID
		case "rule_id":
			bit = dRuleID
		case "endpoint_id":
			bit = dEndpointID
		case "event_type":
			bit = dEventType
		case "severity":
			bit = dSeverity
		case "max_attempts":
			bit, kind = dMaxAttempts, `0`
		case "rule_version":
			bit, kind = dRuleVersion, `0`
		case "created_at":
			s.seen |= dCreatedAt
			return s.wantTime(false)
		case "payload":
			s.seen |= dPayload
			return s.payload()
		default:
			return errNotFast
		}
		s.seen |= bit
		return s.want(kind)
	})
}

func (s *scanner) payload() error {
	if s.kind() != '{' {
		return errNotFast
	}
	return s.members(func(name string) error {
		switch name {
		case "type":
			s.seen |= pType
			return s.want(`"`)
		case "timestamp":
			s.seen |= pTimestamp
			return s.wantTime(false)
		case "data":
			s.seen |= pData
			return s.payloadData()
		}
		return errNotFast
	})
}

func (s *scanner) payloadData() error {
	if s.kind() != '{' {
		return errNotFast
	}
	return s.members(func(name string) error {
		switch name {
		case "alert_id":
			s.seen |= pAlertID
			return s.want(`"`)
		case "tenant_id":
			s.seen |= pTenantID
			return s.want(`"`)
		case "rule":
			s.seen |= pRule
			return s.object(map[string]int{"id": pRuleID, "name": pRuleName}, nil)
		case "event":
			s.seen |= pEvent
			return s.object(map[string]int{"id": pEventID, "type": pEventType}, map[string]int{"occurred_at": pOccurredAt})
		case "workflow":
			s.seen |= pWorkflow
			return s.object(map[string]int{"id": pWorkflowID, "name": pWorkflowName}, nil)
		case "run":
			s.seen |= pRun
			return s.payloadRun()
		case "threshold_ms":
			s.seen |= pThreshold
			if s.kind() == 'n' {
				s.seen |= pThresholdNull
			}
			return s.want(`0n`)
		case "error":
			s.seen |= pError
			if s.kind() == 'n' {
				s.skip()
				return nil
			}
			return s.object(map[string]int{"code": 0, "message": 0}, nil)
		case "labels":
			s.seen |= pLabels
			return s.labels()
		}
		return errNotFast
	})
}

// object consumes an object whose members are the strings and timestamps
// named (with the bits to record), and nothing else.
func (s *scanner) object(strs, times map[string]int) error {
	if s.kind() != '{' {
		return errNotFast
	}
	return s.members(func(name string) error {
		if bit, ok := strs[name]; ok {
			s.seen |= bit
			return s.want(`"`)
		}
		if bit, ok := times[name]; ok {
			s.seen |= bit
			return s.wantTime(false)
		}
		return errNotFast
	})
}

func (s *scanner) payloadRun() error {
	if s.kind() != '{' {
		return errNotFast
	}
	return s.members(func(name string) error {
		switch name {
		case "id":
			s.seen |= pRunID
			return s.want(`"`)
		case "status":
			s.seen |= pRunStatus
			return s.want(`"`)
		case "started_at", "finished_at":
			return s.wantTime(false)
		case "duration_ms":
			return s.want(`0`)
		}
		return errNotFast
	})
}

func deliveryValuesValid(d *DeliveryRecord, p *WebhookPayload, seen int) bool {
	if !alertType(d.EventType) || !alertType(p.Type) {
		return false
	}
	switch {
	case seen&dSeverity == 0:
	case d.Severity == "critical", d.Severity == "error", d.Severity == "warning", d.Severity == "info":
	default:
		return false
	}
	// The payload's if/then/else: a threshold exactly for duration alerts.
	if (p.Type == TypeRunDurationExceeded) == (seen&pThresholdNull != 0) {
		return false
	}
	pd := &p.Data
	return alertIDValid(d.AlertID) && tenantIDValid(d.TenantID) &&
		runes(d.RuleID, 1, 256) && runes(d.EndpointID, 1, 256) &&
		d.MaxAttempts >= 1 && d.MaxAttempts <= 50 &&
		(seen&dRuleVersion == 0 || d.RuleVersion >= 1) &&
		alertIDValid(pd.AlertID) && tenantIDValid(pd.TenantID) &&
		runes(pd.Rule.ID, 1, 256) && runes(pd.Rule.Name, 1, 256) &&
		runes(pd.Event.ID, 1, 256) && runes(pd.Event.Type, 1, 256) &&
		runes(pd.Workflow.ID, 1, 256) && runes(pd.Workflow.Name, 1, 256) &&
		runes(pd.Run.ID, 1, 256) &&
		(seen&pRunStatus == 0 || runes(pd.Run.Status, 1, 64)) &&
		(pd.Run.DurationMS == nil || *pd.Run.DurationMS >= 0) &&
		(pd.ThresholdMS == nil || *pd.ThresholdMS >= 1) &&
		(pd.Error == nil || runes(pd.Error.Code, 0, 256) && runes(pd.Error.Message, 0, 65536)) &&
		labelsValid(pd.Labels)
}

// alertType: the enum of the delivery's event_type and the payload's type.
func alertType(t string) bool {
	return t == TypeWebhookTest || IsAlertType(t)
}
