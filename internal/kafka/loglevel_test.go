package kafka

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kslog"
)

// logBuf is a log destination tests read while clients write to it.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the records written so far.
func (b *logBuf) lines(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for l := range strings.SplitSeq(strings.TrimSpace(b.buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// kgoLogger is what ClientOpts gives franz-go, writing JSON to buf at
// level, and the outage that ends on a successful connection.
func kgoLogger(buf io.Writer, level slog.Level) (kgo.Logger, *outage) {
	log := slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: level})).With("component", "kgo")
	o := newOutage(log, []string{"127.0.0.1:1"})
	return kslog.New(slog.New(minLevel{Handler: o.handler(log.Handler()), min: slog.LevelWarn})), o
}

func dialErr(addr string) error {
	a, _ := net.ResolveTCPAddr("tcp", addr)
	return &net.OpError{Op: "dial", Net: "tcp", Addr: a, Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}
}

// count returns how many lines have the level and a message containing msg.
func count(lines []map[string]any, level, msg string) int {
	n := 0
	for _, l := range lines {
		if l["level"] == level && strings.Contains(l["msg"].(string), msg) {
			n++
		}
	}
	return n
}

// A broker outage is logged once, with the broker's address, and its end
// once; the repeated connection failures in between go to debug; errors
// of another kind are logged as they come, during the outage too.
func TestOutageLoggedOnceAndItsEnd(t *testing.T) {
	t.Parallel()
	for _, level := range []slog.Level{slog.LevelInfo, slog.LevelDebug} {
		t.Run(level.String(), func(t *testing.T) {
			t.Parallel()
			buf := &logBuf{}
			kl, o := kgoLogger(buf, level)
			for range 100 {
				kl.Log(kgo.LogLevelWarn, "unable to open connection to broker", "addr", "127.0.0.1:1", "broker", "seed_0", "err", dialErr("127.0.0.1:1"))
			}
			for range 10 {
				kl.Log(kgo.LogLevelError, "group manage loop errored", "group", "g", "err", fmt.Errorf("unable to dial: %w", dialErr("127.0.0.1:1")))
				kl.Log(kgo.LogLevelWarn, "read from broker errored, killing connection", "err", io.EOF)
			}
			for range 3 {
				kl.Log(kgo.LogLevelError, "fatal InitProducerID error, failing all buffered records", "broker", "1", "err", kerr.TransactionalIDAuthorizationFailed)
			}
			kl.Log(kgo.LogLevelInfo, "assigning partitions", "group", "g")
			lines := buf.lines(t)
			if n := count(lines, "WARN", "") + count(lines, "ERROR", "") - count(lines, "ERROR", "InitProducerID"); n != 1 {
				t.Errorf("%d warning/error lines about the unreachable broker, want 1: %v", n, lines)
			}
			first := lines[0]
			if first["outage"] != "started" || first["addr"] != "127.0.0.1:1" || !strings.Contains(first["err"].(string), "connection refused") {
				t.Errorf("the outage's line: %v, want outage=started with the address and the error", first)
			}
			if n := count(lines, "ERROR", "InitProducerID"); n != 3 {
				t.Errorf("errors of another kind during the outage: %d lines, want all 3", n)
			}
			wantDebug := 0
			if level == slog.LevelDebug {
				wantDebug = 119
			}
			if n := count(lines, "DEBUG", ""); n != wantDebug {
				t.Errorf("%d debug lines, want %d (the repeats, at debug only)", n, wantDebug)
			}

			o.OnBrokerConnect(kgo.BrokerMetadata{Host: "127.0.0.1", Port: 1}, 0, nil, errors.New("still down"))
			o.OnBrokerConnect(kgo.BrokerMetadata{Host: "127.0.0.1", Port: 1}, 0, nil, nil)
			o.OnBrokerConnect(kgo.BrokerMetadata{Host: "127.0.0.1", Port: 1}, 0, nil, nil)
			lines = buf.lines(t)
			ends := 0
			for _, l := range lines {
				if l["outage"] == "ended" {
					ends++
					if l["level"] != "INFO" || l["addr"] != "127.0.0.1:1" || l["suppressed"] != 119.0 || l["lasted"] == nil {
						t.Errorf("the end line: %v", l)
					}
				}
			}
			if ends != 1 {
				t.Errorf("%d end lines, want 1", ends)
			}
			// The next outage is logged again.
			kl.Log(kgo.LogLevelWarn, "produce partition load error", "broker", "1", "err", fmt.Errorf("unable to dial: %w", dialErr("127.0.0.1:2")))
			last := buf.lines(t)[len(buf.lines(t))-1]
			if last["outage"] != "started" || last["level"] != "WARN" || last["addr"] != "127.0.0.1:2" {
				t.Errorf("a second outage: %v, want logged with the address from the error", last)
			}
		})
	}
}

func TestConnFailure(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"dial refused", dialErr("127.0.0.1:1"), true},
		{"wrapped dial", fmt.Errorf("unable to dial: %w", dialErr("127.0.0.1:1")), true},
		{"dial timeout", &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}, true},
		{"reset", fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		{"EOF", io.EOF, true},
		{"dns", &net.DNSError{Err: "no such host", Name: "kafka", IsNotFound: true}, true},
		{"none", nil, false},
		{"broker answer", kerr.NotLeaderForPartition, false},
		{"auth", kerr.TopicAuthorizationFailed, false},
		{"ours", errors.New("boom"), false},
		{"canceled", context.Canceled, false},
	} {
		if got := connFailure(c.err); got != c.want {
			t.Errorf("%s: connFailure(%v) = %v, want %v", c.name, c.err, got, c.want)
		}
	}
}

// An outage that no connection ends is logged again every five minutes
// (with how long it lasted and how much was suppressed), so a failure no
// later connection clears cannot silence the next outage for good.
func TestLastingOutageLoggedEveryFiveMinutes(t *testing.T) {
	t.Parallel()
	buf := &logBuf{}
	log := slog.New(slog.NewJSONHandler(buf, nil))
	h := newOutage(log, []string{"127.0.0.1:1"}).handler(log.Handler())
	t0 := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	for _, after := range []time.Duration{0, time.Minute, 4*time.Minute + 59*time.Second, 5 * time.Minute, 6 * time.Minute, 10 * time.Minute} {
		r := slog.NewRecord(t0.Add(after), slog.LevelWarn, "unable to open connection to broker", 0)
		r.AddAttrs(slog.String("addr", "127.0.0.1:1"), slog.Any("err", dialErr("127.0.0.1:1")))
		if err := h.Handle(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, l := range buf.lines(t) {
		got = append(got, fmt.Sprint(l["outage"], " ", l["lasted"], " ", l["suppressed"]))
	}
	want := []string{"started <nil> <nil>", "continuing 5m0s 2", "continuing 10m0s 3"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("lines %q, want %q", got, want)
	}
}
