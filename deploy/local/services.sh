#!/usr/bin/env bash
# Local test services for exo-alerts: PostgreSQL (postgres.sh) + Kafka (kafka.sh).
#
#   services.sh up              start both (in parallel); fails if either fails
#   services.sh down [--purge]  stop both (--purge also deletes their data)
#   services.sh status          status of both; exit 0 only if both are up
#   services.sh env             print export lines for eval:
#                                 eval "$(deploy/local/services.sh env)"
#
# Configuration (EXO_STATE_DIR, EXO_CACHE_DIR, EXO_PG_PORT, EXO_KAFKA_PORT,
# EXO_KAFKA_CONTROLLER_PORT) is passed through: see README.md.
set -euo pipefail

PROG="$(basename -- "${BASH_SOURCE[0]}")"
SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
PG="${SCRIPT_DIR}/postgres.sh"
KAFKA="${SCRIPT_DIR}/kafka.sh"

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }

usage() {
	printf 'usage: %s up | down [--purge] | status | env\n' "$PROG" >&2
	exit 2
}

cmd_up() {
	local t0=$SECONDS pg_pid kafka_pid pg_rc=0 kafka_rc=0
	"$PG" up &
	pg_pid=$!
	"$KAFKA" up &
	kafka_pid=$!
	# On Ctrl-C / TERM stop waiting and stop the two starters too.
	trap 'kill "$pg_pid" "$kafka_pid" 2>/dev/null || true; exit 130' INT TERM
	wait "$pg_pid" || pg_rc=$?
	wait "$kafka_pid" || kafka_rc=$?
	trap - INT TERM
	if ((pg_rc != 0 || kafka_rc != 0)); then
		((pg_rc == 0)) || log "error: postgres.sh up failed (exit $pg_rc)"
		((kafka_rc == 0)) || log "error: kafka.sh up failed (exit $kafka_rc)"
		exit 1
	fi
	log "all services up ($((SECONDS - t0))s)"
}

cmd_down() {
	local rc=0
	"$KAFKA" down "$@" || rc=1
	"$PG" down "$@" || rc=1
	return "$rc"
}

cmd_status() {
	local rc=0
	"$PG" status || rc=3
	"$KAFKA" status || rc=3
	return "$rc"
}

cmd_env() {
	local db brokers
	db="$("$PG" url)"
	brokers="$("$KAFKA" brokers)"
	printf "export DATABASE_URL='%s'\n" "$db"
	printf "export KAFKA_BROKERS='%s'\n" "$brokers"
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
		cmd_down "$@"
		;;
	status) [[ $# -eq 0 ]] || usage; cmd_status ;;
	env) [[ $# -eq 0 ]] || usage; cmd_env ;;
	*) usage ;;
	esac
}

main "$@"
