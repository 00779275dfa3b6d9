package controlplane

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/exospherehost/exo-alerts/schemas"
	"github.com/exospherehost/exo-alerts/signature"
)

// The OpenAPI document is linted by Redocly's recommended ruleset and
// Spectral's spectral:oas in make test (integration-tests/openapi), and
// clients are generated from it (integration-tests/openapi-go, and the
// TypeScript client of integration-tests/openapi).
// What the operations share is filled in here, after they are registered.

// Arrays are never null in an answer (a list is [] when empty): a generated
// client then types them as lists, not pointers to lists. A request member
// that accepts null says so with a nullable tag.
func init() { huma.DefaultArrayNullable = false }

// DefaultPublicURL is the server the OpenAPI document names when
// Config.PublicURL is empty: the address `exo-alerts dev` listens on.
const DefaultPublicURL = "http://127.0.0.1:8080"

// tagDescriptions describes every tag an operation may use. An operation
// with a tag missing here gets an undescribed tag, which the lint refuses.
var tagDescriptions = []*huma.Tag{
	{Name: "Webhooks", Description: "Webhook endpoints: the URLs (or Slack and PagerDuty integrations) deliveries go to, their secrets and extra headers."},
	{Name: "Alert rules", Description: "Alert rules turn workflow events into alerts delivered to an endpoint: per event, or when a count or a success rate crosses a threshold (with their groups)."},
	{Name: "Event types", Description: "The catalogue of what a rule can watch, the fields its condition can use, and every type of delivery."},
	{Name: "Delivery history", Description: "Every alert with its attempts, per rule, per endpoint or by id; redelivery."},
	{Name: "Statistics", Description: "Delivery attempts over time by outcome, with latency percentiles, and each endpoint's health: what the dashboard's overview draws."},
	{Name: "Dead letters", Description: "Alerts that ran out of attempts, and their replay."},
	{Name: "Health notices", Description: "Notices about the tenant's health (rules disabled, endpoints failing, dead letters, the quota) and where they are delivered."},
	{Name: "Audit", Description: "The tenant's audit trail: every change, who made it, before and after."},
	{Name: "Events", Description: "Sending workflow events over HTTP instead of Kafka."},
	{Name: "API keys", Description: "What the caller's API key is."},
	{Name: "Quotas", Description: "Delivery quotas: the tenant's view, and the operator's overrides."},
	{Name: "Rollout", Description: "Which tenants are served (operator API)."},
}

// finishDocument completes what the operations leave out of the OpenAPI
// document: the server, the tags' descriptions, the descriptions of
// response headers (huma puts them in the header's schema only) and the
// outgoing webhooks.
func (s *Server) finishDocument(oapi *huma.OpenAPI) {
	base := s.cfg.PublicURL
	if base == "" {
		base = DefaultPublicURL
	}
	oapi.Servers = []*huma.Server{{URL: base, Description: "The control plane: `exo-alerts dev` (or `exo-alerts controlplane`) listens here by default"}}
	used := map[string]bool{}
	for _, item := range oapi.Paths {
		for _, op := range []*huma.Operation{item.Get, item.Put, item.Post, item.Delete, item.Patch} {
			if op == nil {
				continue
			}
			for _, t := range op.Tags {
				used[t] = true
			}
			for _, r := range op.Responses {
				for _, h := range r.Headers {
					if h.Description == "" && h.Schema != nil {
						h.Description = h.Schema.Description
					}
				}
			}
		}
	}
	oapi.Tags = nil
	for _, t := range tagDescriptions {
		oapi.Tags = append(oapi.Tags, t)
		delete(used, t.Name)
	}
	rest := make([]string, 0, len(used))
	for t := range used {
		rest = append(rest, t)
	}
	slices.Sort(rest)
	for _, t := range rest {
		oapi.Tags = append(oapi.Tags, &huma.Tag{Name: t})
	}
	oapi.Tags = append(oapi.Tags, &huma.Tag{Name: "Outgoing webhooks", Description: "What Exosphere Alerts POSTs to a webhook endpoint (kind webhook): one entry per type of delivery, with its payload and headers. Slack and PagerDuty endpoints get the same alerts in those services' formats instead."})
	s.documentWebhooks(oapi)
}

// webhookDelivery describes one type of delivery for the document.
type webhookDelivery struct {
	typ, summary, description string
}

// webhookDeliveries are the types of delivery the dispatcher sends, the
// ones GET /v1/event-types lists as deliveries.
func webhookDeliveries() []webhookDelivery {
	out := make([]webhookDelivery, 0, len(deliveryTypes))
	for _, d := range deliveryTypes {
		out = append(out, webhookDelivery{typ: d.Type, summary: "A " + d.Type + " delivery", description: d.Description})
	}
	return out
}

// documentWebhooks adds the outgoing deliveries to the document's webhooks
// section (OpenAPI 3.1): one entry per type, each a POST whose body is the
// webhook payload v1 (schemas.WebhookPayload, annotated from its JSON
// Schema) with type fixed, its headers, and the answers the dispatcher
// acts on.
func (s *Server) documentWebhooks(oapi *huma.OpenAPI) {
	reg := oapi.Components.Schemas
	payload := reg.Schema(reflect.TypeFor[schemas.WebhookPayload](), true, "")
	var doc map[string]any
	if err := json.Unmarshal(schemas.Schema(schemas.KindWebhookPayload), &doc); err == nil {
		annotate(reg, payload, doc, doc)
	}
	if p := reg.SchemaFromRef(payload.Ref); p != nil {
		p.Description = "The body of every delivery to a webhook endpoint (Standard Webhooks layout; webhook-payload-v1.schema.json). IDs and summary fields only; error.message only when the rule opts in. The layout is closed: any change is a new version."
	}
	// Members the Go types hold as raw JSON whose schema is known anyway
	// get that schema rather than "any value".
	if d := reg.Map()["Delivery"]; d != nil && d.Properties["payload"] != nil {
		d.Properties["payload"] = &huma.Schema{Ref: payload.Ref, Description: d.Properties["payload"].Description}
	}
	if k := reg.Map()["RuleKind"]; k != nil && k.Properties["example"] != nil {
		create := reg.Schema(reflect.TypeFor[AlertRuleCreate](), true, "")
		k.Properties["example"] = &huma.Schema{Ref: create.Ref, Description: k.Properties["example"].Description}
	}
	oapi.Components.SecuritySchemes["webhookSignature"] = &huma.SecurityScheme{Type: "apiKey", In: "header", Name: signature.HeaderSignature,
		Description: "How a receiver authenticates a delivery: the Standard Webhooks signature (webhook-signature, over webhook-id, webhook-timestamp and the body) made with the endpoint's whsec_ secret. Verify it before trusting the body."}
	headers := webhookHeaders()
	answers := map[string]*huma.Response{
		"2XX": {Description: "Delivered: any 2xx answer (the body is ignored; keep it short). Answer quickly and do the work after, deduplicating on webhook-id: a delivery may come more than once."},
		"410": {Description: "Gone (or 404): the endpoint is treated as removed; the rule that sent it is disabled (disabled_reason says why) and the alert is not retried."},
		"429": {Description: "Too many requests (or 503): retried later, not before the Retry-After header's delay (seconds or an HTTP date) when there is one.", Headers: map[string]*huma.Header{
			"Retry-After": {Description: "When to retry: seconds, or an HTTP date", Schema: &huma.Schema{Type: huma.TypeString}},
		}},
		"default": {Description: "Any other answer, a timeout or a connection error: retried with backoff up to the rule's max_attempts, then dead-lettered (GET /v1/dead-letters)."},
	}
	oapi.Webhooks = map[string]*huma.PathItem{}
	for _, d := range webhookDeliveries() {
		body := &huma.Schema{
			AllOf: []*huma.Schema{
				{Ref: payload.Ref},
				{Type: huma.TypeObject, Properties: map[string]*huma.Schema{"type": {Type: huma.TypeString, Enum: []any{d.typ}, Description: "Always " + d.typ + " for this delivery"}}},
			},
		}
		oapi.Webhooks[d.typ] = &huma.PathItem{Post: &huma.Operation{
			OperationID: "webhook-" + strings.ReplaceAll(d.typ, ".", "-"),
			Tags:        []string{"Outgoing webhooks"},
			Summary:     d.summary,
			Description: d.description + " Sent as a POST to the endpoint's target_url with the headers below; verify webhook-signature with the endpoint's secret (any Standard Webhooks library, or the Go package github.com/exospherehost/exo-alerts/signature) before trusting the body.",
			Security:    []map[string][]string{{"webhookSignature": {}}},
			Parameters:  headers,
			RequestBody: &huma.RequestBody{Required: true, Description: "The webhook payload v1, type " + d.typ, Content: map[string]*huma.MediaType{
				"application/json": {Schema: body, Example: webhookExample(d.typ)},
			}},
			Responses: answers,
		}}
	}
}

// webhookHeaders are the headers of every delivery to a webhook endpoint
// (set by the dispatcher and signature.Sign).
func webhookHeaders() []*huma.Param {
	str := func(pattern string) *huma.Schema { return &huma.Schema{Type: huma.TypeString, Pattern: pattern} }
	return []*huma.Param{
		{Name: signature.HeaderID, In: "header", Required: true, Schema: str("^alrt_[0-9a-f]{32}$"), Example: "alrt_5e0b9c4a1d2f3e4a5b6c7d8e9f0a1b2c",
			Description: "Standard Webhooks message id: the alert id, the same on every attempt and on a redelivery or replay. Deduplicate on it."},
		{Name: signature.HeaderTimestamp, In: "header", Required: true, Schema: str("^[0-9]+$"), Example: "1764324120",
			Description: "Standard Webhooks timestamp: when this attempt was signed, in Unix seconds. Refuse values far from your clock (5 minutes is usual) to stop replays."},
		{Name: signature.HeaderSignature, In: "header", Required: true, Schema: str(`^v1,[A-Za-z0-9+/=]+( v1,[A-Za-z0-9+/=]+)*$`), Example: "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
			Description: "Standard Webhooks signature: space-separated v1,<base64 HMAC-SHA256> of \"{webhook-id}.{webhook-timestamp}.{body}\" keyed with the base64 part of the endpoint's whsec_ secret. Two during a secret rotation's grace period (new and previous secret): accept the delivery if any matches."},
		{Name: signature.HeaderExosphere, In: "header", Required: true, Schema: str(`^t=[0-9]+(,v1=[0-9a-f]{64})+$`), Example: "t=1764324120,v1=2b9a4f0c8d1e7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b",
			Description: "The same signature in the older Exosphere scheme: t=<unix seconds>,v1=<hex HMAC-SHA256 of \"{t}.{body}\">. Prefer the Standard Webhooks headers."},
		{Name: "X-Exosphere-Event", In: "header", Required: true, Schema: str(""), Example: schemas.TypeAlertFiring,
			Description: "The payload's type (data is not needed to route the delivery)."},
		{Name: "X-Exosphere-Delivery", In: "header", Required: true, Schema: str(""),
			Description: "The id of this attempt (a new one on every try), to match it with the attempts in the delivery history."},
		{Name: "User-Agent", In: "header", Required: true, Schema: str("^exosphere-alerts/"), Example: "exosphere-alerts/0.1.0",
			Description: "exosphere-alerts/<version>."},
	}
}

// annotate copies what the JSON Schema js says about each property (its
// description, enum and whether it may be null) onto the schema huma made
// from the Go type (hs, or the component it refers to). root resolves js's
// local $refs.
func annotate(reg huma.Registry, hs *huma.Schema, js, root map[string]any) {
	if hs == nil || js == nil {
		return
	}
	js = resolve(js, root)
	if hs.Ref != "" {
		hs = reg.SchemaFromRef(hs.Ref)
		if hs == nil {
			return
		}
	}
	if d, ok := js["description"].(string); ok && hs.Description == "" {
		hs.Description = d
	}
	if e, ok := js["enum"].([]any); ok && len(hs.Enum) == 0 {
		hs.Enum = slices.Clone(e)
		if slices.Contains(e, nil) {
			hs.Nullable = true
		}
	}
	if ts, ok := js["type"].([]any); ok && slices.Contains(ts, any("null")) {
		hs.Nullable = true
	}
	if anyOf, ok := js["anyOf"].([]any); ok {
		for _, a := range anyOf {
			if m, ok := a.(map[string]any); ok && m["type"] == "null" {
				hs.Nullable = true
			}
		}
	}
	props, _ := js["properties"].(map[string]any)
	for name, p := range hs.Properties {
		if sub, ok := props[name].(map[string]any); ok {
			annotate(reg, p, sub, root)
		}
	}
	if add, ok := js["additionalProperties"].(map[string]any); ok {
		if hs.AdditionalProperties != nil {
			if as, ok := hs.AdditionalProperties.(*huma.Schema); ok {
				annotate(reg, as, add, root)
			}
		}
	}
}

// resolve follows a local "#/$defs/name" reference of js in root, merging
// the referring schema's own description over the referred one.
func resolve(js, root map[string]any) map[string]any {
	ref, ok := js["$ref"].(string)
	if !ok {
		return js
	}
	name, ok := strings.CutPrefix(ref, "#/$defs/")
	defs, _ := root["$defs"].(map[string]any)
	target, _ := defs[name].(map[string]any)
	if !ok || target == nil {
		return js
	}
	out := make(map[string]any, len(target)+1)
	for k, v := range target {
		out[k] = v
	}
	if d, ok := js["description"]; ok {
		out["description"] = d
	}
	return out
}

// webhookExample is an example payload of a delivery of type typ.
func webhookExample(typ string) schemas.WebhookPayload {
	at := time.Date(2026, 11, 28, 10, 2, 0, 123e6, time.UTC)
	started, finished := at.Add(-84*time.Second), at
	duration := int64(84000)
	p := schemas.WebhookPayload{Type: typ, Timestamp: at, Data: schemas.PayloadData{
		AlertID: "alrt_5e0b9c4a1d2f3e4a5b6c7d8e9f0a1b2c", TenantID: "acme",
		Rule:     schemas.RuleRef{ID: "rul_p2k8d7s1m4n6b3v9c5x0", Name: "ETL failures"},
		Event:    schemas.EventRef{ID: "01JDQ8M3Z6X4W2V9T7R5P3N1K2", Type: typ, OccurredAt: at},
		Workflow: schemas.Workflow{ID: "wf_9", Name: "nightly-etl"},
		Run:      schemas.PayloadRun{ID: "run_125", Status: "failed", StartedAt: &started, FinishedAt: &finished, DurationMS: &duration},
		Error:    &schemas.PayloadError{Code: "NODE_ERRORED"},
		Labels:   map[string]string{"env": "prod"},
	}}
	d := &p.Data
	switch typ {
	case schemas.TypeRunSucceeded:
		d.Run.Status, d.Error = "succeeded", nil
	case schemas.TypeRunStarted:
		d.Run = schemas.PayloadRun{ID: "run_125", Status: "running", StartedAt: &started}
		d.Error = nil
	case schemas.TypeRunDurationExceeded:
		threshold := int64(900000)
		d.Run = schemas.PayloadRun{ID: "run_125", Status: "running", StartedAt: &started, DurationMS: &threshold}
		d.Error, d.ThresholdMS = nil, &threshold
	case schemas.TypeAlertFiring, schemas.TypeAlertResolved:
		matched, threshold := int64(3), 3
		d.Rule.Name = "nightly-etl keeps failing"
		d.Event.Type = schemas.TypeRunFailed
		d.Aggregate = &schemas.PayloadAggregate{IncidentID: "inc_9f86d081884c7d659a2feaa0c55ad015", Kind: schemas.RuleKindCount,
			State: schemas.AggregateStateFiring, Group: map[string]string{"workflow.name": "nightly-etl"}, WindowMS: 900000,
			Threshold: &threshold, Value: schemas.PayloadAggregateValue{Matched: &matched}, FiringSince: at}
		if typ == schemas.TypeAlertResolved {
			resolved, reason, zero := at.Add(25*time.Minute), schemas.ResolveReasonConditionFalse, int64(0)
			d.Aggregate.State, d.Aggregate.ResolvedAt, d.Aggregate.ResolveReason = "resolved", &resolved, &reason
			d.Aggregate.Value.Matched = &zero
			p.Timestamp, d.Event.OccurredAt = resolved, resolved
		}
	case schemas.TypeTenantNotice:
		rule, endpoint := "rul_p2k8d7s1m4n6b3v9c5x0", "whk_k3jd8f2m1q9x7c4v5b6n"
		d.Rule = schemas.RuleRef{ID: schemas.NoticeRuleID, Name: "Health notice"}
		d.Event = schemas.EventRef{ID: "ntc_3fc9b689459d738f8c88a3a48aa9e335", Type: typ, OccurredAt: at}
		d.Workflow, d.Run, d.Error, d.Labels = schemas.Workflow{ID: "-", Name: "-"}, schemas.PayloadRun{ID: "-"}, nil, map[string]string{}
		d.Notice = &schemas.PayloadNotice{ID: "ntc_3fc9b689459d738f8c88a3a48aa9e335", Kind: "rule_disabled",
			Title: `Rule "ETL failures" was disabled: its endpoint answered 410 Gone`, RuleID: &rule, EndpointID: &endpoint, Count: 1, CreatedAt: at}
	case schemas.TypeWebhookTest:
		d.Rule = schemas.RuleRef{ID: schemas.TestRuleID, Name: "Test delivery"}
		d.Event = schemas.EventRef{ID: "test_9c4a1d2f3e4a5b6c", Type: typ, OccurredAt: at}
		d.Workflow = schemas.Workflow{ID: "exosphere-test", Name: "Test delivery from Exosphere Alerts"}
		d.Run, d.Error, d.Labels = schemas.PayloadRun{ID: "test_9c4a1d2f3e4a5b6c", Status: "test"}, nil, map[string]string{}
	}
	return p
}
