package schemas

// DecodeDeliveryEnvelope decodes a delivery record for sending it, without
// validating the payload's contents: the envelope (every member but the
// payload) is checked and decoded exactly as DecodeDelivery does, and the
// payload is only checked to be one well-formed JSON object — valid UTF-8,
// no repeated member names at any depth — and kept as its bytes. The
// payload aliases doc (no copy): the caller must not modify doc while it
// uses the record.
//
// It exists for the dispatcher, which sends the payload's bytes as they are
// (webhooks) or decodes them itself (Slack, PagerDuty): validating the whole
// payload on every attempt cost it more than anything else of its own per
// delivery, for documents their producers (the processor's typed encoder,
// the control plane's and recorder's outboxes, which validate) made valid.
//
// Its answers differ from DecodeDelivery's only where DecodeDelivery refuses
// a record for the payload's contents alone (a missing, extra or ill-typed
// member inside a well-formed payload object): such a record is accepted
// here. Every other refusal is the same, error for error — a document that
// is not JSON, an invalid or missing envelope member, a payload that is not
// an object or not well-formed — because whatever the one pass does not
// vouch for goes to DecodeDelivery (TestDecodeDeliveryEnvelopeAgrees and
// FuzzDecodeDeliveryEnvelopeAgrees hold the two together).
func DecodeDeliveryEnvelope(doc []byte) (DeliveryRecord, error) {
	var d DeliveryRecord
	if fastDeliveryEnvelope(doc, &d) {
		return d, nil
	}
	full, err := DecodeDelivery(doc)
	if err != nil {
		return DeliveryRecord{}, err
	}
	return *full, nil
}

// requiredEnvelopeMembers: the delivery schema's required members.
const requiredEnvelopeMembers = dAlertID | dTenantID | dRuleID | dEndpointID | dEventType | dMaxAttempts |
	dCreatedAt | dPayload

// fastDeliveryEnvelope decodes doc into d in one pass and reports true only
// when doc's envelope certainly satisfies delivery.schema.json, its payload
// is a well-formed object, and d is what encoding/json decodes from doc.
func fastDeliveryEnvelope(doc []byte, d *DeliveryRecord) bool {
	p := pass{b: doc}
	if !p.delivery(d, false) || !p.end() || p.seen&requiredEnvelopeMembers != requiredEnvelopeMembers {
		return false
	}
	return alertIDValid(d.AlertID) && tenantIDValid(d.TenantID) &&
		runes(d.RuleID, 1, 256) && runes(d.EndpointID, 1, 256) &&
		d.MaxAttempts >= 1 && d.MaxAttempts <= 50 && (p.seen&dRuleVersion == 0 || d.RuleVersion >= 1)
}
