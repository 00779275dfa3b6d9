// Package config reads the environment into typed settings, collecting every
// problem so a bad configuration fails at start with one clear message.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/keyring"
)

// Env reads variables from a lookup function (os.LookupEnv by default).
// It reads only the variables declared in vars.go.
type Env struct {
	Lookup   func(string) (string, bool)
	problems []string
}

// get returns key's value without surrounding spaces; a blank value is
// unset.
func (e *Env) get(key string) (string, bool) {
	v, ok := e.lookup(key)
	return strings.TrimSpace(v), ok && strings.TrimSpace(v) != ""
}

// lookup returns key's value as it is. Every read goes through it, and
// key must be declared in vars.go (the documentation and each command's
// -h are generated from there): an undeclared name is a programming error,
// which TestEveryVariableIsDeclared finds before this panic could.
func (e *Env) lookup(key string) (string, bool) {
	if _, ok := byName[key]; !ok {
		panic("config: " + key + " is read but not declared in internal/config/vars.go")
	}
	if e.Lookup == nil {
		e.Lookup = os.LookupEnv
	}
	return e.Lookup(key)
}

// String returns key or def.
func (e *Env) String(key, def string) string {
	if v, ok := e.get(key); ok {
		return v
	}
	return def
}

// URL returns key or def; a value that is not an absolute http or https
// URL with a host is a problem, so a typo fails at start, not in clients.
func (e *Env) URL(key, def string) string {
	v, ok := e.get(key)
	if !ok {
		return def
	}
	if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		e.problems = append(e.problems, fmt.Sprintf("%s=%q is not an absolute http(s) URL", key, v))
	}
	return v
}

// Int returns key or def.
func (e *Env) Int(key string, def int) int {
	v, ok := e.get(key)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		e.problems = append(e.problems, fmt.Sprintf("%s=%q is not an integer", key, v))
	}
	return n
}

// Duration returns key or def.
func (e *Env) Duration(key string, def time.Duration) time.Duration {
	v, ok := e.get(key)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		e.problems = append(e.problems, fmt.Sprintf("%s=%q is not a duration (e.g. 10s)", key, v))
	}
	return d
}

// List returns the comma-separated values of key.
func (e *Env) List(key string) []string {
	v, _ := e.get(key)
	return kafka.SplitBrokers(v)
}

// Problem records a problem.
func (e *Env) Problem(format string, args ...any) {
	e.problems = append(e.problems, fmt.Sprintf(format, args...))
}

// Err returns every problem at once, or nil.
func (e *Env) Err() error {
	if len(e.problems) == 0 {
		return nil
	}
	return errors.New("configuration: " + strings.Join(e.problems, "; "))
}

// Common are the settings every component shares.
type Common struct {
	DatabaseURL string
	Brokers     []string
	Topics      kafka.Topics
	Partitions  int32
	Keyring     *keyring.Ring
	Allowlist   []string
	Log         *slog.Logger
	// KafkaOpts are the TLS and SASL options every Kafka client of the
	// process adds (EXO_KAFKA_TLS*, EXO_KAFKA_SASL_*); read only when the
	// command needs Kafka.
	KafkaOpts []kgo.Opt
}

// Needs says which settings a command requires.
type Needs struct {
	Database, Kafka, Keyring bool
}

// Load reads the common settings.
func Load(e *Env, needs Needs) Common {
	c := Common{
		DatabaseURL: e.String("DATABASE_URL", ""),
		Brokers:     e.List("KAFKA_BROKERS"),
		Topics:      kafka.NewTopics(e.String("EXO_TOPIC_PREFIX", kafka.DefaultPrefix)),
		Partitions:  int32(e.Int("EXO_PARTITIONS", 3)), //nolint:gosec // bounded below
		Allowlist:   e.List("EXO_SSRF_ALLOWLIST"),
	}
	if c.Partitions < 1 || c.Partitions > 1024 {
		e.Problem("EXO_PARTITIONS must be between 1 and 1024")
	}
	if needs.Database && c.DatabaseURL == "" {
		e.Problem("DATABASE_URL is not set")
	}
	if needs.Kafka && len(c.Brokers) == 0 {
		e.Problem("KAFKA_BROKERS is not set")
	}
	if spec, ok := e.get("EXO_KEYRING"); ok {
		ring, err := keyring.Parse(spec)
		if err != nil {
			e.Problem("EXO_KEYRING: %v", err)
		}
		c.Keyring = ring
	} else if needs.Keyring {
		e.Problem("EXO_KEYRING is not set (generate one with: exo-alerts keyring generate)")
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(e.String("EXO_LOG_LEVEL", "info"))); err != nil {
		e.Problem("EXO_LOG_LEVEL must be debug, info, warn or error")
	}
	c.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if needs.Kafka {
		c.KafkaOpts = e.KafkaOpts(c.Log)
	}
	return c
}
