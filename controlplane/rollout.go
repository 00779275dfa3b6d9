package controlplane

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/rollout"
	"github.com/exospherehost/exo-alerts/internal/store"
	"github.com/exospherehost/exo-alerts/schemas"
)

// The live rollout flag: each tenant's explicit state (off, beta, ga or
// none) and the global default, stored in Postgres and changed by
// operators only — through the operator API below (API keys of role
// operator, which belong to no tenant) or `exo-alerts rollout`. Each change
// writes its row, an audit row and an outbox record for the compacted
// tenants topic in one transaction; the processor and the dispatcher follow
// that topic (internal/rollout.Table), the API reads Postgres with the key
// (authenticate). Who is served by which states: internal/rollout.

// operator is the security scheme of the operator API: a bearer API key
// of role operator.
var operator = map[string][]string{"operator": {}}

// Audit actions of the rollout.
const (
	actionRolloutDefault = "rollout.default" // the global default changed
	actionRolloutSet     = "rollout.set"     // a tenant's explicit state set
	actionRolloutClear   = "rollout.clear"   // a tenant's explicit state removed
	actionRolloutSeed    = "rollout.seed"    // stored from EXO_TENANTS at start
)

// rolloutAudit is what the audit trail keeps of a state: null for none.
type rolloutAudit struct {
	State *string `json:"state"`
}

func auditOfState(s string) rolloutAudit {
	if s == "" {
		return rolloutAudit{}
	}
	return rolloutAudit{State: &s}
}

// RolloutDefault is the global default as the operator API shows it.
type RolloutDefault struct {
	State     string     `json:"state" enum:"off,beta,ga" doc:"off: nobody is served; beta: only the tenants in state beta or ga; ga: every tenant but those in state off"`
	Source    string     `json:"source" enum:"stored,EXO_TENANTS,unset" doc:"stored: set by an operator or stored from EXO_TENANTS at the first start; EXO_TENANTS: nothing stored yet, the control plane's EXO_TENANTS holds; unset: nothing stored and EXO_TENANTS not set (ga)"`
	UpdatedAt *time.Time `json:"updated_at" doc:"When it was stored; null when not stored"`
}

// TenantRollout is a tenant's rollout as the operator API shows it.
type TenantRollout struct {
	TenantID  string     `json:"tenant_id" example:"acme"`
	State     *string    `json:"state" doc:"The tenant's explicit state (off, beta or ga); null: none, it follows the default"`
	Served    bool       `json:"served" doc:"Whether the tenant is served now (alerts and the API) under the current default"`
	UpdatedAt *time.Time `json:"updated_at" doc:"When its state was last set or cleared; null if never"`
}

// RolloutState is the body of the operator's changes.
type RolloutState struct {
	State string `json:"state" enum:"off,beta,ga" doc:"off, beta or ga"`
}

// tenantIDRE is what a tenant id looks like (the tenants table's CHECK;
// the path parameters' pattern tags spell it out too).
var tenantIDRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$`)

type rolloutListIn struct {
	Cursor   string `query:"cursor" maxLength:"200" doc:"Opaque cursor from next_cursor"`
	Limit    int    `query:"limit" minimum:"1" maximum:"1000" default:"200" doc:"The most items on a page"`
	Explicit bool   `query:"explicit" doc:"Only the tenants with an explicit state"`
}

// TenantRolloutList is the rollout: its default and a page of tenants with their state (GET /v1/rollout).
type TenantRolloutList struct {
	Default    RolloutDefault   `json:"default"`
	Tenants    []*TenantRollout `json:"tenants" doc:"Tenants by id, with their state"`
	NextCursor string           `json:"next_cursor" doc:"Pass as ?cursor= (with the same filters) for the next page; empty on the last page"`
}

type rolloutListOut struct {
	Link string `header:"Link" doc:"The next page's URL as <url>; rel=\"next\", when there is one"`
	Body TenantRolloutList
}

type rolloutDefaultIn struct {
	Body RolloutState
}

type rolloutDefaultOut struct {
	Body RolloutDefault
}

type tenantRolloutIn struct {
	TenantID string `path:"tenant_id" pattern:"^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$" doc:"The tenant's id"`
	Body     RolloutState
}

type tenantRolloutPath struct {
	TenantID string `path:"tenant_id" pattern:"^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$" doc:"The tenant's id"`
}

type tenantRolloutOut struct {
	Body TenantRollout
}

type rolloutAuditIn struct {
	Cursor string `query:"cursor" maxLength:"200" doc:"Opaque cursor from next_cursor"`
	Limit  int    `query:"limit" minimum:"1" maximum:"200" default:"50" doc:"The most items on a page"`
}

// RolloutAuditEventList is a page of the rollout's audit trail (GET /v1/rollout/audit-events).
type RolloutAuditEventList struct {
	Items      []*AuditEvent `json:"items" doc:"Rollout changes, newest first: resource_type rollout_default (resource_id *) or tenant_rollout (the tenant)"`
	NextCursor string        `json:"next_cursor" doc:"Pass as ?cursor= for the next page; empty on the last page"`
}

type rolloutAuditOut struct {
	Link string `header:"Link" doc:"The next page's URL as <url>; rel=\"next\", when there is one"`
	Body RolloutAuditEventList
}

func (s *Server) registerRollout(api huma.API) {
	sec := []map[string][]string{operator}
	const who = " Operator API keys only (`exo-alerts apikey create --role operator`); a tenant's key gets 403."
	huma.Register(api, huma.Operation{
		OperationID: "get-rollout", Method: http.MethodGet, Path: "/v1/rollout", Tags: []string{"Rollout"},
		Summary:     "Show the rollout",
		Description: "The global default and every tenant's explicit state, and whether each is served now." + who,
		Security:    sec, Errors: []int{400, 401, 403},
	}, s.getRollout)
	huma.Register(api, huma.Operation{
		OperationID: "set-rollout-default", Method: http.MethodPut, Path: "/v1/rollout/default", Tags: []string{"Rollout"},
		Summary:     "Set the global default",
		Description: "off: nobody is served (the kill switch); beta: only the tenants in state beta or ga; ga: every tenant but those in state off. In force in the processor and dispatcher within a second; audited." + who,
		Security:    sec, MaxBodyBytes: 4 << 10, Errors: []int{400, 401, 403, 422},
	}, s.setRolloutDefault)
	huma.Register(api, huma.Operation{
		OperationID: "set-tenant-rollout", Method: http.MethodPut, Path: "/v1/rollout/tenants/{tenant_id}", Tags: []string{"Rollout"},
		Summary:     "Set a tenant's state",
		Description: "The tenant's explicit state (the tenant is created if it is not known yet). A tenant not served gets no alerts (its deliveries in flight are dead-lettered with the reason tenant_disabled) and 403 from the API. In force within a second; audited in the tenant's trail." + who,
		Security:    sec, MaxBodyBytes: 4 << 10, Errors: []int{400, 401, 403, 422},
	}, s.setTenantRollout)
	huma.Register(api, huma.Operation{
		OperationID: "clear-tenant-rollout", Method: http.MethodDelete, Path: "/v1/rollout/tenants/{tenant_id}", Tags: []string{"Rollout"},
		Summary:     "Clear a tenant's state",
		Description: "Removes the tenant's explicit state: it follows the global default. Audited." + who,
		Security:    sec, Errors: []int{401, 403, 404, 422},
	}, s.clearTenantRollout)
	huma.Register(api, huma.Operation{
		OperationID: "list-rollout-audit-events", Method: http.MethodGet, Path: "/v1/rollout/audit-events", Tags: []string{"Rollout"},
		Summary:     "List the rollout's audit trail",
		Description: "Every change of the global default and of any tenant's state, newest first." + who,
		Security:    sec, Errors: []int{400, 401, 403},
	}, s.listRolloutAudit)
}

// seed is the rollout EXO_TENANTS describes (Config.Tenants).
func (c *Config) seed() rollout.Seed {
	switch {
	case c.Tenants == nil:
		return rollout.Seed{Default: rollout.GA}
	case len(c.Tenants) == 0:
		return rollout.Seed{Default: rollout.Off}
	default:
		return rollout.Seed{Default: rollout.Beta, Beta: slices.Clone(c.Tenants)}
	}
}

// served reports whether the key's tenant is served, from the rollout the
// key lookup read: the stored default and state, or EXO_TENANTS while no
// default is stored.
func (s *Server) served(p *principal) bool {
	def, st := rollout.State(p.rolloutDefault), rollout.State(p.rolloutState)
	if def == rollout.None {
		seed := s.cfg.seed()
		def = seed.Default
		if st == rollout.None && slices.Contains(seed.Beta, p.TenantID) {
			st = rollout.Beta
		}
	}
	return rollout.Served(def, st)
}

// rolloutChanges makes the operators' changes: for the API (actor the
// key) and the exo-alerts command (actor cli) alike.
type rolloutChanges struct {
	db     *store.Store
	topics kafka.Topics
}

// record is the outbox row of a state on the tenants topic: a tombstone
// when a tenant has no explicit state.
func (c rolloutChanges) record(key, state string, at *time.Time) store.OutboxRow {
	row := store.OutboxRow{Topic: c.topics.Tenants, Key: key}
	if state != "" {
		rec := schemas.TenantRecord{TenantID: key, State: state}
		if at != nil {
			rec.UpdatedAt = at.UTC()
		}
		row.Value, _ = json.Marshal(rec)
	}
	return row
}

// setDefault stores state as the global default. changed is false, and
// nothing is written, when it is the default already. xid is the
// transaction's (SystemXID).
func (c rolloutChanges) setDefault(ctx context.Context, state rollout.State, actor, requestID string) (d *store.RolloutDefault, changed bool, xid string, err error) {
	xid, err = c.db.SystemXID(ctx, func(tx *store.Tx) error {
		before, err := tx.LockRolloutDefault(ctx)
		if err != nil {
			return err
		}
		if before != nil && before.State == string(state) {
			d, changed = before, false
			return nil
		}
		if d, err = tx.SetRolloutDefault(ctx, string(state)); err != nil {
			return err
		}
		changed = true
		var was rolloutAudit
		if before != nil {
			was = auditOfState(before.State)
		}
		if err := tx.InsertAudit(ctx, "", actor, actionRolloutDefault, store.AuditRolloutDefault, schemas.RolloutDefaultKey,
			was, auditOfState(d.State), requestID); err != nil {
			return err
		}
		return tx.InsertOutboxRows(ctx, []store.OutboxRow{c.record(schemas.RolloutDefaultKey, d.State, &d.UpdatedAt)})
	})
	return d, changed, xid, err
}

// setTenant stores tenant's explicit state (None clears it; the tenant is
// created when it is set and not known yet). changed is false, and nothing
// is written, when the tenant has that state already. Clearing the state
// of a tenant that does not exist is ErrNotFound.
func (c rolloutChanges) setTenant(ctx context.Context, tenant string, state rollout.State, actor, requestID string) (r *store.TenantRollout, changed bool, xid string, err error) {
	xid, err = c.db.SystemXID(ctx, func(tx *store.Tx) error {
		var before *store.TenantRollout
		var err error
		if state == rollout.None {
			before, err = tx.TenantRolloutForUpdate(ctx, tenant)
		} else {
			before, err = tx.LockTenantRollout(ctx, tenant)
		}
		if err != nil {
			return err
		}
		if before.State == string(state) {
			r, changed = before, false
			return nil
		}
		if r, err = tx.SetTenantRollout(ctx, tenant, string(state)); err != nil {
			return err
		}
		changed = true
		action := actionRolloutSet
		if state == rollout.None {
			action = actionRolloutClear
		}
		if err := tx.InsertAudit(ctx, tenant, actor, action, store.AuditTenantRollout, tenant,
			auditOfState(before.State), auditOfState(r.State), requestID); err != nil {
			return err
		}
		return tx.InsertOutboxRows(ctx, []store.OutboxRow{c.record(tenant, r.State, r.UpdatedAt)})
	})
	return r, changed, xid, err
}

// seed stores what EXO_TENANTS says when no default is stored yet: the
// default, and state beta for each tenant it lists that has no explicit
// state (creating the tenant), audited as rollout.seed by the system and
// published. With a default stored it changes nothing and reports false:
// what is stored takes precedence over EXO_TENANTS.
func (c rolloutChanges) seed(ctx context.Context, seed rollout.Seed) (bool, error) {
	seeded := false
	err := c.db.System(ctx, func(tx *store.Tx) error {
		seeded = false
		before, err := tx.LockRolloutDefault(ctx)
		if err != nil || before != nil {
			return err
		}
		d, err := tx.SetRolloutDefault(ctx, string(seed.Default))
		if err != nil {
			return err
		}
		if err := tx.InsertAudit(ctx, "", actorSystem, actionRolloutSeed, store.AuditRolloutDefault, schemas.RolloutDefaultKey,
			nil, auditOfState(d.State), "EXO_TENANTS"); err != nil {
			return err
		}
		rows := []store.OutboxRow{c.record(schemas.RolloutDefaultKey, d.State, &d.UpdatedAt)}
		for _, tenant := range seed.Beta {
			was, err := tx.LockTenantRollout(ctx, tenant)
			if err != nil {
				return err
			}
			if was.State != "" {
				continue // set by an operator already
			}
			r, err := tx.SetTenantRollout(ctx, tenant, string(rollout.Beta))
			if err != nil {
				return err
			}
			if err := tx.InsertAudit(ctx, tenant, actorSystem, actionRolloutSeed, store.AuditTenantRollout, tenant,
				auditOfState(""), auditOfState(r.State), "EXO_TENANTS"); err != nil {
				return err
			}
			rows = append(rows, c.record(tenant, r.State, r.UpdatedAt))
		}
		seeded = true
		return tx.InsertOutboxRows(ctx, rows)
	})
	return seeded, err
}

// republishRows are the outbox rows of the stored rollout (the default and
// every explicit state), for the relay's start-up republish.
func (c rolloutChanges) republishRows(ctx context.Context, tx *store.Tx) ([]store.OutboxRow, error) {
	def, tenants, err := tx.RepublishRollout(ctx)
	if err != nil {
		return nil, err
	}
	var rows []store.OutboxRow
	if def != nil {
		rows = append(rows, c.record(schemas.RolloutDefaultKey, def.State, &def.UpdatedAt))
	}
	for _, t := range tenants {
		rows = append(rows, c.record(t.TenantID, t.State, t.UpdatedAt))
	}
	return rows, nil
}

// view is the API's view of a tenant's rollout under the default def.
func tenantView(r *store.TenantRollout, def rollout.State) *TenantRollout {
	v := &TenantRollout{TenantID: r.TenantID, Served: rollout.Served(def, rollout.State(r.State)), UpdatedAt: r.UpdatedAt}
	if r.State != "" {
		st := r.State
		v.State = &st
	}
	return v
}

// currentDefault is the default in force: the stored one, else EXO_TENANTS'.
func (s *Server) currentDefault(ctx context.Context) (RolloutDefault, error) {
	d, err := s.db.RolloutDefault(ctx)
	if err != nil {
		return RolloutDefault{}, err
	}
	if d != nil {
		at := d.UpdatedAt
		return RolloutDefault{State: d.State, Source: "stored", UpdatedAt: &at}, nil
	}
	source := "EXO_TENANTS"
	if s.cfg.Tenants == nil {
		source = "unset"
	}
	return RolloutDefault{State: string(s.cfg.seed().Default), Source: source}, nil
}

func rolloutCursor(after string) string {
	return base64.RawURLEncoding.EncodeToString([]byte("t" + after))
}

func parseRolloutCursor(s string) (string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	after, ok := strings.CutPrefix(string(raw), "t")
	if err != nil || !ok || after == "" {
		return "", errors.New("malformed cursor")
	}
	return after, nil
}

func (s *Server) getRollout(ctx context.Context, in *rolloutListIn) (*rolloutListOut, error) {
	after := ""
	if in.Cursor != "" {
		var err error
		if after, err = queryCursor(in.Cursor, parseRolloutCursor); err != nil {
			return nil, err
		}
	}
	def, err := s.currentDefault(ctx)
	if err != nil {
		return nil, s.internalError("get rollout", err)
	}
	rows, err := s.db.ListTenantRollouts(ctx, after, in.Limit+1, in.Explicit)
	if err != nil {
		return nil, s.internalError("get rollout", err)
	}
	out := &rolloutListOut{}
	out.Body.Default = def
	out.Body.Tenants = []*TenantRollout{}
	for i := range rows {
		if i == in.Limit {
			out.Body.NextCursor = rolloutCursor(rows[i-1].TenantID)
			out.Link = fmt.Sprintf(`</v1/rollout?cursor=%s&limit=%d&explicit=%t>; rel="next"`, out.Body.NextCursor, in.Limit, in.Explicit)
			break
		}
		out.Body.Tenants = append(out.Body.Tenants, tenantView(&rows[i], rollout.State(def.State)))
	}
	return out, nil
}

// published waits, like a tenant's change (tenantTx), until the outbox rows
// of transaction xid are on Kafka: the processor then applies the change
// to every event produced after the answer.
func (s *Server) published(ctx context.Context, xid string) {
	if xid != "" && s.cfg.PublishWait > 0 && s.relaying.Load() {
		s.awaitPublished(ctx, xid)
	}
}

func (s *Server) changes() rolloutChanges { return rolloutChanges{db: s.db, topics: s.cfg.Topics} }

func (s *Server) setRolloutDefault(ctx context.Context, in *rolloutDefaultIn) (*rolloutDefaultOut, error) {
	p := principalFrom(ctx)
	state, err := rollout.Parse(in.Body.State)
	if err != nil {
		return nil, huma.Error422UnprocessableEntity("bad state", &huma.ErrorDetail{Location: "body.state", Message: err.Error(), Value: in.Body.State})
	}
	d, changed, xid, err := s.changes().setDefault(ctx, state, p.actor(), requestID(ctx))
	if err != nil {
		return nil, s.internalError("set rollout default", err)
	}
	s.published(ctx, xid)
	if changed {
		s.log.Info("rollout default changed", "state", d.State, "actor", p.actor())
	}
	at := d.UpdatedAt
	return &rolloutDefaultOut{Body: RolloutDefault{State: d.State, Source: "stored", UpdatedAt: &at}}, nil
}

func (s *Server) setTenantRollout(ctx context.Context, in *tenantRolloutIn) (*tenantRolloutOut, error) {
	state, err := rollout.Parse(in.Body.State)
	if err != nil {
		return nil, huma.Error422UnprocessableEntity("bad state", &huma.ErrorDetail{Location: "body.state", Message: err.Error(), Value: in.Body.State})
	}
	return s.changeTenant(ctx, in.TenantID, state)
}

func (s *Server) clearTenantRollout(ctx context.Context, in *tenantRolloutPath) (*tenantRolloutOut, error) {
	return s.changeTenant(ctx, in.TenantID, rollout.None)
}

func (s *Server) changeTenant(ctx context.Context, tenant string, state rollout.State) (*tenantRolloutOut, error) {
	p := principalFrom(ctx)
	r, changed, xid, err := s.changes().setTenant(ctx, tenant, state, p.actor(), requestID(ctx))
	if errors.Is(err, store.ErrNotFound) {
		return nil, huma.Error404NotFound("no tenant " + tenant)
	}
	if err != nil {
		return nil, s.internalError("set tenant rollout", err)
	}
	s.published(ctx, xid)
	if changed {
		s.log.Info("tenant rollout changed", "tenant_id", tenant, "state", string(state), "actor", p.actor())
	}
	def, err := s.currentDefault(ctx)
	if err != nil {
		return nil, s.internalError("set tenant rollout", err)
	}
	return &tenantRolloutOut{Body: *tenantView(r, rollout.State(def.State))}, nil
}

func (s *Server) listRolloutAudit(ctx context.Context, in *rolloutAuditIn) (*rolloutAuditOut, error) {
	var before int64
	if in.Cursor != "" {
		id, err := queryCursor(in.Cursor, parseAuditCursor)
		if err != nil {
			return nil, err
		}
		before = id
	}
	rows, err := s.db.ListRolloutAudit(ctx, before, in.Limit+1)
	if err != nil {
		return nil, s.internalError("list rollout audit events", err)
	}
	out := &rolloutAuditOut{}
	out.Body.Items = []*AuditEvent{}
	for i, r := range rows {
		if i == in.Limit {
			out.Body.NextCursor = auditCursor(rows[i-1].ID)
			out.Link = `</v1/rollout/audit-events?cursor=` + out.Body.NextCursor + `&limit=` + strconv.Itoa(in.Limit) + `>; rel="next"`
			break
		}
		out.Body.Items = append(out.Body.Items, &AuditEvent{
			ID: r.ID, Actor: r.Actor, Action: r.Action, ResourceType: r.ResourceType, ResourceID: r.ResourceID,
			Before: jsonOrNull(r.Before), After: jsonOrNull(r.After), RequestID: r.RequestID, CreatedAt: r.CreatedAt,
		})
	}
	return out, nil
}

// The exo-alerts command's changes (actor cli). Each returns whether it
// changed anything and the id of its transaction, for WaitPublished.

// SetRolloutDefault stores state (off, beta or ga) as the global default.
func SetRolloutDefault(ctx context.Context, pool *pgxpool.Pool, topics kafka.Topics, state string) (changed bool, xid string, err error) {
	st, err := rollout.Parse(state)
	if err != nil {
		return false, "", err
	}
	_, changed, xid, err = rolloutChanges{db: store.New(pool, ""), topics: topics}.setDefault(ctx, st, actorCLI, "")
	return changed, xid, err
}

// SetTenantRollout stores tenant's explicit state (off, beta or ga; ""
// clears it), creating the tenant when a state is set and it is not known.
// Clearing the state of an unknown tenant is ErrNotFound.
func SetTenantRollout(ctx context.Context, pool *pgxpool.Pool, topics kafka.Topics, tenant, state string) (changed bool, xid string, err error) {
	st := rollout.None
	if state != "" {
		if st, err = rollout.Parse(state); err != nil {
			return false, "", err
		}
	}
	if !tenantIDRE.MatchString(tenant) {
		return false, "", fmt.Errorf("controlplane: tenant id %q: want letters, digits, '.', '_' or '-' (at most 63, starting with a letter or digit)", tenant)
	}
	_, changed, xid, err = rolloutChanges{db: store.New(pool, ""), topics: topics}.setTenant(ctx, tenant, st, actorCLI, "")
	if errors.Is(err, store.ErrNotFound) {
		return false, "", fmt.Errorf("controlplane: no tenant %q: %w", tenant, ErrNotFound)
	}
	return changed, xid, err
}

// WaitPublished waits until the outbox rows of transaction xid are on
// Kafka (a control plane's relay publishes them), for at most timeout, and
// reports whether they are.
func WaitPublished(ctx context.Context, pool *pgxpool.Pool, xid string, timeout time.Duration) (bool, error) {
	if xid == "" {
		return true, nil
	}
	db := store.New(pool, "")
	deadline := time.Now().Add(timeout)
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 200*time.Millisecond) {
		pending, err := db.Unpublished(ctx, xid)
		if err != nil || !pending {
			return err == nil, err
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(wait):
		}
	}
}
