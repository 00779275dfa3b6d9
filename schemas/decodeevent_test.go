package schemas

import (
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"testing"
)

// TestFastEventAgreesOnGeneratedEvents builds events the way many encoders
// could write them — members in any order, any spacing, strings with every
// kind of escape and raw or escaped Unicode, times with fractions and
// offsets, optional members absent, null or empty, extension attributes,
// unknown data members, sometimes a repeated member or a value out of range
// — and holds the one-pass decoder to agreesWithSchema on each. The
// generator is seeded, so a failure reproduces.
func TestFastEventAgreesOnGeneratedEvents(t *testing.T) {
	t.Parallel()
	g := eventGen{rng: rand.New(rand.NewSource(13))}
	const n = 1500
	valid, fast := 0, 0
	for range n {
		doc := []byte(g.event())
		if Validate(KindWorkflowEvent, doc) == nil {
			valid++
			if _, ok := fastWorkflowEvent(doc); ok {
				fast++
			}
		}
		agreesWithSchema(t, KindWorkflowEvent, doc, fastWorkflowEvent, DecodeWorkflowEvent)
	}
	// The fast path must be exercised, not only the fallback: it leaves
	// only escaped timestamps (and the like) to the validator.
	if valid < n/10 || fast < valid*9/10 {
		t.Fatalf("%d of %d generated events are valid, %d of them took the fast path", valid, n, fast)
	}
}

// eventGen writes random workflow events; see
// TestFastEventAgreesOnGeneratedEvents.
type eventGen struct{ rng *rand.Rand }

func (g eventGen) pick(options ...string) string { return options[g.rng.Intn(len(options))] }

// ws is optional white space.
func (g eventGen) ws() string {
	if g.rng.Intn(3) > 0 {
		return ""
	}
	return g.pick(" ", "\n  ", "\t", "\r\n", "  ")
}

// str is a JSON string literal, usually valid for the schema's id fields.
func (g eventGen) str() string {
	var sb strings.Builder
	for range g.rng.Intn(4) + 1 {
		sb.WriteString(g.pick(`run_9`, `a`, `nightly-etl`, `é`, `😀`, `\u00e9`, `\u20AC`, `\ud83d\ude00`,
			`\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`, `\u003c`, `\u0026`, `x y`, `\ud800`, `\udc00\ud800`,
			`日本`, `\u65e5`))
	}
	switch g.rng.Intn(80) {
	case 0:
		return `""`
	case 1:
		return `"` + strings.Repeat("é", 257) + `"`
	case 2:
		return `"a\u0000"`
	case 3:
		return `null`
	}
	return `"` + sb.String() + `"`
}

func (g eventGen) time() string {
	year := g.pick("2026", "2024", "2100", "2000", "0001", "9999")
	month := 1 + g.rng.Intn(12)
	day := 1 + g.rng.Intn(28)
	if g.rng.Intn(8) == 0 {
		day = 29 + g.rng.Intn(3) // not in every month
	}
	s := fmt.Sprintf("%s-%02d-%02dT%02d:%02d:%02d", year, month, day, g.rng.Intn(24), g.rng.Intn(60), g.rng.Intn(60))
	if g.rng.Intn(2) == 0 {
		s += "." + "123456789"[:1+g.rng.Intn(9)]
	}
	switch g.rng.Intn(16) {
	case 0:
		s += g.pick("z", "+24:00", "+1:00", "\\u002B01:00", "")
	case 1, 2, 3, 4, 5, 6:
		s += g.pick("+00:00", "-00:00", "+01:00", "-04:30", "+05:45", "+14:00", "-12:00", "+23:59")
	default:
		s += "Z"
	}
	return `"` + s + `"`
}

func (g eventGen) num() string {
	if g.rng.Intn(4) > 0 {
		return g.pick("1", "2", "7", "84211", "2147483647")
	}
	return g.pick("1", "2", "7", "0", "-1", "2147483647", "2147483648", "9223372036854775807",
		"9223372036854775808", "1.0", "1e2", "-0", "84211", "null", `"1"`)
}

// object writes members in random order, sometimes repeating one.
func (g eventGen) object(members []string) string {
	g.rng.Shuffle(len(members), func(i, j int) { members[i], members[j] = members[j], members[i] })
	if len(members) > 0 && g.rng.Intn(60) == 0 {
		members = append(members, members[g.rng.Intn(len(members))])
	}
	for i, m := range members {
		members[i] = g.ws() + m + g.ws()
	}
	return "{" + strings.Join(members, ",") + "}"
}

func (g eventGen) member(name, value string) string {
	return `"` + name + `"` + g.ws() + ":" + g.ws() + value
}

func (g eventGen) event() string {
	m := []string{
		g.member("specversion", g.pick(`"1.0"`, `"1.0"`, `"1.0"`, `"1.0"`, `"1.0"`, `"1.0"`, `"1.0"`, `"0.3"`)),
		g.member("id", g.str()),
		g.member("source", g.pick(`"exosphere/state-manager"`, g.str())),
		g.member("type", g.pick(`"workflow.run.failed"`, `"workflow.run.started"`, `"workflow.run.succeeded"`, g.str())),
		g.member("time", g.time()),
		g.member("tenantid", g.pick(`"acme"`, `"t-1.x_y"`, `"acme"`, `"t-1.x_y"`, `"acme"`, `"t-1.x_y"`, `"-bad"`, `"\u0061cme"`)),
		g.member("data", g.data()),
	}
	if g.rng.Intn(2) == 0 {
		m = append(m, g.member("subject", g.str()))
	}
	if g.rng.Intn(2) == 0 {
		m = append(m, g.member("datacontenttype", g.pick(`"application/json"`, `"application/cloudevents+json; charset=utf-8"`, `"application/json"`, `"text/plain"`)))
	}
	for i := range g.rng.Intn(4) {
		m = append(m, g.member(fmt.Sprintf("ext%d", i), g.pick(`"x"`, `1.5e3`, `true`, `false`, `null`, `-0.25`, g.str(), `"x"`, `[1]`)))
	}
	if g.rng.Intn(20) == 0 {
		m = m[1:] // a required member missing
	}
	return g.ws() + g.object(m) + g.ws()
}

func (g eventGen) data() string {
	run := []string{g.member("id", g.str())}
	if g.rng.Intn(2) == 0 {
		run = append(run, g.member("attempt", g.num()))
	}
	if g.rng.Intn(2) == 0 {
		run = append(run, g.member("status", g.pick(`"failed"`, `"running"`, `"succeeded"`, g.str())))
	}
	for _, name := range []string{"started_at", "finished_at"} {
		if g.rng.Intn(2) == 0 {
			run = append(run, g.member(name, g.pick(g.time(), "null")))
		}
	}
	if g.rng.Intn(2) == 0 {
		run = append(run, g.member("duration_ms", g.num()))
	}
	m := []string{
		g.member("workflow", g.object([]string{g.member("id", g.str()), g.member("name", g.str())})),
		g.member("run", g.object(run)),
	}
	switch g.rng.Intn(4) {
	case 0:
		m = append(m, g.member("error", "null"))
	case 1:
		var e []string
		for _, name := range []string{"code", "message", "node"} {
			if g.rng.Intn(2) == 0 {
				e = append(e, g.member(name, g.str()))
			}
		}
		m = append(m, g.member("error", g.object(e)))
	}
	switch g.rng.Intn(4) {
	case 0:
		m = append(m, g.member("labels", "null"))
	case 1, 2:
		var l []string
		for i := range g.rng.Intn(20) {
			key := g.pick(fmt.Sprintf("k%d", i), fmt.Sprintf(`\u006b%d`, i), fmt.Sprintf("clé%d", i))
			l = append(l, g.member(key, g.str()))
		}
		m = append(m, g.member("labels", g.object(l)))
	}
	if g.rng.Intn(4) == 0 {
		m = append(m, g.member("graph_version", g.pick(`"v1"`, `{"nodes":[{"id":1},{"id":2}],"x":null}`, `[[],{}]`, `{"a":1,"a":2}`)))
	}
	return g.object(m)
}

// TestFastDeliveryAgreesOnGeneratedDeliveries: as
// TestFastEventAgreesOnGeneratedEvents, for delivery records, whose payload
// the one-pass decoder checks in place.
func TestFastDeliveryAgreesOnGeneratedDeliveries(t *testing.T) {
	t.Parallel()
	g := eventGen{rng: rand.New(rand.NewSource(13))}
	const n = 1000
	valid, fast := 0, 0
	for range n {
		doc := []byte(g.delivery())
		if Validate(KindDelivery, doc) == nil {
			valid++
			if _, ok := fastDelivery(doc); ok {
				fast++
			}
		}
		agreesWithSchema(t, KindDelivery, doc, fastDelivery, DecodeDelivery)
	}
	if valid < n/10 || fast < valid*9/10 {
		t.Fatalf("%d of %d generated deliveries are valid, %d of them took the fast path", valid, n, fast)
	}
}

func (g eventGen) delivery() string {
	const alertID = `"alrt_ca978112ca1bbdcafac231b39a23dc4d"`
	typ := g.pick(`"workflow.run.failed"`, `"workflow.run.succeeded"`, `"workflow.run.started"`, `"workflow.run.duration_exceeded"`, `"webhook.test"`)
	threshold := "null"
	if typ == `"workflow.run.duration_exceeded"` {
		threshold = g.pick("60000", "1", "9223372036854775807")
	}
	if g.rng.Intn(20) == 0 {
		threshold = g.pick("null", "0", "6e4", "1.5")
	}
	run := []string{g.member("id", g.str())}
	if g.rng.Intn(2) == 0 {
		run = append(run, g.member("status", g.pick(`"failed"`, g.str())))
	}
	for _, name := range []string{"started_at", "finished_at"} {
		if g.rng.Intn(2) == 0 {
			run = append(run, g.member(name, g.time()))
		}
	}
	if g.rng.Intn(2) == 0 {
		run = append(run, g.member("duration_ms", g.num()))
	}
	errInfo := "null"
	if g.rng.Intn(2) == 0 {
		var e []string
		for _, name := range []string{"code", "message"} {
			if g.rng.Intn(2) == 0 {
				e = append(e, g.member(name, g.str()))
			}
		}
		errInfo = g.object(e)
	}
	labels := "null"
	if g.rng.Intn(3) > 0 {
		var l []string
		for i := range g.rng.Intn(18) {
			l = append(l, g.member(g.pick(fmt.Sprintf("k%d", i), fmt.Sprintf("clé%d", i)), g.str()))
		}
		labels = g.object(l)
	}
	data := g.object([]string{
		g.member("alert_id", alertID),
		g.member("tenant_id", g.pick(`"acme"`, `"t-1.x_y"`, `"-bad"`)),
		g.member("rule", g.object([]string{g.member("id", g.str()), g.member("name", g.str())})),
		g.member("event", g.object([]string{g.member("id", g.str()), g.member("type", g.str()), g.member("occurred_at", g.time())})),
		g.member("workflow", g.object([]string{g.member("id", g.str()), g.member("name", g.str())})),
		g.member("run", g.object(run)),
		g.member("threshold_ms", threshold),
		g.member("error", errInfo),
		g.member("labels", labels),
	})
	payload := g.object([]string{g.member("type", typ), g.member("timestamp", g.time()), g.member("data", data)})
	m := []string{
		g.member("alert_id", alertID),
		g.member("tenant_id", g.pick(`"acme"`, `"t-1.x_y"`, `"acme"`, `"\u0061cme"`)),
		g.member("rule_id", g.str()),
		g.member("endpoint_id", g.str()),
		g.member("event_type", typ),
		g.member("max_attempts", g.pick("8", "1", "50", "8", "51", "0")),
		g.member("created_at", g.time()),
		g.member("payload", payload),
	}
	if g.rng.Intn(2) == 0 {
		m = append(m, g.member("rule_version", g.pick("3", "1", "9223372036854775807", "0")))
	}
	if g.rng.Intn(2) == 0 {
		m = append(m, g.member("severity", g.pick(`"critical"`, `"warning"`, `"info"`, `"error"`, `"fatal"`)))
	}
	return g.ws() + g.object(m) + g.ws()
}

// TestFastDecodersLeaveDuplicatesToTheSchema: encoding/json lets the last of
// a repeated member win, the schema path refuses the document; the one-pass
// decoders never vouch for one, wherever the repeat is (also when the two
// names differ only in how they are escaped), so the answer is the
// schema's refusal.
func TestFastDecodersLeaveDuplicatesToTheSchema(t *testing.T) {
	t.Parallel()
	const head = `{"specversion":"1.0","id":"a","source":"b","type":"workflow.run.failed","tenantid":"t","time":"2026-01-01T00:00:00Z",`
	const wf = `"workflow":{"id":"w","name":"n"}`
	events := []string{
		head + `"id":"b","data":{` + wf + `,"run":{"id":"r"}}}`,
		head + `"ext":1,"ext":2,"data":{` + wf + `,"run":{"id":"r"}}}`,
		head + `"data":{` + wf + `,"run":{"id":"r","attempt":1,"attempt":2}}}`,
		head + `"data":{` + wf + `,"run":{"id":"r"},"labels":{"env":"a","env":"b"}}}`,
		head + `"data":{` + wf + `,"run":{"id":"r"},"labels":{"env":"a","\u0065nv":"b"}}}`,
		head + `"data":{` + wf + `,"run":{"id":"r"},"labels":{` + manyLabels(20) + `,"k3":"x"}}}`,
		head + `"data":{` + wf + `,"run":{"id":"r"},"future":{"a":[{"b":1,"b":2}]}}}`,
		head + `"data":{` + wf + `,"run":{"id":"r"},"future":{` + manyMembers(20, `"x%d":1`) + `,"x19":2}}}`,
	}
	for _, doc := range events {
		if _, ok := fastWorkflowEvent([]byte(doc)); ok {
			t.Errorf("fast decoder vouched for a repeated member:\n%s", doc)
		}
		var ve *ValidationError
		if _, err := DecodeWorkflowEvent([]byte(doc)); !errors.As(err, &ve) || !strings.Contains(err.Error(), "is duplicated") {
			t.Errorf("got %v, want the schema's refusal of a duplicate:\n%s", err, doc)
		}
	}
	const res = `{"alert_id":"alrt_0123456789abcdef0123456789abcdef","delivery_id":"d","tenant_id":"t","rule_id":"r","endpoint_id":"e","outcome":"retry","latency_ms":5,"attempted_at":"2026-01-01T00:00:00Z","attempt":1,"attempt":2}`
	if _, ok := fastResult([]byte(res)); ok {
		t.Errorf("fast decoder vouched for a repeated member:\n%s", res)
	}
	if _, err := DecodeResult([]byte(res)); err == nil || !strings.Contains(err.Error(), "is duplicated") {
		t.Errorf("got %v, want the schema's refusal of a duplicate", err)
	}
}
