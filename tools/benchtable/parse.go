package main

import (
	"bufio"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// result is one benchmark result line: the benchmark's full name without the
// GOMAXPROCS suffix ("BenchmarkDispatcherThroughput/one_host"), its
// iteration count, and each reported metric by unit ("ns/op", "p99_ms").
type result struct {
	Name    string
	N       int64
	Metrics map[string]float64
}

// results are the parsed results in the order they were read.
type results []result

// procsSuffix is the "-<GOMAXPROCS>" the testing package appends to a
// benchmark's name when GOMAXPROCS is not 1.
var procsSuffix = regexp.MustCompile(`-\d+$`)

// parse reads `go test -bench` output and returns its result lines. Any
// other line (package headers, logs, PASS, ok) is skipped. A benchmark that
// writes to the output while it runs splits its result line: the name is
// printed first, what it wrote follows on the same line and the next, and
// the figures come last, on a line of their own; parse joins the name and
// the figures.
func parse(r io.Reader) (results, error) {
	var out results
	pending := "" // a name printed without figures
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		name := pending
		switch {
		case len(fields) == 0:
			continue
		case strings.HasPrefix(line, "Benchmark"):
			// The name alone, or followed by what the benchmark wrote
			// while it ran, leaves the figures for a later line.
			name, fields, pending = fields[0], fields[1:], fields[0]
		case pending == "":
			continue
		}
		if res, ok := parseFigures(name, fields); ok {
			out = append(out, res)
			pending = ""
		}
	}
	return out, sc.Err()
}

// parseFigures reads "N value unit value unit ..." for name; ok is false
// when fields are not that shape (e.g. a benchmark's own log line that
// starts with "Benchmark").
func parseFigures(name string, fields []string) (result, bool) {
	if len(fields) < 3 || len(fields)%2 != 1 {
		return result{}, false
	}
	n, err := strconv.ParseInt(fields[0], 10, 64)
	if err != nil {
		return result{}, false
	}
	res := result{Name: procsSuffix.ReplaceAllString(name, ""), N: n, Metrics: map[string]float64{}}
	for i := 1; i+1 < len(fields); i += 2 {
		v, err := strconv.ParseFloat(fields[i], 64)
		if err != nil {
			return result{}, false
		}
		res.Metrics[fields[i+1]] = v
	}
	return res, true
}

// names returns the distinct benchmark names that pattern covers, in the
// order first seen: pattern itself and every sub-benchmark under it
// ("BenchmarkCreateRule" covers "BenchmarkCreateRule/parallel").
func (rs results) names(pattern string) []string {
	var out []string
	for _, r := range rs {
		if (r.Name == pattern || strings.HasPrefix(r.Name, pattern+"/")) && !slices.Contains(out, r.Name) {
			out = append(out, r.Name)
		}
	}
	return out
}

// median returns the median of unit over every result line of the
// benchmark name (several with -count), and how many lines reported it.
func (rs results) median(name, unit string) (float64, int) {
	var vs []float64
	for _, r := range rs {
		if v, ok := r.Metrics[unit]; ok && r.Name == name {
			vs = append(vs, v)
		}
	}
	if len(vs) == 0 {
		return 0, 0
	}
	slices.Sort(vs)
	m := len(vs) / 2
	if len(vs)%2 == 1 {
		return vs[m], len(vs)
	}
	return (vs[m-1] + vs[m]) / 2, len(vs)
}
