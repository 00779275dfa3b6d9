package kafka_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/internal/kafka"
)

// pemFiles writes a self-signed certificate and its key to dir and returns
// their paths.
func pemFiles(t *testing.T, dir string) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	write(t, cert, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	write(t, key, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd})))
	return cert, key
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Settings that cannot work are refused with every problem at once, each
// naming what to fix; settings that can give the TLS and SASL options.
func TestSecurityOpts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cert, key := pemFiles(t, dir)
	notPEM := filepath.Join(dir, "not.pem")
	write(t, notPEM, "not a certificate\n")
	token := filepath.Join(dir, "token")
	write(t, token, "eyJhbGciOiJub25lIn0.eyJzdWIiOiJleG8ifQ.\n")
	empty := filepath.Join(dir, "empty")
	write(t, empty, "\n")
	missing := filepath.Join(dir, "missing.pem")
	for _, tc := range []struct {
		name string
		s    kafka.Security
		opts int      // options when valid
		errs []string // substrings of the error, every one
	}{
		{name: "plaintext", s: kafka.Security{}, opts: 0},
		{name: "tls with the system roots", s: kafka.Security{TLS: true}, opts: 1},
		{name: "tls with a CA and a client certificate", s: kafka.Security{TLS: true, CAFile: cert, CertFile: cert, KeyFile: key, ServerName: "kafka.internal"}, opts: 1},
		{name: "scram-sha-512 over tls", s: kafka.Security{TLS: true, CAFile: cert, Mechanism: kafka.MechanismScramSHA512, Username: "u", Password: "p"}, opts: 2},
		{name: "scram-sha-256", s: kafka.Security{Mechanism: kafka.MechanismScramSHA256, Username: "u", Password: "p"}, opts: 1},
		{name: "plain", s: kafka.Security{TLS: true, Mechanism: kafka.MechanismPlain, Username: "u", Password: "p"}, opts: 2},
		{name: "oauthbearer", s: kafka.Security{TLS: true, Mechanism: kafka.MechanismOAuthBearer, TokenFile: token}, opts: 2},
		{name: "certificate without key", s: kafka.Security{TLS: true, CertFile: cert}, errs: []string{"certificate " + cert + " given without its key (EXO_KAFKA_TLS_KEY_FILE)"}},
		{name: "key without certificate", s: kafka.Security{TLS: true, KeyFile: key}, errs: []string{"key " + key + " given without its certificate (EXO_KAFKA_TLS_CERT_FILE)"}},
		{name: "client certificate that is not PEM", s: kafka.Security{TLS: true, CertFile: notPEM, KeyFile: key}, errs: []string{"TLS client certificate " + notPEM + " and key " + key}},
		{name: "CA file missing", s: kafka.Security{TLS: true, CAFile: missing}, errs: []string{"TLS CA file", "no such file"}},
		{name: "CA file without a certificate", s: kafka.Security{TLS: true, CAFile: notPEM}, errs: []string{"TLS CA file " + notPEM + " holds no PEM certificate"}},
		{name: "TLS files with TLS off", s: kafka.Security{CAFile: cert}, errs: []string{"given with TLS off"}},
		{name: "unknown mechanism", s: kafka.Security{Mechanism: "GSSAPI", Username: "u", Password: "p"}, errs: []string{`unknown SASL mechanism "GSSAPI" (want one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER)`}},
		{name: "scram without password", s: kafka.Security{Mechanism: kafka.MechanismScramSHA512, Username: "u"}, errs: []string{"SASL SCRAM-SHA-512 needs a password (EXO_KAFKA_SASL_PASSWORD or EXO_KAFKA_SASL_PASSWORD_FILE)"}},
		{name: "plain without anything", s: kafka.Security{Mechanism: kafka.MechanismPlain}, errs: []string{"SASL PLAIN needs a username (EXO_KAFKA_SASL_USERNAME) and a password"}},
		{name: "credentials without mechanism", s: kafka.Security{Username: "u", Password: "p"}, errs: []string{"SASL credentials given without a mechanism (EXO_KAFKA_SASL_MECHANISM"}},
		{name: "oauthbearer without token", s: kafka.Security{TLS: true, Mechanism: kafka.MechanismOAuthBearer}, errs: []string{"OAUTHBEARER needs a token file (EXO_KAFKA_SASL_OAUTH_TOKEN_FILE)"}},
		{name: "oauthbearer with an empty token", s: kafka.Security{TLS: true, Mechanism: kafka.MechanismOAuthBearer, TokenFile: empty}, errs: []string{"token file " + empty + " is empty"}},
		{name: "oauthbearer with a password", s: kafka.Security{TLS: true, Mechanism: kafka.MechanismOAuthBearer, Password: "p", TokenFile: token}, errs: []string{"OAUTHBEARER takes a token file"}},
		{name: "every problem at once", s: kafka.Security{TLS: true, CertFile: cert, CAFile: missing, Mechanism: "SCRAM"},
			errs: []string{"without its key", "TLS CA file", `unknown SASL mechanism "SCRAM"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			opts, err := tc.s.Opts()
			if len(tc.errs) == 0 {
				if err != nil {
					t.Fatalf("Opts() = %v, want no error", err)
				}
				if len(opts) != tc.opts {
					t.Fatalf("Opts() gave %d options, want %d", len(opts), tc.opts)
				}
				return
			}
			if err == nil {
				t.Fatalf("Opts() = %d options and no error, want an error saying %q", len(opts), tc.errs)
			}
			for _, want := range tc.errs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Opts() error %q does not say %q", err, want)
				}
			}
			if tc.s.Password != "" && strings.Contains(err.Error(), tc.s.Password+" ") {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

// Working settings that expose the traffic are warned about.
func TestSecurityWarnings(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		s    kafka.Security
		want string
	}{
		{kafka.Security{TLS: true, InsecureSkipVerify: true}, "certificate verification is OFF"},
		{kafka.Security{Mechanism: kafka.MechanismPlain, Username: "u", Password: "p"}, "SASL PLAIN without TLS: the password crosses the network in the clear"},
		{kafka.Security{Mechanism: kafka.MechanismOAuthBearer}, "OAUTHBEARER without TLS"},
		{kafka.Security{TLS: true, Mechanism: kafka.MechanismPlain, Username: "u", Password: "p"}, ""},
		{kafka.Security{Mechanism: kafka.MechanismScramSHA512, Username: "u", Password: "p"}, ""},
	} {
		got := strings.Join(tc.s.Warnings(), "\n")
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%+v: warnings %q, want %q", tc.s, got, tc.want)
		}
	}
}
