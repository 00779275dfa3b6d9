package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sample parses testdata/sample.txt, a recorded output of the runs.
func sample(t *testing.T) results {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "sample.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	rs, err := parse(f)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func TestParseReadsEveryResultLine(t *testing.T) {
	t.Parallel()
	rs := sample(t)
	count := map[string]int{}
	for _, r := range rs {
		count[r.Name]++
	}
	want := map[string]int{
		"BenchmarkEngineEvent":                                      3,
		"BenchmarkTrackedRunMemory/no_rules":                        1,
		"BenchmarkTrackedRunMemory/10_rules_per_tenant,_3_duration": 1,
		"BenchmarkProcessorThroughput":                              2, // one of them split by a log line
		"BenchmarkDispatcherThroughput/one_host":                    1,
		"BenchmarkDispatcherThroughput/host_per_endpoint":           1,
		"BenchmarkCreateRule/sequential":                            1,
		"BenchmarkCreateRule/parallel":                              1,
		"BenchmarkCreateRule/sql_sequential":                        1,
		"BenchmarkCreateRule/sql_parallel":                          1,
		"BenchmarkRulePropagation":                                  1,
	}
	if len(count) != len(want) {
		t.Errorf("parsed benchmarks %v, want %v", count, want)
	}
	for name, n := range want {
		if count[name] != n {
			t.Errorf("%s: %d result lines, want %d", name, count[name], n)
		}
	}
	// The split line keeps its figures.
	if v, n := rs.median("BenchmarkProcessorThroughput", "processor/pipe"); n != 2 || v != 0.35 {
		t.Errorf("processor/pipe median = %v over %d lines, want 0.35 over 2", v, n)
	}
	if v, _ := rs.median("BenchmarkEngineEvent", "ns/op"); v != 35810 {
		t.Errorf("engine ns/op median = %v, want 35810", v)
	}
	for _, r := range rs {
		if r.Name == "BenchmarkEngineEvent" && (r.N < 37641 || r.Metrics["allocs/op"] != 53 || len(r.Metrics) != 5) {
			t.Errorf("engine line = %+v, want N from the line, 5 metrics, 53 allocs/op", r)
		}
	}
}

func TestParseSkipsWhatIsNotAResult(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		"--- FAIL: BenchmarkX-2\n    x_test.go:10: deliveries: 3, want 4\n",
		"--- SKIP: BenchmarkX\n    needs a real Kafka broker\n",
		"BenchmarkX-2 starting the broker\nok  \tpkg\t1.2s\n",
		"goos: linux\nPASS\n",
	} {
		rs, err := parse(strings.NewReader(in))
		if err != nil || len(rs) != 0 {
			t.Errorf("parse(%q) = %+v, %v; want no results", in, rs, err)
		}
	}
}

// cells returns the rendered lines of the sample whose figure starts with prefix.
func cells(t *testing.T, prefix string) []line {
	t.Helper()
	var out []line
	for _, l := range lines(rows, sample(t)) {
		if strings.HasPrefix(l.Figure, prefix) {
			out = append(out, l)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no line of the table starts with %q", prefix)
	}
	return out
}

func TestTableRows(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		prefix string
		want   []line
	}{
		{
			name:   "the benchmark's own ratio over the same ops, not the ratio of medians",
			prefix: "processor events/s",
			want: []line{
				{Figure: "processor events/s (10,000 rules, 1,000 tenants)", Value: "33,000", Cmp: "raw transactional pipe, same events and records", CmpValue: "110,000", Ratio: "0.35×", Target: "≥ 0.5× the pipe (aim 0.7×): missed"},
				{Figure: "processor events/s (10,000 rules, 1,000 tenants)", Value: "33,000", Cmp: "plain read_committed read of the same topic", CmpValue: "2,500,000", Ratio: "0.014×", Target: "—"},
			},
		},
		{
			name:   "value over comparator when the benchmark reports no ratio; target on the ratio",
			prefix: "processor CPU",
			want:   []line{{Figure: "processor CPU µs/event", Value: "32.5", Cmp: "raw pipe's CPU µs/event", CmpValue: "35", Ratio: "0.93×", Target: "≤ 2× the pipe's: met"}},
		},
		{
			name:   "an issue target, no measured comparator",
			prefix: "engine allocs/event, dense",
			want:   []line{{Figure: "engine allocs/event, dense (1.8 deliveries/event)", Value: "53", Cmp: noComparator, CmpValue: "—", Ratio: "—", Target: "≤ 5: missed"}},
		},
		{
			name:   "one line per sub-benchmark, comparator from the same sub-benchmark",
			prefix: "dispatcher deliveries/s",
			want: []line{
				{Figure: "dispatcher deliveries/s, one_host", Value: "11,000", Cmp: "plain net/http loop, same sink, bodies and headers", CmpValue: "24,000", Ratio: "0.45×", Target: "≥ 0.7× the loop: missed"},
				{Figure: "dispatcher deliveries/s, host_per_endpoint", Value: "9,000", Cmp: "plain net/http loop, same sink, bodies and headers", CmpValue: "12,000", Ratio: "0.75×", Target: "≥ 0.7× the loop: met"},
				// The fixture's run predates the bare loop: its comparator is not measured.
				{Figure: "dispatcher deliveries/s, one_host", Value: "11,000", Cmp: "the loop with a Content-Type only (the earlier comparator)", CmpValue: notMeasured, Ratio: "—", Target: "—"},
				{Figure: "dispatcher deliveries/s, host_per_endpoint", Value: "9,000", Cmp: "the loop with a Content-Type only (the earlier comparator)", CmpValue: notMeasured, Ratio: "—", Target: "—"},
			},
		},
		{
			name:   "a metric the run did not report",
			prefix: "dispatcher CPU",
			want: []line{
				{Figure: "dispatcher CPU µs/delivery, one_host", Value: notMeasured, Cmp: "plain loop's CPU µs/delivery", CmpValue: notMeasured, Ratio: "—", Target: "—"},
				{Figure: "dispatcher CPU µs/delivery, host_per_endpoint", Value: notMeasured, Cmp: "plain loop's CPU µs/delivery", CmpValue: notMeasured, Ratio: "—", Target: "—"},
			},
		},
		{
			name:   "a benchmark that did not run",
			prefix: "live produce → POST p99",
			want:   []line{{Figure: "live produce → POST p99 ms", Value: notMeasured, Cmp: noComparator, CmpValue: "—", Ratio: "—", Target: "< 50 ms at 1,000 events/s"}},
		},
		{
			name:   "comparators from other sub-benchmarks",
			prefix: "control-plane create p99",
			want: []line{
				{Figure: "control-plane create p99 ms, 8 clients", Value: "548", Cmp: "1 client", CmpValue: "78.8", Ratio: "6.95×", Target: "—"},
				{Figure: "control-plane create p99 ms, 8 clients", Value: "548", Cmp: "the same SQL straight on the pool, 8 clients", CmpValue: "49.8", Ratio: "11×", Target: "—"},
			},
		},
		{
			name:   "a comparator from the same line",
			prefix: "rule propagation p99",
			want:   []line{{Figure: "rule propagation p99 ms", Value: "2.08", Cmp: "the API's own create p99 ms, same run", CmpValue: "83.6", Ratio: "0.025×", Target: "—"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := cells(t, tc.prefix)
			if len(got) != len(tc.want) {
				t.Fatalf("lines %+v, want %+v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("line %d:\n got %+v\nwant %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestEveryRowReadsABenchmarkThatRuns(t *testing.T) {
	t.Parallel()
	top := func(name string) string { return strings.SplitN(name, "/", 2)[0] }
	run := map[string]bool{}
	for _, r := range runs {
		if r.Count < 1 || r.Benchtime == "" || strings.Contains(r.Bench, "/") {
			t.Errorf("run %+v: want a top-level benchmark, a -benchtime and a -count", r)
		}
		run[r.Bench] = true
	}
	for _, r := range rows {
		if !run[top(r.Bench)] || (r.CmpBench != "" && !run[top(r.CmpBench)]) {
			t.Errorf("row %q reads %s %s, which no run runs", r.Figure, r.Bench, r.CmpBench)
		}
		if (r.Cmp == "" || r.Cmp == noComparator) != (r.CmpMetric == "") {
			t.Errorf("row %q: comparator %q with metric %q", r.Figure, r.Cmp, r.CmpMetric)
		}
	}
}

func TestNumber(t *testing.T) {
	t.Parallel()
	for v, want := range map[float64]string{
		2_500_000: "2,500,000", 35810: "35,810", 999.6: "1,000", 751.7: "752", 53: "53", 32.5: "32.5",
		1.817: "1.82", 0.2750: "0.275", 0: "0", -1234: "-1,234", 0.0004: "4.00e-04",
	} {
		if got := number(v); got != want {
			t.Errorf("number(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestRunFromARecordedOutput(t *testing.T) {
	t.Parallel()
	var out, errs bytes.Buffer
	if err := run(context.Background(), []string{"-from", filepath.Join("testdata", "sample.txt")}, &out, &errs); err != nil {
		t.Fatalf("run: %v (%s)", err, errs.String())
	}
	table := out.String()
	if !strings.Contains(table, "| figure | value | comparator (same run) | comparator value | ratio | target (issue #13) |") ||
		strings.Count(table, "\n|") != len(lines(rows, sample(t)))+2 {
		t.Errorf("table:\n%s", table)
	}
}
