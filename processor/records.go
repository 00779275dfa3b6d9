// Output record encoding: engine output turned into delivery, run-state,
// aggregate-input and rule-error records, and the copies of invalid events.

package processor

import (
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/processor/engine"
	"github.com/exospherehost/exo-alerts/schemas"
)

// records turns engine output of partition part into Kafka records.
func (p *Processor) records(part int32, out engine.Output) []*kgo.Record {
	return p.appendRecords(make([]*kgo.Record, 0, len(out.Deliveries)+len(out.States)+len(out.RuleErrors)+len(out.Inputs)), part, out)
}

// appendRecords appends the Kafka records of engine output of partition
// part to recs. Their memory comes from the processor's arena.
func (p *Processor) appendRecords(recs []*kgo.Record, part int32, out engine.Output) []*kgo.Record {
	for i := range out.Deliveries {
		recs = append(recs, p.deliveryRecord(&out.Deliveries[i]))
	}
	for _, s := range out.States {
		rec := p.arena.record()
		rec.Topic, rec.Key, rec.Partition = p.cfg.Topics.RunState, p.arena.bytes(s.Key), part
		if s.Value != nil {
			value, _ := s.Value.AppendJSON(p.arena.room(runStateBytes)) // json.Marshal's bytes, without reflection
			rec.Value = p.arena.take(value)
		}
		recs = append(recs, rec)
	}
	for i := range out.Inputs {
		in := &out.Inputs[i]
		value, _ := in.AppendJSON(make([]byte, 0, inputBytes)) // json.Marshal's bytes, without reflection
		key := schemas.RecordKey(in.TenantID, in.RuleID)
		recs = append(recs, &kgo.Record{Topic: p.cfg.Topics.AggregateInput, Key: key, Value: value, Partition: aggregatePartition(key, p.topo.inputs)})
	}
	for _, re := range out.RuleErrors {
		value, _ := re.AppendJSON(nil) // json.Marshal's bytes, without reflection
		recs = append(recs, &kgo.Record{Topic: p.cfg.Topics.RuleErrors, Key: schemas.RecordKey(re.TenantID, re.RuleID), Value: value})
	}
	return recs
}

// deliveryRecord is the record of d on the deliveries topic, in the
// processor's arena: its bytes are deliveryJSON's.
func (p *Processor) deliveryRecord(d *schemas.DeliveryRecord) *kgo.Record {
	rec := p.arena.record()
	rec.Topic, rec.Key = p.cfg.Topics.Deliveries, p.arena.key(d.TenantID, d.EndpointID)
	value, _ := d.AppendJSON(p.arena.room(deliveryHeadBytes + len(d.Payload)))
	rec.Value = p.arena.take(value)
	rec.Headers = p.arena.headers(2)
	rec.Headers[0] = kgo.RecordHeader{Key: schemas.HeaderAlertID, Value: p.arena.bytes(d.AlertID)}
	rec.Headers[1] = kgo.RecordHeader{Key: schemas.HeaderEventType, Value: p.arena.bytes(d.EventType)}
	return rec
}

// deliveryJSON is json.Marshal(d), written by hand: the engine's payload
// (WebhookPayload.AppendJSON, compact JSON already) is copied as it is,
// where encoding/json would copy it byte by byte through its compactor (a
// sixth of the processor's encoding time) after walking the record by
// reflection. TestDeliveryJSONIsJSONMarshal and schemas'
// TestAppendJSONIsJSONMarshal hold the bytes equal to json.Marshal's.
func deliveryJSON(d *schemas.DeliveryRecord) []byte {
	b, _ := d.AppendJSON(make([]byte, 0, deliveryHeadBytes+len(d.Payload)))
	return b
}

// Room allotted for each record up front, so that appending it allocates
// once: a delivery's members other than its payload, a run state and an
// aggregate input are rarely longer.
const (
	deliveryHeadBytes = 320
	runStateBytes     = 384
	inputBytes        = 320
)

func (p *Processor) invalidRecord(r *kgo.Record, reason error) *kgo.Record {
	headers := append([]kgo.RecordHeader{}, r.Headers...)
	value := r.Value
	if len(value) > p.cfg.MaxEventBytes {
		// An oversized record's copy, with headers, could exceed what the
		// broker takes, and the transaction would fail forever. The copy
		// says why and where the original is; the original stays on the
		// events topic.
		value = value[:p.cfg.MaxEventBytes]
		headers = append(headers, kgo.RecordHeader{Key: schemas.HeaderInvalidTruncatedFrom, Value: []byte(strconv.Itoa(len(r.Value)))})
	}
	headers = append(headers,
		kgo.RecordHeader{Key: schemas.HeaderInvalidReason, Value: []byte(reason.Error())},
		kgo.RecordHeader{Key: schemas.HeaderOrigTopic, Value: []byte(r.Topic)},
		kgo.RecordHeader{Key: schemas.HeaderOrigPartition, Value: []byte(strconv.Itoa(int(r.Partition)))},
		kgo.RecordHeader{Key: schemas.HeaderOrigOffset, Value: []byte(strconv.FormatInt(r.Offset, 10))},
	)
	return &kgo.Record{Topic: p.cfg.Topics.EventsInvalid, Key: r.Key, Value: value, Headers: headers}
}
