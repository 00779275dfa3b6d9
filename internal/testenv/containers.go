package testenv

// Services from testcontainers-go, used when DATABASE_URL / KAFKA_BROKERS
// are unset and a Docker engine is reachable.
//
// Each container starts at most once per test process and is shared by all
// of its tests. Nothing here calls Terminate: these packages have no
// TestMain to call it from. Testcontainers' reaper (Ryuk) removes the
// containers once the test process exits and its connection to Ryuk drops
// (with TESTCONTAINERS_RYUK_DISABLED=true they outlive the process). Each
// test binary of `go test ./...` starts its own containers.

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/testcontainers/testcontainers-go"
	tcpostgres "github.com/testcontainers/testcontainers-go/modules/postgres"
	"github.com/testcontainers/testcontainers-go/wait"
)

const (
	postgresImage = "postgres:15-alpine"
	kafkaImage    = "apache/kafka:4.1.1"

	// startTimeout bounds one container start, image pull included.
	startTimeout = 5 * time.Minute
)

var (
	dockerOnce sync.Once
	dockerOK   bool
)

// dockerAvailable reports whether a Docker engine is reachable. It asks
// once per process, within 2 s, and is false when TESTCONTAINERS_DISABLED
// is true.
func dockerAvailable() bool {
	dockerOnce.Do(func() { dockerOK = pingDocker() })
	return dockerOK
}

func pingDocker() (ok bool) {
	if off, _ := strconv.ParseBool(os.Getenv("TESTCONTAINERS_DISABLED")); off {
		return false
	}
	// Testcontainers panics when it finds no Docker host at all.
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	// Finds the engine as testcontainers will (DOCKER_HOST,
	// ~/.testcontainers.properties, the default and rootless sockets).
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return false
	}
	defer func() { _ = cli.Close() }()
	_, err = cli.Ping(ctx)
	return err == nil
}

var (
	pgCtrOnce sync.Once
	pgCtrURL  string
	pgCtrErr  error
)

// containerPostgres starts a PostgreSQL 15 container (at most once per
// process) and returns a superuser URL for its "postgres" database, with
// sslmode=disable. Durability is off: it holds test data only.
func containerPostgres() (string, error) {
	pgCtrOnce.Do(func() { pgCtrURL, pgCtrErr = startPostgres() })
	return pgCtrURL, pgCtrErr
}

func startPostgres() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	ctr, err := tcpostgres.Run(ctx, postgresImage,
		tcpostgres.WithDatabase("postgres"),
		tcpostgres.WithUsername("postgres"),
		tcpostgres.WithPassword("postgres"),
		// The settings of deploy/local/postgres.sh.
		testcontainers.WithCmd("postgres",
			"-c", "fsync=off",
			"-c", "synchronous_commit=off",
			"-c", "full_page_writes=off",
			"-c", "max_connections=300"),
		tcpostgres.BasicWaitStrategies(),
	)
	if err != nil {
		_ = testcontainers.TerminateContainer(ctr)
		return "", fmt.Errorf("testenv: start %s container (go test -v shows its log): %w", postgresImage, err)
	}
	dsn, err := ctr.ConnectionString(ctx, "sslmode=disable")
	if err != nil {
		return "", fmt.Errorf("testenv: PostgreSQL container address: %w", err)
	}
	return dsn, nil
}

var (
	kCtrOnce    sync.Once
	kCtrBrokers []string
	kCtrErr     error
)

// Kafka listeners: PLAINTEXT (9092) is published to the host; BROKER
// (inter-broker, 9093) and CONTROLLER (9094) stay on the container's
// loopback. An unadvertised listener bound to 0.0.0.0 would be advertised
// as 0.0.0.0, which some Kafka versions reject.
const (
	kafkaPort      = "9092/tcp"
	kafkaStartFile = "/tmp/testenv_kafka_start.sh"
)

// kafkaEnv configures the broker: the image's run script turns each
// KAFKA_X_Y variable into the x.y property of server.properties.
var kafkaEnv = map[string]string{
	"CLUSTER_ID":                           "5L6g3nShT-eMCtK--X86sw", // the image's default
	"KAFKA_NODE_ID":                        "1",
	"KAFKA_PROCESS_ROLES":                  "broker,controller",
	"KAFKA_LISTENERS":                      "PLAINTEXT://0.0.0.0:9092,BROKER://127.0.0.1:9093,CONTROLLER://127.0.0.1:9094",
	"KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "PLAINTEXT:PLAINTEXT,BROKER:PLAINTEXT,CONTROLLER:PLAINTEXT",
	"KAFKA_INTER_BROKER_LISTENER_NAME":     "BROKER",
	"KAFKA_CONTROLLER_LISTENER_NAMES":      "CONTROLLER",
	"KAFKA_CONTROLLER_QUORUM_VOTERS":       "1@127.0.0.1:9094",

	// Replication factor 1 for the internal topics (transactions, offsets,
	// share groups), and the other settings of deploy/local/kafka.sh.
	"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR":                 "1",
	"KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS":                     "4",
	"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR":         "1",
	"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR":                    "1",
	"KAFKA_TRANSACTION_STATE_LOG_NUM_PARTITIONS":             "4",
	"KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": "1",
	"KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR":            "1",
	"KAFKA_NUM_PARTITIONS":                                   "3",
	"KAFKA_AUTO_CREATE_TOPICS_ENABLE":                        "false",
	"KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS":                 "0",
	"KAFKA_LOG_CLEANER_BACKOFF_MS":                           "1000",

	"KAFKA_TRANSACTION_ABORT_TIMED_OUT_TRANSACTION_CLEANUP_INTERVAL_MS": "10000",
}

// containerKafka starts a single-node Apache Kafka 4.x broker in KRaft mode
// (at most once per process) and returns its seed brokers. Internal topics
// have replication factor 1, so transactions work on the single node.
//
// Modules/kafka (v0.40.0) is not used: its start script needs the
// Confluent images. The advertised listener must carry the host port that
// Docker maps, known only once the container runs, so the container waits
// for a start script that a post-start hook writes with that port (the
// pattern of testcontainers' own Kafka modules); the script exports
// KAFKA_ADVERTISED_LISTENERS and runs the image's /etc/kafka/docker/run,
// which renders the KAFKA_* variables into server.properties.
func containerKafka() ([]string, error) {
	kCtrOnce.Do(func() { kCtrBrokers, kCtrErr = startKafka() })
	return kCtrBrokers, kCtrErr
}

func startKafka() ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	ctr, err := testcontainers.Run(ctx, kafkaImage,
		testcontainers.WithExposedPorts(kafkaPort),
		testcontainers.WithEnv(kafkaEnv),
		testcontainers.WithEntrypoint("sh"),
		testcontainers.WithCmd("-c",
			"while [ ! -f "+kafkaStartFile+" ]; do sleep 0.1; done; exec bash "+kafkaStartFile),
		testcontainers.WithLifecycleHooks(testcontainers.ContainerLifecycleHooks{
			// Post-start hooks run before the wait strategy below.
			PostStarts: []testcontainers.ContainerHook{writeKafkaStart},
		}),
		testcontainers.WithWaitStrategyAndDeadline(2*time.Minute,
			wait.ForLog("Kafka Server started"),
			wait.ForListeningPort(kafkaPort)),
	)
	if err != nil {
		_ = testcontainers.TerminateContainer(ctr)
		return nil, fmt.Errorf("testenv: start %s container (go test -v shows its log): %w", kafkaImage, err)
	}
	seed, err := ctr.PortEndpoint(ctx, kafkaPort, "")
	if err != nil {
		return nil, fmt.Errorf("testenv: Kafka container address: %w", err)
	}
	return []string{seed}, nil
}

// writeKafkaStart writes the start script the container waits for, with
// the host address that Docker mapped to the PLAINTEXT listener.
func writeKafkaStart(ctx context.Context, c testcontainers.Container) error {
	if err := wait.ForMappedPort(kafkaPort).WaitUntilReady(ctx, c); err != nil {
		return fmt.Errorf("wait for mapped port: %w", err)
	}
	seed, err := c.PortEndpoint(ctx, kafkaPort, "")
	if err != nil {
		return fmt.Errorf("port endpoint: %w", err)
	}
	script := "export KAFKA_ADVERTISED_LISTENERS=PLAINTEXT://" + seed + ",BROKER://127.0.0.1:9093\n" +
		"exec /etc/kafka/docker/run\n"
	if err := c.CopyToContainer(ctx, []byte(script), kafkaStartFile, 0o755); err != nil {
		return fmt.Errorf("copy start script: %w", err)
	}
	return nil
}
