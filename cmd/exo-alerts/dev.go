package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/controlplane"
	"github.com/exospherehost/exo-alerts/dispatcher"
	"github.com/exospherehost/exo-alerts/internal/devmode"
	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/postgres"
	"github.com/exospherehost/exo-alerts/internal/store"
	"github.com/exospherehost/exo-alerts/migrations"
	"github.com/exospherehost/exo-alerts/processor"
	"github.com/exospherehost/exo-alerts/recorder"
)

// devConfig configures dev mode.
type devConfig struct {
	Addr        string // API, dashboard and demo receiver
	DatabaseURL string // empty: a throwaway local cluster
	Brokers     []string
	KafkaOpts   []kgo.Opt // TLS and SASL of Brokers
	KafkaPort   int       // of the in-process broker when Brokers is empty
	TopicPrefix string
	Keyring     string // empty: a dev key ring kept in the user's config dir
	DemoAPIKey  string // empty: a fresh key
	Exe         string // how to invoke this binary in the printed quickstart
	Log         *slog.Logger
	Out         io.Writer // where the quickstart is printed
	// TenantQuota and GlobalQuota are the delivery caps per minute (0: none).
	TenantQuota, GlobalQuota int64
}

// runDev runs the whole system in one process until ctx ends: Postgres
// from DatabaseURL or a throwaway local cluster, Kafka from Brokers or an
// in-process kfake broker, migrations, the control plane, processor,
// dispatcher and recorder, a demo API key and the demo receiver
// (internal/devmode), then prints the quickstart.
func runDev(ctx context.Context, cfg devConfig) error {
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
	ring, err := devmode.Keyring(cfg.Keyring, log)
	if err != nil {
		return err
	}
	apiKey := cfg.DemoAPIKey
	if apiKey == "" {
		apiKey = controlplane.NewAPIKey()
	}
	if _, err := controlplane.MintAPIKey(ctx, pool, devmode.DemoTenant, "demo", controlplane.RoleAdmin, apiKey); err != nil {
		return fmt.Errorf("dev: demo API key: %w", err)
	}

	reg := prometheus.NewRegistry()
	topics := kafka.NewTopics(cfg.TopicPrefix)
	loopback := []string{"127.0.0.0/8", "::1"}
	recv := devmode.NewReceiver(store.New(pool, ""), ring)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	run := func(name string, fn func() error) {
		wg.Go(func() {
			if err := fn(); err != nil {
				errs <- fmt.Errorf("%s: %w", name, err)
				cancel()
			}
		})
	}
	addrCh := make(chan net.Addr, 1)
	procReady, dispReady, recReady := make(chan struct{}), make(chan struct{}), make(chan struct{})
	run("controlplane", func() error {
		return controlplane.Run(ctx, controlplane.Config{
			Addr: cfg.Addr, Pool: pool, Brokers: brokers, Topics: topics, Keyring: ring, Allowlist: loopback,
			Log: log, Registry: reg, Routes: recv.Routes, Ready: addrCh, KafkaOpts: cfg.KafkaOpts,
			TenantQuota: cfg.TenantQuota, GlobalQuota: cfg.GlobalQuota, PublicURL: "http://" + cfg.Addr,
		})
	})
	run("processor", func() error {
		return processor.Run(ctx, processor.Config{Brokers: brokers, Topics: topics, Log: log, Registerer: reg, Ready: procReady, KafkaOpts: cfg.KafkaOpts,
			TenantQuota: cfg.TenantQuota, GlobalQuota: cfg.GlobalQuota})
	})
	run("dispatcher", func() error {
		return dispatcher.Run(ctx, dispatcher.Config{Brokers: brokers, Topics: topics, Keyring: ring, Allowlist: loopback,
			Log: log, Registerer: reg, Ready: dispReady, KafkaOpts: cfg.KafkaOpts})
	})
	run("recorder", func() error {
		return recorder.Run(ctx, recorder.Config{Brokers: brokers, Topics: topics, Pool: pool, Log: log, Registerer: reg, Ready: recReady, KafkaOpts: cfg.KafkaOpts})
	})
	var addr net.Addr
	for _, ch := range []<-chan struct{}{procReady, dispReady, recReady} {
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
		devmode.PrintQuickstart(cfg.Out, devmode.Quickstart{
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
