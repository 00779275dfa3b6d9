package aggregate

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
)

// encodeGroup writes a group's changelog record, a
// schemas.AggregateStateRecord{Group: …}, by hand: it is written once per
// batch for every group that changed, and encoding/json's reflection over
// up to 72 buckets dominated the cost of a batch. TestEncodeGroupDecodes
// checks that encoding/json reads back exactly the record it describes.
func encodeGroup(en *entry) []byte {
	g := &en.g
	b := make([]byte, 0, 512)
	b = append(b, `{"group":{"tenant_id":`...)
	b = appendString(b, g.Tenant)
	b = append(b, `,"rule_id":`...)
	b = appendString(b, g.Rule)
	b = append(b, `,"spec":`...)
	b = appendString(b, en.spec)
	b = append(b, `,"group_key":`...)
	b = appendString(b, g.Key)
	if len(en.values) > 0 {
		b = append(b, `,"group":[`...)
		for i, v := range en.values {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, v)
		}
		b = append(b, ']')
	}
	b = append(b, `,"bucket_ms":`...)
	b = strconv.AppendInt(b, g.win.bucketMS, 10)
	if g.win.started {
		first := true
		put := func(i int64, x bucket) {
			if first {
				b = append(b, `,"buckets":[`...)
				first = false
			} else {
				b = append(b, ',')
			}
			b = append(b, `{"i":`...)
			b = strconv.AppendInt(b, i, 10)
			b = appendCount(b, `,"n":`, x.n)
			b = appendCount(b, `,"s":`, x.s)
			b = appendCount(b, `,"f":`, x.f)
			b = append(b, '}')
		}
		for _, t := range g.win.tail {
			put(t.i, t.b)
		}
		for i := g.win.head - ringSize + 1; i <= g.win.head; i++ {
			if x := g.win.ring[slot(i)]; !x.empty() {
				put(i, x)
			}
		}
		if !first {
			b = append(b, ']')
		}
	}
	b = append(b, `,"evaluated":`...)
	b = strconv.AppendInt(b, g.evaluated, 10)
	b = append(b, `,"state":"`...)
	b = append(b, g.state.String()...)
	b = append(b, '"')
	if g.state != Inactive {
		b = appendTime(b, `,"firing_since":`, g.firingSince)
	}
	if g.state == Resolving {
		b = appendTime(b, `,"false_since":`, time.UnixMilli(g.falseSinceMS))
	}
	if g.incident != "" {
		b = append(b, `,"incident_id":`...)
		b = appendString(b, g.incident)
	}
	if g.state != Inactive {
		b = appendTime(b, `,"notified_at":`, time.UnixMilli(g.notifiedAtMS))
	}
	b = append(b, `,"repeats":`...)
	b = strconv.AppendInt(b, int64(g.repeats), 10)
	if g.lastResolvedMS != 0 {
		b = appendTime(b, `,"last_resolved_at":`, time.UnixMilli(g.lastResolvedMS))
	}
	if ev := en.last; ev != nil {
		b = append(b, `,"last":{"id":`...)
		b = appendString(b, ev.ID)
		b = append(b, `,"type":`...)
		b = appendString(b, ev.Type)
		b = append(b, `,"run_id":`...)
		b = appendString(b, ev.RunID)
		b = append(b, `,"workflow":{"id":`...)
		b = appendString(b, ev.Workflow.ID)
		b = append(b, `,"name":`...)
		b = appendString(b, ev.Workflow.Name)
		b = append(b, '}')
		if ev.ErrorCode != "" {
			b = append(b, `,"error_code":`...)
			b = appendString(b, ev.ErrorCode)
		}
		if !ev.At.IsZero() {
			b = appendTime(b, `,"at":`, ev.At)
		}
		b = append(b, '}')
	}
	if n := en.notify; n != nil {
		b = append(b, `,"notify":{"endpoint_id":`...)
		b = appendString(b, n.EndpointID)
		b = append(b, `,"rule_name":`...)
		b = appendString(b, n.RuleName)
		b = append(b, `,"rule_version":`...)
		b = strconv.AppendInt(b, n.RuleVersion, 10)
		if n.Severity != "" {
			b = append(b, `,"severity":`...)
			b = appendString(b, n.Severity)
		}
		b = append(b, `,"max_attempts":`...)
		b = strconv.AppendInt(b, int64(n.MaxAttempts), 10)
		if n.Suppressed {
			b = append(b, `,"suppressed":true`...)
		}
		b = append(b, '}')
	}
	return append(b, "}}"...)
}

func appendCount(b []byte, name string, n uint32) []byte {
	if n == 0 {
		return b
	}
	b = append(b, name...)
	return strconv.AppendUint(b, uint64(n), 10)
}

func appendTime(b []byte, name string, t time.Time) []byte {
	b = append(b, name...)
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// appendString writes s as a JSON string: quotes, backslashes and control
// characters escaped; invalid UTF-8 as encoding/json writes it.
func appendString(b []byte, s string) []byte {
	if !utf8.ValidString(s) {
		q, _ := json.Marshal(s) // a string: cannot fail
		return append(b, q...)
	}
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
