package config_test

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/exospherehost/exo-alerts/internal/config"
	"github.com/exospherehost/exo-alerts/internal/kafka"
)

func envOf(vars map[string]string) *config.Env {
	return &config.Env{Lookup: func(k string) (string, bool) { v, ok := vars[k]; return v, ok }}
}

// The variables the Helm chart sets become the clients' settings: TLS on
// when any TLS file is named, the password taken as it is from the
// variable and without its line break from a file.
func TestKafkaSecurityFromEnv(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "password")
	if err := os.WriteFile(pwFile, []byte(" s3cret \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		vars map[string]string
		want kafka.Security
	}{
		{name: "nothing", vars: map[string]string{}, want: kafka.Security{}},
		{name: "tls on", vars: map[string]string{"EXO_KAFKA_TLS": "on"}, want: kafka.Security{TLS: true}},
		{name: "tls implied by the CA", vars: map[string]string{"EXO_KAFKA_TLS_CA_FILE": "/ca.pem"}, want: kafka.Security{TLS: true, CAFile: "/ca.pem"}},
		{name: "tls implied by the server name", vars: map[string]string{"EXO_KAFKA_TLS_SERVER_NAME": "kafka"}, want: kafka.Security{TLS: true, ServerName: "kafka"}},
		{name: "everything", vars: map[string]string{
			"EXO_KAFKA_TLS": "true", "EXO_KAFKA_TLS_CA_FILE": "/ca.pem", "EXO_KAFKA_TLS_CERT_FILE": "/c.pem", "EXO_KAFKA_TLS_KEY_FILE": "/k.pem",
			"EXO_KAFKA_TLS_SERVER_NAME": "kafka.internal", "EXO_KAFKA_SASL_MECHANISM": "scram-sha-512",
			"EXO_KAFKA_SASL_USERNAME": "exo", "EXO_KAFKA_SASL_PASSWORD": " with spaces ",
		}, want: kafka.Security{TLS: true, CAFile: "/ca.pem", CertFile: "/c.pem", KeyFile: "/k.pem", ServerName: "kafka.internal",
			Mechanism: "SCRAM-SHA-512", Username: "exo", Password: " with spaces "}},
		{name: "password file", vars: map[string]string{"EXO_KAFKA_SASL_MECHANISM": "PLAIN", "EXO_KAFKA_SASL_USERNAME": "exo", "EXO_KAFKA_SASL_PASSWORD_FILE": pwFile},
			want: kafka.Security{Mechanism: "PLAIN", Username: "exo", Password: " s3cret "}},
		{name: "skip verify", vars: map[string]string{"EXO_KAFKA_TLS_INSECURE_SKIP_VERIFY": "true"}, want: kafka.Security{TLS: true, InsecureSkipVerify: true}},
		{name: "skip verify off", vars: map[string]string{"EXO_KAFKA_TLS": "on", "EXO_KAFKA_TLS_INSECURE_SKIP_VERIFY": "off"}, want: kafka.Security{TLS: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := envOf(tc.vars)
			got := env.KafkaSecurity()
			if err := env.Err(); err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("KafkaSecurity() = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// A configuration that cannot work stops the start with every problem at
// once, each naming its variable; warnings go to the log.
func TestKafkaSecurityProblems(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		vars map[string]string
		want []string // in the error
	}{
		{name: "tls off with a CA", vars: map[string]string{"EXO_KAFKA_TLS": "off", "EXO_KAFKA_TLS_CA_FILE": "/ca.pem", "EXO_KAFKA_TLS_SERVER_NAME": "k"},
			want: []string{"EXO_KAFKA_TLS=off, but EXO_KAFKA_TLS_CA_FILE, EXO_KAFKA_TLS_SERVER_NAME set"}},
		{name: "tls neither on nor off", vars: map[string]string{"EXO_KAFKA_TLS": "maybe"}, want: []string{`EXO_KAFKA_TLS="maybe" is neither on nor off`}},
		{name: "skip verify misspelt", vars: map[string]string{"EXO_KAFKA_TLS_INSECURE_SKIP_VERIFY": "yes please"},
			want: []string{`EXO_KAFKA_TLS_INSECURE_SKIP_VERIFY="yes please" is neither on nor off`}},
		{name: "certificate without key", vars: map[string]string{"EXO_KAFKA_TLS_CERT_FILE": "/c.pem"}, want: []string{"given without its key (EXO_KAFKA_TLS_KEY_FILE)"}},
		{name: "unknown mechanism", vars: map[string]string{"EXO_KAFKA_SASL_MECHANISM": "KERBEROS", "EXO_KAFKA_SASL_USERNAME": "u", "EXO_KAFKA_SASL_PASSWORD": "p"},
			want: []string{`unknown SASL mechanism "KERBEROS"`}},
		{name: "both passwords", vars: map[string]string{"EXO_KAFKA_SASL_MECHANISM": "PLAIN", "EXO_KAFKA_SASL_USERNAME": "u",
			"EXO_KAFKA_SASL_PASSWORD": "p", "EXO_KAFKA_SASL_PASSWORD_FILE": filepath.Join(dir, "missing")},
			want: []string{"EXO_KAFKA_SASL_PASSWORD and EXO_KAFKA_SASL_PASSWORD_FILE are both set", "EXO_KAFKA_SASL_PASSWORD_FILE: open"}},
		{name: "several problems", vars: map[string]string{"EXO_KAFKA_TLS_CA_FILE": filepath.Join(dir, "missing.pem"), "EXO_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256"},
			want: []string{"kafka: TLS CA file: open", "SASL SCRAM-SHA-256 needs a username (EXO_KAFKA_SASL_USERNAME) and a password"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := envOf(tc.vars)
			opts := env.KafkaOpts(nil)
			err := env.Err()
			if err == nil {
				t.Fatalf("%d options and no error, want a configuration error saying %q", len(opts), tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestKafkaSecurityWarnings(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		vars map[string]string
		want string
	}{
		{map[string]string{"EXO_KAFKA_TLS_INSECURE_SKIP_VERIFY": "on"}, "level=WARN msg=\"Kafka TLS certificate verification is OFF"},
		{map[string]string{"EXO_KAFKA_SASL_MECHANISM": "PLAIN", "EXO_KAFKA_SASL_USERNAME": "u", "EXO_KAFKA_SASL_PASSWORD": "pw-never-logged"},
			"level=WARN msg=\"Kafka SASL PLAIN without TLS"},
	} {
		var buf bytes.Buffer
		env := envOf(tc.vars)
		env.KafkaOpts(slog.New(slog.NewTextHandler(&buf, nil)))
		if err := env.Err(); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(buf.String(), tc.want) {
			t.Errorf("%v: log %q, want %q", tc.vars, buf.String(), tc.want)
		}
		if strings.Contains(buf.String(), "pw-never-logged") {
			t.Errorf("the log shows the password: %s", buf.String())
		}
	}
}

// Only commands that use Kafka read its settings: a migration job given the
// components' environment without the Kafka secrets mounted still runs.
func TestLoadReadsKafkaSecurityOnlyWhenNeeded(t *testing.T) {
	t.Parallel()
	vars := map[string]string{"DATABASE_URL": "postgres://x", "KAFKA_BROKERS": "k:9093",
		"EXO_KAFKA_TLS_CA_FILE": "/nowhere/ca.pem", "EXO_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "EXO_KAFKA_SASL_USERNAME": "u",
		"EXO_KAFKA_SASL_PASSWORD_FILE": "/nowhere/password"}
	env := envOf(vars)
	if c := config.Load(env, config.Needs{Database: true}); env.Err() != nil || c.KafkaOpts != nil {
		t.Errorf("Load without Kafka: %v, %d Kafka options; want neither", env.Err(), len(c.KafkaOpts))
	}
	env = envOf(vars)
	config.Load(env, config.Needs{Kafka: true})
	err := env.Err()
	if err == nil || !strings.HasPrefix(err.Error(), "configuration: ") || !strings.Contains(err.Error(), "/nowhere/ca.pem") || !strings.Contains(err.Error(), "EXO_KAFKA_SASL_PASSWORD_FILE") {
		t.Errorf("Load with Kafka: %v, want a configuration error naming the CA file and the password file", err)
	}
}
