package condition

import "testing"

// BenchmarkMatch is the cost of evaluating typical conditions, budget
// charging included.
func BenchmarkMatch(b *testing.B) {
	for _, c := range []struct{ name, src string }{
		{"compare", `labels.env == "prod" && run.attempt >= 2`},
		{"in list", `error.code in ["NODE_ERRORED", "TIMEOUT"]`},
		{"concat", `workflow.name + "-" + labels.env == "nightly-etl-prod"`},
		{"split predicate", `any(split(workflow.name, "-"), {# == "etl"})`},
	} {
		b.Run(c.name, func(b *testing.B) {
			p, err := Compile(c.src)
			if err != nil {
				b.Fatal(err)
			}
			env := NewEnv(event())
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.Match(env); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEvaluatorMatch is BenchmarkMatch with one evaluator reused for
// every evaluation, on an environment boxed once (per event, the engine
// pays the boxing once for all its rules); compare each case with
// BenchmarkMatch's in the same run.
func BenchmarkEvaluatorMatch(b *testing.B) {
	for _, c := range []struct{ name, src string }{
		{"compare", `labels.env == "prod" && run.attempt >= 2`},
		{"in list", `error.code in ["NODE_ERRORED", "TIMEOUT"]`},
		{"concat", `workflow.name + "-" + labels.env == "nightly-etl-prod"`},
		{"split predicate", `any(split(workflow.name, "-"), {# == "etl"})`},
	} {
		b.Run(c.name, func(b *testing.B) {
			p, err := Compile(c.src)
			if err != nil {
				b.Fatal(err)
			}
			ev := NewEvaluator()
			ev.ResetEvent(event())
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ev.Match(p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
