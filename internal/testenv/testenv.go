package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"

	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/migrations"
)

// CI reports whether the tests run in CI, where a missing service fails.
func CI() bool { return os.Getenv("CI") == "true" }

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

var nonWord = regexp.MustCompile(`[^a-z0-9]+`)

func slug(t testing.TB, max int) string {
	s := strings.Trim(nonWord.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	if len(s) > max {
		s = s[len(s)-max:]
	}
	return s
}

// Log returns a logger that writes to the test log.
func Log(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlogWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tlogWriter struct{ t testing.TB }

func (w tlogWriter) Write(p []byte) (int, error) {
	defer func() { _ = recover() }() // a log line after the test ended is dropped
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// --- Postgres -------------------------------------------------------------

var (
	pgOnce     sync.Once
	pgAdminURL string
	pgTemplate string
	pgErr      error
)

// adminURL finds the Postgres server: DATABASE_URL, or a container.
func adminURL() (string, error) {
	if u := os.Getenv("DATABASE_URL"); u != "" {
		return u, nil
	}
	if dockerAvailable() {
		return containerPostgres()
	}
	return "", fmt.Errorf("no PostgreSQL for tests: set DATABASE_URL (make test starts one with deploy/local/postgres.sh) or run a Docker engine")
}

func withDB(raw, db string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	u.Path = "/" + db
	return u.String()
}

// setupTemplate migrates a template database named after the migrations, once per server.
func setupTemplate(ctx context.Context) error {
	all, err := migrations.All()
	if err != nil {
		return err
	}
	h := fmt.Sprintf("%d", len(all))
	for _, m := range all {
		h += m.Up
	}
	pgTemplate = fmt.Sprintf("exo_tmpl_%x", fnv(h))
	admin, err := pgx.Connect(ctx, pgAdminURL)
	if err != nil {
		return fmt.Errorf("testenv: connect to %s: %w", redact(pgAdminURL), err)
	}
	defer func() { _ = admin.Close(ctx) }()
	if _, err := admin.Exec(ctx, `SELECT pg_advisory_lock(4242)`); err != nil {
		return fmt.Errorf("testenv: lock: %w", err)
	}
	defer func() { _, _ = admin.Exec(ctx, `SELECT pg_advisory_unlock(4242)`) }()
	var exists bool
	if err := admin.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, pgTemplate).Scan(&exists); err != nil {
		return fmt.Errorf("testenv: look for template: %w", err)
	}
	if exists {
		return nil
	}
	building := pgTemplate + "_build_" + randHex(3)
	if _, err := admin.Exec(ctx, `CREATE DATABASE `+building+` TEMPLATE template0`); err != nil {
		return fmt.Errorf("testenv: create template: %w", err)
	}
	pool, err := pgxpool.New(ctx, withDB(pgAdminURL, building))
	if err != nil {
		return fmt.Errorf("testenv: connect template: %w", err)
	}
	_, err = migrations.Up(ctx, pool)
	pool.Close()
	if err != nil {
		return fmt.Errorf("testenv: migrate template: %w", err)
	}
	if _, err := admin.Exec(ctx, `ALTER DATABASE `+building+` RENAME TO `+pgTemplate); err != nil {
		return fmt.Errorf("testenv: rename template: %w", err)
	}
	return nil
}

func fnv(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "[database url]"
	}
	return u.Redacted()
}

// AdminURL returns the superuser URL of the test Postgres server.
func AdminURL(t testing.TB) string {
	t.Helper()
	pgOnce.Do(func() {
		if pgAdminURL, pgErr = adminURL(); pgErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		pgErr = setupTemplate(ctx)
	})
	if pgErr != nil {
		t.Fatalf("testenv: Postgres unavailable: %v", pgErr)
	}
	return pgAdminURL
}

// DatabaseURL creates a fresh database for the test, cloned from the
// migrated template (or empty, when migrated is false), dropped at cleanup.
func DatabaseURL(t testing.TB, migrated bool) string {
	t.Helper()
	admin := AdminURL(t)
	name := "exo_t_" + strings.ReplaceAll(slug(t, 30), "-", "_") + "_" + randHex(4)
	tmpl := pgTemplate
	if !migrated {
		tmpl = "template0"
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("testenv: connect: %v", err)
	}
	defer func() { _ = conn.Close(ctx) }()
	// Clones of one template are serialised: Postgres refuses to copy a
	// template that another CREATE DATABASE is reading.
	var lastErr error
	for i := 0; i < 50; i++ {
		if _, lastErr = conn.Exec(ctx, `SELECT pg_advisory_lock(4243)`); lastErr == nil {
			_, lastErr = conn.Exec(ctx, `CREATE DATABASE `+name+` TEMPLATE `+tmpl)
			_, _ = conn.Exec(ctx, `SELECT pg_advisory_unlock(4243)`)
		}
		if lastErr == nil || !strings.Contains(lastErr.Error(), "being accessed by other users") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if lastErr != nil {
		t.Fatalf("testenv: create database: %v", lastErr)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), admin)
		if err != nil {
			return
		}
		defer func() { _ = c.Close(context.Background()) }()
		_, _ = c.Exec(context.Background(), `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`)
	})
	return withDB(admin, name)
}

// Pool returns a pool on a fresh migrated database for the test.
func Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), DatabaseURL(t, true))
	if err != nil {
		t.Fatalf("testenv: pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// --- Kafka ----------------------------------------------------------------

var (
	kOnce    sync.Once
	kBrokers []string
	kErr     error
	kKind    string
	kFake    *kfake.Cluster
)

// Shutdown stops what the package started for the whole process (the kfake
// fallback broker), so TestMain can check for leaked goroutines after it.
func Shutdown() {
	if kFake != nil {
		kFake.Close()
	}
}

// Brokers returns the test Kafka brokers: KAFKA_BROKERS, a container, or an
// in-process kfake cluster (never under CI=true: CI proves the real broker).
func Brokers(t testing.TB) []string {
	t.Helper()
	kOnce.Do(func() {
		if b := os.Getenv("KAFKA_BROKERS"); b != "" {
			kBrokers, kKind = kafka.SplitBrokers(b), "env"
			return
		}
		if dockerAvailable() {
			kBrokers, kErr = containerKafka()
			kKind = "container"
			return
		}
		if CI() {
			kErr = fmt.Errorf("KAFKA_BROKERS is not set and no Docker engine is reachable; CI must run against a real broker (make test starts one)")
			return
		}
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(3))
		if err != nil {
			kErr = err
			return
		}
		kBrokers, kKind, kFake = c.ListenAddrs(), "kfake", c
	})
	if kErr != nil {
		t.Fatalf("testenv: Kafka unavailable: %v", kErr)
	}
	return kBrokers
}

// RealKafka reports whether the brokers are a real Kafka (not kfake).
func RealKafka(t testing.TB) bool {
	Brokers(t)
	return kKind != "kfake"
}

// Topics returns topic names unique to the test.
// Every topic under the prefix is deleted when the test ends, so repeated
// runs against one broker do not pile up partitions.
func Topics(t testing.TB) kafka.Topics {
	topics := kafka.NewTopics("t." + slug(t, 40) + "." + randHex(3) + ".")
	brokers := Brokers(t)
	t.Cleanup(func() { deleteTopics(brokers, topics.Prefix) })
	return topics
}

// deleteTopics deletes every topic whose name starts with prefix (best effort).
func deleteTopics(brokers []string, prefix string) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	adm := kadm.NewClient(cl)
	listed, err := adm.ListTopics(ctx)
	if err != nil {
		return
	}
	var names []string
	for _, name := range listed.Names() {
		if strings.HasPrefix(name, prefix) {
			names = append(names, name)
		}
	}
	if len(names) > 0 {
		_, _ = adm.DeleteTopics(ctx, names...)
	}
}

// Main runs a package's tests, stops the process-wide fallback services and
// then fails the run if goroutines leaked. Use it as the body of TestMain in
// packages that start goroutines.
func Main(m *testing.M) {
	code := m.Run()
	Shutdown()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
