// Package harness starts the whole of Exosphere Alerts — control plane,
// processor, dispatcher and recorder, wired as cmd/exo-alerts wires them —
// in the test's process, on the test's own database and topics of the real
// services (internal/testenv), until the test ends. The end-to-end tests
// and the deployment checks share it, so "start everything" is written once.
//
// It lives outside internal/ because it imports every service, which
// nothing under internal/ may do (internal/archtest).
package harness

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/controlplane"
	"github.com/exospherehost/exo-alerts/dispatcher"
	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/keyring"
	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/processor"
	"github.com/exospherehost/exo-alerts/recorder"
)

// Options adjust what Start runs. The zero value runs every component with
// its defaults, SSRF allow-listing 127.0.0.1 (the test's receivers).
type Options struct {
	// KafkaOpts are added to every Kafka client of every component (e.g. a
	// testenv.KafkaGate's dialer).
	KafkaOpts []kgo.Opt
	// Registerer, if set, wraps the shared registry for the processor and
	// the dispatcher (e.g. to record the type of each metric).
	Registerer func(*prometheus.Registry) prometheus.Registerer
	// ProcessorClock, if set, is the processor's wall clock (tests move it
	// to pass windows and deadlines without waiting for them).
	ProcessorClock interface{ Now() time.Time }
}

// System is the running whole.
type System struct {
	Pool     *pgxpool.Pool
	API      string // base URL of the control plane, http://127.0.0.1:port
	Registry *prometheus.Registry
	Brokers  []string
	Topics   kafka.Topics
	Ring     *keyring.Ring
	// Exited receives an error for any component whose Run returned while
	// the test runs.
	Exited <-chan error
}

// readyTimeout bounds the wait for every component to be ready.
const readyTimeout = 60 * time.Second

// Start runs every component and returns when all are ready; it fails the
// test if one does not start.
func Start(t testing.TB, o Options) *System {
	t.Helper()
	pool := testenv.Pool(t)
	brokers := testenv.Brokers(t)
	topics := testenv.Topics(t)
	ring, err := keyring.Parse(keyring.Generate("k1"))
	if err != nil {
		t.Fatal(err)
	}
	log := testenv.Log(t)
	reg := prometheus.NewRegistry()
	var wrapped prometheus.Registerer = reg
	if o.Registerer != nil {
		wrapped = o.Registerer(reg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	procReady, dispReady, recReady := make(chan struct{}), make(chan struct{}), make(chan struct{})
	addrCh := make(chan net.Addr, 1)
	allow := []string{"127.0.0.1"}
	exited := make(chan error, 4)
	opts := o.KafkaOpts
	for name, run := range map[string]func() error{
		"controlplane": func() error {
			return controlplane.Run(ctx, controlplane.Config{Listener: ln, Pool: pool, Brokers: brokers, Topics: topics,
				Keyring: ring, Allowlist: allow, Log: log, Registry: reg, Ready: addrCh, KafkaOpts: opts})
		},
		"processor": func() error {
			return processor.Run(ctx, processor.Config{Brokers: brokers, Topics: topics, Log: log, Registerer: wrapped,
				Ready: procReady, KafkaOpts: opts, Clock: o.ProcessorClock})
		},
		"dispatcher": func() error {
			return dispatcher.Run(ctx, dispatcher.Config{Brokers: brokers, Topics: topics, Keyring: ring, Allowlist: allow,
				AttemptTimeout: 5 * time.Second, Log: log, Registerer: wrapped, Ready: dispReady, KafkaOpts: opts})
		},
		"recorder": func() error {
			return recorder.Run(ctx, recorder.Config{Brokers: brokers, Topics: topics, Pool: pool, Log: log, Registerer: reg,
				Ready: recReady, KafkaOpts: opts})
		},
	} {
		wg.Go(func() {
			err := run()
			if ctx.Err() == nil {
				exited <- fmt.Errorf("%s: Run returned while the test runs: %w", name, err)
			}
		})
	}
	deadline := time.After(readyTimeout)
	var addr net.Addr
	for _, wait := range []func() bool{
		func() bool { _, ok := <-procReady; return !ok },
		func() bool { _, ok := <-dispReady; return !ok },
		func() bool { _, ok := <-recReady; return !ok },
		func() bool { addr = <-addrCh; return true },
	} {
		done := make(chan bool, 1)
		go func() { done <- wait() }()
		select {
		case <-done:
		case err := <-exited:
			t.Fatalf("component failed to start: %v", err)
		case <-deadline:
			t.Fatalf("components did not become ready within %s", readyTimeout)
		}
	}
	return &System{Pool: pool, API: "http://" + addr.String(), Registry: reg, Brokers: brokers, Topics: topics, Ring: ring, Exited: exited}
}

// Alive fails the test if a component's Run has returned.
func (s *System) Alive(t testing.TB) {
	t.Helper()
	select {
	case err := <-s.Exited:
		t.Fatal(err)
	default:
	}
}
