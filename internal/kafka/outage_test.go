package kafka_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/testenv"
)

// logBuf is a log destination tests read while clients write to it.
type logBuf struct {
	mu    sync.Mutex
	lines []map[string]any
}

func (b *logBuf) Write(p []byte) (int, error) {
	var m map[string]any
	if err := json.Unmarshal(p, &m); err != nil {
		return 0, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lines = append(b.lines, m)
	return len(p), nil
}

// warnings returns the lines at warn or error, and the lines marked with
// outage=value.
func (b *logBuf) warnings(value string) (warn, marked []map[string]any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, l := range b.lines {
		if l["level"] == "WARN" || l["level"] == "ERROR" {
			warn = append(warn, l)
		}
		if l["outage"] == value {
			marked = append(marked, l)
		}
	}
	return warn, marked
}

// dials counts a client's connection attempts.
type dials struct{ failed, ok atomic.Int64 }

func (d *dials) OnBrokerConnect(_ kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	if err != nil {
		d.failed.Add(1)
	} else {
		d.ok.Add(1)
	}
}

// pingUntil pings until cond holds, failing after a deadline with what
// was seen.
func pingUntil(t *testing.T, cl *kgo.Client, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ok, seen := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached; seen %s", what, seen)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = cl.Ping(ctx)
		cancel()
	}
}

// A client whose broker does not answer (a closed port) logs the outage
// once, with the broker's address, however often it redials (#8: every
// failed reconnect logged, hundreds of lines a minute).
func TestClientLogsAnOutageOnce(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	buf := &logBuf{}
	d := &dials{}
	log := slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cl, err := kgo.NewClient(append(kafka.ClientOpts([]string{addr}, log), kgo.WithHooks(d))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	pingUntil(t, cl, "20 failed dials", func() (bool, string) {
		return d.failed.Load() >= 20, strings.Repeat(".", int(d.failed.Load()))
	})
	warn, started := buf.warnings("started")
	if len(warn) != 1 || len(started) != 1 || started[0]["addr"] != addr || !strings.Contains(started[0]["err"].(string), "refused") {
		t.Fatalf("after %d failed dials: %d warning lines %v, want one outage line naming %s", d.failed.Load(), len(warn), warn, addr)
	}
}

// faultyDialer dials the real broker until it is cut: then it drops every
// open connection and refuses new ones until restored.
type faultyDialer struct {
	down  atomic.Bool
	mu    sync.Mutex
	conns []net.Conn
}

func (f *faultyDialer) dial(ctx context.Context, network, host string) (net.Conn, error) {
	if f.down.Load() {
		return nil, &net.OpError{Op: "dial", Net: network, Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	}
	c, err := (&net.Dialer{}).DialContext(ctx, network, host)
	if err == nil {
		f.mu.Lock()
		f.conns = append(f.conns, c)
		f.mu.Unlock()
	}
	return c, err
}

func (f *faultyDialer) cut() {
	f.down.Store(true)
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		_ = c.Close()
	}
	f.conns = nil
}

// On the real broker: a client cut off from it logs the outage once, and
// when the broker answers again, one line that the outage ended.
func TestClientLogsTheEndOfAnOutage(t *testing.T) {
	t.Parallel()
	brokers := testenv.Brokers(t)
	buf := &logBuf{}
	d := &dials{}
	f := &faultyDialer{}
	log := slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cl, err := kgo.NewClient(append(kafka.ClientOpts(brokers, log), kgo.WithHooks(d), kgo.Dialer(f.dial))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	f.cut()
	before := d.failed.Load()
	pingUntil(t, cl, "20 failed dials", func() (bool, string) {
		return d.failed.Load()-before >= 20, strings.Repeat(".", int(d.failed.Load()-before))
	})
	if warn, started := buf.warnings("started"); len(warn) != 1 || len(started) != 1 {
		t.Fatalf("during the outage: %d warning lines %v, want one outage line", len(warn), warn)
	}
	f.down.Store(false)
	pingUntil(t, cl, "the end of the outage logged", func() (bool, string) {
		_, ended := buf.warnings("ended")
		return len(ended) == 1, strings.Repeat(".", len(ended))
	})
	warn, _ := buf.warnings("started")
	_, ended := buf.warnings("ended")
	if len(warn) != 1 || len(ended) != 1 || ended[0]["level"] != "INFO" || ended[0]["suppressed"].(float64) < 19 {
		t.Errorf("after the outage: warnings %v, end lines %v; want one of each, the end at info counting the repeats", warn, ended)
	}
}
