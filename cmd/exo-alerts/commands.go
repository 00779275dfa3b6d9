package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/controlplane"
	"github.com/exospherehost/exo-alerts/dispatcher"
	"github.com/exospherehost/exo-alerts/internal/config"
	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/keyring"
	"github.com/exospherehost/exo-alerts/internal/postgres"
	"github.com/exospherehost/exo-alerts/internal/store"
	"github.com/exospherehost/exo-alerts/internal/workload"
	"github.com/exospherehost/exo-alerts/migrations"
	"github.com/exospherehost/exo-alerts/processor"
	"github.com/exospherehost/exo-alerts/recorder"
	"github.com/exospherehost/exo-alerts/schemas"
)

const usage = `exo-alerts — outgoing webhooks and alert rules for workflow runs

Usage: exo-alerts <command> [flags]

Commands:
  dev            run everything in one process on embedded defaults (make run)
  controlplane   run the REST API, dashboard and outbox relay, and a recorder
                 (EXO_CONTROLPLANE_RECORDER=off: without it, for a separate one)
  processor      run the stream processor
  dispatcher     run the webhook dispatcher
  recorder       run the recorder: delivery history, rule errors, rules disabled on
                 404/410, retention
  migrate        up | down | status
  emit           produce test workflow events
  validate       check events (a file, stdin, a Kafka record dump or a batch) as the
                 processor judges them; print every problem with its path
  apikey         create | list | revoke API keys (--role operator: an operator's key)
  rollout        list | set <tenant> off|beta|ga | clear <tenant> | default off|beta|ga |
                 history: the live rollout flag (who gets alerts)
  quota          list | set <tenant> <alerts-per-minute> | clear <tenant>: tenants'
                 delivery quotas (EXO_TENANT_DELIVERY_QUOTA is the default)
  keyring        generate a key ring for EXO_KEYRING; reencrypt secrets under its newest key
  quarantine     list | replay <id> | replay outbox:<id>: records the recorder set aside
                 (Postgres refused them) and outbox rows the relay set aside (Kafka refused them)
  version        print the version baked in at build time (also --version)

Environment: the settings are environment variables (DATABASE_URL, KAFKA_BROKERS,
EXO_KEYRING, EXO_*). Run "exo-alerts <command> -h" for the flags of a command and
the variables it reads; docs/operations.md ("Environment variables") lists them all.
`

// run runs the command line args (without the program's name). A mistake
// in it is a usage error (exit status 2) found before anything is read or
// sent; help asked for is printed on stdout and is a success.
func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageErr("no command given\n\n%s", strings.TrimSuffix(usage, "\n"))
	}
	if isHelpWord(args[0]) {
		fmt.Print(usage)
		return nil
	}
	cmds := map[string]func(context.Context, []string) error{
		"dev": cmdDev, "controlplane": cmdControlplane, "processor": cmdProcessor, "dispatcher": cmdDispatcher,
		"recorder": cmdRecorder, "migrate": cmdMigrate, "emit": cmdEmit, "apikey": cmdAPIKey, "keyring": cmdKeyring,
		"quarantine": cmdQuarantine, "rollout": cmdRollout, "quota": cmdQuota, "validate": cmdValidate, "version": cmdVersion, "--version": cmdVersion,
	}
	fn, ok := cmds[args[0]]
	if !ok {
		return usageErr("unknown command %q (exo-alerts -h lists the commands)", args[0])
	}
	if err := fn(ctx, args[1:]); !isHelp(err) {
		return err
	}
	return nil
}

func cmdDev(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8080", "listen address of the API, dashboard and demo receiver")
	kafkaPort := fs.Int("kafka-port", 9092, "port of the in-process Kafka broker (when KAFKA_BROKERS is not set)")
	fs.Usage = commandUsage(fs, "dev [flags]", "Runs the control plane, processor, dispatcher, recorder and a demo receiver in one\n"+
		"process on embedded defaults: a throwaway Postgres without DATABASE_URL, an in-process\nKafka without KAFKA_BROKERS (make run).")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := errors.Join(noArgs(fs), checkAddr("dev", "addr", *addr, false), checkRange("dev", "kafka-port", *kafkaPort, 1, 65535)); err != nil {
		return err
	}
	env := &config.Env{}
	// TLS and SASL apply to a Kafka of one's own (KAFKA_BROKERS), not to the in-process one.
	c := config.Load(env, config.Needs{Kafka: env.String("KAFKA_BROKERS", "") != ""})
	if err := env.Err(); err != nil {
		return err
	}
	tenantQuota, globalQuota := quotaEnv(env)
	if err := env.Err(); err != nil {
		return err
	}
	exe := "go run ./cmd/exo-alerts"
	if p, err := os.Executable(); err == nil && !strings.Contains(p, "go-build") {
		exe = p
	}
	return runDev(ctx, devConfig{
		Addr: *addr, DatabaseURL: c.DatabaseURL, Brokers: c.Brokers, KafkaOpts: c.KafkaOpts, KafkaPort: *kafkaPort,
		TopicPrefix: c.Topics.Prefix, Keyring: env.String("EXO_KEYRING", ""), DemoAPIKey: env.String("EXO_DEMO_API_KEY", ""),
		Exe: exe, Log: c.Log, Out: os.Stdout, TenantQuota: tenantQuota, GlobalQuota: globalQuota,
	})
}

func cmdControlplane(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("controlplane", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8080", "listen address")
	fs.Usage = commandUsage(fs, "controlplane [flags]", "Runs the REST API, the dashboard, the outbox relay and (EXO_CONTROLPLANE_RECORDER=on)\na recorder.")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := errors.Join(noArgs(fs), checkAddr("controlplane", "addr", *addr, false)); err != nil {
		return err
	}
	env := &config.Env{}
	c := config.Load(env, config.Needs{Database: true, Kafka: true, Keyring: true})
	cpc := controlplane.Config{
		AppRole:           env.String("EXO_DB_APP_ROLE", ""),
		PublicURL:         env.URL("EXO_PUBLIC_URL", "http://"+*addr),
		OutboxPoll:        env.Duration("EXO_OUTBOX_POLL", 0),
		PublishWait:       env.Duration("EXO_PUBLISH_WAIT", 0),
		ReadHeaderTimeout: env.Duration("EXO_HTTP_READ_HEADER_TIMEOUT", 0),
		ReadTimeout:       env.Duration("EXO_HTTP_READ_TIMEOUT", 0),
		WriteTimeout:      env.Duration("EXO_HTTP_WRITE_TIMEOUT", 0),
		IdleTimeout:       env.Duration("EXO_HTTP_IDLE_TIMEOUT", 0),
		// Caps of aggregate rules per tenant.
		AggregateRulesPerTenant:  env.Int("EXO_AGGREGATE_RULES_PER_TENANT", 100),
		AggregateGroupsPerTenant: int64(env.Int("EXO_AGGREGATE_GROUPS_PER_TENANT", 50000)),
		// HTTP ingest's per-key rate limit.
		IngestRate:  env.Int("EXO_INGEST_RATE", controlplane.DefaultIngestRate),
		IngestBurst: env.Int("EXO_INGEST_BURST", controlplane.DefaultIngestBurst),
	}
	switch t := env.List("EXO_TENANTS"); {
	case len(t) == 0 || slices.Equal(t, []string{"*"}):
	case slices.Equal(t, []string{"none"}):
		cpc.Tenants = []string{}
	default:
		cpc.Tenants = t
	}
	// The control plane runs a recorder in its process unless the
	// deployment runs `exo-alerts recorder` on its own.
	var withRecorder bool
	switch v := env.String("EXO_CONTROLPLANE_RECORDER", "on"); v {
	case "on":
		withRecorder = true
	case "off":
	default:
		env.Problem("EXO_CONTROLPLANE_RECORDER: %q is neither on nor off", v)
	}
	rc := recorderConfig(env, c)
	cpc.TenantQuota, cpc.GlobalQuota = quotaEnv(env)
	if err := env.Err(); err != nil {
		return err
	}
	pool, err := postgres.Connect(ctx, c.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	reg := prometheus.NewRegistry()
	parts := map[string]func(context.Context) error{
		"controlplane": func(ctx context.Context) error {
			return controlplane.Run(ctx, controlplane.Config{
				Addr: *addr, Pool: pool, Brokers: c.Brokers, Topics: c.Topics, Partitions: c.Partitions, Keyring: c.Keyring,
				Allowlist: c.Allowlist, Log: c.Log, Registry: reg, KafkaOpts: c.KafkaOpts,
				AppRole: cpc.AppRole, OutboxPoll: cpc.OutboxPoll, PublishWait: cpc.PublishWait, Tenants: cpc.Tenants,
				ReadHeaderTimeout: cpc.ReadHeaderTimeout, ReadTimeout: cpc.ReadTimeout, WriteTimeout: cpc.WriteTimeout, IdleTimeout: cpc.IdleTimeout,
				AggregateRulesPerTenant: cpc.AggregateRulesPerTenant, AggregateGroupsPerTenant: cpc.AggregateGroupsPerTenant,
				TenantQuota: cpc.TenantQuota, GlobalQuota: cpc.GlobalQuota, IngestRate: cpc.IngestRate, IngestBurst: cpc.IngestBurst,
			})
		},
	}
	if withRecorder {
		rc.Pool, rc.Registerer = pool, reg
		parts["recorder"] = func(ctx context.Context) error { return recorder.Run(ctx, rc) }
	}
	parts["kafka"] = checkKafka(c)
	return runTogether(ctx, parts)
}

// runTogether runs parts in one process until ctx ends or one of them
// fails; a failure stops the others and is returned.
func runTogether(ctx context.Context, parts map[string]func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, len(parts))
	for _, run := range parts {
		wg.Go(func() {
			if err := run(ctx); err != nil {
				errs <- err
				cancel()
			}
		})
	}
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// recorderConfig is the recorder's configuration from the environment
// (without its pool and registry), for the recorder and controlplane
// commands.
func recorderConfig(env *config.Env, c config.Common) recorder.Config {
	return recorder.Config{
		Brokers: c.Brokers, Topics: c.Topics, Log: c.Log, KafkaOpts: c.KafkaOpts,
		Group:             env.String("EXO_RECORDER_GROUP", ""),
		HistoryRetention:  env.Duration("EXO_HISTORY_RETENTION", 0),
		RetentionInterval: env.Duration("EXO_RETENTION_INTERVAL", 0),
	}
}

func cmdRecorder(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("recorder", flag.ContinueOnError)
	metricsAddr := fs.String("metrics-addr", "127.0.0.1:9103", "listen address of /metrics (empty: off)")
	fs.Usage = commandUsage(fs, "recorder [flags]", "Runs the recorder: delivery history, rule errors, rules disabled on 404/410, retention.")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := errors.Join(noArgs(fs), checkAddr("recorder", "metrics-addr", *metricsAddr, true)); err != nil {
		return err
	}
	env := &config.Env{}
	c := config.Load(env, config.Needs{Database: true, Kafka: true})
	rc := recorderConfig(env, c)
	if err := env.Err(); err != nil {
		return err
	}
	pool, err := postgres.Connect(ctx, c.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	reg := prometheus.NewRegistry()
	ready := make(chan struct{})
	rc.Ready = ready
	serveMetrics(ctx, *metricsAddr, reg, ready)
	rc.Pool, rc.Registerer = pool, reg
	return runTogether(ctx, map[string]func(context.Context) error{
		"recorder": func(ctx context.Context) error { return recorder.Run(ctx, rc) },
		"kafka":    checkKafka(c),
	})
}

// checkKafka is a part of runTogether for the components that ride out a
// Kafka outage (the control plane, the recorder): it ends the process when
// the brokers refuse the connection for good (a wrong CA or password),
// rather than leaving it retrying (kafka.CheckConnection).
func checkKafka(c config.Common) func(context.Context) error {
	return func(ctx context.Context) error {
		return kafka.CheckConnection(ctx, c.Log, append(kafka.ClientOpts(c.Brokers, nil), c.KafkaOpts...))
	}
}

// serveMetrics serves /metrics on addr for the components without an API.
// /healthz answers while the process runs; /readyz answers 200 once the
// component closed ready (it has joined its group and restored its state),
// 503 before, so an orchestrator sends no traffic and counts no rollout
// step done before then.
func serveMetrics(ctx context.Context, addr string, reg *prometheus.Registry, ready <-chan struct{}) {
	if addr == "" {
		return
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		select {
		case <-ready:
			_, _ = w.Write([]byte("ready\n"))
		default:
			http.Error(w, "starting", http.StatusServiceUnavailable)
		}
	})
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.ListenAndServe() }()
	go func() { <-ctx.Done(); _ = srv.Close() }()
}

func cmdProcessor(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("processor", flag.ContinueOnError)
	metricsAddr := fs.String("metrics-addr", "127.0.0.1:9101", "listen address of /metrics (empty: off)")
	fs.Usage = commandUsage(fs, "processor [flags]", "Runs the stream processor: workflow events in, alerts out, exactly once.")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := errors.Join(noArgs(fs), checkAddr("processor", "metrics-addr", *metricsAddr, true)); err != nil {
		return err
	}
	env := &config.Env{}
	c := config.Load(env, config.Needs{Kafka: true})
	pc := processor.Config{
		Brokers: c.Brokers, Topics: c.Topics, Partitions: c.Partitions, Log: c.Log, KafkaOpts: c.KafkaOpts,
		TransactionalID: env.String("EXO_PROCESSOR_TRANSACTIONAL_ID", ""), Group: env.String("EXO_PROCESSOR_GROUP", ""),
		Grace:              env.Duration("EXO_PROCESSOR_GRACE", 0),
		AggregateDelay:     env.Duration("EXO_PROCESSOR_AGGREGATE_DELAY", processor.DefaultAggregateDelay),
		AggregateMaxGroups: env.Int("EXO_PROCESSOR_AGGREGATE_MAX_GROUPS", processor.DefaultAggregateMaxGroups),
	}
	if pc.AggregateDelay == 0 {
		pc.AggregateDelay = processor.NoAggregateDelay
	}
	pc.TenantQuota, pc.GlobalQuota = quotaEnv(env)
	switch v := env.String("EXO_PROCESSOR_STRICT_KEYS", "off"); v {
	case "on":
		pc.StrictKeys = true
	case "off":
	default:
		env.Problem("EXO_PROCESSOR_STRICT_KEYS: %q is neither on nor off", v)
	}
	if err := env.Err(); err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	ready := make(chan struct{})
	pc.Ready = ready
	serveMetrics(ctx, *metricsAddr, reg, ready)
	pc.Registerer = reg
	return processor.Run(ctx, pc)
}

func cmdDispatcher(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("dispatcher", flag.ContinueOnError)
	metricsAddr := fs.String("metrics-addr", "127.0.0.1:9102", "listen address of /metrics (empty: off)")
	timeout := fs.Duration("attempt-timeout", 10*time.Second, "timeout of one delivery attempt (100ms–1h)")
	fs.Usage = commandUsage(fs, "dispatcher [flags]", "Runs the webhook dispatcher: delivers alerts, retries them, dead-letters them.")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := errors.Join(noArgs(fs), checkAddr("dispatcher", "metrics-addr", *metricsAddr, true),
		checkDuration("dispatcher", "attempt-timeout", *timeout, 100*time.Millisecond, time.Hour)); err != nil {
		return err
	}
	env := &config.Env{}
	c := config.Load(env, config.Needs{Kafka: true, Keyring: true})
	var tiers []time.Duration
	for _, s := range env.List("EXO_RETRY_TIERS") {
		d, err := time.ParseDuration(s)
		if err != nil {
			env.Problem("EXO_RETRY_TIERS: %q is not a duration", s)
		}
		tiers = append(tiers, d)
	}
	dc := dispatcher.Config{
		Brokers: c.Brokers, Topics: c.Topics, Partitions: c.Partitions, Keyring: c.Keyring, Allowlist: c.Allowlist,
		AttemptTimeout: *timeout, Log: c.Log, KafkaOpts: c.KafkaOpts, Tiers: tiers, Links: dispatcher.LinkTemplate(env.String("EXO_DASHBOARD_RUN_URL", "")),
		Group:          env.String("EXO_DISPATCHER_GROUP", ""),
		Workers:        env.Int("EXO_DISPATCHER_WORKERS", 0),
		EndpointRate:   float64(env.Int("EXO_DISPATCHER_ENDPOINT_RATE", 50)),
		InstanceID:     env.String("EXO_DISPATCHER_INSTANCE_ID", ""),
		SessionTimeout: env.Duration("EXO_DISPATCHER_SESSION_TIMEOUT", 10*time.Second),
		UnhealthyAfter: env.Duration("EXO_DISPATCHER_UNHEALTHY_AFTER", 0), // 0: the dispatcher's default, 15m
	}
	if dc.UnhealthyAfter != 0 && (dc.UnhealthyAfter < time.Minute || dc.UnhealthyAfter > 24*time.Hour) {
		env.Problem("EXO_DISPATCHER_UNHEALTHY_AFTER: must be between 1m and 24h")
	}
	if err := env.Err(); err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	ready := make(chan struct{})
	dc.Ready = ready
	serveMetrics(ctx, *metricsAddr, reg, ready)
	dc.Registerer = reg
	return dispatcher.Run(ctx, dc)
}

const migrateUsage = "usage: exo-alerts migrate up|down|status"

func cmdMigrate(ctx context.Context, args []string) error {
	fs := verbFlagSet("migrate", args)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), migrateUsage+"\n\n"+
			"up applies every pending migration, down rolls back the newest applied one, status lists them.")
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if _, err := verb(fs, "migrate", migrateUsage, map[string]int{"up": 0, "down": 0, "status": 0}); err != nil {
		return err
	}
	args = fs.Args()
	env := &config.Env{}
	c := config.Load(env, config.Needs{Database: true})
	if err := env.Err(); err != nil {
		return err
	}
	pool, err := postgres.Connect(ctx, c.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	switch args[0] {
	case "up":
		n, err := migrations.Up(ctx, pool)
		if err != nil {
			return err
		}
		fmt.Printf("applied %d migration(s)\n", n)
	case "down":
		v, err := migrations.Down(ctx, pool)
		if err != nil {
			return err
		}
		fmt.Printf("rolled back %04d\n", v)
	case "status":
		list, err := migrations.List(ctx, pool)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "VERSION\tNAME\tAPPLIED")
		for _, s := range list {
			at := "pending"
			if s.AppliedAt != nil {
				at = s.AppliedAt.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%04d\t%s\t%s\n", s.Version, s.Name, at)
		}
		return tw.Flush()
	}
	return nil
}

type labelFlag map[string]string

func (l labelFlag) String() string { return fmt.Sprint(map[string]string(l)) }
func (l labelFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return errors.New("want key=value")
	}
	l[k] = v
	return nil
}

// emitTypes are the event types emit sends: those the processor acts on.
var emitTypes = []string{schemas.TypeRunStarted, schemas.TypeRunSucceeded, schemas.TypeRunFailed}

func cmdEmit(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("emit", flag.ContinueOnError)
	env := &config.Env{}
	brokers := fs.String("brokers", env.String("KAFKA_BROKERS", ""), "Kafka brokers (default $KAFKA_BROKERS, else 127.0.0.1:9092)")
	prefix := fs.String("topic-prefix", env.String("EXO_TOPIC_PREFIX", kafka.DefaultPrefix), "topic prefix")
	tenant := fs.String("tenant", "demo", "tenant id")
	typ := fs.String("type", schemas.TypeRunFailed, "event type: "+strings.Join(emitTypes, ", "))
	workflow := fs.String("workflow", "nightly-etl", "workflow name")
	workflowID := fs.String("workflow-id", "", "workflow id (default wf_<name>)")
	runID := fs.String("run", "", "run id (default: random)")
	eventID := fs.String("id", "", "event id (default: random)")
	duration := fs.Duration("duration", 90*time.Second, "run duration (terminal events)")
	errCode := fs.String("error-code", "NODE_ERRORED", "error code (failed events)")
	errMsg := fs.String("error-message", "node load failed", "error message (failed events)")
	count := fs.Int("count", 1, "number of events, 1–100000 (each with its own run id unless -run is set)")
	binary := fs.Bool("binary", false, "use the CloudEvents binary content mode")
	labels := labelFlag{}
	fs.Var(labels, "label", "label key=value (repeatable)")
	fs.Usage = commandUsage(fs, "emit [flags]", "Produces test workflow events to the events topic. Every event is judged as the\n"+
		"processor judges it (exo-alerts validate) before anything is sent: an invalid one sends nothing.")
	if err := parse(fs, args); err != nil {
		return err
	}
	if !slices.Contains(emitTypes, *typ) {
		return usageErr("emit: --type %q: want one of %s", *typ, strings.Join(emitTypes, ", "))
	}
	if err := errors.Join(noArgs(fs), checkTenant("emit", "--tenant", *tenant), checkRange("emit", "count", *count, 1, 100000),
		checkDuration("emit", "duration", *duration, 0, 365*24*time.Hour)); err != nil {
		return err
	}
	if *brokers == "" {
		*brokers = "127.0.0.1:9092"
	}
	seeds := kafka.SplitBrokers(*brokers)
	badSeed := len(seeds) == 0
	for _, b := range seeds {
		if _, _, err := net.SplitHostPort(b); err != nil {
			badSeed = true
		}
	}
	if badSeed {
		return usageErr("emit: --brokers (default: KAFKA_BROKERS) %q: want comma-separated host:port", *brokers)
	}
	topic := kafka.NewTopics(*prefix).Events
	recs := make([]*kgo.Record, 0, *count)
	lines := make([]string, 0, *count)
	for range *count {
		ev := workload.Event(workload.Spec{
			Tenant: *tenant, Type: *typ, WorkflowName: *workflow, WorkflowID: *workflowID, RunID: *runID, EventID: *eventID,
			Duration: *duration, ErrorCode: *errCode, ErrorMessage: *errMsg, Labels: labels,
		})
		build := workload.Record
		if *binary {
			build = workload.BinaryRecord
		}
		rec, err := build(topic, ev)
		if err != nil {
			return err
		}
		// The processor's own judgement, so that emit never sends what it
		// would put on the invalid topic.
		checked, reason, problems := processor.CheckRecord(rec, processor.CheckOptions{})
		if checked == nil {
			// As exo-alerts validate prints it.
			msg := "emit: the event would be invalid: " + printable(firstLine(reason, problems))
			if len(problems) > 1 || len(problems) == 1 && problems[0] != reason {
				for _, p := range problems {
					msg += "\n  " + printable(p)
				}
			}
			return usageErr("%s", msg)
		}
		recs = append(recs, rec)
		lines = append(lines, fmt.Sprintf("%s tenant=%s workflow=%s run=%s id=%s",
			checked.Type, checked.TenantID, checked.Data.Workflow.Name, checked.Data.Run.ID, checked.ID))
	}
	security := env.KafkaOpts(slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err := env.Err(); err != nil {
		return err
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seeds...), kgo.ProducerLinger(0)}, security...)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	hctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	err = kafka.Handshake(hctx, cl)
	cancel()
	if err != nil {
		return err
	}
	for i, rec := range recs {
		pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err = workload.Produce(pctx, cl, rec)
		cancel()
		if err != nil {
			return fmt.Errorf("%w (is Kafka reachable at %s?)", err, *brokers)
		}
		fmt.Printf("emitted %s\n", lines[i])
	}
	return nil
}

const keyCmdUsage = `usage: exo-alerts apikey create --tenant T [--name N] [--role admin|viewer|ingest]
       exo-alerts apikey create --role operator [--name N]
       exo-alerts apikey list [--tenant T]
       exo-alerts apikey revoke <id>`

func cmdAPIKey(ctx context.Context, args []string) error {
	return subcommand(ctx, "apikey", keyCmdUsage, args, map[string]func(context.Context, []string) error{
		"create": cmdAPIKeyCreate, "list": cmdAPIKeyList, "revoke": cmdAPIKeyRevoke,
	})
}

// connectDB loads the configuration a command that needs only Postgres
// needs, and connects.
func connectDB(ctx context.Context) (*pgxpool.Pool, error) {
	env := &config.Env{}
	c := config.Load(env, config.Needs{Database: true})
	if err := env.Err(); err != nil {
		return nil, err
	}
	return postgres.Connect(ctx, c.DatabaseURL)
}

func cmdAPIKeyCreate(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("apikey create", flag.ContinueOnError)
	tenant := fs.String("tenant", "", "tenant id (created if new)")
	name := fs.String("name", "cli", "name of the key")
	role := fs.String("role", controlplane.RoleAdmin, "admin (read and write) or viewer (read only) of the tenant; ingest: only sends the tenant's events (POST /v1/events); operator: the rollout and quota APIs only, no tenant")
	fs.Usage = commandUsage(fs, "apikey create --tenant T [--name N] [--role admin|viewer|ingest]\n       exo-alerts apikey create --role operator [--name N]",
		"Mints an API key (shown once; stored hashed), creating the tenant if it is new.")
	if err := parse(fs, args); err != nil {
		return err
	}
	roles := []string{controlplane.RoleAdmin, controlplane.RoleViewer, controlplane.RoleIngest, controlplane.RoleOperator}
	switch {
	case !slices.Contains(roles, *role):
		return usageErr("apikey create: --role %q: want one of %s", *role, strings.Join(roles, ", "))
	case *role == controlplane.RoleOperator && *tenant != "":
		return usageErr("apikey create: an operator key belongs to no tenant: leave out --tenant")
	case *role != controlplane.RoleOperator && *tenant == "":
		return usageErr("apikey create: --tenant is required\n%s", keyCmdUsage)
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *tenant != "" {
		if err := checkTenant("apikey create", "--tenant", *tenant); err != nil {
			return err
		}
	}
	if err := checkName("apikey create", "name", *name); err != nil {
		return err
	}
	pool, err := connectDB(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	key := controlplane.NewAPIKey()
	id, err := controlplane.MintAPIKey(ctx, pool, *tenant, *name, *role, key)
	if err != nil {
		return err
	}
	shown := *tenant
	if shown == "" {
		shown = "- (operator)"
	}
	fmt.Printf("id:     %s\ntenant: %s\nrole:   %s\nkey:    %s\n(the key is shown once; it is stored hashed)\n", id, shown, *role, key)
	return nil
}

func cmdAPIKeyList(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("apikey list", flag.ContinueOnError)
	tenant := fs.String("tenant", "", "only the keys of this tenant (default: every tenant)")
	fs.Usage = commandUsage(fs, "apikey list [--tenant T]", "Lists the API keys (never the keys themselves: their first characters).")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := nArgs(fs, 0, "usage: exo-alerts apikey list [--tenant T]"); err != nil {
		return err
	}
	if *tenant != "" {
		if err := checkTenant("apikey list", "--tenant", *tenant); err != nil {
			return err
		}
	}
	pool, err := connectDB(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	keys, err := store.New(pool, "").ListAPIKeys(ctx, *tenant)
	if err != nil {
		return err
	}
	at := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return t.UTC().Format(time.RFC3339)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTENANT\tNAME\tROLE\tPREFIX\tCREATED\tLAST USED\tREVOKED")
	for _, k := range keys {
		if k.TenantID == "" {
			k.TenantID = "-" // an operator key
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s…\t%s\t%s\t%s\n", k.ID, k.TenantID, k.Name, k.Role, k.Prefix,
			at(&k.CreatedAt), at(k.LastUsedAt), at(k.RevokedAt))
	}
	return tw.Flush()
}

func cmdAPIKeyRevoke(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("apikey revoke", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: exo-alerts apikey revoke <id>\n\nRevokes the API key <id> (key_…, as apikey list shows it): the API refuses it from then on.")
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := nArgs(fs, 1, "usage: exo-alerts apikey revoke <id>"); err != nil {
		return err
	}
	id := fs.Arg(0)
	if !apiKeyIDRE.MatchString(id) {
		return usageErr("apikey revoke: %q is not an API key id (key_ and 20 characters, as exo-alerts apikey list shows it)", id)
	}
	pool, err := connectDB(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := controlplane.RevokeAPIKey(ctx, pool, id); err != nil {
		if errors.Is(err, controlplane.ErrNotFound) {
			return fmt.Errorf("apikey revoke: no API key %q that is not already revoked (see exo-alerts apikey list)", id)
		}
		return err
	}
	fmt.Printf("revoked %s; the API refuses it from now on\n", id)
	return nil
}

const keyringUsage = `usage: exo-alerts keyring generate [--id ID]
       exo-alerts keyring reencrypt`

func cmdKeyring(ctx context.Context, args []string) error {
	return subcommand(ctx, "keyring", keyringUsage, args, map[string]func(context.Context, []string) error{
		"generate": cmdKeyringGenerate, "reencrypt": cmdKeyringReencrypt,
	})
}

func cmdKeyringGenerate(_ context.Context, args []string) error {
	fs := flag.NewFlagSet("keyring generate", flag.ContinueOnError)
	id := fs.String("id", "k"+time.Now().UTC().Format("20060102"), "key id: 1–32 letters, digits, '_' or '-'")
	fs.Usage = commandUsage(fs, "keyring generate [--id ID]", "Prints a key ring of one new random key, for EXO_KEYRING (put it first to encrypt with it).")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	ring := keyring.Generate(*id)
	if _, err := keyring.Parse(ring); err != nil {
		return usageErr("keyring generate: --id %q: want 1–32 letters, digits, '_' or '-'", *id)
	}
	fmt.Println(ring)
	return nil
}

// cmdKeyringReencrypt re-seals every stored secret under the first key of
// EXO_KEYRING, so an older key can then be removed from the ring.
func cmdKeyringReencrypt(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("keyring reencrypt", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: exo-alerts keyring reencrypt\n\n"+
			"Re-seals every endpoint secret and header value under the first key of EXO_KEYRING (which must still\n"+
			"hold the old keys), and queues the new endpoint snapshots for the dispatchers. Once it reports no\n"+
			"failure and the control plane's outbox has drained, the old keys can be removed from EXO_KEYRING.")
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := nArgs(fs, 0, "usage: exo-alerts keyring reencrypt"); err != nil {
		return err
	}
	env := &config.Env{}
	c := config.Load(env, config.Needs{Database: true, Keyring: true})
	if err := env.Err(); err != nil {
		return err
	}
	pool, err := postgres.Connect(ctx, c.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	n, err := controlplane.Reencrypt(ctx, pool, c.Keyring, c.Topics)
	fmt.Printf("re-encrypted %d endpoint(s) under key %s\n", n, c.Keyring.PrimaryID())
	if err != nil {
		return fmt.Errorf("keyring reencrypt: some endpoints were not re-encrypted (keep their keys in EXO_KEYRING): %w", err)
	}
	return nil
}

const quarantineUsage = "usage: exo-alerts quarantine list [--limit N] | replay <id> | replay outbox:<id>"

// cmdQuarantine lists the records the recorder quarantined and the outbox
// rows the relay quarantined, or replays one (after the cause is fixed): a
// recorder record is produced again to its topic, an outbox row is handed
// back to the relay.
func cmdQuarantine(ctx context.Context, args []string) error {
	fs := verbFlagSet("quarantine", args)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), quarantineUsage+"\n\nFlags:")
		fs.PrintDefaults()
	}
	limit := fs.Int("limit", 50, "list: at most this many records of each source, newest first (1–10000)")
	if err := parse(fs, args); err != nil {
		return err
	}
	v, err := verb(fs, "quarantine", quarantineUsage, map[string]int{"list": 0, "replay": 1})
	if err != nil {
		return err
	}
	if err := checkRange("quarantine "+v, "limit", *limit, 1, 10000); err != nil {
		return err
	}
	arg := fs.Arg(1)
	outboxID, isOutbox := strings.CutPrefix(arg, "outbox:")
	var id int64
	if v == "replay" {
		if id, err = strconv.ParseInt(outboxID, 10, 64); err != nil || id < 1 {
			return usageErr("quarantine replay: %q is not the id of a quarantined record (a number, or outbox:<number>, as quarantine list shows it)", arg)
		}
	}
	env := &config.Env{}
	c := config.Load(env, config.Needs{Database: true, Kafka: v == "replay" && !isOutbox})
	if err := env.Err(); err != nil {
		return err
	}
	pool, err := postgres.Connect(ctx, c.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	db := store.New(pool, "")
	switch {
	case v == "list":
		recs, err := db.ListQuarantined(ctx, *limit)
		if err != nil {
			return err
		}
		rows, err := db.ListQuarantinedOutbox(ctx, *limit)
		if err != nil {
			return err
		}
		// Values are never printed (an outbox row may hold sealed secrets): their size is.
		tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SOURCE\tID\tTOPIC\tPARTITION\tOFFSET\tKEY\tSIZE\tQUARANTINED\tREPLAYED\tREASON")
		for _, q := range recs {
			replayed := "-"
			if q.ReplayedAt != nil {
				replayed = q.ReplayedAt.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%q\t%d\t%s\t%s\t%s\n", q.Consumer, q.ID, q.Topic, q.Partition, q.Offset, q.Key,
				len(q.Value), q.QuarantinedAt.UTC().Format(time.RFC3339), replayed, q.Error)
		}
		for _, q := range rows {
			size := "tombstone"
			if q.Size >= 0 {
				size = strconv.Itoa(q.Size)
			}
			fmt.Fprintf(tw, "outbox\toutbox:%d\t%s\t-\t-\t%q\t%s\t%s\t-\t%s\n", q.ID, q.Topic, q.Key,
				size, q.QuarantinedAt.UTC().Format(time.RFC3339), q.Reason)
		}
		return tw.Flush()
	case isOutbox:
		if err := db.ReplayQuarantinedOutbox(ctx, id); err != nil {
			return err
		}
		fmt.Printf("released quarantined outbox row %d; the relay publishes it again\n", id)
		return nil
	default:
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.Brokers...), kgo.ProducerLinger(0)}, c.KafkaOpts...)...)
		if err != nil {
			return err
		}
		defer cl.Close()
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := kafka.Handshake(pctx, cl); err != nil {
			return err
		}
		if err := recorder.Replay(pctx, db, cl, id); err != nil {
			return err
		}
		fmt.Printf("replayed quarantined record %d\n", id)
		return nil
	}
}
