package config

import (
	"slices"
	"strings"
)

// Var is one environment variable the binary reads: the one declaration
// the README's and docs/operations.md's tables and each command's -h are
// generated from. Env reads no variable that is not declared here, and
// TestEveryVariableIsDeclared checks against the code that each one is
// read, by exactly the commands named.
type Var struct {
	Name string
	// Default is what applies when the variable is unset, as the docs
	// show it (Markdown: a value in backticks, else words); "" for none.
	Default string
	// Commands are the commands that read it: "controlplane", or
	// "keyring reencrypt" where only that subcommand of keyring does.
	Commands []string
	// Required are those of Commands that refuse to start without it.
	Required []string
	// Help is its meaning in one line of plain text, for -h.
	Help string
	// Doc is its meaning in the docs (Markdown).
	Doc string
}

// The groups of commands that read the same variables.
var (
	// loaders read every setting Load reads.
	loaders = []string{"dev", "controlplane", "processor", "dispatcher", "recorder", "migrate", "apikey", "keyring reencrypt", "quarantine", "rollout", "quota"}
	// kafkaUsers read the Kafka clients' TLS and SASL settings.
	kafkaUsers = []string{"dev", "controlplane", "processor", "dispatcher", "recorder", "emit", "quarantine"}
)

var vars = []Var{
	{
		Name: "DATABASE_URL", Commands: loaders,
		Required: []string{"controlplane", "recorder", "migrate", "apikey", "keyring reencrypt", "quarantine", "rollout", "quota"},
		Help:     "Postgres connection URL",
		Doc: "Postgres connection URL; its user owns the tables. TLS: `sslmode=verify-full&sslrootcert=/path/ca.pem` " +
			"([Postgres over TLS](docs/operations.md#postgres-over-tls)). Dev mode without it starts a throwaway cluster",
	},
	{
		Name: "KAFKA_BROKERS", Commands: append(slices.Clone(loaders), "emit"),
		Required: []string{"controlplane", "processor", "dispatcher", "recorder"},
		Help:     "comma-separated host:port of the Kafka brokers",
		Doc: "comma-separated `host:port`. Dev mode without it runs an in-process broker (kfake); `emit` without it " +
			"(and without `--brokers`) uses `127.0.0.1:9092`; `quarantine replay` needs it",
	},
	{
		Name: EnvKafkaTLS, Default: "`off`", Commands: kafkaUsers,
		Help: "on/off: connect to the brokers over TLS (on when any EXO_KAFKA_TLS_* is set)",
		Doc: "`on`/`off`: connect to the brokers over TLS ([Managed Kafka](docs/operations.md#managed-kafka-tls-sasl)); " +
			"when unset, on as soon as any other `EXO_KAFKA_TLS_*` variable is set",
	},
	{
		Name: EnvKafkaTLSCAFile, Default: "system roots", Commands: kafkaUsers,
		Help: "PEM file of the CA(s) the brokers' certificates are verified against",
		Doc:  "PEM file of the CA(s) the brokers' certificates are verified against",
	},
	{
		Name: EnvKafkaTLSCertFile, Commands: kafkaUsers,
		Help: "client certificate (PEM), with EXO_KAFKA_TLS_KEY_FILE",
		Doc: "client certificate (PEM), for brokers that authenticate clients by certificate; with `EXO_KAFKA_TLS_KEY_FILE` " +
			"(both or neither). Read again at every connection: a renewed certificate needs no restart",
	},
	{
		Name: EnvKafkaTLSKeyFile, Commands: kafkaUsers,
		Help: "the client certificate's key (PEM)",
		Doc:  "the client certificate's key (PEM); read again at every connection",
	},
	{
		Name: EnvKafkaTLSServerName, Default: "the broker's host", Commands: kafkaUsers,
		Help: "name the brokers' certificates must carry",
		Doc:  "name the brokers' certificates must carry (when it differs from the address dialled)",
	},
	{
		Name: EnvKafkaTLSInsecure, Default: "`off`", Commands: kafkaUsers,
		Help: "on accepts any broker certificate (never in production)",
		Doc:  "`on` accepts any broker certificate, with a warning at every start: never in production",
	},
	{
		Name: EnvKafkaSASLMechanism, Default: "none", Commands: kafkaUsers,
		Help: "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER",
		Doc:  "`PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512` or `OAUTHBEARER`; PLAIN without TLS is warned about",
	},
	{
		Name: EnvKafkaSASLUsername, Commands: kafkaUsers,
		Help: "SASL user (PLAIN, SCRAM)",
		Doc:  "SASL user (PLAIN, SCRAM)",
	},
	{
		Name: EnvKafkaSASLPassword, Commands: kafkaUsers,
		Help: "SASL password (PLAIN, SCRAM), taken as it is",
		Doc:  "SASL password (PLAIN, SCRAM), taken as it is; or `EXO_KAFKA_SASL_PASSWORD_FILE`, not both",
	},
	{
		Name: EnvKafkaSASLPasswordFile, Commands: kafkaUsers,
		Help: "file holding the SASL password (a mounted Secret)",
		Doc:  "file holding the SASL password (a mounted Secret), without its final line break",
	},
	{
		Name: EnvKafkaSASLOAuthTokenFile, Commands: kafkaUsers,
		Help: "OAUTHBEARER: file holding the token, read at every authentication",
		Doc:  "OAUTHBEARER: file holding the token, read again at every authentication (a sidecar renews it)",
	},
	{
		Name: "EXO_KEYRING", Commands: loaders,
		Required: []string{"controlplane", "dispatcher", "keyring reencrypt"},
		Help:     "id:base64-32-byte-key[,…]; the first key encrypts",
		Doc: "`id:base64-32-byte-key[,…]` (`exo-alerts keyring generate` makes one); the first key encrypts. " +
			"Dev mode without it keeps a dev ring in `~/.config/exo-alerts/dev-keyring`; the other commands check it when set",
	},
	{
		Name: "EXO_TOPIC_PREFIX", Default: "`exo.`", Commands: append(slices.Clone(loaders), "emit"),
		Help: "prefix of every topic and consumer group",
		Doc:  "prefix of every topic and consumer group",
	},
	{
		Name: "EXO_PARTITIONS", Default: "`3`", Commands: loaders,
		Help: "partitions of the topics the components create (1–1024)",
		Doc:  "partitions of the topics controlplane, processor and dispatcher create (1–1024)",
	},
	{
		Name: "EXO_SSRF_ALLOWLIST", Default: "empty", Commands: loaders,
		Help: "IPs or CIDRs webhook targets may reach despite the SSRF rules",
		Doc: "comma-separated IPs or CIDRs that targets may reach despite the SSRF rules (e.g. `10.20.0.0/16`), " +
			"for controlplane and dispatcher; `*` turns the guard off (never in production). Dev mode always allows loopback",
	},
	{
		Name: "EXO_LOG_LEVEL", Default: "`info`", Commands: loaders,
		Help: "debug, info, warn or error",
		Doc:  "`debug`, `info`, `warn` or `error`",
	},
	{
		Name: "EXO_DEMO_API_KEY", Default: "random", Commands: []string{"dev"},
		Help: "the demo tenant's API key",
		Doc:  "the demo tenant's API key",
	},
	{
		Name: "EXO_PROCESSOR_GROUP", Default: "`<prefix>processor`", Commands: []string{"processor"},
		Help: "consumer group of workflow-events",
		Doc:  "consumer group of `workflow-events`",
	},
	{
		Name: "EXO_PROCESSOR_TRANSACTIONAL_ID", Default: "`<prefix>processor-<hostname>`", Commands: []string{"processor"},
		Help: "unique per running instance and stable across its restarts",
		Doc:  "must be unique per running instance and stable across its restarts",
	},
	{
		Name: "EXO_PROCESSOR_GRACE", Default: "`10m`", Commands: []string{"processor"},
		Help: "how long a finished run's state is kept (late duplicates)",
		Doc:  "how long a finished run's state is kept (late duplicates)",
	},
	{
		Name: "EXO_TENANT_DELIVERY_QUOTA", Default: "`0`", Commands: []string{"dev", "controlplane", "processor", "quota"},
		Help: "alerts delivered per tenant per minute of event time at most; 0: no cap",
		Doc: "alerts delivered per tenant per minute of event time at most (`0`: no cap); an operator's override " +
			"(`exo-alerts quota set`) replaces it for its tenant. Each of the P events partitions admits `ceil(cap/P)`; " +
			"suppressed alerts are counted per tenant (`GET /v1/quota`) ([Quota](docs/exosphere/alerts.md#quota)). " +
			"The control plane reads it to answer `GET /v1/quota`, `exo-alerts quota list` to show it",
	},
	{
		Name: "EXO_GLOBAL_DELIVERY_QUOTA", Default: "`0`", Commands: []string{"dev", "controlplane", "processor", "quota"},
		Help: "alerts delivered over all tenants per minute of event time at most; 0: no cap",
		Doc: "alerts delivered over all tenants per minute of event time at most (`0`: no cap), checked after the tenant's " +
			"own cap (a tenant at its cap spends none of it): set it at least to the tenant cap times the tenants that may " +
			"be at their cap at once",
	},
	{
		Name: "EXO_PROCESSOR_AGGREGATE_DELAY", Default: "`5s`", Commands: []string{"processor"},
		Help: "how far behind the slowest events partition count and rate rules decide (0s–5m)",
		Doc: "how far behind the slowest events partition's watermark count and rate rules decide (0s–5m): events of a partition up to this much " +
			"out of order are not late; resolves and rate decisions wait this long",
	},
	{
		Name: "EXO_PROCESSOR_AGGREGATE_MAX_GROUPS", Default: "`200000`", Commands: []string{"processor"},
		Help: "groups of count and rate rules kept per aggregate-input partition",
		Doc:  "groups of count and rate rules kept per `processor.aggregate-input` partition (about 1.6 KB each); an input that would make one more is dropped and counted",
	},
	{
		Name: "EXO_PROCESSOR_STRICT_KEYS", Default: "`off`", Commands: []string{"processor"},
		Help: "on sends an event whose record key does not start with <its tenant>/ to the invalid topic",
		Doc: "`on` sends an event whose record key does not start with `<its tenantid>/` to `workflow-events.invalid` " +
			"(reason in `exo-invalid-reason`) instead of processing it: the key then names the tenant an event alerts, so a gate " +
			"that checks keys only (a Kafka proxy allowing each producer one key prefix) is a gate on tenants; `off` processes " +
			"it and counts it (`exo_processor_miskeyed_events_total`) ([Strict keying](docs/producers.md#strict-keying))",
	},
	{
		Name: "EXO_DISPATCHER_GROUP", Default: "`<prefix>dispatcher`", Commands: []string{"dispatcher"},
		Help: "consumer group (retry tiers use <group>.retry.<tier>)",
		Doc:  "consumer group (retry tiers use `<group>.retry.<tier>`)",
	},
	{
		Name: "EXO_RETRY_TIERS", Default: "`5s,30s,2m,10m,30m,1h,3h,6h`", Commands: []string{"dispatcher"},
		Help: "delays of the retry tiers",
		Doc:  "delays of the retry tiers",
	},
	{
		Name: "EXO_DISPATCHER_WORKERS", Default: "`512`", Commands: []string{"dispatcher"},
		Help: "HTTP attempts in flight at most, over all endpoints",
		Doc:  "HTTP attempts in flight at most, over all endpoints (each endpoint: at most 4)",
	},
	{
		Name: "EXO_DISPATCHER_ENDPOINT_RATE", Default: "`50`", Commands: []string{"dispatcher"},
		Help: "attempts per second to one endpoint without its own rate (1–10000)",
		Doc:  "attempts per second to one endpoint (1–10000) when the endpoint sets no `rate_limit_per_second`",
	},
	{
		Name: "EXO_DISPATCHER_SESSION_TIMEOUT", Default: "`10s`", Commands: []string{"dispatcher"},
		Help: "how soon another dispatcher takes over a dead one's partitions",
		Doc:  "how soon another dispatcher takes over a dead one's partitions",
	},
	{
		Name: "EXO_DISPATCHER_INSTANCE_ID", Default: "empty", Commands: []string{"dispatcher"},
		Help: "static group membership: unique per instance, stable across restarts",
		Doc: "static group membership: unique per running instance and stable across its restarts (a pod name); " +
			"a restart then takes its partitions back at once",
	},
	{
		Name: "EXO_DISPATCHER_UNHEALTHY_AFTER", Default: "`15m`", Commands: []string{"dispatcher"},
		Help: "how long an endpoint's breaker stays open, its alerts failing, before the tenant gets a notice (1m–24h)",
		Doc: "how long an endpoint's circuit breaker stays open while its alerts fail before it is reported on " +
			"`endpoint-health` and the tenant gets an `endpoint_unhealthy` notice (1m–24h)",
	},
	{
		Name: "EXO_DASHBOARD_RUN_URL", Default: "empty", Commands: []string{"dispatcher"},
		Help: "link in Slack and PagerDuty messages, with {tenant_id}, {workflow_id}, {run_id}, {alert_id}",
		Doc:  "link in Slack and PagerDuty messages, with `{tenant_id}`, `{workflow_id}`, `{run_id}`, `{alert_id}`",
	},
	{
		Name: "EXO_DB_APP_ROLE", Default: "`exo_app`", Commands: []string{"controlplane"},
		Help: "Postgres role API requests run as (row-level security); off: the connecting role",
		Doc: "Postgres role API requests run as (row-level security); `off` runs them as the connecting role " +
			"(the owner bypasses row-level security: only for debugging)",
	},
	{
		Name: "EXO_OUTBOX_POLL", Default: "`5s`", Commands: []string{"controlplane"},
		Help: "fallback poll of the outbox relay (NOTIFY wakes it at once)",
		Doc:  "fallback poll of the outbox relay (NOTIFY wakes it at once)",
	},
	{
		Name: "EXO_PUBLISH_WAIT", Default: "`2s`", Commands: []string{"controlplane"},
		Help: "how long a change waits to be on Kafka before the API answers; negative: no wait",
		Doc: "how long a change waits for the relay to put it on Kafka before the API answers (read your writes: " +
			"a rule applies to every event produced after the answer); negative: no wait",
	},
	{
		Name: "EXO_PUBLIC_URL", Default: "`http://<--addr>`", Commands: []string{"controlplane"},
		Help: "base URL clients reach the API at: the server the OpenAPI document names",
		Doc: "absolute `http(s)://` base URL clients reach the API at (e.g. behind an ingress): the `servers` entry " +
			"of `/openapi.json`, which generated clients and `/docs` use",
	},
	{
		Name: "EXO_CONTROLPLANE_RECORDER", Default: "`on`", Commands: []string{"controlplane"},
		Help: "on runs a recorder in the control plane's process; off for a separate one",
		Doc: "`on` runs a recorder in the control plane's process; `off` runs none, for deployments that run " +
			"`exo-alerts recorder` separately",
	},
	{
		Name: "EXO_RECORDER_GROUP", Default: "`<prefix>recorder`", Commands: []string{"controlplane", "recorder"},
		Help: "consumer group of the recorder (delivery history)",
		Doc:  "consumer group of the recorder (delivery history)",
	},
	{
		Name: "EXO_HISTORY_RETENTION", Default: "`720h`", Commands: []string{"controlplane", "recorder"},
		Help: "how long alerts, attempts and dead letters are kept; negative: forever",
		Doc:  "how long alerts, attempts and dead letters are kept; negative keeps them forever",
	},
	{
		Name: "EXO_RETENTION_INTERVAL", Default: "`1h`", Commands: []string{"controlplane", "recorder"},
		Help: "how often old history and published outbox rows are deleted",
		Doc:  "how often old history and published outbox rows are deleted",
	},
	{
		Name: "EXO_INGEST_RATE", Default: "`1000`", Commands: []string{"controlplane"},
		Help: "events per second one API key may send to POST /v1/events; negative: no limit",
		Doc: "events per second one API key may send to `POST /v1/events` (429 with `Retry-After` past it; each key " +
			"has its own bucket, so one tenant flooding does not slow another); negative: no limit " +
			"([HTTP ingest](docs/producers.md#http-ingest))",
	},
	{
		Name: "EXO_INGEST_BURST", Default: "`1000`", Commands: []string{"controlplane"},
		Help: "events one API key may send at once to POST /v1/events (the bucket's size)",
		Doc:  "events one API key may send at once to `POST /v1/events` (the token bucket's size); a batch larger than this gets 413",
	},
	{
		Name: "EXO_AGGREGATE_RULES_PER_TENANT", Default: "`100`", Commands: []string{"controlplane"},
		Help: "most active count and rate rules a tenant may have",
		Doc: "most active count and rate rules a tenant may have; the API refuses one more (422 on `kind`) " +
			"([Count and rate rules](docs/exosphere/alerts.md#count-and-rate-rules))",
	},
	{
		Name: "EXO_AGGREGATE_GROUPS_PER_TENANT", Default: "`50000`", Commands: []string{"controlplane"},
		Help: "most groups (the sum of max_groups) of a tenant's active count and rate rules",
		Doc: "most groups (the sum of `max_groups`) of a tenant's active count and rate rules, about 1.6 KB of processor " +
			"memory each; the API refuses a rule that goes beyond (422 on `max_groups`)",
	},
	{
		Name: "EXO_HTTP_READ_HEADER_TIMEOUT", Default: "`10s`", Commands: []string{"controlplane"},
		Help: "time a client has to send a request's headers",
		Doc:  "time a client has to send a request's headers",
	},
	{
		Name: "EXO_HTTP_READ_TIMEOUT", Default: "`30s`", Commands: []string{"controlplane"},
		Help: "time a client has to send a whole request, body included",
		Doc:  "time a client has to send a whole request, body included (a trickling body is cut off)",
	},
	{
		Name: "EXO_HTTP_WRITE_TIMEOUT", Default: "`60s`", Commands: []string{"controlplane"},
		Help: "time from the end of a request's headers to the end of its answer",
		Doc:  "time from the end of a request's headers to the end of its answer",
	},
	{
		Name: "EXO_HTTP_IDLE_TIMEOUT", Default: "`2m`", Commands: []string{"controlplane"},
		Help: "how long an idle keep-alive connection is kept open",
		Doc:  "how long an idle keep-alive connection is kept open",
	},
	{
		Name: "EXO_TENANTS", Default: "`*`", Commands: []string{"controlplane", "rollout"},
		Help: "the initial rollout: * every tenant, a list only those (beta), none nobody",
		Doc: "the **initial** rollout: `*` every tenant (GA), a comma-separated list only those (beta), `none` nobody (off). " +
			"Stored at the first start (audited `rollout.seed`) when no rollout is stored yet; once one is stored it wins " +
			"and this is ignored: change the rollout with `exo-alerts rollout` or `/v1/rollout` " +
			"([Rollout flag](docs/operations.md#rollout-flag)); `rollout list` shows it while nothing is stored",
	},
}

// byName indexes vars: Env reads only these names.
var byName = func() map[string]Var {
	m := make(map[string]Var, len(vars))
	for _, v := range vars {
		if _, dup := m[v.Name]; dup {
			panic("config: " + v.Name + " is declared twice")
		}
		m[v.Name] = v
	}
	return m
}()

// Vars returns every variable the binary reads, in the docs' order.
func Vars() []Var { return slices.Clone(vars) }

// VarsOf returns the variables command reads ("apikey create", or
// "keyring" for what any of its subcommands reads).
func VarsOf(command string) []Var {
	var out []Var
	for _, v := range vars {
		if slices.ContainsFunc(v.Commands, func(c string) bool { return covers(c, command) }) {
			out = append(out, v)
		}
	}
	return out
}

// RequiredBy reports whether command refuses to start without v.
func (v Var) RequiredBy(command string) bool {
	return slices.ContainsFunc(v.Required, func(c string) bool { return covers(c, command) })
}

// covers reports whether the declared command c applies to command: the
// same, a command covering its subcommands ("apikey" covers "apikey
// create"), or a subcommand when the command as a whole is asked for
// ("keyring reencrypt" for "keyring").
func covers(c, command string) bool {
	return c == command || strings.HasPrefix(command, c+" ") || strings.HasPrefix(c, command+" ")
}
