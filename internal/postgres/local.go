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

// Local is a throwaway PostgreSQL cluster in a temporary directory. The
// server runs as a child of this process (not daemonised by pg_ctl) with a
// parent-death signal, so it cannot outlive a process that crashes.
type Local struct {
	dir    string
	bin    string
	port   int
	cred   *syscall.Credential
	cmd    *exec.Cmd
	exited chan struct{}
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
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("postgres: running as root needs a postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		l.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)} //nolint:gosec // G115: ids from /etc/passwd fit in uint32
		if err := os.Chown(dir, uid, gid); err != nil {
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("postgres: chown %s: %w", dir, err)
		}
	}
	data := filepath.Join(dir, "data")
	if out, err := l.run(ctx, "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("postgres: initdb: %w\n%s", err, out)
	}
	logPath := filepath.Join(dir, "server.log")
	logFile, err := os.Create(logPath) //nolint:gosec // G304: our own temp dir
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("postgres: log file: %w", err)
	}
	defer func() { _ = logFile.Close() }()
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", data, //nolint:gosec // G204: the located server binary, fixed arguments
		"-c", "listen_addresses=127.0.0.1", "-c", fmt.Sprintf("port=%d", port), "-c", "unix_socket_directories="+dir,
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=200")
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, logFile, logFile
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: l.cred, Pdeathsig: syscall.SIGQUIT}
	if err := cmd.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("postgres: start server: %w", err)
	}
	l.cmd, l.exited = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(l.exited) }()
	if err := l.waitReady(ctx, 30*time.Second); err != nil {
		logText, _ := os.ReadFile(logPath) //nolint:gosec // G304: our own temp dir
		_ = l.Stop()
		return nil, fmt.Errorf("postgres: %w\n%s", err, logText)
	}
	return l, nil
}

// waitReady waits until the server answers pg_isready.
func (l *Local) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if _, err := l.run(ctx, "pg_isready", "-q", "-h", "127.0.0.1", "-p", strconv.Itoa(l.port)); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("server not ready after %s", timeout)
		}
		select {
		case <-l.exited:
			return errors.New("server exited during start")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// URL is the superuser connection URL of the cluster.
func (l *Local) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", l.port)
}

// Stop stops the cluster (fast shutdown) and removes its files.
func (l *Local) Stop() error {
	var err error
	if l.cmd != nil && l.cmd.Process != nil {
		_ = l.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-l.exited:
		case <-time.After(15 * time.Second):
			_ = l.cmd.Process.Kill()
			<-l.exited
			err = errors.New("postgres: server did not stop within 15s; killed")
		}
	}
	if rmErr := os.RemoveAll(l.dir); err == nil {
		err = rmErr
	}
	return err
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
