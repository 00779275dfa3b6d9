package main

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// notMeasured stands for a figure no result line reported: the benchmark
// does not exist (yet), was skipped, or its run failed.
const notMeasured = "not measured"

// line is one rendered row of the table.
type line struct {
	Figure, Value, Cmp, CmpValue, Ratio, Target string
}

// lines expands rows over the results: one line per (sub-)benchmark a row's
// Bench covers, or one "not measured" line when it covers none.
func lines(rows []row, rs results) []line {
	var out []line
	for _, r := range rows {
		names := rs.names(r.Bench)
		if len(names) == 0 {
			out = append(out, render(r, "", rs))
			continue
		}
		for _, name := range names {
			out = append(out, render(r, name, rs))
		}
	}
	return out
}

// render makes the line of row r for the benchmark name ("" when nothing
// was measured).
func render(r row, name string, rs results) line {
	sub := strings.TrimPrefix(strings.TrimPrefix(name, r.Bench), "/")
	fig := strings.ReplaceAll(r.Figure, "{sub}", sub)
	if sub == "" { // no sub-benchmark: drop the separator left before {sub}
		fig = strings.TrimSuffix(strings.TrimSpace(strings.ReplaceAll(r.Figure, "{sub}", "")), ",")
	}
	l := line{Figure: fig, Value: notMeasured, Cmp: r.Cmp, Ratio: "—"}
	if l.Cmp == "" {
		l.Cmp = "—"
	}
	value, n := rs.median(name, r.Metric)
	if name != "" && n > 0 {
		l.Value = number(value)
	}
	var ratio float64
	haveRatio := false
	if r.CmpMetric == "" {
		l.CmpValue = "—"
	} else {
		cmpName := r.CmpBench
		if cmpName == "" {
			cmpName = name
		} else if sub != "" {
			cmpName += "/" + sub
		}
		cv, cn := rs.median(cmpName, r.CmpMetric)
		l.CmpValue = notMeasured
		if cmpName != "" && cn > 0 {
			l.CmpValue = number(cv)
		}
		if rm, rn := rs.median(name, r.RatioMetric); r.RatioMetric != "" && name != "" && rn > 0 {
			ratio, haveRatio = rm, true
		} else if n > 0 && cn > 0 && cv != 0 {
			ratio, haveRatio = value/cv, true
		}
	}
	if haveRatio {
		l.Ratio = ratioText(ratio)
	}
	if t := r.Target; t != nil {
		l.Target = t.Text
		got, known := value, n > 0
		if t.OnRatio {
			got, known = ratio, haveRatio
		}
		if known {
			if met := (t.AtMost && got <= t.Limit) || (!t.AtMost && got >= t.Limit); met {
				l.Target += ": met"
			} else {
				l.Target += ": missed"
			}
		}
	} else {
		l.Target = "—"
	}
	return l
}

// number formats v for reading: thousands separated above 1,000, whole
// numbers (allocations) without decimals, three significant digits below 10.
func number(v float64) string {
	a := math.Abs(v)
	switch {
	case math.Round(a) >= 1000:
		s := strconv.FormatInt(int64(math.Round(a)), 10)
		var b strings.Builder
		if v < 0 {
			b.WriteByte('-')
		}
		for i, c := range s {
			if i > 0 && (len(s)-i)%3 == 0 {
				b.WriteByte(',')
			}
			b.WriteRune(c)
		}
		return b.String()
	case a >= 100 || (a >= 1 && v == math.Trunc(v)):
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a == 0:
		return "0"
	case a < 0.001:
		return strconv.FormatFloat(v, 'e', 2, 64)
	default:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
}

// ratioText formats a ratio with two significant digits (three from 1 to
// 10, where 1.05 and 1.1 differ).
func ratioText(r float64) string {
	switch a := math.Abs(r); {
	case a >= 10:
		return strconv.FormatFloat(r, 'f', 0, 64) + "×"
	case a >= 1:
		return strconv.FormatFloat(r, 'f', 2, 64) + "×"
	default:
		return strconv.FormatFloat(r, 'g', 2, 64) + "×"
	}
}

// writeTable writes ls as a Markdown table.
func writeTable(w io.Writer, ls []line) error {
	var b strings.Builder
	b.WriteString("| figure | value | comparator (same run) | comparator value | ratio | target (issue #13) |\n")
	b.WriteString("|---|--:|---|--:|--:|---|\n")
	esc := strings.NewReplacer("|", `\|`)
	for _, l := range ls {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n",
			esc.Replace(l.Figure), l.Value, esc.Replace(l.Cmp), l.CmpValue, l.Ratio, esc.Replace(l.Target))
	}
	_, err := io.WriteString(w, b.String())
	return err
}
