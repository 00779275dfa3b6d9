package controlplane_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/controlplane"
	"github.com/exospherehost/exo-alerts/internal/keyring"
)

// The API server closes connections a client holds without finishing a
// request (a body trickling one byte at a time) or without sending the
// next one (an idle keep-alive connection), after its configured timeouts.
func TestServerClosesSlowAndIdleConnections(t *testing.T) {
	t.Parallel()
	l := startHistEnv(t, func(c *controlplane.Config) {
		c.ReadHeaderTimeout, c.ReadTimeout, c.WriteTimeout, c.IdleTimeout = time.Second, time.Second, 2*time.Second, time.Second
	})
	addr := strings.TrimPrefix(l.url, "http://")

	// closed waits until the server closes conn (reading and discarding
	// whatever it answers first), or fails the test after a deadline far
	// beyond the configured timeouts.
	closed := func(t *testing.T, conn net.Conn, what string) string {
		t.Helper()
		_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		got, err := io.ReadAll(conn)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("%s: the server kept the connection open (read so far: %q)", what, got)
		}
		return string(got)
	}

	for _, c := range []struct{ name, auth string }{{"unauthenticated", ""}, {"authenticated", "Authorization: Bearer " + l.adminKey + "\r\n"}} {
		t.Run("trickling body "+c.name, func(t *testing.T) {
			t.Parallel()
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = conn.Close() }()
			head := "POST /v1/webhooks HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n" + c.auth + "Content-Length: 100000\r\n\r\n{"
			if _, err := conn.Write([]byte(head)); err != nil {
				t.Fatal(err)
			}
			stop := make(chan struct{})
			defer close(stop)
			go func() { // one byte every 200 ms: the body would take 5.5 hours
				tick := time.NewTicker(200 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
						if _, err := conn.Write([]byte(" ")); err != nil {
							return
						}
					}
				}
			}()
			got := closed(t, conn, "trickling body")
			if got != "" && !strings.HasPrefix(got, "HTTP/1.1 4") {
				t.Errorf("answer to a trickling body: %q, want none or a 4xx", got)
			}
		})
	}

	t.Run("idle keep-alive", func(t *testing.T) {
		t.Parallel()
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = conn.Close() }()
		if _, err := conn.Write([]byte("GET /healthz HTTP/1.1\r\nHost: api\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != 200 || resp.Close {
			t.Fatalf("healthz: %d, close %v: want 200 on a kept-alive connection", resp.StatusCode, resp.Close)
		}
		_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		rest, err := io.ReadAll(br)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("the server kept an idle keep-alive connection open")
		}
		if len(rest) != 0 {
			t.Errorf("unexpected bytes on the idle connection: %q", rest)
		}
	})
}

// Negative timeouts are refused at start, each named.
func TestNegativeHTTPTimeoutsRefused(t *testing.T) {
	t.Parallel()
	ring, err := keyring.Parse(keyring.Generate("k1"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = controlplane.New(controlplane.Config{Pool: unusedPool(t), Brokers: []string{"127.0.0.1:1"}, Keyring: ring, ReadTimeout: -time.Second, IdleTimeout: -1})
	if err == nil || !strings.Contains(err.Error(), "EXO_HTTP_READ_TIMEOUT") || !strings.Contains(err.Error(), "EXO_HTTP_IDLE_TIMEOUT") {
		t.Errorf("negative timeouts: %v", err)
	}
}
