package drill

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// services drives deploy/local/postgres.sh and kafka.sh on the drill's own
// state dir and ports, so stopping them never touches another instance.
type services struct {
	root     string // repository root
	stateDir string
	pgPort   int
	kPort    int
	kCtlPort int
	logFile  string
}

func (s *services) env() []string {
	return append(os.Environ(),
		"EXO_STATE_DIR="+s.stateDir,
		fmt.Sprintf("EXO_PG_PORT=%d", s.pgPort),
		fmt.Sprintf("EXO_KAFKA_PORT=%d", s.kPort),
		fmt.Sprintf("EXO_KAFKA_CONTROLLER_PORT=%d", s.kCtlPort),
	)
}

// run runs one of deploy/local's scripts with args, its output appended to
// the services log.
func (s *services) run(ctx context.Context, script string, args ...string) error {
	f, err := os.OpenFile(s.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("drill: services log: %w", err)
	}
	defer f.Close()
	cmd := exec.CommandContext(ctx, filepath.Join(s.root, "deploy", "local", script), args...) //nolint:gosec // the project's own service scripts
	cmd.Env = s.env()
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("drill: %s %s: %w (see %s)", script, strings.Join(args, " "), err, s.logFile)
	}
	return nil
}

func (s *services) databaseURL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.pgPort)
}

func (s *services) brokers() string { return fmt.Sprintf("127.0.0.1:%d", s.kPort) }
