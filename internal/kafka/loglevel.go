package kafka

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// minLevel wraps a handler so records below min are dropped: franz-go logs
// its group and connection lifecycle at info, which drowns ours.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(a []slog.Attr) slog.Handler {
	return minLevel{Handler: h.Handler.WithAttrs(a), min: h.min}
}

func (h minLevel) WithGroup(n string) slog.Handler {
	return minLevel{Handler: h.Handler.WithGroup(n), min: h.min}
}

// outage logs a broker outage once and its end once (without it, during an outage
// franz-go logs every failed reconnect — hundreds of lines a minute). The
// first record whose error is a connection failure (refused, reset, timed
// out, EOF: the broker is unreachable, not answering with an error) is
// logged as it is, marked outage=started, with the broker's address; the
// ones that follow while the outage lasts go to debug, but for one every
// outageReminder (outage=continuing: a failure that no later connection
// ends, say of one broker among several, cannot silence the next outage
// for good). The next successful
// connection to a broker (franz-go's OnBrokerConnect hook: dialled and
// answered ApiVersions) ends the outage: one info line with how long it
// lasted and how many lines went to debug. Records of any other kind pass
// unchanged, during an outage too.
//
// One outage is shared by the clients built from one ClientOpts call.
type outage struct {
	log   *slog.Logger // where the end line goes (at the caller's level)
	seeds []string

	mu         sync.Mutex
	since      time.Time // zero: no outage
	logged     time.Time // when a failure of this outage was last logged
	suppressed int
}

// outageReminder is how often a lasting outage is logged again.
const outageReminder = 5 * time.Minute

func newOutage(log *slog.Logger, seeds []string) *outage {
	return &outage{log: log, seeds: seeds}
}

// handler returns the handler franz-go's records go through on their way
// to next.
func (o *outage) handler(next slog.Handler) slog.Handler { return outageHandler{next: next, o: o} }

// failed records a connection failure at t and says whether to log it:
// as the start of an outage, as a reminder that it continues (with how
// long it lasted and how many lines were suppressed), or not.
func (o *outage) failed(t time.Time) (log bool, attrs []slog.Attr) {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case o.since.IsZero():
		o.since, o.logged = t, t
		return true, []slog.Attr{slog.String("outage", "started")}
	case t.Sub(o.logged) >= outageReminder:
		o.logged = t
		return true, []slog.Attr{slog.String("outage", "continuing"),
			slog.String("lasted", t.Sub(o.since).Round(time.Millisecond).String()), slog.Int("suppressed", o.suppressed)}
	}
	o.suppressed++
	return false, nil
}

// OnBrokerConnect implements kgo.HookBrokerConnect: a connection that
// succeeds ends an outage. Failed connections are logged by franz-go.
func (o *outage) OnBrokerConnect(meta kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	if err != nil {
		return
	}
	o.mu.Lock()
	since, suppressed := o.since, o.suppressed
	o.since, o.suppressed = time.Time{}, 0
	o.mu.Unlock()
	if since.IsZero() {
		return
	}
	o.log.Info("kafka reachable again", "outage", "ended", "addr", net.JoinHostPort(meta.Host, strconv.Itoa(int(meta.Port))),
		"lasted", time.Since(since).Round(time.Millisecond).String(), "suppressed", suppressed)
}

type outageHandler struct {
	next slog.Handler
	o    *outage
}

func (h outageHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h outageHandler) WithAttrs(a []slog.Attr) slog.Handler {
	return outageHandler{next: h.next.WithAttrs(a), o: h.o}
}

func (h outageHandler) WithGroup(n string) slog.Handler {
	return outageHandler{next: h.next.WithGroup(n), o: h.o}
}

func (h outageHandler) Handle(ctx context.Context, r slog.Record) error {
	err, hasAddr := recordErr(r)
	if !connFailure(err) {
		return h.next.Handle(ctx, r)
	}
	if log, attrs := h.o.failed(r.Time); log {
		r = r.Clone()
		r.AddAttrs(attrs...)
		if !hasAddr {
			var op *net.OpError
			if errors.As(err, &op) && op.Addr != nil {
				r.AddAttrs(slog.String("addr", op.Addr.String()))
			} else {
				r.AddAttrs(slog.String("seed_brokers", strings.Join(h.o.seeds, ",")))
			}
		}
		r.AddAttrs(slog.String("note", "further connection failures are logged at debug until a broker answers"))
		return h.next.Handle(ctx, r)
	}
	if !h.next.Enabled(ctx, slog.LevelDebug) {
		return nil
	}
	d := slog.NewRecord(r.Time, slog.LevelDebug, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool { d.AddAttrs(a); return true })
	return h.next.Handle(ctx, d)
}

// recordErr returns the error a franz-go record carries ("err") and
// whether it names a broker address ("addr").
func recordErr(r slog.Record) (err error, hasAddr bool) {
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "err":
			err, _ = a.Value.Any().(error)
		case "addr":
			hasAddr = true
		}
		return true
	})
	return err, hasAddr
}

// connFailure reports whether err says a broker could not be reached or
// dropped the connection, as opposed to a broker's answer or our own bug.
func connFailure(err error) bool {
	if err == nil {
		return false
	}
	var op *net.OpError
	var dns *net.DNSError
	return errors.As(err, &op) || errors.As(err, &dns) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
