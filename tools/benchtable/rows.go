package main

// This file is the one place that names benchmarks and metrics: rename a
// benchmark or a metric here and the table follows.

// benchRun is one `go test -bench` invocation.
type benchRun struct {
	Pkg       string // package pattern, e.g. "./processor/"
	Bench     string // top-level benchmark name; every sub-benchmark runs
	Benchtime string // -benchtime: "1x" for benchmarks whose one op is a whole workload
	Count     int    // -count; the table shows the median of the runs
	Benchmem  bool   // -benchmem (B/op and allocs/op)
}

// runs are the benchmarks `make bench` runs, in this order. Their
// -benchtime and -count keep the whole at about 3-6 minutes on the
// project's 2-core machine (2m9s at a load average of 13 with counts of 3,
// 1, 2, 2, 1, 1, 1 and 1000x, 100x), well under ten (docs/benchmarks.md,
// "Commands").
var runs = []benchRun{
	// The live latency runs first, on a settled machine: the target is
	// a steady 1,000 events/s, and right after the heavier benchmarks
	// (the control plane's 8,000 creates, the propagation runs) its
	// first run measured p99 55 ms, then 35 and 20 ms (docs/benchmarks.md,
	// run T10). Three runs of 10 s: one run's p99 moved between 36 and
	// 90 ms with the machine's minute (T4-T8); the table shows the
	// median, as for the other counts.
	{Pkg: "./e2e/", Bench: "BenchmarkLiveLatency", Benchtime: "1x", Count: 3},
	{Pkg: "./processor/engine/", Bench: "BenchmarkEngineMix", Benchtime: "1s", Count: 5, Benchmem: true},
	{Pkg: "./processor/engine/", Bench: "BenchmarkEngineEvent", Benchtime: "1s", Count: 5, Benchmem: true},
	{Pkg: "./schemas/", Bench: "BenchmarkDecodeWorkflowEvent", Benchtime: "1s", Count: 3, Benchmem: true},
	{Pkg: "./processor/engine/", Bench: "BenchmarkTrackedRunMemory", Benchtime: "1x", Count: 1},
	{Pkg: "./processor/", Bench: "BenchmarkProcessorThroughput", Benchtime: "1x", Count: 3},
	{Pkg: "./dispatcher/", Bench: "BenchmarkDispatcherThroughput", Benchtime: "1x", Count: 3},
	{Pkg: "./controlplane/", Bench: "BenchmarkCreateRule", Benchtime: "2000x", Count: 1},
	{Pkg: "./e2e/", Bench: "BenchmarkRulePropagation", Benchtime: "200x", Count: 1},
}

// target is a goal from issue #13. It is not measured: the table shows it
// beside the figure and says whether the figure meets it.
type target struct {
	Text    string  // as the issue states it, e.g. "≥ 0.5× the pipe"
	OnRatio bool    // the goal is on the ratio to the comparator, not on the value
	AtMost  bool    // met when at most Limit (else when at least Limit)
	Limit   float64 // in the unit of the value (or of the ratio)
}

// row is one line of the table. Bench covers the benchmark and each of its
// sub-benchmarks: a row is printed for every name found, with "{sub}" in
// Figure replaced by the sub-benchmark's name.
type row struct {
	Figure string // what is measured
	Bench  string // benchmark name, "Benchmark..."
	Metric string // unit as reported: "ns/op", "p99_ms"

	// Comparator measured in the same run. CmpBench "" is the same
	// (sub-)benchmark as the row's; Cmp "" means the row has no measured
	// comparator (Target alone).
	Cmp       string
	CmpBench  string
	CmpMetric string
	// RatioMetric, if set, is the ratio the benchmark computed itself over
	// the same op (e.g. processor/pipe); it is shown instead of
	// value/comparator-value, which would pair medians of different ops.
	RatioMetric string

	Target *target
}

// noComparator is what the comparator column says for rows measured
// against an issue target only.
const noComparator = "none measured: issue target only"

// rows are the table's lines, in order.
var rows = []row{
	// Processor on the real broker: 10,000 rules of 1,000 tenants, 50,000 events.
	{Figure: "processor events/s (10,000 rules, 1,000 tenants)", Bench: "BenchmarkProcessorThroughput", Metric: "processor_events/s",
		Cmp: "raw transactional pipe, same events and records", CmpMetric: "pipe_events/s", RatioMetric: "processor/pipe",
		Target: &target{Text: "≥ 0.5× the pipe (aim 0.7×)", OnRatio: true, Limit: 0.5}},
	{Figure: "processor events/s (10,000 rules, 1,000 tenants)", Bench: "BenchmarkProcessorThroughput", Metric: "processor_events/s",
		Cmp: "plain read_committed read of the same topic", CmpMetric: "raw_events/s", RatioMetric: "processor/raw"},
	{Figure: "processor CPU µs/event", Bench: "BenchmarkProcessorThroughput", Metric: "processor_cpu_us/event",
		Cmp: "raw pipe's CPU µs/event", CmpMetric: "pipe_cpu_us/event",
		Target: &target{Text: "≤ 2× the pipe's", OnRatio: true, AtMost: true, Limit: 2}},

	// Engine alone, no Kafka: one op is one event. The mix is the
	// processor benchmark's events and rules (0.85 deliveries/event); the
	// dense workload makes every run alert on duration (1.8/event).
	{Figure: "engine ns/event, the processor benchmark's mix", Bench: "BenchmarkEngineMix", Metric: "ns/op", Cmp: noComparator,
		Target: &target{Text: "≤ 2,000 ns", AtMost: true, Limit: 2000}},
	{Figure: "engine allocs/event, the processor benchmark's mix", Bench: "BenchmarkEngineMix", Metric: "allocs/op", Cmp: noComparator,
		Target: &target{Text: "≤ 5", AtMost: true, Limit: 5}},
	{Figure: "engine B/event, the processor benchmark's mix", Bench: "BenchmarkEngineMix", Metric: "B/op"},
	{Figure: "engine ns/event, dense (1.8 deliveries/event)", Bench: "BenchmarkEngineEvent", Metric: "ns/op", Cmp: noComparator,
		Target: &target{Text: "≤ 2,000 ns", AtMost: true, Limit: 2000}},
	{Figure: "engine allocs/event, dense (1.8 deliveries/event)", Bench: "BenchmarkEngineEvent", Metric: "allocs/op", Cmp: noComparator,
		Target: &target{Text: "≤ 5", AtMost: true, Limit: 5}},
	{Figure: "engine B/event, dense (1.8 deliveries/event)", Bench: "BenchmarkEngineEvent", Metric: "B/op"},

	// Decoding the 700-byte example event, against schema check + encoding/json in the same run.
	{Figure: "decode ns/event (the 700-byte example)", Bench: "BenchmarkDecodeWorkflowEvent/fast", Metric: "ns/op",
		Cmp: "JSON Schema check + encoding/json", CmpBench: "BenchmarkDecodeWorkflowEvent/schema+unmarshal", CmpMetric: "ns/op",
		Target: &target{Text: "≤ 3,000 ns", AtMost: true, Limit: 3000}},
	{Figure: "decode allocs/event (the 700-byte example)", Bench: "BenchmarkDecodeWorkflowEvent/fast", Metric: "allocs/op",
		Cmp: "JSON Schema check + encoding/json", CmpBench: "BenchmarkDecodeWorkflowEvent/schema+unmarshal", CmpMetric: "allocs/op"},

	// Dispatcher against a plain net/http loop on the same sink, per sub-benchmark (hosts).
	// Every rate is the steady phase as the sink saw it (first request to
	// last), measured the same way for each side; the whole op, start-up
	// included, is the "total" row.
	{Figure: "dispatcher deliveries/s, {sub}", Bench: "BenchmarkDispatcherThroughput", Metric: "dispatcher_deliveries/s",
		Cmp: "plain net/http loop, same sink, bodies and headers", CmpMetric: "plain_http/s", RatioMetric: "dispatcher/plain",
		Target: &target{Text: "≥ 0.7× the loop", OnRatio: true, Limit: 0.7}},
	{Figure: "dispatcher deliveries/s, {sub}", Bench: "BenchmarkDispatcherThroughput", Metric: "dispatcher_deliveries/s",
		Cmp: "the loop with a Content-Type only (the earlier comparator)", CmpMetric: "bare_http/s", RatioMetric: "dispatcher/bare"},
	{Figure: "dispatcher whole-run deliveries/s (start-up included), {sub}", Bench: "BenchmarkDispatcherThroughput",
		Metric: "dispatcher_total_deliveries/s", Cmp: "the plain loop's whole run", CmpMetric: "plain_total_http/s", RatioMetric: "total/plain"},
	{Figure: "dispatcher CPU µs/delivery, {sub}", Bench: "BenchmarkDispatcherThroughput", Metric: "dispatcher_cpu_us/delivery",
		Cmp: "plain loop's CPU µs/delivery", CmpMetric: "plain_cpu_us/delivery"},
	{Figure: "broker CPU µs/delivery during the dispatcher's phase, {sub}", Bench: "BenchmarkDispatcherThroughput",
		Metric: "dispatcher_broker_cpu_us/delivery", Cmp: "during the plain loop's phase", CmpMetric: "plain_broker_cpu_us/delivery"},
	{Figure: "loop's CPU per delivery over the dispatcher's, process + broker, {sub}", Bench: "BenchmarkDispatcherThroughput",
		Metric: "cpu_plain/dispatcher"},

	// End to end, produce → POST, at a steady rate.
	{Figure: "live produce → POST p50 ms{sub}", Bench: "BenchmarkLiveLatency", Metric: "p50_ms"},
	{Figure: "live produce → POST p95 ms{sub}", Bench: "BenchmarkLiveLatency", Metric: "p95_ms"},
	{Figure: "live produce → POST p99 ms{sub}", Bench: "BenchmarkLiveLatency", Metric: "p99_ms", Cmp: noComparator,
		Target: &target{Text: "< 50 ms at 1,000 events/s", AtMost: true, Limit: 50}},
	{Figure: "live events/s produced{sub}", Bench: "BenchmarkLiveLatency", Metric: "events/s", Cmp: noComparator,
		Target: &target{Text: "a steady 1,000 (≥ 950)", Limit: 950}},

	// Memory per running run held by the engine.
	{Figure: "heap B per tracked running run, {sub}", Bench: "BenchmarkTrackedRunMemory", Metric: "B/run", Cmp: noComparator,
		Target: &target{Text: "≤ 200 B", AtMost: true, Limit: 200}},

	// Rule propagation: the API answered → the processor applies the rule.
	{Figure: "rule propagation p50 ms", Bench: "BenchmarkRulePropagation", Metric: "p50_ms",
		Cmp: "the API's own create p50 ms, same run", CmpMetric: "create_p50_ms"},
	{Figure: "rule propagation p99 ms", Bench: "BenchmarkRulePropagation", Metric: "p99_ms",
		Cmp: "the API's own create p99 ms, same run", CmpMetric: "create_p99_ms"},
	{Figure: "rules already in force when the API answered (fraction)", Bench: "BenchmarkRulePropagation", Metric: "in_force_at_answer"},

	// Control plane creates through the HTTP API.
	{Figure: "control-plane creates/s, 8 clients", Bench: "BenchmarkCreateRule/parallel", Metric: "rules/s",
		Cmp: "1 client", CmpBench: "BenchmarkCreateRule/sequential", CmpMetric: "rules/s"},
	{Figure: "control-plane creates/s, 8 clients", Bench: "BenchmarkCreateRule/parallel", Metric: "rules/s",
		Cmp: "the same SQL straight on the pool, 8 clients", CmpBench: "BenchmarkCreateRule/sql_parallel", CmpMetric: "rules/s"},
	{Figure: "control-plane create p99 ms, 8 clients", Bench: "BenchmarkCreateRule/parallel", Metric: "p99_ms",
		Cmp: "1 client", CmpBench: "BenchmarkCreateRule/sequential", CmpMetric: "p99_ms"},
	{Figure: "control-plane create p99 ms, 8 clients", Bench: "BenchmarkCreateRule/parallel", Metric: "p99_ms",
		Cmp: "the same SQL straight on the pool, 8 clients", CmpBench: "BenchmarkCreateRule/sql_parallel", CmpMetric: "p99_ms"},
	{Figure: "control-plane creates/s, 1 client", Bench: "BenchmarkCreateRule/sequential", Metric: "rules/s",
		Cmp: "the same SQL straight on the pool, 1 client", CmpBench: "BenchmarkCreateRule/sql_sequential", CmpMetric: "rules/s"},
}
