package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/exospherehost/exo-alerts/internal/model"
	"github.com/exospherehost/exo-alerts/internal/store"
	"github.com/exospherehost/exo-alerts/schemas"
	"github.com/exospherehost/exo-alerts/signature"
)

type webhookOut struct {
	ETag string `header:"ETag" doc:"The version of the endpoint; send it as If-Match to update or delete only this version"`
	Body *WebhookEndpoint
}

// WebhookEndpointList is a page of a tenant's webhook endpoints (GET
// /v1/webhooks).
type WebhookEndpointList struct {
	Items      []*WebhookEndpoint `json:"items" doc:"Webhook endpoints, oldest first"`
	NextCursor string             `json:"next_cursor" doc:"Pass as ?cursor= (with the same filters) to get the next page; empty on the last page"`
}

type webhookListOut struct {
	Link string `header:"Link" doc:"The next page's URL as <url>; rel=\"next\", when there is one"`
	Body WebhookEndpointList
}

type idIn struct {
	ID string `path:"id" maxLength:"64" doc:"The resource's id"`
}

// headerNameRE is an RFC 9110 token.
var headerNameRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$")

// routingKeyRE is a PagerDuty integration (routing) key.
var routingKeyRE = regexp.MustCompile(`^[A-Za-z0-9]{32}$`)

// reservedHeaders may not be overridden by an endpoint's own headers.
var reservedHeaders = map[string]bool{
	"content-type": true, "content-length": true, "host": true, "user-agent": true, "transfer-encoding": true,
	"connection": true, "te": true, "trailer": true, "upgrade": true, "keep-alive": true, "proxy-connection": true,
	"expect": true,
}

// reservedHeaderPrefixes are the (lower-case) name spaces of the headers
// Exosphere Alerts sets itself, now and in later versions: an endpoint's
// own header may not start with one.
var reservedHeaderPrefixes = []string{"x-exosphere-", "webhook-"}

// reservedHeader reports whether name (any case) is set by Exosphere Alerts.
func reservedHeader(name string) bool {
	name = strings.ToLower(name)
	if reservedHeaders[name] {
		return true
	}
	for _, p := range reservedHeaderPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// maxHeaderValue is the longest value of an endpoint's own header.
const maxHeaderValue = 4096

// checkHeaderValue reports what is wrong with v as an HTTP field value
// (RFC 9110 5.5: visible ASCII and obs-text, with spaces and tabs only
// inside), or "" when nothing is: a value that breaks that rule is refused
// by HTTP clients or servers, so every delivery to the endpoint would fail.
func checkHeaderValue(v string) string {
	if len(v) > maxHeaderValue {
		return fmt.Sprintf("value must be at most %d bytes", maxHeaderValue)
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == ' ' || c == '\t':
			if i == 0 || i == len(v)-1 {
				return "value must not start or end with a space or tab"
			}
		case c < 0x20 || c == 0x7f:
			return fmt.Sprintf("value holds the control character 0x%02X at byte %d; only visible characters, spaces and tabs are allowed (RFC 9110 field-value)", c, i)
		}
	}
	return ""
}

func (s *Server) registerWebhooks(api huma.API) {
	huma.Register(api, huma.Operation{
		OperationID: "create-webhook", Method: http.MethodPost, Path: "/v1/webhooks", Tags: []string{"Webhooks"},
		Summary:     "Create a webhook endpoint",
		Description: "Registers a URL that receives signed deliveries (Standard Webhooks; see the document's `webhooks` for every payload), a Slack incoming webhook or a PagerDuty Events API v2 integration. The answer is the only one that shows the signing `secret`. URLs pointing at loopback, private or metadata addresses are refused.",
		Security:    []map[string][]string{bearer}, DefaultStatus: http.StatusCreated,
		MaxBodyBytes: 64 << 10,
		Errors:       []int{400, 401, 403, 422},
	}, s.createWebhook)
	huma.Register(api, huma.Operation{
		OperationID: "list-webhooks", Method: http.MethodGet, Path: "/v1/webhooks", Tags: []string{"Webhooks"},
		Summary:     "List webhook endpoints",
		Description: "Your webhook endpoints, oldest first, a page at a time: follow `next_cursor` (or the `Link` header) with the same filters until it is empty.",
		Security:    []map[string][]string{bearer}, Errors: []int{400, 401},
	}, s.listWebhooks)
	huma.Register(api, huma.Operation{
		OperationID: "get-webhook", Method: http.MethodGet, Path: "/v1/webhooks/{id}", Tags: []string{"Webhooks"},
		Summary:     "Get a webhook endpoint",
		Description: "One endpoint (its secret only as a hint, header values masked); the `ETag` header is its version, for `If-Match` on an update or delete.",
		Security:    []map[string][]string{bearer}, Errors: []int{401, 404},
	}, s.getWebhook)
	huma.Register(api, huma.Operation{
		OperationID: "update-webhook", Method: http.MethodPatch, Path: "/v1/webhooks/{id}", Tags: []string{"Webhooks"},
		Summary:     "Update a webhook endpoint (JSON merge patch)",
		Description: "A JSON merge patch (RFC 7396) of the create document: members present replace, null resets to the default, `headers` members set or (null) remove single headers. The secret changes only through rotate-secret, the kind never. Send the ETag as `If-Match` to avoid overwriting a concurrent change (412).",
		Security:    []map[string][]string{bearer}, MaxBodyBytes: 64 << 10, Errors: []int{400, 401, 403, 404, 409, 412, 422},
	}, s.patchWebhook)
	setPatchSchema(api, "/v1/webhooks/{id}", WebhookEndpointPatch{})
	huma.Register(api, huma.Operation{
		OperationID: "delete-webhook", Method: http.MethodDelete, Path: "/v1/webhooks/{id}", Tags: []string{"Webhooks"},
		Summary:     "Delete a webhook endpoint",
		Description: "Soft delete: the endpoint disappears from the API and stops receiving within a second; its history and audit trail stay. Its active alert rules are deactivated, and the answer lists them.",
		Security:    []map[string][]string{bearer}, Errors: []int{401, 403, 404, 412},
	}, s.deleteWebhook)
	huma.Register(api, huma.Operation{
		OperationID: "rotate-webhook-secret", Method: http.MethodPost, Path: "/v1/webhooks/{id}/rotate-secret", Tags: []string{"Webhooks"},
		Summary:     "Rotate the signing secret",
		Description: "Issues a new secret, shown once in this answer. During the grace period deliveries carry signatures by both the new and the previous secret, so receivers can switch without losing a delivery.",
		Security:    []map[string][]string{bearer}, MaxBodyBytes: 4 << 10, Errors: []int{400, 401, 403, 404, 422},
	}, s.rotateSecret)
}

// checkTargetURL refuses URLs that are not http(s), carry credentials, or
// point at an address class the dispatcher would refuse.
func (s *Server) checkTargetURL(raw string) *huma.ErrorDetail {
	bad := func(msg string) *huma.ErrorDetail {
		return &huma.ErrorDetail{Location: "body.target_url", Message: msg, Value: redactURL(raw)}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return bad("not a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return bad("scheme must be http or https")
	}
	if u.User != nil {
		return bad("credentials in the URL are not allowed; use headers instead")
	}
	host := u.Hostname()
	if host == "" {
		return bad("URL has no host")
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return bad("port must be between 1 and 65535")
		}
	}
	if u.Fragment != "" {
		return bad("URL must not have a fragment")
	}
	var addrs []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		addrs = append(addrs, ip)
	} else if h := strings.ToLower(strings.TrimSuffix(host, ".")); h == "localhost" || strings.HasSuffix(h, ".localhost") {
		addrs = append(addrs, netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1"))
	}
	for _, a := range addrs {
		if err := s.guard.Check(a); err != nil {
			return bad("target address is not allowed (loopback, private, link-local and metadata addresses are refused)")
		}
	}
	return nil
}

// redactURL keeps scheme and host of a URL (its path may hold a token).
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "[unparseable url]"
	}
	return u.Scheme + "://" + u.Host + "/…"
}

// maskedURL is what the API, the audit trail and the topics show of a
// target URL that carries a credential: the token path of a Slack
// incoming-webhook URL (all but its last four characters) and the values
// of a query string are masked. It returns raw itself when there is
// nothing to mask.
func maskedURL(kind, raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	masked := *u
	if kind == schemas.EndpointKindSlack || tokenInPath(u.Hostname()) {
		// The last segment of a Slack URL is its token; Discord and Teams
		// URLs carry long ids and tokens as segments too.
		segs := strings.Split(u.Path, "/")
		for i, seg := range segs {
			if seg != "" && (i == len(segs)-1 || len(seg) >= 16) {
				keep := ""
				if len(seg) > 8 {
					keep = seg[len(seg)-4:]
				}
				segs[i] = "****" + keep
			}
		}
		masked.Path = strings.Join(segs, "/")
		masked.RawPath = masked.Path // keeps the * unescaped
	}
	if u.RawQuery != "" {
		q := u.Query()
		keys := make([]string, 0, len(q))
		for k := range q {
			keys = append(keys, url.QueryEscape(k)+"=****")
		}
		slices.Sort(keys)
		masked.RawQuery = strings.Join(keys, "&")
	}
	return masked.String()
}

// setTargetURL stores raw as e's target: in clear when it carries no
// credential, else masked, with the whole URL sealed.
func (s *Server) setTargetURL(e *store.EndpointRow, raw string) {
	e.TargetURL, e.TargetURLSealed = maskedURL(e.Kind, raw), nil
	if e.TargetURL != raw {
		sealed := s.cfg.Keyring.Seal(raw, schemas.TargetURLAAD(e.TenantID, e.ID))
		e.TargetURLSealed = &sealed
	}
}

// checkWebhook validates what a create and an update have in common.
func (s *Server) checkWebhook(b *WebhookEndpointCreate) []error {
	var details []error
	if d := s.checkTargetURL(b.TargetURL); d != nil {
		details = append(details, d)
	}
	seen := map[string]string{}
	for name := range b.Headers {
		c := http.CanonicalHeaderKey(name)
		if other, dup := seen[c]; dup {
			details = append(details, &huma.ErrorDetail{Location: "body.headers." + name, Message: "given twice, as " + other + " and " + name + " (header names are case-insensitive)"})
		}
		seen[c] = name
	}
	for name := range b.Headers {
		if !headerNameRE.MatchString(name) {
			details = append(details, &huma.ErrorDetail{Location: "body.headers." + name, Message: "not a valid header name"})
		} else if reservedHeader(name) {
			details = append(details, &huma.ErrorDetail{Location: "body.headers." + name, Message: "this header is set by Exosphere Alerts and cannot be overridden (reserved: X-Exosphere-*, webhook-*, and the HTTP framing headers)"})
		} else if msg := checkHeaderValue(b.Headers[name]); msg != "" {
			details = append(details, &huma.ErrorDetail{Location: "body.headers." + name, Message: msg})
		}
	}
	return details
}

// checkSecret validates a secret given for kind, or generates one.
func checkSecret(kind, secret string) (string, error) {
	switch {
	case kind == schemas.EndpointKindPagerDuty && !routingKeyRE.MatchString(secret):
		return "", huma.Error422UnprocessableEntity("validation failed", &huma.ErrorDetail{Location: "body.secret", Message: "a pagerduty endpoint needs its integration's routing key (32 letters and digits) as secret"})
	case kind == schemas.EndpointKindPagerDuty:
	case secret == "":
		secret = signature.NewSecret()
	default:
		if _, err := signature.Key(secret); err != nil {
			return "", huma.Error422UnprocessableEntity("validation failed", &huma.ErrorDetail{Location: "body.secret", Message: "must be whsec_ followed by the base64 of 16 to 64 random bytes"})
		}
	}
	return secret, nil
}

// secretHint is what the API shows of a secret after it was created.
func secretHint(secret string) string { return "…" + secret[len(secret)-4:] }

func (s *Server) sealHeader(e *store.EndpointRow, name, value string) {
	name = http.CanonicalHeaderKey(name)
	e.Headers[name] = s.cfg.Keyring.Seal(value, schemas.HeaderAAD(e.TenantID, e.ID, name))
}

func (s *Server) createWebhook(ctx context.Context, in *struct{ Body WebhookEndpointCreate }) (*webhookOut, error) {
	p := principalFrom(ctx)
	b := in.Body
	if details := s.checkWebhook(&b); len(details) > 0 {
		return nil, huma.Error422UnprocessableEntity("validation failed", details...)
	}
	kind := b.Kind
	if kind == "" {
		kind = schemas.EndpointKindWebhook
	}
	secret, err := checkSecret(kind, b.Secret)
	if err != nil {
		return nil, err
	}
	e := &store.EndpointRow{
		ID: newID("whk"), TenantID: p.TenantID, Name: b.Name, Kind: kind,
		SecretHint: secretHint(secret), IsActive: b.IsActive == nil || *b.IsActive, CreatedBy: p.actor(),
		Headers: map[string]schemas.Sealed{}, RateLimitPerSecond: optional(b.RateLimitPerSecond),
	}
	s.setTargetURL(e, b.TargetURL)
	e.Secret = s.cfg.Keyring.Seal(secret, schemas.SecretAAD(e.TenantID, e.ID))
	for name, v := range b.Headers {
		s.sealHeader(e, name, v)
	}
	err = s.tenantTx(ctx, p.TenantID, func(tx *store.Tx) error {
		if err := tx.InsertEndpoint(ctx, e); err != nil {
			return err
		}
		return s.recordEndpoint(ctx, tx, p, "webhook.create", nil, e)
	})
	if err != nil {
		return nil, s.internalError("create webhook", err)
	}
	out := model.WebhookOf(e)
	out.Secret = secret
	return &webhookOut{ETag: etag(e.Version), Body: out}, nil
}

// recordEndpoint writes the audit row and the outbox snapshot of a change
// to e (before is nil for a create).
func (s *Server) recordEndpoint(ctx context.Context, tx *store.Tx, p *principal, action string, before *WebhookEndpoint, e *store.EndpointRow) error {
	var b any
	if before != nil {
		b = before
	}
	if err := tx.InsertAudit(ctx, e.TenantID, p.actor(), action, "webhook", e.ID, b, model.WebhookOf(e), requestID(ctx)); err != nil {
		return err
	}
	snap, _ := json.Marshal(e.Record())
	return tx.InsertOutbox(ctx, s.cfg.Topics.Endpoints, schemas.TenantKey(e.TenantID, e.ID), snap)
}

type listWebhooksIn struct {
	Cursor   string `query:"cursor" maxLength:"200" doc:"Opaque cursor from next_cursor"`
	Limit    int    `query:"limit" minimum:"1" maximum:"200" default:"50" doc:"The most endpoints on a page"`
	IsActive string `query:"is_active" enum:"true,false" doc:"Only active (true) or inactive (false) endpoints"`
}

func (s *Server) listWebhooks(ctx context.Context, in *listWebhooksIn) (*webhookListOut, error) {
	p := principalFrom(ctx)
	cur, err := queryCursor(in.Cursor, store.ParseCursor)
	if err != nil {
		return nil, err
	}
	var f store.EndpointFilter
	if in.IsActive != "" {
		f.IsActive = new(in.IsActive == "true")
	}
	var rows []*store.EndpointRow
	var next string
	err = s.tenantTx(ctx, p.TenantID, func(tx *store.Tx) error {
		rows, next, err = tx.ListEndpoints(ctx, cur, in.Limit, f)
		return err
	})
	if err != nil {
		return nil, s.internalError("list webhooks", err)
	}
	out := &webhookListOut{}
	out.Body.Items = make([]*WebhookEndpoint, 0, len(rows))
	for _, r := range rows {
		out.Body.Items = append(out.Body.Items, model.WebhookOf(r))
	}
	out.Body.NextCursor = next
	if next != "" {
		q := url.Values{"cursor": {next}, "limit": {fmt.Sprint(in.Limit)}}
		if in.IsActive != "" {
			q.Set("is_active", in.IsActive)
		}
		out.Link = `</v1/webhooks?` + q.Encode() + `>; rel="next"`
	}
	return out, nil
}

func (s *Server) getWebhook(ctx context.Context, in *idIn) (*webhookOut, error) {
	p := principalFrom(ctx)
	var e *store.EndpointRow
	err := s.tenantTx(ctx, p.TenantID, func(tx *store.Tx) (err error) {
		e, err = tx.GetEndpoint(ctx, in.ID)
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return nil, errWebhookNotFound
	}
	if err != nil {
		return nil, s.internalError("get webhook", err)
	}
	return &webhookOut{ETag: etag(e.Version), Body: model.WebhookOf(e)}, nil
}

var errWebhookNotFound = huma.Error404NotFound("webhook endpoint not found")

// document is the endpoint as a create document, the base of a merge patch
// (headers and secret are handled apart: their values are not readable).
func endpointDocument(e *store.EndpointRow) map[string]any {
	active := e.IsActive
	return toDoc(WebhookEndpointCreate{Name: e.Name, TargetURL: e.TargetURL, Kind: e.Kind, IsActive: &active, RateLimitPerSecond: deref(e.RateLimitPerSecond)})
}

func (s *Server) patchWebhook(ctx context.Context, in *patchIn) (*webhookOut, error) {
	p := principalFrom(ctx)
	patch, err := parsePatch(in.RawBody)
	if err != nil {
		return nil, err
	}
	_, urlPatched := patch["target_url"]
	var details []error
	if _, ok := patch["secret"]; ok {
		details = append(details, &huma.ErrorDetail{Location: "body.secret", Message: "the secret cannot be patched; use POST /v1/webhooks/{id}/rotate-secret"})
	}
	headerPatch := map[string]*string{}
	if raw, ok := patch["headers"]; ok {
		delete(patch, "headers")
		if string(raw) == "null" {
			headerPatch = nil // remove them all
		} else if err := json.Unmarshal(raw, &headerPatch); err != nil {
			details = append(details, &huma.ErrorDetail{Location: "body.headers", Message: "must be an object of header names to string values (null removes a header)"})
		}
	}
	if len(details) > 0 {
		return nil, huma.Error422UnprocessableEntity("validation failed", details...)
	}
	var e *store.EndpointRow
	var before *WebhookEndpoint
	err = s.patchOutsideLock(ctx, p.TenantID, in.IfMatch, patchSteps{
		read: func(ctx context.Context, tx *store.Tx) (_ int64, err error) {
			if e, err = tx.GetEndpoint(ctx, in.ID); err != nil {
				return 0, err
			}
			return e.Version, nil
		},
		apply: func() (bool, error) {
			before = model.WebhookOf(e)
			return s.applyWebhookPatch(e, patch, headerPatch, urlPatched)
		},
		lock: func(ctx context.Context, tx *store.Tx) (int64, error) {
			cur, err := tx.GetEndpointForUpdate(ctx, in.ID)
			if err != nil {
				return 0, err
			}
			return cur.Version, nil
		},
		write: func(ctx context.Context, tx *store.Tx) error {
			if err := tx.UpdateEndpoint(ctx, e); err != nil {
				return err
			}
			return s.recordEndpoint(ctx, tx, p, "webhook.update", before, e)
		},
	})
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, errWebhookNotFound
	case err != nil:
		return nil, s.apiError("update webhook", err)
	}
	return &webhookOut{ETag: etag(e.Version), Body: model.WebhookOf(e)}, nil
}

// applyWebhookPatch merges patch (without headers) and headerPatch into e
// (a copy read without a lock: no database work here), validates the
// result as a create, and seals new values. It reports whether anything a
// user set changes.
func (s *Server) applyWebhookPatch(e *store.EndpointRow, patch map[string]json.RawMessage, headerPatch map[string]*string, urlPatched bool) (bool, error) {
	before := model.WebhookOf(e)
	doc, err := mergePatch(endpointDocument(e), patch)
	if err != nil {
		return false, huma.Error400BadRequest(err.Error())
	}
	var b WebhookEndpointCreate
	if err := s.validateDoc(doc, &b); err != nil {
		return false, err
	}
	if b.Kind != e.Kind && (b.Kind != "" || e.Kind != schemas.EndpointKindWebhook) {
		return false, huma.Error422UnprocessableEntity("validation failed", &huma.ErrorDetail{Location: "body.kind", Message: "the kind of an endpoint cannot change; create a new endpoint", Value: b.Kind})
	}
	// Validate the headers as they will be: set ones with their new
	// values, kept ones with a placeholder.
	b.Headers = map[string]string{}
	if headerPatch != nil {
		for name := range e.Headers {
			b.Headers[name] = "kept"
		}
	}
	for name, v := range headerPatch {
		delete(b.Headers, http.CanonicalHeaderKey(name))
		if v != nil {
			b.Headers[name] = *v
		}
	}
	if details := s.checkWebhook(&b); len(details) > 0 {
		return false, huma.Error422UnprocessableEntity("validation failed", details...)
	}
	if len(b.Headers) > 20 {
		return false, huma.Error422UnprocessableEntity("validation failed", &huma.ErrorDetail{Location: "body.headers", Message: "at most 20 headers"})
	}
	wasActive := e.IsActive
	e.Name, e.IsActive = b.Name, b.IsActive == nil || *b.IsActive
	e.RateLimitPerSecond = optional(b.RateLimitPerSecond)
	if urlPatched {
		s.setTargetURL(e, b.TargetURL)
	}
	if headerPatch == nil {
		e.Headers = map[string]schemas.Sealed{}
	}
	for name, v := range headerPatch {
		if v == nil {
			delete(e.Headers, http.CanonicalHeaderKey(name))
		} else {
			s.sealHeader(e, name, *v)
		}
	}
	if e.IsActive && !wasActive {
		e.DisabledReason = nil
	}
	// A new URL that is sealed looks the same masked: it is a change.
	sealedURLChanged := urlPatched && e.TargetURLSealed != nil
	return !sameWebhook(before, model.WebhookOf(e)) || headerPatch == nil || len(headerPatch) > 0 || sealedURLChanged, nil
}

// sameWebhook reports whether two views differ in nothing a user set.
func sameWebhook(a, b *WebhookEndpoint) bool {
	x, y := *a, *b
	x.UpdatedAt, x.Version, y.Version = y.UpdatedAt, 0, 0
	return reflect.DeepEqual(x, y)
}

// WebhookEndpointDeleted is the answer to DELETE /v1/webhooks/{id}.
type WebhookEndpointDeleted struct {
	ID               string   `json:"id" doc:"The deleted endpoint"`
	Deleted          bool     `json:"deleted" doc:"Always true"`
	DeactivatedRules []string `json:"deactivated_rules" doc:"The alert rules that sent to this endpoint: deactivated with it (disabled_reason says why)."`
}

type deleteWebhookOut struct {
	Body WebhookEndpointDeleted
}

func (s *Server) deleteWebhook(ctx context.Context, in *deleteIn) (*deleteWebhookOut, error) {
	p := principalFrom(ctx)
	out := &deleteWebhookOut{}
	out.Body.ID, out.Body.DeactivatedRules = in.ID, []string{}
	err := s.tenantTx(ctx, p.TenantID, func(tx *store.Tx) error {
		e, err := tx.GetEndpointForUpdate(ctx, in.ID)
		if err != nil {
			return err
		}
		if err := checkIfMatch(in.IfMatch, e.Version); err != nil {
			return err
		}
		if err := tx.DeleteEndpoint(ctx, e.ID); err != nil {
			return err
		}
		if err := tx.InsertAudit(ctx, e.TenantID, p.actor(), "webhook.delete", "webhook", e.ID, model.WebhookOf(e), nil, requestID(ctx)); err != nil {
			return err
		}
		if err := tx.InsertOutbox(ctx, s.cfg.Topics.Endpoints, schemas.TenantKey(e.TenantID, e.ID), nil); err != nil {
			return err
		}
		// Its rules can no longer deliver: deactivate them, each with its
		// own audit row and new snapshot.
		rules, err := tx.ActiveRulesOfEndpointForUpdate(ctx, e.ID)
		if err != nil {
			return err
		}
		reason := "webhook endpoint " + e.ID + " was deleted"
		for _, r := range rules {
			before := model.RuleOf(r)
			r.IsActive, r.DisabledReason = false, &reason
			if err := tx.UpdateRule(ctx, r); err != nil {
				return err
			}
			if err := s.recordRule(ctx, tx, p, "alert_rule.disable", before, r); err != nil {
				return err
			}
			out.Body.DeactivatedRules = append(out.Body.DeactivatedRules, r.ID)
		}
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		return nil, errWebhookNotFound
	}
	if err != nil {
		return nil, s.apiError("delete webhook", err)
	}
	out.Body.Deleted = true
	return out, nil
}

// RotateSecretRequest is the optional body of POST /v1/webhooks/{id}/rotate-secret.
type RotateSecretRequest struct {
	GracePeriod string `json:"grace_period,omitempty" maxLength:"32" default:"24h" doc:"How long the previous secret keeps signing next to the new one (Go duration, 0s to 168h). Ignored for pagerduty endpoints."`
	Secret      string `json:"secret,omitempty" maxLength:"128" doc:"webhook and slack: the new whsec_ secret, generated when absent. pagerduty: the new routing key (required)."`
}

type rotateIn struct {
	ID   string `path:"id" maxLength:"64" doc:"The endpoint's id"`
	Body *RotateSecretRequest
}

func (s *Server) rotateSecret(ctx context.Context, in *rotateIn) (*webhookOut, error) {
	p := principalFrom(ctx)
	body := in.Body
	if body == nil {
		body = &RotateSecretRequest{}
	}
	if body.GracePeriod == "" {
		body.GracePeriod = "24h"
	}
	grace, d := parseDuration("body.grace_period", body.GracePeriod, 0, 168*time.Hour)
	if d != nil {
		return nil, huma.Error422UnprocessableEntity("validation failed", d)
	}
	var e *store.EndpointRow
	var secret string
	err := s.tenantTx(ctx, p.TenantID, func(tx *store.Tx) (err error) {
		if e, err = tx.GetEndpointForUpdate(ctx, in.ID); err != nil {
			return err
		}
		if secret, err = checkSecret(e.Kind, body.Secret); err != nil {
			return err
		}
		before := model.WebhookOf(e)
		old := e.Secret
		e.Secret = s.cfg.Keyring.Seal(secret, schemas.SecretAAD(e.TenantID, e.ID))
		e.SecretHint = secretHint(secret)
		e.PreviousSecret, e.PreviousSecretExpiresAt = nil, nil
		if e.Kind != schemas.EndpointKindPagerDuty && grace > 0 {
			until := time.Now().Add(grace).UTC()
			e.PreviousSecret, e.PreviousSecretExpiresAt = &old, &until
		}
		if err := tx.UpdateEndpoint(ctx, e); err != nil {
			return err
		}
		return s.recordEndpoint(ctx, tx, p, "webhook.rotate_secret", before, e)
	})
	if errors.Is(err, ErrNotFound) {
		return nil, errWebhookNotFound
	}
	if err != nil {
		return nil, s.apiError("rotate secret", err)
	}
	out := model.WebhookOf(e)
	out.Secret = secret
	return &webhookOut{ETag: etag(e.Version), Body: out}, nil
}

// tokenInPath reports whether host is a chat service whose incoming-webhook
// URLs carry their credential in the path, whatever kind the endpoint is.
func tokenInPath(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	switch host {
	case "hooks.slack.com", "discord.com", "discordapp.com", "canary.discord.com", "ptb.discord.com":
		return true
	}
	return strings.HasSuffix(host, ".webhook.office.com")
}
