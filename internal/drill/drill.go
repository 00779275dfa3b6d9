package drill

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/keyring"
	"github.com/exospherehost/exo-alerts/schemas"
)

// ErrFailed is returned when a scenario missed an alert, duplicated one in
// the processor, or a component exited by itself.
var ErrFailed = errors.New("drill: failed")

// Config configures a drill.
type Config struct {
	Root           string // repository root (deploy/local's scripts)
	Bin            string // the exo-alerts binary
	StateDir       string // private state: PostgreSQL, Kafka, logs
	PGPort         int    // the private PostgreSQL's port
	KafkaPort      int    // the private broker's port
	ControllerPort int    // the private broker's controller port

	Rate      int           // events per second
	Tenants   int           // tenants, each with one endpoint and one failed-run rule
	Outage    time.Duration // how long the broker and Postgres stay stopped
	Lead      time.Duration // steady stream before each fault
	Tail      time.Duration // steady stream after each fault
	Pause     time.Duration // how long a killed component stays dead
	Kills     int           // how many of the two processors (and dispatchers) are killed, one after the other
	Settle    time.Duration // how long to wait for a scenario's last alerts
	Scenarios []string      // names to run (default: all)
	// AllowCrashes passes a scenario in which a component exited by itself
	// (it is restarted, like a supervisor would, and still reported) as long
	// as no alert went missing and none was duplicated.
	AllowCrashes bool

	Out io.Writer    // the report
	Log *slog.Logger // progress
}

// Long returns the defaults of `make drill`: 60 s outages at 50 events/s.
func Long() Config {
	return Config{Rate: 50, Tenants: 4, Outage: 60 * time.Second, Lead: 10 * time.Second, Tail: 20 * time.Second,
		Pause: 5 * time.Second, Kills: 2, Settle: 180 * time.Second}
}

// Short returns the defaults of the short form run by deploy/local/test.sh.
func Short() Config {
	return Config{Rate: 20, Tenants: 3, Outage: 10 * time.Second, Lead: 3 * time.Second, Tail: 5 * time.Second,
		Pause: 2 * time.Second, Kills: 1, Settle: 90 * time.Second}
}

// ScenarioNames lists the scenarios in the order they run.
var ScenarioNames = []string{"kill-9-processors", "kill-9-dispatchers", "broker-stop", "postgres-stop", "rolling-sigterm"}

type drill struct {
	cfg             Config
	supervise       context.Context // ends when the drill stops restarting crashed components
	stopSupervising context.CancelFunc
	log             *slog.Logger
	svc             *services
	env             []string
	api             string
	check           *Checker
	prod            *producer
	comps           []*component // controlplane, processors, dispatchers
	tenants         []string
	rules           int
}

// Run runs the drill: it starts private services and the components, runs
// each scenario under a steady stream, prints a row per scenario to
// cfg.Out, stops everything and returns ErrFailed if any scenario failed.
func Run(ctx context.Context, cfg Config) (err error) {
	if cfg.Out == nil {
		cfg.Out = os.Stdout
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if len(cfg.Scenarios) == 0 {
		cfg.Scenarios = ScenarioNames
	}
	for _, s := range cfg.Scenarios {
		if !contains(ScenarioNames, s) {
			return fmt.Errorf("drill: unknown scenario %q (have %s)", s, strings.Join(ScenarioNames, ", "))
		}
	}
	if cfg.Rate < 1 || cfg.Tenants < 1 {
		return errors.New("drill: rate and tenants must be at least 1")
	}
	// The state directory must be traversable by others: run as root, the
	// scripts start PostgreSQL as its own OS user, whose data directory
	// lies below it (postgres.sh refuses a parent it cannot traverse).
	if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil { //nolint:gosec // see above: PostgreSQL's OS user traverses it
		return fmt.Errorf("drill: %w", err)
	}
	// One made by an earlier version (0750) gets the search bits only.
	if fi, err := os.Stat(cfg.StateDir); err != nil {
		return fmt.Errorf("drill: %w", err)
	} else if fi.Mode().Perm()&0o011 != 0o011 {
		if err := os.Chmod(cfg.StateDir, fi.Mode().Perm()|0o011); err != nil {
			return fmt.Errorf("drill: %w", err)
		}
	}
	logs := filepath.Join(cfg.StateDir, "logs")
	if err := os.MkdirAll(logs, 0o750); err != nil {
		return fmt.Errorf("drill: %w", err)
	}
	d := &drill{cfg: cfg, log: cfg.Log, check: NewChecker(), svc: &services{
		root: cfg.Root, stateDir: cfg.StateDir, pgPort: cfg.PGPort, kPort: cfg.KafkaPort, kCtlPort: cfg.ControllerPort,
		logFile: filepath.Join(logs, "services.log"),
	}}
	d.supervise, d.stopSupervising = context.WithCancel(ctx)
	defer func() {
		if terr := d.teardown(); terr != nil && err == nil {
			err = terr
		}
	}()
	if err := d.setup(ctx); err != nil {
		return err
	}
	var rows []Row
	d.printHeader()
	if row, err := d.scenario(ctx, "warmup", func(context.Context) error { return nil }); err != nil {
		return err
	} else {
		rows = append(rows, row)
	}
	for _, name := range cfg.Scenarios {
		row, err := d.scenario(ctx, name, d.fault(name))
		if err != nil {
			return err
		}
		rows = append(rows, row)
	}
	fmt.Fprintf(cfg.Out, "\nlogs: %s\n", logs)
	if u := d.check.Unknown(); u > 0 {
		fmt.Fprintf(cfg.Out, "the receiver got %d POSTs for runs the drill never produced\n", u)
	}
	failed := 0
	for _, r := range rows {
		printCrashes(cfg.Out, r)
		if !r.OK(d.cfg.AllowCrashes) {
			failed++
		}
	}
	if failed > 0 {
		fmt.Fprintf(cfg.Out, "FAIL: %d of %d scenarios\n", failed, len(rows))
		return fmt.Errorf("%w: %d of %d scenarios", ErrFailed, failed, len(rows))
	}
	fmt.Fprintf(cfg.Out, "PASS: %d scenarios\n", len(rows))
	return nil
}

func (d *drill) setup(ctx context.Context) error {
	d.log.Info("starting private PostgreSQL and Kafka", "state_dir", d.cfg.StateDir,
		"pg_port", d.cfg.PGPort, "kafka_port", d.cfg.KafkaPort)
	// Leftovers of an earlier drill are thrown away: every drill starts empty.
	_ = d.svc.run(ctx, "kafka.sh", "down", "--purge")
	_ = d.svc.run(ctx, "postgres.sh", "down", "--purge")
	var wg sync.WaitGroup
	var pgErr, kErr error
	wg.Go(func() { pgErr = d.svc.run(ctx, "postgres.sh", "up") })
	wg.Go(func() { kErr = d.svc.run(ctx, "kafka.sh", "up") })
	wg.Wait()
	if err := errors.Join(pgErr, kErr); err != nil {
		return err
	}
	d.env = append(os.Environ(),
		"DATABASE_URL="+d.svc.databaseURL(), "KAFKA_BROKERS="+d.svc.brokers(),
		"EXO_KEYRING="+keyring.Generate("drill"), "EXO_TOPIC_PREFIX="+prefix, "EXO_PARTITIONS=4",
		"EXO_SSRF_ALLOWLIST=127.0.0.1", "EXO_LOG_LEVEL=info")
	if out, err := d.cli(ctx, "migrate", "up"); err != nil {
		return fmt.Errorf("drill: migrate up: %w: %s", err, out)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("drill: receiver: %w", err)
	}
	recv := &http.Server{Handler: d.check, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = recv.Serve(ln) }()
	context.AfterFunc(ctx, func() { _ = recv.Close() })
	target := "http://" + ln.Addr().String()

	if err := d.startComponents(ctx); err != nil {
		return err
	}
	for i := range d.cfg.Tenants {
		tenant := fmt.Sprintf("drill-%d", i+1)
		if err := d.configureTenant(ctx, tenant, target+"/hook/"+tenant); err != nil {
			return err
		}
		d.tenants = append(d.tenants, tenant)
	}
	d.rules = len(d.tenants)
	for _, c := range d.comps {
		if strings.HasPrefix(c.name, "processor") {
			rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			err := c.ready(rctx)
			cancel()
			if err != nil {
				return fmt.Errorf("drill: %s did not load the rules: %w", c.name, err)
			}
		}
	}
	brokers := []string{d.svc.brokers()}
	topics := kafka.NewTopics(prefix)
	if err := readDeliveries(ctx, brokers, topics.Deliveries, d.check); err != nil {
		return err
	}
	d.prod, err = newProducer(brokers, topics.Events, d.tenants, d.check)
	return err
}

const prefix = "drill."

// cli runs the exo-alerts binary with args and returns its output.
func (d *drill) cli(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, d.cfg.Bin, args...) //nolint:gosec // the binary the operator named
	cmd.Env = d.env
	return cmd.CombinedOutput()
}

func (d *drill) startComponents(ctx context.Context) error {
	logs := filepath.Join(d.cfg.StateDir, "logs")
	port, err := freePort()
	if err != nil {
		return err
	}
	d.api = fmt.Sprintf("http://127.0.0.1:%d", port)
	d.comps = append(d.comps, &component{
		name: "controlplane", args: []string{"controlplane", "-addr", fmt.Sprintf("127.0.0.1:%d", port)},
		ready: func(ctx context.Context) error {
			return poll(ctx, func() error { _, err := httpGet(ctx, d.api+"/readyz"); return err })
		},
	})
	for i := 1; i <= 2; i++ {
		mport, err := freePort()
		if err != nil {
			return err
		}
		metrics := fmt.Sprintf("http://127.0.0.1:%d/metrics", mport)
		d.comps = append(d.comps, &component{
			name: fmt.Sprintf("processor-%d", i),
			args: []string{"processor", "-metrics-addr", fmt.Sprintf("127.0.0.1:%d", mport)},
			env:  []string{fmt.Sprintf("EXO_PROCESSOR_TRANSACTIONAL_ID=%sprocessor-%d", prefix, i)},
			ready: func(ctx context.Context) error {
				return poll(ctx, func() error { return d.rulesLoaded(ctx, metrics) })
			},
		})
	}
	for i := 1; i <= 2; i++ {
		mport, err := freePort()
		if err != nil {
			return err
		}
		health := fmt.Sprintf("http://127.0.0.1:%d/healthz", mport)
		d.comps = append(d.comps, &component{
			name: fmt.Sprintf("dispatcher-%d", i),
			args: []string{"dispatcher", "-metrics-addr", fmt.Sprintf("127.0.0.1:%d", mport)},
			ready: func(ctx context.Context) error {
				return poll(ctx, func() error { _, err := httpGet(ctx, health); return err })
			},
		})
	}
	for _, c := range d.comps {
		c.bin, c.log, c.out, c.base = d.cfg.Bin, logPath(logs, c.name), d.log, d.supervise
		c.env = append(append([]string{}, d.env...), c.env...)
		d.log.Info("starting", "component", c.name, "log", c.log)
		if err := c.start(ctx); err != nil {
			return err
		}
	}
	return nil
}

// rulesLoaded answers nil once the processor's exo_processor_rules_active
// gauge reaches the number of rules the drill created.
func (d *drill) rulesLoaded(ctx context.Context, metrics string) error {
	body, err := httpGet(ctx, metrics)
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "exo_processor_rules_active "); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return err
			}
			if int(n) >= d.rules {
				return nil
			}
			return fmt.Errorf("%w: %d of %d rules active", errNotYet, int(n), d.rules)
		}
	}
	return fmt.Errorf("%w: no exo_processor_rules_active yet", errNotYet)
}

// configureTenant mints an API key with the CLI and creates, through the
// API, a webhook endpoint at target and a rule on every failed run.
func (d *drill) configureTenant(ctx context.Context, tenant, target string) error {
	out, err := d.cli(ctx, "apikey", "create", "--tenant", tenant, "--name", "drill")
	if err != nil {
		return fmt.Errorf("drill: apikey create: %w: %s", err, out)
	}
	var key string
	for line := range strings.Lines(string(out)) {
		if v, ok := strings.CutPrefix(line, "key:"); ok {
			key = strings.TrimSpace(v)
		}
	}
	if key == "" {
		return fmt.Errorf("drill: apikey create printed no key: %s", out)
	}
	var wh struct {
		ID string `json:"id"`
	}
	if err := d.post(ctx, key, "/v1/webhooks", map[string]any{"name": "drill", "target_url": target}, &wh); err != nil {
		return err
	}
	return d.post(ctx, key, "/v1/alert-rules", map[string]any{
		"name": "every failed run", "event_type": schemas.TypeRunFailed, "endpoint_id": wh.ID,
	}, nil)
}

func (d *drill) post(ctx context.Context, key, path string, body, into any) error {
	raw, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.api+path, bytes.NewReader(raw))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("drill: POST %s: %w", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("drill: POST %s: %s: %s", path, resp.Status, b)
	}
	if into != nil {
		return json.Unmarshal(b, into)
	}
	return nil
}

func (d *drill) comp(name string) *component {
	for _, c := range d.comps {
		if c.name == name {
			return c
		}
	}
	panic("drill: no component " + name)
}

// fault returns the fault of scenario name.
func (d *drill) fault(name string) func(context.Context) error {
	killRestart := func(names ...string) func(context.Context) error {
		return func(ctx context.Context) error {
			for _, n := range names[:min(max(d.cfg.Kills, 1), len(names))] {
				c := d.comp(n)
				d.log.Info("kill -9", "component", n)
				if _, err := c.signal(syscall.SIGKILL, 10*time.Second); err != nil {
					return err
				}
				if err := sleep(ctx, d.cfg.Pause); err != nil {
					return err
				}
				d.log.Info("restarting", "component", n)
				if err := c.start(ctx); err != nil {
					return err
				}
				if err := sleep(ctx, d.cfg.Pause); err != nil {
					return err
				}
			}
			return nil
		}
	}
	stopStart := func(script string) func(context.Context) error {
		return func(ctx context.Context) error {
			d.log.Info("stopping", "service", script)
			t0 := time.Now()
			if err := d.svc.run(ctx, script, "down"); err != nil {
				return err
			}
			if err := sleep(ctx, d.cfg.Outage-time.Since(t0)); err != nil {
				return err
			}
			d.log.Info("starting", "service", script, "stopped_for", time.Since(t0).Round(time.Millisecond))
			if err := d.svc.run(ctx, script, "up"); err != nil {
				return err
			}
			d.log.Info("back", "service", script, "outage", time.Since(t0).Round(time.Millisecond))
			return nil
		}
	}
	switch name {
	case "kill-9-processors":
		return killRestart("processor-1", "processor-2")
	case "kill-9-dispatchers":
		return killRestart("dispatcher-1", "dispatcher-2")
	case "broker-stop":
		return stopStart("kafka.sh")
	case "postgres-stop":
		return stopStart("postgres.sh")
	case "rolling-sigterm":
		return func(ctx context.Context) error {
			for _, c := range d.comps {
				took, err := c.signal(syscall.SIGTERM, 60*time.Second)
				d.log.Info("SIGTERM", "component", c.name, "exited_after", took.Round(time.Millisecond))
				if err != nil {
					return err
				}
				if err := c.start(ctx); err != nil {
					return err
				}
			}
			return nil
		}
	}
	panic("drill: no scenario " + name)
}

// scenario streams events, runs fault in the middle of the stream, waits for
// the scenario's alerts to settle and prints its row.
func (d *drill) scenario(ctx context.Context, name string, fault func(context.Context) error) (Row, error) {
	d.log.Info("scenario", "name", name)
	pctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { d.prod.run(pctx, name, d.cfg.Rate) })
	err := sleep(ctx, d.cfg.Lead)
	if err == nil {
		err = fault(ctx)
	}
	if err == nil {
		err = sleep(ctx, d.cfg.Tail)
	}
	stop()
	wg.Wait()
	if err != nil {
		return Row{}, fmt.Errorf("drill: scenario %s: %w", name, err)
	}
	fctx, cancel := context.WithTimeout(ctx, d.cfg.Settle)
	defer cancel()
	if err := d.prod.flush(fctx); err != nil {
		return Row{}, fmt.Errorf("drill: scenario %s: events not acknowledged within %s: %w", name, d.cfg.Settle, err)
	}
	settled := poll(fctx, func() error {
		if d.check.Settled(name) {
			return nil
		}
		return errNotYet
	}) == nil
	if settled {
		// A duplicate or redelivery arrives, if at all, with or just after
		// the original: look a moment longer before counting.
		_ = sleep(ctx, 2*time.Second)
	}
	if ctx.Err() != nil {
		return Row{}, ctx.Err()
	}
	row := d.check.Tally(name)
	for _, c := range d.comps {
		row.Crashes = append(row.Crashes, c.takeCrashes()...)
	}
	d.printRow(row)
	// A component that died was started again (as its supervisor would):
	// the next scenario starts from a whole system.
	wctx, wcancel := context.WithTimeout(ctx, 2*time.Minute)
	defer wcancel()
	if err := poll(wctx, func() error {
		for _, c := range d.comps {
			if !c.running() {
				return fmt.Errorf("%s is not running", c.name)
			}
		}
		return nil
	}); err != nil {
		return row, fmt.Errorf("drill: after %s: %w", name, err)
	}
	return row, nil
}

func (d *drill) printHeader() {
	fmt.Fprintf(d.cfg.Out, "%-20s %8s %8s %7s %8s %11s %11s %11s %7s  %s\n", "SCENARIO", "EXPECTED", "RECEIVED",
		"MISSING", "PROC_DUP", "REDELIVERED", "LONGEST_GAP", "MAX_LATENCY", "CRASHES", "RESULT")
}

func (d *drill) printRow(r Row) {
	result := "ok"
	if !r.OK(d.cfg.AllowCrashes) {
		result = "FAIL"
	} else if len(r.Crashes) > 0 {
		result = "ok (crashes allowed)"
	}
	fmt.Fprintf(d.cfg.Out, "%-20s %8d %8d %7d %8d %11d %11s %11s %7d  %s\n", r.Scenario, r.Expected, r.Received,
		r.Missing, r.ProcessorDuplicates, r.Redelivered, r.LongestGap.Round(100*time.Millisecond),
		r.MaxLatency.Round(100*time.Millisecond), len(r.Crashes), result)
}

// teardown stops the components and the private services and deletes the
// services' data (the logs stay).
func (d *drill) teardown() error {
	d.stopSupervising()
	if d.prod != nil {
		d.prod.close()
	}
	var wg sync.WaitGroup
	for _, c := range d.comps {
		wg.Go(func() { _, _ = c.signal(syscall.SIGTERM, 30*time.Second) })
	}
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return errors.Join(d.svc.run(ctx, "kafka.sh", "down", "--purge"), d.svc.run(ctx, "postgres.sh", "down", "--purge"))
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// printCrashes prints the first exit of each component that exited by
// itself in r, and how many more times it did.
func printCrashes(w io.Writer, r Row) {
	var order []string
	first, count := map[string]string{}, map[string]int{}
	for _, c := range r.Crashes {
		name, _, _ := strings.Cut(c, " ")
		if count[name] == 0 {
			order = append(order, name)
			first[name] = c
		}
		count[name]++
	}
	for _, name := range order {
		more := ""
		if n := count[name] - 1; n > 0 {
			more = fmt.Sprintf(" (and %d more times after its restart)", n)
		}
		fmt.Fprintf(w, "%s: %s%s\n", r.Scenario, first[name], more)
	}
}
