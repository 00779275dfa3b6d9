package config

import (
	"log/slog"
	"os"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/kafka"
)

// The variables of the Kafka clients' TLS and SASL settings (README,
// docs/operations.md "Managed Kafka (TLS, SASL)"). The Helm chart sets them
// by these names.
//
//nolint:gosec // G101: the names of the variables holding credentials, not credentials
const (
	EnvKafkaTLS                = "EXO_KAFKA_TLS"
	EnvKafkaTLSCAFile          = "EXO_KAFKA_TLS_CA_FILE"
	EnvKafkaTLSCertFile        = "EXO_KAFKA_TLS_CERT_FILE"
	EnvKafkaTLSKeyFile         = "EXO_KAFKA_TLS_KEY_FILE"
	EnvKafkaTLSServerName      = "EXO_KAFKA_TLS_SERVER_NAME"
	EnvKafkaTLSInsecure        = "EXO_KAFKA_TLS_INSECURE_SKIP_VERIFY"
	EnvKafkaSASLMechanism      = "EXO_KAFKA_SASL_MECHANISM"
	EnvKafkaSASLUsername       = "EXO_KAFKA_SASL_USERNAME"
	EnvKafkaSASLPassword       = "EXO_KAFKA_SASL_PASSWORD"
	EnvKafkaSASLPasswordFile   = "EXO_KAFKA_SASL_PASSWORD_FILE"
	EnvKafkaSASLOAuthTokenFile = "EXO_KAFKA_SASL_OAUTH_TOKEN_FILE"
)

// onOff reads an on/off switch (also true/false, 1/0, yes/no).
func (e *Env) onOff(key string) (on, set bool) {
	v, ok := e.get(key)
	if !ok {
		return false, false
	}
	switch strings.ToLower(v) {
	case "on", "true", "1", "yes":
		return true, true
	case "off", "false", "0", "no":
		return false, true
	}
	e.Problem("%s=%q is neither on nor off", key, v)
	return false, true
}

// KafkaSecurity reads the TLS and SASL settings of every Kafka client:
// TLS is on when EXO_KAFKA_TLS=on, or when it is unset and any other
// EXO_KAFKA_TLS_* variable is. Every problem is recorded (see Err); the
// files are checked by KafkaOpts.
func (e *Env) KafkaSecurity() kafka.Security {
	s := kafka.Security{
		CAFile:     e.String(EnvKafkaTLSCAFile, ""),
		CertFile:   e.String(EnvKafkaTLSCertFile, ""),
		KeyFile:    e.String(EnvKafkaTLSKeyFile, ""),
		ServerName: e.String(EnvKafkaTLSServerName, ""),
		Mechanism:  strings.ToUpper(e.String(EnvKafkaSASLMechanism, "")),
		Username:   e.String(EnvKafkaSASLUsername, ""),
		TokenFile:  e.String(EnvKafkaSASLOAuthTokenFile, ""),
	}
	s.InsecureSkipVerify, _ = e.onOff(EnvKafkaTLSInsecure)
	implied := s.CAFile != "" || s.CertFile != "" || s.KeyFile != "" || s.ServerName != "" || s.InsecureSkipVerify
	tls, set := e.onOff(EnvKafkaTLS)
	switch {
	case !set:
		s.TLS = implied
	case !tls && implied:
		e.Problem("%s=off, but %s", EnvKafkaTLS, strings.Join(e.setOf(EnvKafkaTLSCAFile, EnvKafkaTLSCertFile, EnvKafkaTLSKeyFile, EnvKafkaTLSServerName, EnvKafkaTLSInsecure), ", ")+" set: turn TLS on or unset them")
	default:
		s.TLS = tls
	}
	// The password is taken as it is (spaces are a password's business);
	// a file loses its final line break.
	pw, pwSet := e.lookup(EnvKafkaSASLPassword)
	pwSet = pwSet && pw != ""
	if file, ok := e.get(EnvKafkaSASLPasswordFile); ok {
		if pwSet {
			e.Problem("%s and %s are both set: use one", EnvKafkaSASLPassword, EnvKafkaSASLPasswordFile)
		}
		b, err := os.ReadFile(file) //nolint:gosec // the operator names the file
		switch {
		case err != nil:
			e.Problem("%s: %v", EnvKafkaSASLPasswordFile, err)
		case len(strings.TrimRight(string(b), "\r\n")) == 0:
			e.Problem("%s: %s is empty", EnvKafkaSASLPasswordFile, file)
		default:
			pw = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		}
	}
	s.Password = pw
	return s
}

// setOf returns those of keys that are set.
func (e *Env) setOf(keys ...string) []string {
	var set []string
	for _, k := range keys {
		if _, ok := e.get(k); ok {
			set = append(set, k)
		}
	}
	return set
}

// KafkaOpts reads the Kafka clients' TLS and SASL settings (KafkaSecurity),
// records their problems (unreadable files, a certificate without its key,
// an unknown mechanism, missing credentials), logs their warnings on log
// (TLS verification off, a password in the clear), and returns the client
// options every Kafka client of the process adds (none without TLS or
// SASL).
func (e *Env) KafkaOpts(log *slog.Logger) []kgo.Opt {
	s := e.KafkaSecurity()
	opts, err := s.Opts()
	if err != nil {
		for _, p := range strings.Split(err.Error(), "\n") {
			e.Problem("%s", p)
		}
	}
	if log != nil {
		for _, w := range s.Warnings() {
			log.Warn(w, "component", "kafka")
		}
		if s.Enabled() && err == nil {
			log.Info("kafka client security", "component", "kafka", "tls", s.TLS, "ca_file", s.CAFile,
				"client_cert", s.CertFile != "", "server_name", s.ServerName, "sasl", s.Mechanism, "sasl_user", s.Username)
		}
	}
	return opts
}
