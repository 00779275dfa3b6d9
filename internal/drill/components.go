package drill

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// component is one exo-alerts subprocess (controlplane, processor or
// dispatcher) the drill starts, kills and restarts. Like a supervisor
// (systemd's Restart=always, a Kubernetes pod) it starts a process that
// exited by itself again after restartDelay, and records the exit.
type component struct {
	name  string // e.g. processor-1
	bin   string
	args  []string
	env   []string
	log   string // log file
	ready func(ctx context.Context) error
	out   *slog.Logger
	base  context.Context // ends supervision

	op       sync.Mutex // one start or signal at a time
	mu       sync.Mutex
	cmd      *exec.Cmd
	done     chan struct{} // closed when the current process has exited
	stopping bool          // the drill itself is stopping or killing it
	crashes  []string      // exits the drill did not cause, since the last take
}

const restartDelay = 2 * time.Second

// start starts the process and waits until it is ready.
func (c *component) start(ctx context.Context) error {
	c.op.Lock()
	defer c.op.Unlock()
	return c.startLocked(ctx)
}

func (c *component) startLocked(ctx context.Context) error {
	f, err := os.OpenFile(c.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("drill: %s log: %w", c.name, err)
	}
	fmt.Fprintf(f, "\n==== drill: start %s at %s ====\n", c.name, time.Now().UTC().Format(time.RFC3339Nano))
	cmd := exec.Command(c.bin, c.args...) //nolint:gosec // the drill runs the binary it was told to
	cmd.Env = c.env
	cmd.Stdout, cmd.Stderr = f, f
	// Own process group: a Ctrl-C of the drill is the drill's to pass on.
	// Pdeathsig: a drill that is killed takes its components with it, so
	// none is left writing to the private services of the next drill.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("drill: start %s: %w", c.name, err)
	}
	done := make(chan struct{})
	c.mu.Lock()
	c.cmd, c.done, c.stopping = cmd, done, false
	c.mu.Unlock()
	go func() {
		err := cmd.Wait()
		f.Close()
		c.mu.Lock()
		crashed := !c.stopping
		if crashed {
			msg := fmt.Sprintf("%s exited by itself at %s: %v: %s (log %s)", c.name, time.Now().Format("15:04:05"), err,
				lastError(c.log), c.log)
			c.crashes = append(c.crashes, msg)
			c.out.Warn("component exited by itself; restarting it", "component", c.name, "err", err, "log", c.log,
				"after", restartDelay)
		}
		c.mu.Unlock()
		close(done)
		if crashed {
			go c.restart(cmd)
		}
	}()
	rctx, cancel := context.WithTimeout(ctx, 120*time.Second)
	defer cancel()
	go func() {
		select {
		case <-done:
			cancel()
		case <-rctx.Done():
		}
	}()
	if err := c.ready(rctx); err != nil {
		select {
		case <-done:
			return fmt.Errorf("drill: %s exited before it was ready (log %s)", c.name, c.log)
		default:
		}
		return fmt.Errorf("drill: %s not ready: %w (log %s)", c.name, err, c.log)
	}
	return nil
}

// restart starts the component again after its process exited by itself,
// unless the drill started or stopped it meanwhile.
func (c *component) restart(crashed *exec.Cmd) {
	if sleep(c.base, restartDelay) != nil {
		return
	}
	c.op.Lock()
	defer c.op.Unlock()
	c.mu.Lock()
	current, stopping := c.cmd, c.stopping
	c.mu.Unlock()
	if current != crashed || stopping || c.base.Err() != nil {
		return
	}
	if err := c.startLocked(c.base); err != nil {
		c.out.Warn("restart failed", "component", c.name, "err", err)
	}
}

// running says whether the current process is alive.
func (c *component) running() bool {
	c.mu.Lock()
	done := c.done
	c.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// signal sends sig and waits up to wait for the exit; SIGKILL after that.
// It returns how long the process took to exit.
func (c *component) signal(sig syscall.Signal, wait time.Duration) (time.Duration, error) {
	c.op.Lock()
	defer c.op.Unlock()
	c.mu.Lock()
	cmd, done := c.cmd, c.done
	c.stopping = true
	c.mu.Unlock()
	if cmd == nil || done == nil {
		return 0, nil
	}
	t0 := time.Now()
	select {
	case <-done:
		return 0, nil
	default:
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
		return time.Since(t0), nil
	case <-time.After(wait):
	}
	_ = cmd.Process.Kill()
	<-done
	return time.Since(t0), fmt.Errorf("drill: %s did not exit within %s of %s; killed", c.name, wait, sig)
}

// takeCrashes returns and forgets the exits the drill did not cause.
func (c *component) takeCrashes() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.crashes
	c.crashes = nil
	return out
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("drill: free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// poll calls f every 200 ms until it returns nil or ctx ends (then the
// last error).
func poll(ctx context.Context, f func() error) error {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %w)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// httpGet fetches url and returns its body when the status is 200.
func httpGet(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return body, nil
}

var errNotYet = errors.New("not yet")

func logPath(dir, name string) string { return filepath.Join(dir, name+".log") }

// lastError returns the last line the binary printed on its way out
// ("exo-alerts: ..."), or "" if there is none.
func lastError(path string) string {
	b, err := os.ReadFile(path) //nolint:gosec // a log file the drill itself wrote
	if err != nil {
		return ""
	}
	if len(b) > 64<<10 {
		b = b[len(b)-64<<10:]
	}
	last := ""
	for line := range strings.Lines(string(b)) {
		if strings.HasPrefix(line, "exo-alerts:") {
			last = strings.TrimSpace(line)
		}
	}
	return last
}
