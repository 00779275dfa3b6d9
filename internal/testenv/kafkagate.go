package testenv

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// KafkaGate is a Kafka outage a test can switch on and off. It routes every
// connection a Kafka client opens through a TCP proxy on 127.0.0.1, one per
// broker address the client dials: the seed brokers and every address it
// learns from metadata, so nothing bypasses the proxy. Cut closes the
// proxies' listeners and every connection through them, so dials are
// refused by the kernel; Restore listens again on the same ports.
//
// One gate may serve many clients (every component of a test): give each
// the option Opt.
type KafkaGate struct {
	mu      sync.Mutex
	cut     bool
	proxies map[string]*tcpProxy // broker address -> its proxy
	refused atomic.Int64         // dials that failed
	// Latency delays every chunk a client sends (a slow network path). Set
	// it before the first dial.
	Latency time.Duration
}

// NewKafkaGate returns an open gate; it is cut, and its proxies stopped,
// when the test ends.
func NewKafkaGate(t testing.TB) *KafkaGate {
	g := &KafkaGate{proxies: map[string]*tcpProxy{}}
	t.Cleanup(func() {
		g.Cut()
		g.mu.Lock()
		defer g.mu.Unlock()
		for _, p := range g.proxies {
			p.wg.Wait()
		}
	})
	return g
}

// Opt is the client option that sends the client's dials through the gate.
func (g *KafkaGate) Opt() kgo.Opt { return kgo.Dialer(g.dial) }

// Refused is how many dials through the gate failed (while it was cut).
func (g *KafkaGate) Refused() int64 { return g.refused.Load() }

func (g *KafkaGate) dial(ctx context.Context, network, host string) (net.Conn, error) {
	addr, err := g.proxyFor(host)
	if err != nil {
		g.refused.Add(1)
		return nil, err
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		g.refused.Add(1)
	}
	return c, err
}

// proxyFor returns the proxy address for a broker address, starting a proxy
// (cut, if the gate is cut) the first time the address is dialed.
func (g *KafkaGate) proxyFor(host string) (string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if p, ok := g.proxies[host]; ok {
		return p.addr, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("kafka gate: %w", err)
	}
	p := &tcpProxy{target: host, addr: ln.Addr().String(), latency: g.Latency, conns: map[net.Conn]struct{}{}}
	g.proxies[host] = p
	if g.cut {
		_ = ln.Close()
	} else {
		p.serve(ln)
	}
	return p.addr, nil
}

// Cut makes Kafka unreachable through the gate: open connections are
// closed and new dials refused.
func (g *KafkaGate) Cut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.cut = true
	for _, p := range g.proxies {
		p.stop()
	}
}

// Restore makes Kafka reachable again (if it was cut).
func (g *KafkaGate) Restore(t testing.TB) {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.cut {
		return
	}
	g.cut = false
	for _, p := range g.proxies {
		ln, err := net.Listen("tcp", p.addr)
		if err != nil {
			t.Fatalf("kafka gate: listen again on %s: %v", p.addr, err)
		}
		p.serve(ln)
	}
}

// Hosts are the broker addresses dialed through the gate.
func (g *KafkaGate) Hosts() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	for h := range g.proxies {
		out = append(out, h)
	}
	return out
}

type tcpProxy struct {
	target, addr string
	latency      time.Duration
	wg           sync.WaitGroup
	mu           sync.Mutex
	ln           net.Listener
	epoch        int // bumped by stop: connections accepted before are closed
	conns        map[net.Conn]struct{}
}

func (p *tcpProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	epoch := p.epoch
	p.mu.Unlock()
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Go(func() { p.pipe(c, epoch) })
		}
	})
}

func (p *tcpProxy) track(epoch int, cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.epoch != epoch {
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *tcpProxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
		_ = c.Close()
	}
}

func (p *tcpProxy) pipe(c net.Conn, epoch int) {
	up, err := net.DialTimeout("tcp", p.target, 10*time.Second)
	if err != nil {
		_ = c.Close()
		return
	}
	if !p.track(epoch, c, up) {
		_ = c.Close()
		_ = up.Close()
		return
	}
	defer p.untrack(c, up)
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn, latency time.Duration) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				time.Sleep(latency) // simulated network latency, not synchronisation
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		_ = dst.Close()
		_ = src.Close()
		done <- struct{}{}
	}
	go cp(up, c, p.latency)
	go cp(c, up, 0)
	<-done
	<-done
}

// stop closes the listener and every connection through the proxy.
func (p *tcpProxy) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	p.epoch++
	for c := range p.conns {
		_ = c.Close()
	}
}
