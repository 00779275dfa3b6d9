package devmode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/exospherehost/exo-alerts/controlplane"
	"github.com/exospherehost/exo-alerts/dispatcher"
	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/keyring"
	"github.com/exospherehost/exo-alerts/internal/postgres"
	"github.com/exospherehost/exo-alerts/migrations"
	"github.com/exospherehost/exo-alerts/processor"
)

// DemoTenant is the tenant of the demo API key.
const DemoTenant = "demo"

// Config configures dev mode.
type Config struct {
	Addr        string // API, dashboard and demo receiver
	DatabaseURL string // empty: a throwaway local cluster
	Brokers     []string
	KafkaPort   int // of the in-process broker when Brokers is empty
	TopicPrefix string
	Keyring     string // empty: a dev key ring kept in the user's config dir
	DemoAPIKey  string // empty: a fresh key
	Exe         string // how to invoke this binary in the printed quickstart
	Log         *slog.Logger
	Out         io.Writer // where the quickstart is printed
}

// Run runs everything until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	log := cfg.Log
	if cfg.Out == nil {
		cfg.Out = os.Stdout
	}
	if cfg.TopicPrefix == "" {
		cfg.TopicPrefix = kafka.DefaultPrefix
	}
	dbURL := cfg.DatabaseURL
	if dbURL == "" {
		log.Info("starting a throwaway PostgreSQL cluster (set DATABASE_URL to use your own)")
		local, err := postgres.StartLocal(ctx, 0)
		if err != nil {
			return fmt.Errorf("dev: %w", err)
		}
		defer func() {
			if err := local.Stop(); err != nil {
				log.Warn("stop throwaway PostgreSQL", "err", err)
			}
		}()
		dbURL = local.URL()
	}
	brokers := cfg.Brokers
	if len(brokers) == 0 {
		port := cfg.KafkaPort
		if port == 0 {
			port = 9092
		}
		cluster, err := kfake.NewCluster(kfake.Ports(port), kfake.DefaultNumPartitions(3))
		if err != nil {
			return fmt.Errorf("dev: in-process Kafka on 127.0.0.1:%d: %w (set KAFKA_BROKERS or free the port)", port, err)
		}
		defer cluster.Close()
		brokers = cluster.ListenAddrs()
		log.Info("in-process Kafka (kfake) listening", "brokers", strings.Join(brokers, ","))
	}
	pool, err := postgres.Connect(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	defer pool.Close()
	if n, err := migrations.Up(ctx, pool); err != nil {
		return fmt.Errorf("dev: migrate: %w", err)
	} else if n > 0 {
		log.Info("migrations applied", "count", n)
	}
	ring, err := devKeyring(cfg.Keyring, log)
	if err != nil {
		return err
	}
	apiKey := cfg.DemoAPIKey
	if apiKey == "" {
		apiKey = controlplane.NewAPIKey()
	}
	if _, err := controlplane.MintAPIKey(ctx, pool, DemoTenant, "demo", controlplane.RoleAdmin, apiKey); err != nil {
		return fmt.Errorf("dev: demo API key: %w", err)
	}

	reg := prometheus.NewRegistry()
	topics := kafka.NewTopics(cfg.TopicPrefix)
	loopback := []string{"127.0.0.0/8", "::1"}
	recv := newReceiver(pool, ring)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	run := func(name string, fn func() error) {
		wg.Go(func() {
			if err := fn(); err != nil {
				errs <- fmt.Errorf("%s: %w", name, err)
				cancel()
			}
		})
	}
	addrCh := make(chan net.Addr, 1)
	procReady, dispReady := make(chan struct{}), make(chan struct{})
	run("controlplane", func() error {
		return controlplane.Run(ctx, controlplane.Config{
			Addr: cfg.Addr, Pool: pool, Brokers: brokers, Topics: topics, Keyring: ring, Allowlist: loopback,
			Log: log, Registry: reg, Routes: recv.routes, Ready: addrCh,
		})
	})
	run("processor", func() error {
		return processor.Run(ctx, processor.Config{Brokers: brokers, Topics: topics, Log: log, Registerer: reg, Ready: procReady})
	})
	run("dispatcher", func() error {
		return dispatcher.Run(ctx, dispatcher.Config{Brokers: brokers, Topics: topics, Keyring: ring, Allowlist: loopback,
			Log: log, Registerer: reg, Ready: dispReady})
	})
	var addr net.Addr
	for _, ch := range []<-chan struct{}{procReady, dispReady} {
		select {
		case <-ch:
		case <-ctx.Done():
		}
	}
	select {
	case addr = <-addrCh:
	case <-ctx.Done():
	}
	if addr != nil && ctx.Err() == nil {
		printQuickstart(cfg.Out, quickstart{
			Base: "http://" + addr.String(), APIKey: apiKey, Exe: cfg.Exe, Brokers: strings.Join(brokers, ","), Prefix: cfg.TopicPrefix,
		})
	}
	<-ctx.Done()
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// devKeyring returns the configured ring, or one kept in the user's config
// directory so a persistent DATABASE_URL keeps decrypting across restarts.
func devKeyring(spec string, log *slog.Logger) (*keyring.Ring, error) {
	if spec != "" {
		return keyring.Parse(spec)
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		dir = os.TempDir()
	}
	path := filepath.Join(dir, "exo-alerts", "dev-keyring")
	if b, err := os.ReadFile(path); err == nil { //nolint:gosec // G304: the path is built from the user config dir, not from input
		return keyring.Parse(string(b))
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("dev: read %s: %w", path, err)
	}
	spec = keyring.Generate("dev1")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err == nil {
		if err := os.WriteFile(path, []byte(spec), 0o600); err == nil {
			log.Info("generated a dev key ring (set EXO_KEYRING in production)", "path", path)
		}
	}
	return keyring.Parse(spec)
}

type quickstart struct {
	Base, APIKey, Exe, Brokers, Prefix string
}

func printQuickstart(w io.Writer, q quickstart) {
	fmt.Fprintf(w, `
Exosphere Alerts is running (dev mode).

  API + dashboard   %[1]s/            (Settings → Alerts; paste the API key)
  OpenAPI           %[1]s/docs
  demo receiver     %[1]s/demo/receiver
  metrics           %[1]s/metrics
  Kafka             %[4]s

Quickstart — paste into another shell:

export EXO_API_KEY=%[2]s
export EXO_API=%[1]s
WEBHOOK_ID=$(curl -sS -X POST "$EXO_API/v1/webhooks" -H "Authorization: Bearer $EXO_API_KEY" -H 'Content-Type: application/json' -d '{"name":"demo receiver","target_url":"%[1]s/demo/receiver/hook"}' | grep -o '"id":"[^"]*"' | head -1 | cut -d'"' -f4); echo "webhook: $WEBHOOK_ID"
curl -sS -X POST "$EXO_API/v1/alert-rules" -H "Authorization: Bearer $EXO_API_KEY" -H 'Content-Type: application/json' -d '{"name":"ETL failures","event_type":"workflow.run.failed","webhook_endpoint_id":"'"$WEBHOOK_ID"'"}'; echo
%[3]s emit --brokers %[4]s --topic-prefix %[5]s --tenant demo --type workflow.run.failed --workflow nightly-etl --duration 84s --label env=prod
curl -sS "$EXO_API/demo/receiver.json"; echo

Then open %[1]s/demo/receiver to see the delivery and its verified signature.
`, q.Base, q.APIKey, q.Exe, q.Brokers, q.Prefix)
}
