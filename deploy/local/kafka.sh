#!/usr/bin/env bash
# Real single-node Apache Kafka broker (KRaft, combined broker+controller) for
# tests, run from the Maven Central jars: no Docker, no Kafka package needed.
#
#   kafka.sh up              start (download jars / format storage on first use);
#                            no-op if already running
#   kafka.sh down [--purge]  stop (SIGTERM, SIGKILL after 30s); --purge deletes
#                            the broker's data and logs (not the jar cache)
#   kafka.sh status          exit 0 if running and accepting connections, 3 if not
#   kafka.sh brokers         print the bootstrap address (127.0.0.1:19092)
#   kafka.sh secure-env      print, for eval, what a client of the SASL_SSL
#                            listener sets: KAFKA_BROKERS, EXO_KAFKA_TLS_CA_FILE,
#                            EXO_KAFKA_SASL_* (SCRAM-SHA-512), and the mTLS
#                            listener's address and client certificate
#
# Environment:
#   EXO_STATE_DIR              state root (default /tmp/exo-alerts); broker in $EXO_STATE_DIR/kafka
#   EXO_CACHE_DIR              jar cache root (default $HOME/.cache/exo-alerts)
#   EXO_KAFKA_PORT             PLAINTEXT listener on 127.0.0.1 (default 19092)
#   EXO_KAFKA_CONTROLLER_PORT  CONTROLLER listener on 127.0.0.1 (default 19093)
#   EXO_KAFKA_SECURE_PORT      also a SASL_SSL listener on 127.0.0.1 (default: none):
#                              TLS with a test CA (certs.sh, in $EXO_STATE_DIR/kafka/tls),
#                              SASL PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 and OAUTHBEARER
#                              (unsecured tokens) for user "exo", password
#                              "exo-test-secret" (SCRAM users added when the storage
#                              is formatted)
#   EXO_KAFKA_MTLS_PORT        also an SSL listener that requires a client certificate
#                              signed by the test CA (default: none; needs
#                              EXO_KAFKA_SECURE_PORT)
#   EXO_KAFKA_READY_TIMEOUT    seconds to wait for readiness (default 90)
#   EXO_KAFKA_CDS              0 disables the JVM class-data archive (default on)
#   JAVA_HOME                  Java 17+ to use (default: java on PATH)
set -euo pipefail

PROG="$(basename -- "${BASH_SOURCE[0]}")"
SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
ASSETS_DIR="${SCRIPT_DIR}/kafka"
POM="${ASSETS_DIR}/pom.xml"
LOG4J_CONFIG="${ASSETS_DIR}/log4j2.yaml"

KAFKA_VERSION=4.1.1
HOST=127.0.0.1
KAFKA_PORT="${EXO_KAFKA_PORT:-19092}"
CONTROLLER_PORT="${EXO_KAFKA_CONTROLLER_PORT:-19093}"
SECURE_PORT="${EXO_KAFKA_SECURE_PORT:-}"
MTLS_PORT="${EXO_KAFKA_MTLS_PORT:-}"
# The test credentials of the SASL_SSL listener (every mechanism).
SASL_USER=exo
SASL_PASSWORD=exo-test-secret
READY_TIMEOUT="${EXO_KAFKA_READY_TIMEOUT:-90}"
STOP_TIMEOUT=30

STATE_DIR="${EXO_STATE_DIR:-/tmp/exo-alerts}"
K_DIR="${STATE_DIR}/kafka"
K_DATA="${K_DIR}/data"
K_LOGS="${K_DIR}/logs"
K_CONFIG="${K_DIR}/server.properties"
K_LOG="${K_DIR}/kafka.log"
K_PID="${K_DIR}/kafka.pid"
K_FORMAT_STAMP="${K_DIR}/formatted-with"
K_LOCK="${K_DIR}/.lock"
K_CDS_DUMP="${K_DIR}/cds-dump.jsa"
K_CDS_TARGET="${K_DIR}/cds-dump.target"
K_TLS="${K_DIR}/tls"
K_SCRAM_STAMP="${K_DIR}/scram-users"

CACHE_ROOT="${EXO_CACHE_DIR:-${HOME:-/tmp}/.cache/exo-alerts}"
CACHE_DIR="${CACHE_ROOT}/kafka-${KAFKA_VERSION}"
LIBS="${CACHE_DIR}/libs"
# Stamp inside LIBS: hash of the pom that produced the jars; a pom change
# (e.g. another dependency) invalidates the cache.
LIBS_STAMP_NAME=".pom.sha256"

START_MARKER="Kafka Server started"

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
	cat >&2 <<EOF
usage: $PROG up | down [--purge] | status | brokers | secure-env
EOF
	exit 2
}

brokers() { printf '%s:%s\n' "$HOST" "$KAFKA_PORT"; }

secure_env() {
	[[ -n "$SECURE_PORT" ]] || die "EXO_KAFKA_SECURE_PORT is not set: there is no SASL_SSL listener"
	printf "export KAFKA_BROKERS='%s:%s'\n" "$HOST" "$SECURE_PORT"
	printf "export EXO_KAFKA_TLS_CA_FILE='%s'\n" "${K_TLS}/ca.crt"
	printf "export EXO_KAFKA_SASL_MECHANISM='SCRAM-SHA-512'\n"
	printf "export EXO_KAFKA_SASL_USERNAME='%s'\n" "$SASL_USER"
	printf "export EXO_KAFKA_SASL_PASSWORD='%s'\n" "$SASL_PASSWORD"
	if [[ -n "$MTLS_PORT" ]]; then
		printf "export EXO_TEST_KAFKA_MTLS_BROKERS='%s:%s'\n" "$HOST" "$MTLS_PORT"
		printf "export EXO_TEST_KAFKA_CLIENT_CERT='%s'\n" "${K_TLS}/client.crt"
		printf "export EXO_TEST_KAFKA_CLIENT_KEY='%s'\n" "${K_TLS}/client.key"
	fi
	printf "export EXO_TEST_KAFKA_PLAINTEXT_BROKERS='%s:%s'\n" "$HOST" "$KAFKA_PORT"
}

# ---------------------------------------------------------------- helpers

find_java() {
	local java
	if [[ -n "${JAVA_HOME:-}" && -x "${JAVA_HOME}/bin/java" ]]; then
		java="${JAVA_HOME}/bin/java"
	elif command -v java >/dev/null 2>&1; then
		java="$(command -v java)"
	else
		die "java not found (Kafka ${KAFKA_VERSION} needs Java 17+; set JAVA_HOME)"
	fi
	local props spec major
	props="$("$java" -XshowSettings:properties -version 2>&1)"
	spec="$(sed -n 's/^ *java\.specification\.version = //p' <<<"$props")"
	major="${spec%%.*}"
	[[ "$major" =~ ^[0-9]+$ ]] || die "cannot determine the version of $java"
	if ((major == 1 || major < 17)); then
		die "$java is Java $spec; Kafka ${KAFKA_VERSION} needs Java 17+ (set JAVA_HOME)"
	fi
	# Identifies the JVM build (for the class-data archive, see below).
	JAVA_ID="$(grep -E '^ *(java\.home|java\.vm\.name|java\.vm\.version|os\.arch) = ' <<<"$props" |
		sha256sum | cut -c1-16)"
	JAVA="$java"
}

# Accepts TCP connections (whoever listens).
port_open() {
	# shellcheck disable=SC2016 # expanded by the inner bash
	timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$HOST" "$1" 2>/dev/null
}

# Prints the broker pid if our broker process is alive.
broker_pid() {
	[[ -f "$K_PID" ]] || return 1
	local pid
	pid="$(head -n 1 -- "$K_PID" 2>/dev/null)" || return 1
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	# Guard against pid reuse: it must be a JVM running kafka.Kafka.
	ps -p "$pid" -o args= 2>/dev/null | grep -q 'kafka\.Kafka' || return 1
	printf '%s\n' "$pid"
}

started_logged() {
	[[ -f "$K_LOG" ]] && grep -qF -- "$START_MARKER" "$K_LOG"
}

print_log() {
	if [[ -f "$K_LOG" ]]; then
		log "---- last 200 lines of $K_LOG ----"
		tail -n 200 -- "$K_LOG" >&2 || true
		log "---- end of $K_LOG ----"
	else
		log "(no broker log at $K_LOG)"
	fi
}

# ---------------------------------------------------------------- jars

pom_hash() { sha256sum -- "$POM" | cut -d' ' -f1; }

libs_valid() {
	[[ -f "${LIBS}/${LIBS_STAMP_NAME}" ]] &&
		[[ "$(cat -- "${LIBS}/${LIBS_STAMP_NAME}")" == "$(pom_hash)" ]] &&
		compgen -G "${LIBS}/kafka_2.13-${KAFKA_VERSION}.jar" >/dev/null
}

ensure_libs() {
	if libs_valid; then
		return 0
	fi
	command -v mvn >/dev/null 2>&1 || die "mvn not found: Maven is needed once to fetch the Kafka jars into $LIBS"
	mkdir -p -- "$CACHE_DIR"
	# Serialise downloads between concurrent callers sharing the cache.
	local lock_fd
	exec {lock_fd}>"${CACHE_DIR}/.lock"
	flock -w 600 "$lock_fd" || die "timed out waiting for the jar cache lock ${CACHE_DIR}/.lock"
	if libs_valid; then
		exec {lock_fd}>&-
		return 0
	fi
	# Holding the lock, any leftover temp dir is from an interrupted download.
	find "$CACHE_DIR" -mindepth 1 -maxdepth 1 \( -name 'libs.tmp.*' -o -name 'libs.old.*' \) \
		-exec rm -rf -- {} +
	local tmp mvn_log
	tmp="$(mktemp -d "${CACHE_DIR}/libs.tmp.XXXXXX")"
	chmod 0755 -- "$tmp"
	mvn_log="${tmp}.mvn.log"
	log "fetching Kafka ${KAFKA_VERSION} jars from Maven into $LIBS (one-time)"
	if ! mvn -B -q -Dstyle.color=never -f "$POM" -Dkafka.version="$KAFKA_VERSION" \
		org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
		-DincludeScope=runtime -DoutputDirectory="$tmp" >"$mvn_log" 2>&1; then
		cat -- "$mvn_log" >&2
		rm -rf -- "$tmp" "$mvn_log"
		die "maven could not fetch the Kafka jars"
	fi
	rm -f -- "$mvn_log"
	compgen -G "${tmp}/kafka_2.13-${KAFKA_VERSION}.jar" >/dev/null ||
		{ rm -rf -- "$tmp"; die "maven finished but kafka_2.13-${KAFKA_VERSION}.jar is missing"; }
	pom_hash >"${tmp}/${LIBS_STAMP_NAME}"
	# Atomic publish: a half-done download only ever lives in libs.tmp.*.
	if [[ -e "$LIBS" ]]; then
		local old="${CACHE_DIR}/libs.old.$$"
		mv -T -- "$LIBS" "$old"
		mv -T -- "$tmp" "$LIBS"
		rm -rf -- "$old"
	else
		mv -T -- "$tmp" "$LIBS"
	fi
	exec {lock_fd}>&-
	log "cached $(find "$LIBS" -name '*.jar' | wc -l) jars ($(du -sh -- "$LIBS" | cut -f1)) in $LIBS"
}

# ---------------------------------------------------------------- config and storage

write_config() {
	local listeners="PLAINTEXT://${HOST}:${KAFKA_PORT},CONTROLLER://${HOST}:${CONTROLLER_PORT}"
	[[ -z "$SECURE_PORT" ]] || listeners+=",SASL_SSL://${HOST}:${SECURE_PORT}"
	[[ -z "$MTLS_PORT" ]] || listeners+=",SSL://${HOST}:${MTLS_PORT}"
	cat >"$K_CONFIG" <<EOF
# Generated by deploy/local/kafka.sh on every 'up': single-node test broker.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=${HOST}:${CONTROLLER_PORT}
listeners=${listeners}
advertised.listeners=${listeners}
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL
log.dirs=${K_DATA}

num.partitions=3
auto.create.topics.enable=false
delete.topic.enable=true
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
log.cleaner.backoff.ms=1000

# Latency (docs/operations.md, "Broker settings for latency"). A group's
# first join is not held back 3 s for more members. A transaction left open
# by a process that is gone for good (a test's killed processor that is not
# started again) is aborted within 1 s of its 20 s timeout rather than 10 s,
# so read_committed readers of what it wrote resume sooner. Transactions v2
# (transaction.version=2, KIP-890) is what 'storage format' enables for
# Kafka 4.1 by default: the coordinator writes commit markers after
# answering EndTxn and refuses the next transaction's first produce until
# they are written; the processor's client retries it after a metadata
# refresh (at most every 50 ms).
group.initial.rebalance.delay.ms=0
transaction.abort.timed.out.transaction.cleanup.interval.ms=1000

# Small machine: fewer threads than the defaults.
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
EOF
	[[ -n "$SECURE_PORT" ]] || return 0
	cat >>"$K_CONFIG" <<EOF

# TLS listeners (EXO_KAFKA_SECURE_PORT, EXO_KAFKA_MTLS_PORT): test CA and
# certificates from certs.sh, PEM key store and trust store.
ssl.keystore.type=PEM
ssl.keystore.location=${K_TLS}/server.pem
ssl.truststore.type=PEM
ssl.truststore.location=${K_TLS}/ca.crt
listener.name.ssl.ssl.client.auth=required
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512,OAUTHBEARER
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_${SASL_USER}="${SASL_PASSWORD}";
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub="${SASL_USER}";
EOF
}

format_storage() {
	if [[ -f "${K_DATA}/meta.properties" ]]; then
		# The controller's endpoint is written into the metadata log at format time.
		if [[ -f "$K_FORMAT_STAMP" ]] && [[ "$(cat -- "$K_FORMAT_STAMP")" != "${HOST}:${CONTROLLER_PORT}" ]]; then
			die "storage in $K_DATA was formatted for controller $(cat -- "$K_FORMAT_STAMP"), not ${HOST}:${CONTROLLER_PORT}; run '$PROG down --purge' first"
		fi
		if [[ -n "$SECURE_PORT" && ! -f "$K_SCRAM_STAMP" ]]; then
			die "storage in $K_DATA was formatted without the SCRAM users of the SASL_SSL listener; run '$PROG down --purge' first"
		fi
		return 0
	fi
	# SCRAM credentials go into the metadata log when it is formatted.
	local -a scram=()
	if [[ -n "$SECURE_PORT" ]]; then
		scram=(--add-scram "SCRAM-SHA-256=[name=${SASL_USER},password=${SASL_PASSWORD}]"
			--add-scram "SCRAM-SHA-512=[name=${SASL_USER},password=${SASL_PASSWORD}]")
	fi
	local cluster_id out
	cluster_id="$("$JAVA" -cp "${LIBS}/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)"
	[[ -n "$cluster_id" ]] || die "kafka.tools.StorageTool random-uuid produced no cluster id"
	log "formatting storage in $K_DATA (cluster id $cluster_id)"
	if ! out="$("$JAVA" -Dlog4j2.configurationFile="$LOG4J_CONFIG" -cp "${LIBS}/*" kafka.tools.StorageTool \
		format --standalone --ignore-formatted -t "$cluster_id" -c "$K_CONFIG" "${scram[@]}" 2>&1)"; then
		printf '%s\n' "$out" >&2
		die "formatting the storage failed"
	fi
	printf '%s\n' "${HOST}:${CONTROLLER_PORT}" >"$K_FORMAT_STAMP"
	if [[ -n "$SECURE_PORT" ]]; then
		printf '%s\n' "$SASL_USER" >"$K_SCRAM_STAMP"
	fi
}

# ---------------------------------------------------------------- class-data sharing
# A JVM AppCDS archive of the broker's classes roughly halves its start-up CPU
# (measured here: ~6 s -> ~3 s of CPU, 4-5 s -> ~2 s wall). The first broker
# started without an archive dumps one when it exits (kafka.sh down); later
# starts map it. Archives live inside LIBS (so a re-downloaded classpath drops
# them) and are keyed by the JVM build. A truncated/foreign archive can crash
# the JVM, so dumps are validated before being published, and a broker that
# dies at start-up while using an archive is retried once without it.
# EXO_KAFKA_CDS=0 disables all of this.

cds_enabled() { [[ "${EXO_KAFKA_CDS:-1}" != 0 ]]; }

# Sets CDS_ARCHIVE (path for this JVM build); needs JAVA_ID from find_java.
cds_paths() {
	CDS_ARCHIVE="${LIBS}/.cds/${JAVA_ID}.jsa"
}

# Publishes the archive the last broker dumped at exit, if it is usable.
cds_publish_dump() {
	[[ -f "$K_CDS_DUMP" ]] || return 0
	local target tmp
	target="$(cat -- "$K_CDS_TARGET" 2>/dev/null || true)"
	[[ -n "${JAVA:-}" ]] || find_java
	if [[ -n "$target" && -s "$K_CDS_DUMP" && -d "$LIBS" ]] &&
		"$JAVA" -XX:SharedArchiveFile="$K_CDS_DUMP" -Xshare:on -Xlog:cds=off -Xlog:cds+dynamic=off \
			-XX:-CreateCoredumpOnCrash -XX:ErrorFile="${K_DIR}/hs_err_cds_check.log" \
			-cp "${LIBS}/*" -version >/dev/null 2>&1; then
		tmp="${target}.tmp.$$"
		if mkdir -p -- "$(dirname -- "$target")" 2>/dev/null &&
			cp -- "$K_CDS_DUMP" "$tmp" 2>/dev/null && mv -f -- "$tmp" "$target"; then
			log "saved class-data archive for faster starts: $target"
		else
			log "could not save the class-data archive to $target (ignored)"
		fi
		rm -f -- "$tmp"
	else
		log "discarded an unusable class-data archive dump (the next start dumps a new one)"
	fi
	rm -f -- "$K_CDS_DUMP" "$K_CDS_TARGET" "${K_DIR}/hs_err_cds_check.log"
}

# ---------------------------------------------------------------- broker

# $1: "auto" (use/dump a class-data archive when enabled) or "off".
start_broker() {
	local cds_mode="$1"
	local -a cds_opts=()
	USED_CDS_ARCHIVE=""
	rm -f -- "$K_CDS_DUMP" "$K_CDS_TARGET"
	if [[ "$cds_mode" == auto ]] && cds_enabled; then
		cds_paths
		if [[ -s "$CDS_ARCHIVE" ]]; then
			cds_opts=(-XX:SharedArchiveFile="$CDS_ARCHIVE")
			USED_CDS_ARCHIVE="$CDS_ARCHIVE"
		else
			cds_opts=(-XX:ArchiveClassesAtExit="$K_CDS_DUMP")
			printf '%s\n' "$CDS_ARCHIVE" >"$K_CDS_TARGET"
		fi
		cds_opts+=(-Xlog:cds=off -Xlog:cds+dynamic=off)
	fi
	# One log per run, so readiness only ever sees this run's lines.
	if [[ -f "$K_LOG" ]]; then
		mv -f -- "$K_LOG" "${K_LOG}.prev"
	fi
	rm -f -- "$K_PID"
	log "starting Kafka ${KAFKA_VERSION} on ${HOST}:${KAFKA_PORT} (controller ${HOST}:${CONTROLLER_PORT}, log $K_LOG)"
	# setsid: own session, so the terminal's Ctrl-C / hangup do not reach it.
	# The inner bash writes its own pid and then execs java, so the pid file
	# holds the JVM's pid whether or not setsid forked; it runs in the state
	# dir so nothing (e.g. a JVM crash report) lands in the caller's cwd. The
	# state lock's fd is closed for it: a JVM inheriting it would hold the lock
	# forever.
	# shellcheck disable=SC2016 # expanded by the inner bash
	nohup setsid bash -c 'cd "$0" && printf "%s\n" "$$" >"$1" && shift && exec "$@"' "$K_DIR" "$K_PID" \
		"$JAVA" -Xms512m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
		-XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
		-XX:ErrorFile="${K_DIR}/hs_err_pid%p.log" \
		"${cds_opts[@]}" \
		-Djava.awt.headless=true -Djava.net.preferIPv4Stack=true \
		-Dlog4j2.configurationFile="$LOG4J_CONFIG" \
		-Dkafka.logs.dir="$K_LOGS" \
		-cp "${LIBS}/*" \
		kafka.Kafka "$K_CONFIG" \
		</dev/null >>"$K_LOG" 2>&1 {STATE_LOCK_FD}>&- &
	disown 2>/dev/null || true
}

# Returns 0 when ready, 1 when the broker process died, 2 on timeout.
wait_ready() {
	local deadline=$((SECONDS + READY_TIMEOUT)) gone=0
	while ((SECONDS < deadline)); do
		if started_logged && port_open "$KAFKA_PORT"; then
			return 0
		fi
		# The pid file appears a moment after the launch: tolerate ~2s of misses.
		if broker_pid >/dev/null; then
			gone=0
		elif ((++gone >= 10)); then
			return 1
		fi
		sleep 0.2
	done
	return 2
}

# Reports a failed start-up (wait_ready's code in $1), prints the log, stops a
# half-started broker and exits non-zero.
fail_startup() {
	case "$1" in
	1) log "broker process exited during startup" ;;
	*) log "broker not ready within ${READY_TIMEOUT}s (log line '$START_MARKER' + TCP ${HOST}:${KAFKA_PORT})" ;;
	esac
	print_log
	local pid
	if pid="$(broker_pid)"; then
		log "stopping the half-started broker (pid $pid)"
		stop_pid "$pid"
	fi
	rm -f -- "$K_PID" "$K_CDS_DUMP" "$K_CDS_TARGET"
	exit 1
}

# SIGTERM (Kafka shuts down cleanly), SIGKILL after STOP_TIMEOUT seconds.
stop_pid() {
	local pid="$1" deadline=$((SECONDS + STOP_TIMEOUT))
	kill -TERM "$pid" 2>/dev/null || true
	while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
		sleep 0.2
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "pid $pid still running after ${STOP_TIMEOUT}s; sending SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
		while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
	fi
}

# Serialises up/down on one state dir.
STATE_LOCK_FD=""
with_state_lock() {
	mkdir -p -- "$K_DIR"
	exec {STATE_LOCK_FD}>"$K_LOCK"
	flock -w 300 "$STATE_LOCK_FD" || die "timed out waiting for $K_LOCK (another $PROG running?)"
	"$@"
}

cmd_up() {
	local pid
	if pid="$(broker_pid)"; then
		if started_logged && port_open "$KAFKA_PORT"; then
			log "already running (pid $pid) on ${HOST}:${KAFKA_PORT}"
			return 0
		fi
		log "broker process $pid is up but not ready yet; waiting"
		wait_ready || fail_startup "$?"
		log "ready on ${HOST}:${KAFKA_PORT}"
		return 0
	fi
	[[ -z "$MTLS_PORT" || -n "$SECURE_PORT" ]] || die "EXO_KAFKA_MTLS_PORT needs EXO_KAFKA_SECURE_PORT"
	local p
	for p in "$KAFKA_PORT" "$CONTROLLER_PORT" $SECURE_PORT $MTLS_PORT; do
		if port_open "$p"; then
			die "port ${HOST}:$p is already in use by another process (set EXO_KAFKA_PORT / EXO_KAFKA_CONTROLLER_PORT / EXO_KAFKA_SECURE_PORT / EXO_KAFKA_MTLS_PORT)"
		fi
	done
	[[ -f "$POM" && -f "$LOG4J_CONFIG" ]] || die "missing $POM or $LOG4J_CONFIG"
	command -v flock >/dev/null 2>&1 || die "flock (util-linux) is required"
	find_java
	ensure_libs
	cds_publish_dump # left by a broker that exited without 'down'
	mkdir -p -- "$K_DATA" "$K_LOGS"
	if [[ -n "$SECURE_PORT" ]]; then
		"${SCRIPT_DIR}/certs.sh" "$K_TLS"
	fi
	write_config
	format_storage
	local t0=$SECONDS rc=0
	start_broker auto
	wait_ready || rc=$?
	if ((rc == 1)) && [[ -n "$USED_CDS_ARCHIVE" ]]; then
		log "broker died at start-up using class-data archive $USED_CDS_ARCHIVE; discarding it and retrying without"
		rm -f -- "$USED_CDS_ARCHIVE"
		rc=0
		start_broker off
		wait_ready || rc=$?
	fi
	((rc == 0)) || fail_startup "$rc"
	log "ready on ${HOST}:${KAFKA_PORT} (pid $(broker_pid || echo '?'), $((SECONDS - t0))s)"
}

cmd_down() {
	local purge=0
	case "${1:-}" in
	"") ;;
	--purge) purge=1 ;;
	*) usage ;;
	esac
	local pid
	if pid="$(broker_pid)"; then
		log "stopping Kafka (pid $pid)"
		stop_pid "$pid"
		log "stopped"
	else
		log "not running"
	fi
	rm -f -- "$K_PID"
	cds_publish_dump
	if ((purge)); then
		# Keep the lock file: it is held by this process.
		find "$K_DIR" -mindepth 1 -maxdepth 1 ! -name "$(basename -- "$K_LOCK")" -exec rm -rf -- {} +
		log "purged $K_DIR (jar cache kept in $LIBS)"
	fi
}

cmd_status() {
	local pid
	if pid="$(broker_pid)"; then
		if started_logged && port_open "$KAFKA_PORT"; then
			log "running (pid $pid) on ${HOST}:${KAFKA_PORT}, data $K_DATA"
			return 0
		fi
		log "process $pid running but not ready on ${HOST}:${KAFKA_PORT}"
	else
		log "not running"
	fi
	return 3
}

main() {
	[[ $# -ge 1 ]] || usage
	local cmd="$1"
	shift
	case "$cmd" in
	up) [[ $# -eq 0 ]] || usage; with_state_lock cmd_up ;;
	down) [[ $# -le 1 ]] || usage; with_state_lock cmd_down "$@" ;;
	status) [[ $# -eq 0 ]] || usage; cmd_status ;;
	brokers) [[ $# -eq 0 ]] || usage; brokers ;;
	secure-env) [[ $# -eq 0 ]] || usage; secure_env ;;
	*) usage ;;
	esac
}

main "$@"
