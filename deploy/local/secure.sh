#!/usr/bin/env bash
# The "managed" services of the TLS tests (e2e/tls_test.go) and of trying
# the binary's TLS and SASL settings by hand: a PostgreSQL that serves TLS
# only (postgres.sh, EXO_PG_TLS=on) and a Kafka broker with a SASL_SSL
# listener (PLAIN, SCRAM-SHA-256/512, OAUTHBEARER) and an SSL listener that
# requires a client certificate (kafka.sh, EXO_KAFKA_SECURE_PORT,
# EXO_KAFKA_MTLS_PORT), each with a test CA of its own (certs.sh). They run
# beside the plaintext services of services.sh, on their own state dir and
# ports.
#
#   secure.sh up              start both (in parallel); no-op for one running
#   secure.sh down [--purge]  stop both (--purge also deletes their data)
#   secure.sh status          exit 0 only if both are up
#   secure.sh env             print export lines for eval: DATABASE_URL
#                             (sslmode=verify-full), KAFKA_BROKERS (the SASL_SSL
#                             listener), EXO_KAFKA_TLS_CA_FILE, EXO_KAFKA_SASL_*
#                             (SCRAM-SHA-512), and EXO_TEST_* for the tests
#
# Environment:
#   EXO_SECURE_STATE_DIR   state root (default ${EXO_STATE_DIR:-/tmp/exo-alerts}-secure)
#   EXO_SECURE_PORT_BASE   ports: base+0 Kafka PLAINTEXT, +1 controller, +2
#                          SASL_SSL, +3 SSL with client certificates (default
#                          EXO_KAFKA_PORT + 300, i.e. 19392);
#                          PostgreSQL on EXO_SECURE_PG_PORT (default base + 10,
#                          i.e. 19402), so a run on private ports does not
#                          collide with one on the standard ports. Both stay
#                          below Linux's ephemeral range (32768-60999): this
#                          script starts in the middle of a test run, whose
#                          many client connections could hold a port there
#                          (a PostgreSQL on 55462 once failed to bind)
set -euo pipefail

PROG="$(basename -- "${BASH_SOURCE[0]}")"
SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
base="${EXO_SECURE_PORT_BASE:-$((${EXO_KAFKA_PORT:-19092} + 300))}"
pg_port="${EXO_SECURE_PG_PORT:-$((base + 10))}"

export EXO_STATE_DIR="${EXO_SECURE_STATE_DIR:-${EXO_STATE_DIR:-/tmp/exo-alerts}-secure}"
export EXO_PG_PORT="$pg_port" EXO_PG_TLS=on
export EXO_KAFKA_PORT="$base" EXO_KAFKA_CONTROLLER_PORT="$((base + 1))"
export EXO_KAFKA_SECURE_PORT="$((base + 2))" EXO_KAFKA_MTLS_PORT="$((base + 3))"

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }

usage() {
	printf 'usage: %s up | down [--purge] | status | env\n' "$PROG" >&2
	exit 2
}

cmd_up() {
	local t0=$SECONDS pg_pid kafka_pid pg_rc=0 kafka_rc=0
	"$SCRIPT_DIR/postgres.sh" up &
	pg_pid=$!
	"$SCRIPT_DIR/kafka.sh" up &
	kafka_pid=$!
	trap 'kill "$pg_pid" "$kafka_pid" 2>/dev/null || true; exit 130' INT TERM
	wait "$pg_pid" || pg_rc=$?
	wait "$kafka_pid" || kafka_rc=$?
	trap - INT TERM
	if ((pg_rc != 0 || kafka_rc != 0)); then
		((pg_rc == 0)) || log "error: postgres.sh up (TLS) failed (exit $pg_rc)"
		((kafka_rc == 0)) || log "error: kafka.sh up (SASL_SSL) failed (exit $kafka_rc)"
		exit 1
	fi
	log "TLS PostgreSQL and SASL_SSL Kafka up in $EXO_STATE_DIR ($((SECONDS - t0))s)"
}

cmd_env() {
	printf "export DATABASE_URL='%s'\n" "$("$SCRIPT_DIR/postgres.sh" url)"
	"$SCRIPT_DIR/kafka.sh" secure-env
}

main() {
	[[ $# -ge 1 ]] || usage
	local cmd="$1"
	shift
	case "$cmd" in
	up) [[ $# -eq 0 ]] || usage; cmd_up ;;
	down)
		case "${1:-}" in "" | --purge) ;; *) usage ;; esac
		[[ $# -le 1 ]] || usage
		local rc=0
		"$SCRIPT_DIR/kafka.sh" down "$@" || rc=1
		"$SCRIPT_DIR/postgres.sh" down "$@" || rc=1
		return "$rc"
		;;
	status)
		[[ $# -eq 0 ]] || usage
		local rc=0
		"$SCRIPT_DIR/postgres.sh" status || rc=3
		"$SCRIPT_DIR/kafka.sh" status || rc=3
		return "$rc"
		;;
	env) [[ $# -eq 0 ]] || usage; cmd_env ;;
	*) usage ;;
	esac
}

main "$@"
