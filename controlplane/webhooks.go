package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strings"

	"github.com/danielgtaylor/huma/v2"
	"github.com/jackc/pgx/v5"

	"github.com/exospherehost/exo-alerts/dispatcher/signature"
	"github.com/exospherehost/exo-alerts/schemas"
)

type webhookOut struct {
	Body *Webhook
}

type webhookListOut struct {
	Link string `header:"Link" doc:"rel=next link when there are more items"`
	Body struct {
		Items      []*Webhook `json:"items"`
		NextCursor string     `json:"next_cursor" doc:"Pass as ?cursor= to get the next page; empty on the last page"`
	}
}

type listIn struct {
	Cursor string `query:"cursor" maxLength:"200" doc:"Opaque cursor from next_cursor"`
	Limit  int    `query:"limit" minimum:"1" maximum:"200" default:"50"`
}

type idIn struct {
	ID string `path:"id" maxLength:"64"`
}

// headerNameRE is an RFC 9110 token.
var headerNameRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$")

// routingKeyRE is a PagerDuty integration (routing) key.
var routingKeyRE = regexp.MustCompile(`^[A-Za-z0-9]{32}$`)

// reservedHeaders may not be overridden by an endpoint's own headers.
var reservedHeaders = map[string]bool{
	"content-type": true, "content-length": true, "host": true, "user-agent": true, "transfer-encoding": true,
	"connection": true, "webhook-id": true, "webhook-timestamp": true, "webhook-signature": true,
	"x-exosphere-signature": true, "x-exosphere-event": true, "x-exosphere-delivery": true,
}

func (s *Server) registerWebhooks(api huma.API) {
	huma.Register(api, huma.Operation{
		OperationID: "create-webhook", Method: http.MethodPost, Path: "/v1/webhooks", Tags: []string{"Webhooks"},
		Summary: "Create a webhook endpoint", Security: []map[string][]string{bearer}, DefaultStatus: http.StatusCreated,
		MaxBodyBytes: 64 << 10,
		Errors:       []int{400, 401, 403, 422},
	}, s.createWebhook)
	huma.Register(api, huma.Operation{
		OperationID: "list-webhooks", Method: http.MethodGet, Path: "/v1/webhooks", Tags: []string{"Webhooks"},
		Summary: "List webhook endpoints", Security: []map[string][]string{bearer}, Errors: []int{400, 401},
	}, s.listWebhooks)
	huma.Register(api, huma.Operation{
		OperationID: "get-webhook", Method: http.MethodGet, Path: "/v1/webhooks/{id}", Tags: []string{"Webhooks"},
		Summary: "Get a webhook endpoint", Security: []map[string][]string{bearer}, Errors: []int{401, 404},
	}, s.getWebhook)
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

// redactURL keeps scheme, host and path of a URL and drops the rest.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "[unparseable url]"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}

func (s *Server) createWebhook(ctx context.Context, in *struct{ Body WebhookCreate }) (*webhookOut, error) {
	p := principalFrom(ctx)
	b := in.Body
	var details []error
	if d := s.checkTargetURL(b.TargetURL); d != nil {
		details = append(details, d)
	}
	for name := range b.Headers {
		if !headerNameRE.MatchString(name) {
			details = append(details, &huma.ErrorDetail{Location: "body.headers." + name, Message: "not a valid header name"})
		} else if reservedHeaders[strings.ToLower(name)] {
			details = append(details, &huma.ErrorDetail{Location: "body.headers." + name, Message: "this header is set by Exosphere Alerts and cannot be overridden"})
		} else if len(b.Headers[name]) > 4096 || strings.ContainsAny(b.Headers[name], "\r\n") {
			details = append(details, &huma.ErrorDetail{Location: "body.headers." + name, Message: "value must be at most 4096 characters without line breaks"})
		}
	}
	if len(details) > 0 {
		return nil, huma.Error422UnprocessableEntity("validation failed", details...)
	}
	kind := b.Kind
	secret := b.Secret
	switch {
	case kind == "pagerduty" && !routingKeyRE.MatchString(secret):
		return nil, huma.Error422UnprocessableEntity("validation failed", &huma.ErrorDetail{Location: "body.secret", Message: "a pagerduty endpoint needs its integration's routing key (32 letters and digits) as secret"})
	case kind == "pagerduty":
	case secret == "":
		secret = signature.NewSecret()
	default:
		if _, err := signature.Key(secret); err != nil {
			return nil, huma.Error422UnprocessableEntity("validation failed", &huma.ErrorDetail{Location: "body.secret", Message: "must be whsec_ followed by the base64 of 16 to 64 random bytes"})
		}
	}
	if kind == "" {
		kind = "webhook"
	}
	e := &endpointRow{
		ID: newID("whk"), TenantID: p.TenantID, Name: b.Name, Kind: kind, TargetURL: b.TargetURL,
		SecretHint: "…" + secret[len(secret)-4:], IsActive: b.IsActive == nil || *b.IsActive, CreatedBy: p.actor(),
		Headers: map[string]schemas.Sealed{},
	}
	aad := e.TenantID + "/" + e.ID
	e.Secret = s.cfg.Keyring.Seal(secret, aad)
	for name, v := range b.Headers {
		e.Headers[http.CanonicalHeaderKey(name)] = s.cfg.Keyring.Seal(v, aad+"/"+http.CanonicalHeaderKey(name))
	}
	err := s.tenantTx(ctx, p.TenantID, func(tx pgx.Tx) error {
		if err := insertEndpoint(ctx, tx, e); err != nil {
			return err
		}
		if err := insertAudit(ctx, tx, e.TenantID, p.actor(), "webhook.create", "webhook", e.ID, nil, e.api(), requestID(ctx)); err != nil {
			return err
		}
		snap, _ := json.Marshal(e.snapshot())
		return insertOutbox(ctx, tx, s.cfg.Topics.Endpoints, e.TenantID+"/"+e.ID, snap)
	})
	if err != nil {
		return nil, s.internalError("create webhook", err)
	}
	out := e.api()
	out.Secret = secret
	return &webhookOut{Body: out}, nil
}

func (s *Server) listWebhooks(ctx context.Context, in *listIn) (*webhookListOut, error) {
	p := principalFrom(ctx)
	cur, err := parseCursor(in.Cursor)
	if err != nil {
		return nil, huma.Error400BadRequest("bad cursor", &huma.ErrorDetail{Location: "query.cursor", Message: err.Error()})
	}
	var rows []*endpointRow
	var next string
	err = s.tenantTx(ctx, p.TenantID, func(tx pgx.Tx) error {
		rows, next, err = listPage(ctx, tx, "webhook_endpoints", endpointCols, p.TenantID, cur, in.Limit, scanEndpoint,
			func(e *endpointRow) cursor { return cursor{CreatedAt: e.CreatedAt, ID: e.ID} })
		return err
	})
	if err != nil {
		return nil, s.internalError("list webhooks", err)
	}
	out := &webhookListOut{}
	out.Body.Items = make([]*Webhook, 0, len(rows))
	for _, r := range rows {
		out.Body.Items = append(out.Body.Items, r.api())
	}
	out.Body.NextCursor = next
	if next != "" {
		out.Link = fmt.Sprintf(`</v1/webhooks?cursor=%s&limit=%d>; rel="next"`, next, in.Limit)
	}
	return out, nil
}

func (s *Server) getWebhook(ctx context.Context, in *idIn) (*webhookOut, error) {
	p := principalFrom(ctx)
	var e *endpointRow
	err := s.tenantTx(ctx, p.TenantID, func(tx pgx.Tx) (err error) {
		e, err = getEndpoint(ctx, tx, p.TenantID, in.ID)
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return nil, huma.Error404NotFound("webhook endpoint not found")
	}
	if err != nil {
		return nil, s.internalError("get webhook", err)
	}
	return &webhookOut{Body: e.api()}, nil
}
