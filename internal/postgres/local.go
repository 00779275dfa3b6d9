package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"time"
)

// Local is a throwaway PostgreSQL cluster in a temporary directory.
type Local struct {
	dir  string
	bin  string
	port int
	cred *syscall.Credential
}

// FindBinDir returns the directory of the newest PostgreSQL server binaries.
func FindBinDir() (string, error) {
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		dir := string(bytes.TrimSpace(out))
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
			return dir, nil
		}
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	sort.Slice(matches, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(matches[i]))))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(matches[j]))))
		return vi > vj
	})
	if len(matches) == 0 {
		return "", errors.New("postgres: no PostgreSQL server binaries (initdb) found; install them or set DATABASE_URL")
	}
	return filepath.Dir(matches[0]), nil
}

// StartLocal initialises and starts a cluster listening on 127.0.0.1:port
// (0 picks a free port). As root it runs the server as the postgres user.
func StartLocal(ctx context.Context, port int) (*Local, error) {
	bin, err := FindBinDir()
	if err != nil {
		return nil, err
	}
	if port == 0 {
		if port, err = freePort(); err != nil {
			return nil, err
		}
	}
	dir, err := os.MkdirTemp("", "exo-alerts-pg-")
	if err != nil {
		return nil, fmt.Errorf("postgres: temp dir: %w", err)
	}
	l := &Local{dir: dir, bin: bin, port: port}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("postgres: running as root needs a postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		l.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)} //nolint:gosec // G115: ids from /etc/passwd fit in uint32
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, fmt.Errorf("postgres: chown %s: %w", dir, err)
		}
	}
	data := filepath.Join(dir, "data")
	if out, err := l.run(ctx, "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("postgres: initdb: %w\n%s", err, out)
	}
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -c port=%d -c unix_socket_directories=%s -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200", port, dir)
	if out, err := l.run(ctx, "pg_ctl", "-D", data, "-l", filepath.Join(dir, "server.log"), "-o", opts, "-w", "-t", "30", "start"); err != nil {
		logText, _ := os.ReadFile(filepath.Join(dir, "server.log")) //nolint:gosec // G304: our own temp dir
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("postgres: pg_ctl start: %w\n%s\n%s", err, out, logText)
	}
	return l, nil
}

// URL is the superuser connection URL of the cluster.
func (l *Local) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", l.port)
}

// Stop stops the cluster and removes its files.
func (l *Local) Stop() error {
	out, err := l.run(context.Background(), "pg_ctl", "-D", filepath.Join(l.dir, "data"), "-m", "fast", "-w", "stop")
	rmErr := os.RemoveAll(l.dir)
	if err != nil {
		return fmt.Errorf("postgres: pg_ctl stop: %w\n%s", err, out)
	}
	return rmErr
}

func (l *Local) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(l.bin, name), args...) //nolint:gosec // G204: PostgreSQL binaries we located, fixed arguments
	cmd.Dir = l.dir
	if l.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: l.cred}
	}
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.WaitDelay = 5 * time.Second
	return cmd.CombinedOutput()
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("postgres: pick a port: %w", err)
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
