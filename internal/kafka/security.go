package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// The SASL mechanisms a client can authenticate with.
const (
	MechanismPlain       = "PLAIN"
	MechanismScramSHA256 = "SCRAM-SHA-256"
	MechanismScramSHA512 = "SCRAM-SHA-512"
	MechanismOAuthBearer = "OAUTHBEARER"
)

// Mechanisms are the SASL mechanisms Security knows, in the order the
// documentation lists them.
var Mechanisms = []string{MechanismPlain, MechanismScramSHA256, MechanismScramSHA512, MechanismOAuthBearer}

// Security is how every Kafka client of a process reaches the brokers: TLS
// (the brokers' CA, a client certificate, the name to verify) and SASL.
// The zero value is a plaintext connection without authentication, as
// before. internal/config fills it from EXO_KAFKA_TLS* and EXO_KAFKA_SASL_*.
type Security struct {
	TLS bool
	// CAFile holds the PEM certificates the brokers' certificates are
	// verified against; empty: the system's roots.
	CAFile string
	// CertFile and KeyFile are the client certificate and its key (PEM),
	// for brokers that authenticate clients by certificate. Both or
	// neither. They are read again at every connection, so a renewed
	// certificate is used without a restart.
	CertFile, KeyFile string
	// ServerName is the name the brokers' certificates must carry; empty:
	// the host of the broker address dialled.
	ServerName string
	// InsecureSkipVerify accepts any broker certificate. Never in
	// production: anybody on the path can read and change the traffic.
	InsecureSkipVerify bool

	// Mechanism is one of Mechanisms, or empty for no SASL.
	Mechanism string
	// Username and Password for PLAIN and SCRAM.
	Username, Password string
	// TokenFile holds the OAUTHBEARER token, read again at every
	// authentication (a sidecar or a projected volume renews it).
	TokenFile string
}

// Enabled reports whether anything but a plaintext connection is set.
func (s Security) Enabled() bool { return s.TLS || s.Mechanism != "" }

// Warnings are the settings that work but should not be used: TLS
// verification off, a password sent in the clear.
func (s Security) Warnings() []string {
	var w []string
	if s.TLS && s.InsecureSkipVerify {
		w = append(w, "Kafka TLS certificate verification is OFF (EXO_KAFKA_TLS_INSECURE_SKIP_VERIFY): any broker, or anybody on the path, is trusted; use EXO_KAFKA_TLS_CA_FILE instead")
	}
	if !s.TLS && s.Mechanism == MechanismPlain {
		w = append(w, "Kafka SASL PLAIN without TLS: the password crosses the network in the clear (set EXO_KAFKA_TLS=on)")
	}
	if !s.TLS && s.Mechanism == MechanismOAuthBearer {
		w = append(w, "Kafka SASL OAUTHBEARER without TLS: the token crosses the network in the clear (set EXO_KAFKA_TLS=on)")
	}
	return w
}

// Opts returns the client options that apply the settings (none for the
// zero value), or every problem at once: a certificate without its key,
// a file that cannot be read, an unknown mechanism, missing credentials.
func (s Security) Opts() ([]kgo.Opt, error) {
	var errs []error
	var opts []kgo.Opt
	if s.TLS {
		cfg, err := s.tlsConfig()
		if err != nil {
			errs = append(errs, err)
		} else {
			opts = append(opts, kgo.DialTLSConfig(cfg))
		}
	} else if s.CAFile != "" || s.CertFile != "" || s.KeyFile != "" || s.ServerName != "" || s.InsecureSkipVerify {
		errs = append(errs, errors.New("kafka: TLS settings (CA, certificate, key, server name or skip-verify) given with TLS off"))
	}
	if s.Mechanism != "" || s.Username != "" || s.Password != "" || s.TokenFile != "" {
		m, err := s.mechanism()
		if err != nil {
			errs = append(errs, err)
		} else {
			opts = append(opts, kgo.SASL(m))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return opts, nil
}

func (s Security) tlsConfig() (*tls.Config, error) {
	var errs []error
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: s.ServerName, InsecureSkipVerify: s.InsecureSkipVerify} //nolint:gosec // skip-verify only when the operator sets it, with a warning at start
	if s.CAFile != "" {
		pem, err := os.ReadFile(s.CAFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("kafka: TLS CA file: %w", err))
		} else {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				errs = append(errs, fmt.Errorf("kafka: TLS CA file %s holds no PEM certificate", s.CAFile))
			}
			cfg.RootCAs = pool
		}
	}
	switch {
	case s.CertFile != "" && s.KeyFile == "":
		errs = append(errs, fmt.Errorf("kafka: TLS client certificate %s given without its key (EXO_KAFKA_TLS_KEY_FILE)", s.CertFile))
	case s.CertFile == "" && s.KeyFile != "":
		errs = append(errs, fmt.Errorf("kafka: TLS client key %s given without its certificate (EXO_KAFKA_TLS_CERT_FILE)", s.KeyFile))
	case s.CertFile != "":
		certFile, keyFile := s.CertFile, s.KeyFile
		if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
			errs = append(errs, fmt.Errorf("kafka: TLS client certificate %s and key %s: %w", certFile, keyFile, err))
		}
		// Read at every handshake: a renewed certificate (cert-manager, a
		// rotated Secret) is picked up by the next connection.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			c, err := tls.LoadX509KeyPair(certFile, keyFile)
			if err != nil {
				return nil, fmt.Errorf("kafka: TLS client certificate %s and key %s: %w", certFile, keyFile, err)
			}
			return &c, nil
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return cfg, nil
}

func (s Security) mechanism() (sasl.Mechanism, error) {
	userPass := func() error {
		var missing []string
		if s.Username == "" {
			missing = append(missing, "a username (EXO_KAFKA_SASL_USERNAME)")
		}
		if s.Password == "" {
			missing = append(missing, "a password (EXO_KAFKA_SASL_PASSWORD or EXO_KAFKA_SASL_PASSWORD_FILE)")
		}
		if s.TokenFile != "" {
			return fmt.Errorf("kafka: SASL %s takes no token file (EXO_KAFKA_SASL_OAUTH_TOKEN_FILE is for OAUTHBEARER)", s.Mechanism)
		}
		if len(missing) > 0 {
			return fmt.Errorf("kafka: SASL %s needs %s", s.Mechanism, strings.Join(missing, " and "))
		}
		return nil
	}
	switch s.Mechanism {
	case "":
		return nil, errors.New("kafka: SASL credentials given without a mechanism (EXO_KAFKA_SASL_MECHANISM: " + strings.Join(Mechanisms, ", ") + ")")
	case MechanismPlain:
		if err := userPass(); err != nil {
			return nil, err
		}
		return plain.Auth{User: s.Username, Pass: s.Password}.AsMechanism(), nil
	case MechanismScramSHA256, MechanismScramSHA512:
		if err := userPass(); err != nil {
			return nil, err
		}
		a := scram.Auth{User: s.Username, Pass: s.Password}
		if s.Mechanism == MechanismScramSHA256 {
			return a.AsSha256Mechanism(), nil
		}
		return a.AsSha512Mechanism(), nil
	case MechanismOAuthBearer:
		if s.Username != "" || s.Password != "" {
			return nil, errors.New("kafka: SASL OAUTHBEARER takes a token file (EXO_KAFKA_SASL_OAUTH_TOKEN_FILE), not a username or password")
		}
		if s.TokenFile == "" {
			return nil, errors.New("kafka: SASL OAUTHBEARER needs a token file (EXO_KAFKA_SASL_OAUTH_TOKEN_FILE)")
		}
		if _, err := readToken(s.TokenFile); err != nil {
			return nil, err
		}
		file := s.TokenFile
		return oauth.Oauth(func(context.Context) (oauth.Auth, error) {
			tok, err := readToken(file)
			return oauth.Auth{Token: tok}, err
		}), nil
	default:
		return nil, fmt.Errorf("kafka: unknown SASL mechanism %q (want one of %s)", s.Mechanism, strings.Join(Mechanisms, ", "))
	}
}

// readToken reads an OAUTHBEARER token file, without its final newline.
func readToken(file string) (string, error) {
	b, err := os.ReadFile(file) //nolint:gosec // the operator names the file
	if err != nil {
		return "", fmt.Errorf("kafka: SASL OAUTHBEARER token file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("kafka: SASL OAUTHBEARER token file %s is empty", file)
	}
	return tok, nil
}
