package controlplane

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/keyring"
	"github.com/exospherehost/exo-alerts/internal/ssrf"
	"github.com/exospherehost/exo-alerts/internal/store"
)

// Version is reported in the OpenAPI document.
var Version = "0.1.0"

// Config configures the control plane.
type Config struct {
	// Addr is the listen address of the API and dashboard.
	Addr string
	// Listener, if set, is used instead of listening on Addr.
	Listener net.Listener
	// The HTTP server's timeouts (net/http.Server), so a slow or idle
	// client cannot hold a connection forever. ReadHeaderTimeout (default
	// 10s) bounds reading a request's headers, ReadTimeout (30s) the whole
	// request with its body, WriteTimeout (60s) the time from the end of the
	// headers to the end of the answer, IdleTimeout (120s) how long a
	// keep-alive connection may wait for its next request. Zero: default;
	// negative values are refused.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// Pool is the Postgres pool (migrated). Required.
	Pool       *pgxpool.Pool
	Brokers    []string
	Topics     kafka.Topics
	Partitions int32
	Keyring    *keyring.Ring
	// Allowlist names addresses a target URL may point at despite the SSRF rules.
	Allowlist []string
	// AppRole is the Postgres role API requests run as (SET LOCAL ROLE per
	// transaction), so row-level security enforces the tenant again. Default
	// "exo_app" (created by the migrations); "off" runs them as the
	// connecting role, which as the tables' owner bypasses row-level security.
	AppRole string
	// OutboxPoll is the fallback poll interval of the outbox relay.
	OutboxPoll time.Duration
	// PublishWait is how long a request that changed something waits for
	// the outbox relay to have put its changes on Kafka before it answers
	// (default 2s; negative: not at all). A rule is then in force for every
	// event produced after the answer: the processor catches up with the
	// rules topic before each batch. Past the wait the request answers
	// anyway; the change is stored and published when Kafka takes it.
	PublishWait time.Duration
	// KafkaOpts are appended to the options of the control plane's Kafka
	// client (tests route its connections through a proxy they can cut).
	KafkaOpts []kgo.Opt
	// Tenants is EXO_TENANTS, the initial rollout (internal/rollout.SeedOf):
	// nil (unset or "*") is GA for everybody, empty ("none") off, a list the
	// beta of those tenants. While no rollout default is stored the API
	// follows it; at start the relay stores it (default, and state beta for
	// each tenant listed) if no default is stored yet, audited as
	// rollout.seed. Once a default is stored, what is stored wins and
	// Tenants is ignored (nil: nothing is stored; everybody is served until
	// an operator sets a default). Operators change the rollout with the
	// operator API or `exo-alerts rollout`.
	Tenants []string
	// AggregateRulesPerTenant caps a tenant's active count and rate rules
	// (EXO_AGGREGATE_RULES_PER_TENANT; default 100), AggregateGroupsPerTenant
	// the sum of their max_groups (EXO_AGGREGATE_GROUPS_PER_TENANT; default
	// 50000): the bound of a tenant's aggregate state in the processor.
	AggregateRulesPerTenant  int
	AggregateGroupsPerTenant int64
	// TenantQuota and GlobalQuota are EXO_TENANT_DELIVERY_QUOTA and
	// EXO_GLOBAL_DELIVERY_QUOTA as the processors read them, for the
	// quota API to show (0: no cap).
	TenantQuota, GlobalQuota int64
	// IngestRate is how many events per second one API key may send to
	// POST /v1/events (EXO_INGEST_RATE; default 1000; negative: no limit),
	// IngestBurst how many at once (EXO_INGEST_BURST; default 1000, the
	// largest batch).
	IngestRate, IngestBurst int
	Log                     *slog.Logger
	Registry                *prometheus.Registry
	// Routes, if set, adds routes (dev mode's demo receiver) to the mux.
	Routes func(*http.ServeMux)
	// Ready, if set, is closed once the server listens.
	Ready chan<- net.Addr
}

// Default HTTP server timeouts (Config.ReadHeaderTimeout and the others).
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultWriteTimeout      = 60 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
)

func (c *Config) defaults() {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:8080"
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&c.ReadHeaderTimeout, DefaultReadHeaderTimeout}, {&c.ReadTimeout, DefaultReadTimeout}, {&c.WriteTimeout, DefaultWriteTimeout}, {&c.IdleTimeout, DefaultIdleTimeout}} {
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.Topics.Events == "" {
		c.Topics = kafka.NewTopics(kafka.DefaultPrefix)
	}
	if c.Partitions == 0 {
		c.Partitions = 3
	}
	if c.AppRole == "" {
		c.AppRole = "exo_app"
	}
	if c.PublishWait == 0 {
		c.PublishWait = 2 * time.Second
	}
	if c.OutboxPoll == 0 {
		c.OutboxPoll = 5 * time.Second
	}
	if c.AggregateRulesPerTenant == 0 {
		c.AggregateRulesPerTenant = DefaultAggregateRulesPerTenant
	}
	if c.AggregateGroupsPerTenant == 0 {
		c.AggregateGroupsPerTenant = DefaultAggregateGroupsPerTenant
	}
	if c.IngestRate == 0 {
		c.IngestRate = DefaultIngestRate
	}
	if c.IngestBurst == 0 {
		c.IngestBurst = DefaultIngestBurst
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Registry == nil {
		c.Registry = prometheus.NewRegistry()
	}
}

func (c *Config) validate() error {
	var problems []string
	if c.Pool == nil {
		problems = append(problems, "no Postgres pool (DATABASE_URL)")
	}
	if len(c.Brokers) == 0 {
		problems = append(problems, "no Kafka brokers (KAFKA_BROKERS)")
	}
	if c.Keyring == nil {
		problems = append(problems, "no key ring (EXO_KEYRING) to encrypt secrets")
	}
	for _, t := range []struct {
		name string
		d    time.Duration
	}{
		{"ReadHeaderTimeout (EXO_HTTP_READ_HEADER_TIMEOUT)", c.ReadHeaderTimeout}, {"ReadTimeout (EXO_HTTP_READ_TIMEOUT)", c.ReadTimeout},
		{"WriteTimeout (EXO_HTTP_WRITE_TIMEOUT)", c.WriteTimeout}, {"IdleTimeout (EXO_HTTP_IDLE_TIMEOUT)", c.IdleTimeout},
	} {
		if t.d < 0 {
			problems = append(problems, fmt.Sprintf("%s is negative (%s)", t.name, t.d))
		}
	}
	if c.AggregateRulesPerTenant < 0 || c.AggregateGroupsPerTenant < 0 {
		problems = append(problems, fmt.Sprintf("negative aggregate rule caps (EXO_AGGREGATE_RULES_PER_TENANT %d, EXO_AGGREGATE_GROUPS_PER_TENANT %d)",
			c.AggregateRulesPerTenant, c.AggregateGroupsPerTenant))
	}
	if c.IngestBurst < 0 {
		problems = append(problems, fmt.Sprintf("negative ingest burst (EXO_INGEST_BURST %d)", c.IngestBurst))
	}
	if len(problems) > 0 {
		return fmt.Errorf("controlplane: invalid config: %s", strings.Join(problems, "; "))
	}
	return nil
}

// Server is the control plane.
type Server struct {
	cfg   Config
	log   *slog.Logger
	pool  *pgxpool.Pool
	db    *store.Store
	guard *ssrf.Guard
	kafka *kgo.Client
	api   huma.API
	mux   *http.ServeMux
	http  *httpMetrics
	// pg tracks Postgres outages, logged once each (not per request).
	pg *outage
	// relaying is set while this process's outbox relay publishes
	// successfully: only then is a request's change sure to be on Kafka
	// soon, and worth waiting for (every control plane instance runs a
	// relay; they take turns). While Kafka is away nobody waits.
	relaying atomic.Bool
	// ingestLimit and ingestMetrics serve POST /v1/events.
	ingestLimit   *ingestLimiter
	ingestMetrics *ingestMetrics
}

// New builds the server; Run serves it.
func New(cfg Config) (*Server, error) {
	cfg.defaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	guard, err := ssrf.New(cfg.Allowlist)
	if err != nil {
		return nil, fmt.Errorf("controlplane: %w", err)
	}
	s := &Server{cfg: cfg, log: cfg.Log.With("component", "controlplane"), pool: cfg.Pool, db: store.New(cfg.Pool, cfg.AppRole), guard: guard, mux: http.NewServeMux()}
	if s.http, err = newHTTPMetrics(cfg.Registry); err != nil {
		return nil, fmt.Errorf("controlplane: register metrics: %w", err)
	}
	if s.pg, err = newOutage(s.log, cfg.Registry, "postgres"); err != nil {
		return nil, fmt.Errorf("controlplane: register metrics: %w", err)
	}
	if s.ingestMetrics, err = newIngestMetrics(cfg.Registry); err != nil {
		return nil, fmt.Errorf("controlplane: register metrics: %w", err)
	}
	s.ingestLimit = newIngestLimiter(cfg.IngestRate, cfg.IngestBurst, time.Now)
	s.api = s.newAPI()
	return s, nil
}

// API returns the Huma API (for the OpenAPI document).
func (s *Server) API() huma.API { return s.api }

// Handler returns the HTTP handler of the API, dashboard and probes.
func (s *Server) Handler() http.Handler { return s.mux }

// Run serves until ctx ends, and runs the outbox relay.
func Run(ctx context.Context, cfg Config) error {
	s, err := New(cfg)
	if err != nil {
		return err
	}
	return s.Run(ctx)
}

// Run serves until ctx ends, and runs the outbox relay.
func (s *Server) Run(ctx context.Context) error {
	opts := append(kafka.ClientOpts(s.cfg.Brokers, s.log), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.MaxBufferedRecords(10_000))
	cl, err := kgo.NewClient(append(opts, s.cfg.KafkaOpts...)...)
	if err != nil {
		return fmt.Errorf("controlplane: kafka client: %w", err)
	}
	defer cl.Close()
	s.kafka = cl
	// The relay creates the topics (retrying while Kafka is away): the API
	// only writes Postgres and serves through a Kafka outage.
	ln := s.cfg.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", s.cfg.Addr); err != nil {
			return fmt.Errorf("controlplane: listen %s: %w", s.cfg.Addr, err)
		}
	}
	srv := &http.Server{
		Handler: s.mux, BaseContext: func(net.Listener) context.Context { return ctx },
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout, ReadTimeout: s.cfg.ReadTimeout,
		WriteTimeout: s.cfg.WriteTimeout, IdleTimeout: s.cfg.IdleTimeout,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	wg.Go(func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs <- fmt.Errorf("controlplane: serve: %w", err)
			cancel()
		}
	})
	// Until its first drain the relay is starting, not stuck: a change made
	// now is published within moments, and a client that produces an event
	// right after the answer (the quickstart does) needs the rule to be on
	// Kafka first. So requests wait for it from the start; a relay that does
	// not publish within PublishWait clears the flag (awaitPublished).
	s.relaying.Store(true)
	wg.Go(func() {
		defer s.relaying.Store(false)
		if err := newRelay(s, cl).run(ctx); err != nil {
			errs <- err
			cancel()
		}
	})
	s.log.Info("control plane listening", "addr", ln.Addr().String())
	if s.cfg.Ready != nil {
		s.cfg.Ready <- ln.Addr()
	}
	<-ctx.Done()
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer scancel()
	_ = srv.Shutdown(sctx)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// ErrNotFound is returned when a row does not exist for the tenant.
var ErrNotFound = store.ErrNotFound

type principalKey struct{}

var bearer = map[string][]string{"bearer": {}}

func (s *Server) newAPI() huma.API {
	redactProblemValues()
	cfg := huma.DefaultConfig("Exosphere Alerts API", Version)
	cfg.Info.Description = "Outgoing webhooks and alert rules for workflow runs. Authenticate with `Authorization: Bearer <api key>`."
	cfg.Components.SecuritySchemes = map[string]*huma.SecurityScheme{
		"bearer":   {Type: "http", Scheme: "bearer", Description: "A tenant's API key (role admin or viewer), minted with `exo-alerts apikey create --tenant <id>`."},
		"operator": {Type: "http", Scheme: "bearer", Description: "An operator's API key (role operator, no tenant), minted with `exo-alerts apikey create --role operator`: the rollout and quota APIs only."},
		"ingest":   {Type: "http", Scheme: "bearer", Description: "A tenant's API key of role ingest (`exo-alerts apikey create --tenant <id> --role ingest`), which may only send events (POST /v1/events); an admin key may send them too."},
	}
	cfg.DocsPath = "/docs"
	api := humago.New(s.mux, cfg)
	s.http.track(api.OpenAPI())
	api.UseMiddleware(s.http.middleware, withRequestID, s.authenticate(api))

	s.registerWebhooks(api)
	s.registerRules(api)
	s.registerGroups(api)
	s.registerHistory(api)
	s.registerAudit(api)
	s.registerEventTypes(api)
	s.registerMe(api)
	s.registerRollout(api)
	s.registerQuota(api)
	s.registerNotices(api)
	s.registerIngest(api)
	s.registerOverview(api)
	s.registerDeliverySearch(api)

	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
	})
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{}))
	s.mux.Handle("GET /{$}", dashboard())
	if s.cfg.Routes != nil {
		s.cfg.Routes(s.mux)
	}
	return api
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	var problems []string
	if err := s.pool.Ping(ctx); err != nil {
		problems = append(problems, "postgres: unreachable")
	}
	if s.kafka == nil || s.kafka.Ping(ctx) != nil {
		problems = append(problems, "kafka: unreachable")
	}
	w.Header().Set("Content-Type", "text/plain")
	if len(problems) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(strings.Join(problems, "\n") + "\n"))
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}

// authenticate checks the bearer API key of every operation that declares security.
func (s *Server) authenticate(api huma.API) func(huma.Context, func(huma.Context)) {
	return func(ctx huma.Context, next func(huma.Context)) {
		op := ctx.Operation()
		if op == nil || len(op.Security) == 0 {
			next(ctx)
			return
		}
		scheme, token, _ := strings.Cut(strings.TrimSpace(ctx.Header("Authorization")), " ")
		token = strings.TrimSpace(token)
		if !strings.EqualFold(scheme, "Bearer") || token == "" { // schemes are case-insensitive (RFC 9110 11.1)
			ctx.SetHeader("WWW-Authenticate", `Bearer realm="exo-alerts"`)
			_ = huma.WriteErr(api, ctx, http.StatusUnauthorized, "missing API key: send Authorization: Bearer <api key>")
			return
		}
		p, err := s.lookupKey(ctx.Context(), token)
		if err != nil {
			if !errors.Is(err, ErrNotFound) {
				// Every request fails the same way while Postgres is away:
				// the outage is logged once, the failures counted.
				if canceled(ctx.Context(), err) {
					s.log.Debug("api key lookup: request ended", "err", err)
				} else {
					s.pg.fail("api key lookup", err)
				}
				ctx.SetHeader("Retry-After", "5")
				_ = huma.WriteErr(api, ctx, http.StatusServiceUnavailable, "cannot check the API key now; retry")
				return
			}
			s.pg.ok()
			ctx.SetHeader("WWW-Authenticate", `Bearer realm="exo-alerts", error="invalid_token"`)
			_ = huma.WriteErr(api, ctx, http.StatusUnauthorized, "invalid or revoked API key")
			return
		}
		s.pg.ok()
		// The operator API and the tenants' are apart: an operator key has
		// no tenant, and a tenant's key must not switch its tenant on.
		forIngest := hasScheme(op, "ingest")
		switch forOperator, forTenant := hasScheme(op, "operator"), hasScheme(op, "bearer") || forIngest; {
		case p.Role == RoleOperator && !forOperator:
			_ = huma.WriteErr(api, ctx, http.StatusForbidden, "an operator key manages the rollout and the delivery quotas only (/v1/rollout, /v1/quotas); use a tenant's key for this")
			return
		case p.Role != RoleOperator && !forTenant:
			_ = huma.WriteErr(api, ctx, http.StatusForbidden, "this operation needs an operator key (exo-alerts apikey create --role operator)")
			return
		case p.Role == RoleOperator:
			next(huma.WithValue(ctx, principalKey{}, p))
			return
		}
		if !s.served(p) {
			_ = huma.WriteErr(api, ctx, http.StatusForbidden, "Exosphere Alerts is not enabled for tenant "+p.TenantID+" (rollout); ask your operator")
			return
		}
		// An ingest key sends events and does nothing else; sending events
		// takes an ingest or an admin key (a viewer key is read-only).
		switch {
		case p.Role == RoleIngest && !forIngest:
			_ = huma.WriteErr(api, ctx, http.StatusForbidden, "an ingest key may only send events (POST /v1/events); use an admin or viewer key for this")
			return
		case forIngest && p.Role != RoleIngest && p.Role != RoleAdmin:
			_ = huma.WriteErr(api, ctx, http.StatusForbidden, "sending events needs a key of role ingest or admin (exo-alerts apikey create --role ingest)")
			return
		case forIngest:
			next(huma.WithValue(ctx, principalKey{}, p))
			return
		}
		if op.Method != http.MethodGet && p.Role != RoleAdmin {
			_ = huma.WriteErr(api, ctx, http.StatusForbidden, "this API key is read-only (role viewer)")
			return
		}
		next(huma.WithValue(ctx, principalKey{}, p))
	}
}

// hasScheme reports whether op accepts the security scheme name.
func hasScheme(op *huma.Operation, name string) bool {
	for _, req := range op.Security {
		if _, ok := req[name]; ok {
			return true
		}
	}
	return false
}

func principalFrom(ctx context.Context) *principal {
	p, _ := ctx.Value(principalKey{}).(*principal)
	return p
}

// tenantTx runs fn in a transaction of tenant: as the application role, with
// exo.tenant_id set for the transaction, so Postgres row-level security shows
// and accepts only that tenant's rows whatever the query says. Every API
// request's queries run in one.
//
// A transaction that wrote waits, after its commit, until the outbox rows it
// queued are on Kafka (awaitPublished).
func (s *Server) tenantTx(ctx context.Context, tenant string, fn func(*store.Tx) error) error {
	wait := s.cfg.PublishWait > 0 && s.relaying.Load()
	xid, err := s.db.InTenant(ctx, tenant, wait, fn)
	if err == nil && xid != "" && s.relaying.Load() {
		s.awaitPublished(ctx, xid)
	}
	return err
}

// awaitPublished waits until no outbox row written by transaction xid is
// unsent (store.Unpublished), for at most PublishWait.
func (s *Server) awaitPublished(ctx context.Context, xid string) {
	deadline := time.Now().Add(s.cfg.PublishWait)
	for wait := 2 * time.Millisecond; ; wait = min(2*wait, 50*time.Millisecond) {
		if pending, err := s.db.Unpublished(ctx, xid); err != nil || !pending {
			return
		}
		if time.Now().After(deadline) {
			// The relay is stuck (Kafka slow or away): the next requests do
			// not wait until it publishes again.
			s.relaying.Store(false)
			s.log.Warn("changes not on Kafka yet; answering anyway (they are stored and will be published)", "waited", s.cfg.PublishWait)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func requestID(ctx context.Context) string {
	if id, ok := ctx.Value(requestIDKey{}).(string); ok {
		return id
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return "req_" + hex.EncodeToString(b)
}

type requestIDKey struct{}

var requestIDRE = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// withRequestID gives every API request an id: the caller's X-Request-Id
// when it is a sane token, else a fresh one. It is echoed in the answer's
// X-Request-Id header and recorded in the audit rows the request writes, so
// a change can be traced from the client to the audit trail.
func withRequestID(ctx huma.Context, next func(huma.Context)) {
	id := ctx.Header("X-Request-Id")
	if !requestIDRE.MatchString(id) {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		id = "req_" + hex.EncodeToString(b)
	}
	ctx.SetHeader("X-Request-Id", id)
	// Answers may hold a secret (create, rotate) and are one tenant's:
	// never stored by a cache or proxy.
	ctx.SetHeader("Cache-Control", "no-store")
	next(huma.WithValue(ctx, requestIDKey{}, id))
}

// internalError logs err and answers 500 without leaking details. A value
// Postgres cannot store (a NUL character, an invalid byte sequence: SQL
// "data exception" errors) is the client's mistake: 400.
func (s *Server) internalError(op string, err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && strings.HasPrefix(pe.Code, "22") {
		return huma.Error400BadRequest("the request holds a value that cannot be stored (e.g. a NUL character or an out-of-range value)")
	}
	if unavailable(err) {
		s.pg.fail(op, err)
		return huma.Error503ServiceUnavailable("the database is unreachable now; retry")
	}
	s.log.Error(op, "err", err)
	return huma.Error500InternalServerError("internal error; see the control plane log")
}

// apiError passes an error meant for the client through and turns any
// other into a logged 500.
func (s *Server) apiError(op string, err error) error {
	var se huma.StatusError
	if errors.As(err, &se) {
		return se
	}
	return s.internalError(op, err)
}
