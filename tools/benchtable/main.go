// Command benchtable runs the benchmarks of issue #13 (`make bench`) and
// prints one Markdown table: each figure, the comparator measured in the
// same run (a raw pipe, a plain HTTP loop, the same SQL without the API),
// their ratio, and the target where there is one. A figure whose
// benchmark is missing, skipped or failed shows as "not measured"; the
// table is printed all the same.
//
// Which benchmarks run, with which -benchtime and -count, and which metric
// each row reads are declared once, in rows.go. Besides printing the table
// it writes it to <dir>/table.md and the complete `go test` output of every
// run (benchstat reads it) to <dir>/raw.txt.
//
//	eval "$(deploy/local/services.sh env)"
//	go run ./tools/benchtable                            # everything, about 3-6 minutes
//	go run ./tools/benchtable -only 'Engine|CreateRule'  # some runs only
//	go run ./tools/benchtable -from bin/bench/raw.txt    # the table of a recorded output
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
}

// errRunsFailed says that at least one `go test` run failed; the table is
// still written.
var errRunsFailed = errors.New("some benchmark runs failed (see the raw output)")

// run parses args, runs the benchmarks (or reads -from), and writes the
// table to stdout and to -dir; progress and go test's output go to stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("benchtable", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "bin/bench", "directory for table.md and raw.txt")
	from := fs.String("from", "", "read recorded `go test -bench` output from this file instead of running")
	only := fs.String("only", "", "run only the benchmarks whose name matches this regexp")
	goCmd := fs.String("go", "go", "the go command")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var (
		raw    []byte
		header string
		runErr error
	)
	if *from != "" {
		b, err := os.ReadFile(*from)
		if err != nil {
			return fmt.Errorf("read recorded output: %w", err)
		}
		raw, header = b, "From "+*from+".\n"
	} else {
		sel, err := selectRuns(*only)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(*dir, 0o750); err != nil {
			return fmt.Errorf("make %s: %w", *dir, err)
		}
		raw, header, runErr = runAll(ctx, *goCmd, sel, stderr)
		if err := os.WriteFile(filepath.Join(*dir, "raw.txt"), raw, 0o600); err != nil {
			return fmt.Errorf("write raw output: %w", err)
		}
	}
	rs, err := parse(bytes.NewReader(raw))
	if err != nil {
		return fmt.Errorf("parse benchmark output: %w", err)
	}
	var table bytes.Buffer
	table.WriteString(header + "\n")
	if err := writeTable(&table, lines(rows, rs)); err != nil {
		return err
	}
	table.WriteString("\nValues are medians over the -count runs; ratios are the benchmark's own where it reports one " +
		"(computed over the same ops), else value / comparator value. A target is the issue's goal, not a measurement.\n")
	if _, err := stdout.Write(table.Bytes()); err != nil {
		return err
	}
	if *from == "" {
		if err := os.WriteFile(filepath.Join(*dir, "table.md"), table.Bytes(), 0o600); err != nil {
			return fmt.Errorf("write table: %w", err)
		}
		fmt.Fprintf(stderr, "benchtable: wrote %s and %s\n", filepath.Join(*dir, "table.md"), filepath.Join(*dir, "raw.txt"))
	}
	return runErr
}

// selectRuns returns the runs whose benchmark matches only ("" for all).
func selectRuns(only string) ([]benchRun, error) {
	if only == "" {
		return runs, nil
	}
	re, err := regexp.Compile(only)
	if err != nil {
		return nil, fmt.Errorf("-only: %w", err)
	}
	var out []benchRun
	for _, r := range runs {
		if re.MatchString(r.Bench) {
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("-only %q matches no benchmark of the table", only)
	}
	return out, nil
}

// args returns go test's arguments for r.
func (r benchRun) args() []string {
	a := []string{"test", "-run", "^$", "-bench", "^" + r.Bench + "$", "-benchtime", r.Benchtime,
		"-count", strconv.Itoa(r.Count), "-timeout", "20m"}
	if r.Benchmem {
		a = append(a, "-benchmem")
	}
	return append(a, r.Pkg)
}

// runAll runs each benchmark in turn and returns their output, each
// preceded by its command and the load average, and a header for the
// table (commit, time). A run that fails is reported and the others still
// run; the error then says so.
func runAll(ctx context.Context, goCmd string, sel []benchRun, progress io.Writer) (raw []byte, header string, err error) {
	began, load := time.Now().UTC(), loadavg()
	var out bytes.Buffer
	failed := 0
	for i, r := range sel {
		if ctx.Err() != nil {
			return out.Bytes(), "", ctx.Err()
		}
		args := r.args()
		fmt.Fprintf(&out, "# %s %s\n# load average before: %s\n", goCmd, strings.Join(args, " "), loadavg())
		fmt.Fprintf(progress, "benchtable: [%d/%d] %s %s\n", i+1, len(sel), goCmd, strings.Join(args, " "))
		cmd := exec.CommandContext(ctx, goCmd, args...) // #nosec G204 -- the arguments are this program's own table
		cmd.Stdout = io.MultiWriter(&out, progress)
		cmd.Stderr = cmd.Stdout
		t0 := time.Now()
		if err := cmd.Run(); err != nil {
			failed++
			fmt.Fprintf(&out, "# FAILED: %v\n", err)
		}
		fmt.Fprintf(&out, "# took %s; load average after: %s\n\n", time.Since(t0).Round(time.Second), loadavg())
	}
	header = fmt.Sprintf("Run on %s at %s (took %s), %s; load average %s at the start, %s at the end.\n", revision(ctx),
		began.Format(time.RFC3339), time.Since(began).Round(time.Second), goVersion(ctx, goCmd), load, loadavg())
	if failed > 0 {
		header += fmt.Sprintf("\n**%d of %d benchmark runs failed**: their figures are missing or partial (see raw.txt).\n", failed, len(sel))
		return out.Bytes(), header, fmt.Errorf("%w: %d of %d", errRunsFailed, failed, len(sel))
	}
	return out.Bytes(), header, nil
}

// loadavg is the first three fields of /proc/loadavg, or "unknown".
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

// revision is `git describe --always --dirty` of the working directory.
func revision(ctx context.Context) string {
	b, err := exec.CommandContext(ctx, "git", "describe", "--always", "--dirty").Output()
	if err != nil {
		return "an unknown revision"
	}
	return strings.TrimSpace(string(b))
}

// goVersion is `go env GOVERSION`.
func goVersion(ctx context.Context, goCmd string) string {
	b, err := exec.CommandContext(ctx, goCmd, "env", "GOVERSION").Output() // #nosec G204 -- the go command named by -go
	if err != nil {
		return "go (unknown version)"
	}
	return strings.TrimSpace(string(b))
}
