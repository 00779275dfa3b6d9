package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/controlplane"
	"github.com/exospherehost/exo-alerts/dispatcher"
	"github.com/exospherehost/exo-alerts/internal/config"
	"github.com/exospherehost/exo-alerts/internal/devmode"
	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/keyring"
	"github.com/exospherehost/exo-alerts/internal/postgres"
	"github.com/exospherehost/exo-alerts/internal/workload"
	"github.com/exospherehost/exo-alerts/migrations"
	"github.com/exospherehost/exo-alerts/processor"
	"github.com/exospherehost/exo-alerts/schemas"
)

const usage = `exo-alerts — outgoing webhooks and alert rules for workflow runs

Usage: exo-alerts <command> [flags]

Commands:
  dev            run everything in one process on embedded defaults (make run)
  controlplane   run the REST API, dashboard and outbox relay
  processor      run the stream processor
  dispatcher     run the webhook dispatcher
  migrate        up | down | status
  emit           produce test workflow events
  apikey         create an API key
  keyring        generate a key ring for EXO_KEYRING

Environment: DATABASE_URL, KAFKA_BROKERS, EXO_KEYRING, EXO_TOPIC_PREFIX (exo.),
EXO_PARTITIONS (3), EXO_SSRF_ALLOWLIST, EXO_LOG_LEVEL (info).
Run "exo-alerts <command> -h" for the flags of a command.
`

func run(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Print(usage)
		return nil
	}
	cmds := map[string]func(context.Context, []string) error{
		"dev": cmdDev, "controlplane": cmdControlplane, "processor": cmdProcessor, "dispatcher": cmdDispatcher,
		"migrate": cmdMigrate, "emit": cmdEmit, "apikey": cmdAPIKey, "keyring": cmdKeyring,
	}
	fn, ok := cmds[args[0]]
	if !ok {
		return fmt.Errorf("unknown command %q\n\n%s", args[0], usage)
	}
	return fn(ctx, args[1:])
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		return err
	}
	return nil
}

func cmdDev(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8080", "listen address of the API, dashboard and demo receiver")
	kafkaPort := fs.Int("kafka-port", 9092, "port of the in-process Kafka broker (when KAFKA_BROKERS is not set)")
	if err := parse(fs, args); err != nil {
		return err
	}
	env := &config.Env{}
	c := config.Load(env, config.Needs{})
	if err := env.Err(); err != nil {
		return err
	}
	exe := "go run ./cmd/exo-alerts"
	if p, err := os.Executable(); err == nil && !strings.Contains(p, "go-build") {
		exe = p
	}
	return devmode.Run(ctx, devmode.Config{
		Addr: *addr, DatabaseURL: c.DatabaseURL, Brokers: c.Brokers, KafkaPort: *kafkaPort,
		TopicPrefix: c.Topics.Prefix, Keyring: env.String("EXO_KEYRING", ""), DemoAPIKey: env.String("EXO_DEMO_API_KEY", ""),
		Exe: exe, Log: c.Log, Out: os.Stdout,
	})
}

func cmdControlplane(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("controlplane", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8080", "listen address")
	if err := parse(fs, args); err != nil {
		return err
	}
	env := &config.Env{}
	c := config.Load(env, config.Needs{Database: true, Kafka: true, Keyring: true})
	if err := env.Err(); err != nil {
		return err
	}
	pool, err := postgres.Connect(ctx, c.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	reg := prometheus.NewRegistry()
	return controlplane.Run(ctx, controlplane.Config{
		Addr: *addr, Pool: pool, Brokers: c.Brokers, Topics: c.Topics, Partitions: c.Partitions, Keyring: c.Keyring,
		Allowlist: c.Allowlist, Log: c.Log, Registry: reg,
	})
}

// serveMetrics serves /metrics on addr for the components without an API.
func serveMetrics(ctx context.Context, addr string, reg *prometheus.Registry) {
	if addr == "" {
		return
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.ListenAndServe() }()
	go func() { <-ctx.Done(); _ = srv.Close() }()
}

func cmdProcessor(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("processor", flag.ContinueOnError)
	metricsAddr := fs.String("metrics-addr", "127.0.0.1:9101", "listen address of /metrics (empty: off)")
	if err := parse(fs, args); err != nil {
		return err
	}
	env := &config.Env{}
	c := config.Load(env, config.Needs{Kafka: true})
	pc := processor.Config{
		Brokers: c.Brokers, Topics: c.Topics, Partitions: c.Partitions, Log: c.Log,
		TransactionalID: env.String("EXO_PROCESSOR_TRANSACTIONAL_ID", ""), Group: env.String("EXO_PROCESSOR_GROUP", ""),
		Grace: env.Duration("EXO_PROCESSOR_GRACE", 0),
	}
	if err := env.Err(); err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	serveMetrics(ctx, *metricsAddr, reg)
	pc.Registerer = reg
	return processor.Run(ctx, pc)
}

func cmdDispatcher(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("dispatcher", flag.ContinueOnError)
	metricsAddr := fs.String("metrics-addr", "127.0.0.1:9102", "listen address of /metrics (empty: off)")
	timeout := fs.Duration("attempt-timeout", 10*time.Second, "timeout of one delivery attempt")
	if err := parse(fs, args); err != nil {
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
		AttemptTimeout: *timeout, Log: c.Log, Tiers: tiers, Links: dispatcher.LinkTemplate(env.String("EXO_DASHBOARD_RUN_URL", "")),
		Group: env.String("EXO_DISPATCHER_GROUP", ""),
	}
	if err := env.Err(); err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	serveMetrics(ctx, *metricsAddr, reg)
	dc.Registerer = reg
	return dispatcher.Run(ctx, dc)
}

func cmdMigrate(ctx context.Context, args []string) error {
	if len(args) != 1 || (args[0] != "up" && args[0] != "down" && args[0] != "status") {
		return errors.New("usage: exo-alerts migrate up|down|status")
	}
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

func cmdEmit(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("emit", flag.ContinueOnError)
	brokers := fs.String("brokers", os.Getenv("KAFKA_BROKERS"), "Kafka brokers (default $KAFKA_BROKERS, else 127.0.0.1:9092)")
	prefix := fs.String("topic-prefix", envOr("EXO_TOPIC_PREFIX", kafka.DefaultPrefix), "topic prefix")
	tenant := fs.String("tenant", "demo", "tenant id")
	typ := fs.String("type", schemas.TypeRunFailed, "event type: workflow.run.started|succeeded|failed")
	workflow := fs.String("workflow", "nightly-etl", "workflow name")
	workflowID := fs.String("workflow-id", "", "workflow id (default wf_<name>)")
	runID := fs.String("run", "", "run id (default: random)")
	eventID := fs.String("id", "", "event id (default: random)")
	duration := fs.Duration("duration", 90*time.Second, "run duration (terminal events)")
	errCode := fs.String("error-code", "NODE_ERRORED", "error code (failed events)")
	errMsg := fs.String("error-message", "node load failed", "error message (failed events)")
	count := fs.Int("count", 1, "number of events (each with its own run id unless -run is set)")
	binary := fs.Bool("binary", false, "use the CloudEvents binary content mode")
	labels := labelFlag{}
	fs.Var(labels, "label", "label key=value (repeatable)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *brokers == "" {
		*brokers = "127.0.0.1:9092"
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafka.SplitBrokers(*brokers)...), kgo.ProducerLinger(0))
	if err != nil {
		return err
	}
	defer cl.Close()
	topic := kafka.NewTopics(*prefix).Events
	for i := 0; i < *count; i++ {
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
		pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err = workload.Produce(pctx, cl, rec)
		cancel()
		if err != nil {
			return fmt.Errorf("%w (is Kafka reachable at %s?)", err, *brokers)
		}
		fmt.Printf("emitted %s tenant=%s workflow=%s run=%s id=%s\n", ev.Type, ev.TenantID, ev.Data.Workflow.Name, ev.Data.Run.ID, ev.ID)
	}
	return nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func cmdAPIKey(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "create" {
		return errors.New("usage: exo-alerts apikey create --tenant T [--name N] [--role admin|viewer]")
	}
	fs := flag.NewFlagSet("apikey create", flag.ContinueOnError)
	tenant := fs.String("tenant", "", "tenant id (created if new)")
	name := fs.String("name", "cli", "name of the key")
	role := fs.String("role", controlplane.RoleAdmin, "admin (read and write) or viewer (read only)")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if *tenant == "" {
		return errors.New("apikey create: --tenant is required")
	}
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
	key := controlplane.NewAPIKey()
	id, err := controlplane.CreateAPIKey(ctx, pool, *tenant, *name, *role, key)
	if err != nil {
		return err
	}
	fmt.Printf("id:     %s\ntenant: %s\nrole:   %s\nkey:    %s\n(the key is shown once; it is stored hashed)\n", id, *tenant, *role, key)
	return nil
}

func cmdKeyring(_ context.Context, args []string) error {
	if len(args) == 0 || args[0] != "generate" {
		return errors.New("usage: exo-alerts keyring generate [--id ID]")
	}
	fs := flag.NewFlagSet("keyring generate", flag.ContinueOnError)
	id := fs.String("id", "k"+time.Now().UTC().Format("20060102"), "key id")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	fmt.Println(keyring.Generate(*id))
	return nil
}
