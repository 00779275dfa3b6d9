package kafka_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/kafka"
)

// A TLS handshake that fails because of the certificates is Fatal (no
// start-up waits for it); a peer that hangs up is what an outage looks
// like and is not. Real handshakes against local listeners.
func TestFatalTLSHandshakes(t *testing.T) {
	t.Parallel()
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	trusted := x509.NewCertPool()
	trusted.AddCert(srv.Certificate())

	hangUp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hangUp.Close() })
	go func() {
		for {
			c, err := hangUp.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()

	for _, tc := range []struct {
		name  string
		addr  string
		tls   *tls.Config
		fatal bool
	}{
		{"CA not trusted", srv.Listener.Addr().String(), &tls.Config{MinVersion: tls.VersionTLS12}, true},
		{"name not in the certificate", srv.Listener.Addr().String(), &tls.Config{RootCAs: trusted, ServerName: "kafka.invalid", MinVersion: tls.VersionTLS12}, true},
		{"client certificate required", srv.Listener.Addr().String(), &tls.Config{RootCAs: trusted, ServerName: "example.com", MinVersion: tls.VersionTLS12}, true},
		{"connection closed", hangUp.Addr().String(), &tls.Config{MinVersion: tls.VersionTLS12}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cl, err := kgo.NewClient(kgo.SeedBrokers(tc.addr), kgo.DialTLSConfig(tc.tls), kgo.RetryTimeout(time.Second))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err = cl.Ping(ctx)
			if err == nil {
				t.Fatal("Ping succeeded")
			}
			if kafka.Fatal(err) != tc.fatal || kafka.BadTLS(err) != tc.fatal {
				t.Errorf("Ping: %v: Fatal %t, BadTLS %t, want %t", err, kafka.Fatal(err), kafka.BadTLS(err), tc.fatal)
			}
		})
	}
}
