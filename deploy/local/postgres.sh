#!/usr/bin/env bash
# Throwaway PostgreSQL cluster for tests, from the machine's PostgreSQL binaries.
#
#   postgres.sh up              start (initdb on first use); no-op if running
#   postgres.sh down [--purge]  stop (pg_ctl -m fast); --purge deletes the cluster
#   postgres.sh status          exit 0 if running and answering, 3 if not
#   postgres.sh url             print the connection URL (with EXO_PG_TLS=on:
#                               sslmode=verify-full and the test CA as sslrootcert)
#
# Environment:
#   EXO_STATE_DIR   state root (default /tmp/exo-alerts); cluster in $EXO_STATE_DIR/pg
#   EXO_PG_PORT     TCP port on 127.0.0.1 (default 55432)
#   EXO_PG_BINDIR   PostgreSQL bin dir (default: pg_config --bindir, else newest
#                   /usr/lib/postgresql/*/bin)
#   EXO_PG_TLS      on: serve TLS only (ssl=on with a test CA and certificate for
#                   127.0.0.1 made by certs.sh in $EXO_STATE_DIR/pg/tls; TCP
#                   connections without TLS are rejected); default off
#
# Listens on 127.0.0.1 only, trust auth, superuser "postgres", tuned for tests
# (fsync/synchronous_commit/full_page_writes off): never use it for real data.
# As root the server runs as the "postgres" OS user (PostgreSQL refuses root).
set -euo pipefail

PROG="$(basename -- "${BASH_SOURCE[0]}")"

STATE_DIR="${EXO_STATE_DIR:-/tmp/exo-alerts}"
PG_PORT="${EXO_PG_PORT:-55432}"
PG_HOST=127.0.0.1
PG_DIR="${STATE_DIR}/pg"
PG_DATA="${PG_DIR}/data"
PG_SOCK="${PG_DIR}/sock"
PG_LOG="${PG_DIR}/postgres.log"
READY_TIMEOUT="${EXO_PG_READY_TIMEOUT:-30}"
PG_OS_USER=postgres
PG_TLS_DIR="${PG_DIR}/tls"
case "${EXO_PG_TLS:-off}" in
on | true | 1) PG_TLS=1 ;;
off | false | 0) PG_TLS=0 ;;
*) printf '%s: error: EXO_PG_TLS=%s is neither on nor off\n' "$(basename -- "${BASH_SOURCE[0]}")" "$EXO_PG_TLS" >&2; exit 2 ;;
esac

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
	cat >&2 <<EOF
usage: $PROG up | down [--purge] | status | url
EOF
	exit 2
}

# The URL is fully determined by the configuration: no binaries needed.
url() {
	if ((PG_TLS)); then
		printf 'postgres://postgres@%s:%s/postgres?sslmode=verify-full&sslrootcert=%s\n' "$PG_HOST" "$PG_PORT" "${PG_TLS_DIR}/ca.crt"
	else
		printf 'postgres://postgres@%s:%s/postgres?sslmode=disable\n' "$PG_HOST" "$PG_PORT"
	fi
}

find_bindir() {
	local dir=""
	if [[ -n "${EXO_PG_BINDIR:-}" ]]; then
		dir="$EXO_PG_BINDIR"
	elif command -v pg_config >/dev/null 2>&1 &&
		dir="$(pg_config --bindir 2>/dev/null)" && [[ -x "$dir/pg_ctl" ]]; then
		:
	else
		dir=""
		local d
		# Newest major version wins (sort -V orders 9.6 < 10 < 15 < 16).
		while IFS= read -r d; do
			[[ -x "$d/pg_ctl" ]] && dir="$d"
		done < <(compgen -G '/usr/lib/postgresql/*/bin' | sort -V)
	fi
	[[ -n "$dir" && -x "$dir/pg_ctl" && -x "$dir/initdb" ]] ||
		die "no PostgreSQL server binaries found (set EXO_PG_BINDIR, or install postgresql)"
	printf '%s\n' "$dir"
}

# Run a server binary as the cluster owner: "postgres" when we are root,
# otherwise the current user.
as_owner() {
	if [[ "$(id -u)" -eq 0 ]]; then
		runuser -u "$PG_OS_USER" -- "$@"
	else
		"$@"
	fi
}

# pg_ctl status: 0 running, 3 not running, 4 no/invalid data dir.
server_running() {
	[[ -f "$PG_DATA/PG_VERSION" ]] || return 1
	as_owner "$BINDIR/pg_ctl" status -D "$PG_DATA" >/dev/null 2>&1
}

server_ready() {
	"$BINDIR/pg_isready" -q -h "$PG_HOST" -p "$PG_PORT" -d postgres -U postgres -t 2 >/dev/null 2>&1
}

# Something (not necessarily our cluster) accepts TCP connections on the port.
port_in_use() {
	# shellcheck disable=SC2016 # expanded by the inner bash
	timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$PG_HOST" "$PG_PORT" 2>/dev/null
}

print_log() {
	if [[ -f "$PG_LOG" ]]; then
		log "---- last 200 lines of $PG_LOG ----"
		tail -n 200 -- "$PG_LOG" >&2 || true
		log "---- end of $PG_LOG ----"
	else
		log "(no server log at $PG_LOG)"
	fi
}

prepare_dirs() {
	if [[ ! -d "$STATE_DIR" ]]; then
		mkdir -p -- "$STATE_DIR"
		chmod 0755 -- "$STATE_DIR"
	fi
	mkdir -p -- "$PG_DIR"
	if [[ "$(id -u)" -eq 0 ]]; then
		id "$PG_OS_USER" >/dev/null 2>&1 || die "running as root but there is no '$PG_OS_USER' OS user to run the server"
		chown "$PG_OS_USER:" -- "$PG_DIR"
		# Directories created by earlier runs (e.g. as another user) must be ours too.
		local p
		for p in "$PG_DATA" "$PG_SOCK" "$PG_LOG"; do
			if [[ -e "$p" ]]; then
				chown -R "$PG_OS_USER:" -- "$p"
			fi
		done
		as_owner test -w "$PG_DIR" ||
			die "user '$PG_OS_USER' cannot write $PG_DIR (is a parent of EXO_STATE_DIR=$STATE_DIR not traversable?)"
	fi
	as_owner mkdir -p -- "$PG_SOCK"
	as_owner chmod 0700 -- "$PG_SOCK"
}

# initdb into a temp dir and rename it into place, so an interrupted initdb
# never leaves something that looks like a cluster.
init_cluster() {
	if [[ -f "$PG_DATA/PG_VERSION" ]]; then
		return 0
	fi
	local tmp="${PG_DIR}/data.initdb.tmp"
	rm -rf -- "$tmp"
	if [[ -e "$PG_DATA" ]]; then
		log "data dir $PG_DATA is not an initialised cluster; recreating it"
		rm -rf -- "$PG_DATA"
	fi
	log "initdb $PG_DATA ($("$BINDIR/postgres" --version))"
	local out
	if ! out="$(as_owner "$BINDIR/initdb" -D "$tmp" -U postgres --auth=trust \
		-E UTF8 --locale=C --no-sync 2>&1)"; then
		printf '%s\n' "$out" >&2
		rm -rf -- "$tmp"
		die "initdb failed"
	fi
	# pg_hba.conf is written by write_config.
	printf "\n# Settings managed by deploy/local/postgres.sh\ninclude 'exo.conf'\n" |
		as_owner tee -a -- "$tmp/postgresql.conf" >/dev/null
	mv -T -- "$tmp" "$PG_DATA"
}

# Rewritten on every start so port/paths follow the current environment.
write_config() {
	local sock_quoted="${PG_SOCK//\'/\'\'}"
	as_owner tee -- "$PG_DATA/exo.conf" >/dev/null <<EOF
# Managed by deploy/local/postgres.sh (rewritten on every 'up'): test settings.
listen_addresses = '127.0.0.1'
port = ${PG_PORT}
unix_socket_directories = '${sock_quoted}'
max_connections = 300
shared_buffers = 128MB
fsync = off
synchronous_commit = off
full_page_writes = off
jit = off
max_wal_size = 1GB
logging_collector = off
log_line_prefix = '%m [%p] '
EOF
	local hba
	if ((PG_TLS)); then
		local tls_quoted="${PG_TLS_DIR//\'/\'\'}"
		as_owner tee -a -- "$PG_DATA/exo.conf" >/dev/null <<EOF
# EXO_PG_TLS=on: TLS with the test certificate of certs.sh.
ssl = on
ssl_cert_file = '${tls_quoted}/server.crt'
ssl_key_file = '${tls_quoted}/server.key'
ssl_min_protocol_version = 'TLSv1.2'
EOF
		hba="hostnossl all       all   127.0.0.1/32   reject
hostssl   all       all   127.0.0.1/32   trust"
	else
		hba="host    all       all   127.0.0.1/32   trust"
	fi
	# Loopback trust only: this cluster is a throwaway that never leaves 127.0.0.1.
	as_owner tee -- "$PG_DATA/pg_hba.conf" >/dev/null <<EOF
# Managed by deploy/local/postgres.sh (rewritten on every 'up'): throwaway test cluster on loopback.
# TYPE  DATABASE  USER  ADDRESS        METHOD
local   all       all                  trust
${hba}
EOF
}

# Serialises up/down on one state dir. The fd is closed for pg_ctl: a
# postmaster inheriting it would hold the lock forever.
LOCK_FD=""
with_state_lock() {
	if [[ ! -d "$STATE_DIR" ]]; then
		mkdir -p -- "$STATE_DIR"
		chmod 0755 -- "$STATE_DIR"
	fi
	mkdir -p -- "$PG_DIR"
	exec {LOCK_FD}>"${PG_DIR}/.lock"
	flock -w 120 "$LOCK_FD" || die "timed out waiting for ${PG_DIR}/.lock (another $PROG running?)"
	"$@"
}

wait_ready() {
	local deadline=$((SECONDS + READY_TIMEOUT)) gone=0
	while ((SECONDS < deadline)); do
		if server_ready; then
			return 0
		fi
		# pg_ctl -W returns before the postmaster has written its pid file, so
		# only call it dead after several consecutive misses (~2s).
		if server_running; then
			gone=0
		elif ((++gone >= 10)); then
			log "server process exited during startup"
			print_log
			exit 1
		fi
		sleep 0.2
	done
	log "server did not become ready on $PG_HOST:$PG_PORT within ${READY_TIMEOUT}s"
	print_log
	if server_running; then
		log "stopping the half-started server"
		as_owner "$BINDIR/pg_ctl" stop -D "$PG_DATA" -m immediate -w -t 30 >/dev/null 2>&1 || true
	fi
	exit 1
}

cmd_up() {
	BINDIR="$(find_bindir)"
	if server_running; then
		if server_ready; then
			log "already running on $PG_HOST:$PG_PORT (data $PG_DATA)"
			return 0
		fi
		log "server process is up but not answering yet; waiting"
		wait_ready
		log "ready on $PG_HOST:$PG_PORT"
		return 0
	fi
	if port_in_use; then
		die "port $PG_HOST:$PG_PORT is already in use by another process (set EXO_PG_PORT)"
	fi
	prepare_dirs
	init_cluster
	if ((PG_TLS)); then
		"$(dirname -- "${BASH_SOURCE[0]}")/certs.sh" "$PG_TLS_DIR"
		if [[ "$(id -u)" -eq 0 ]]; then
			chown -R "$PG_OS_USER:" -- "$PG_TLS_DIR"
		fi
	fi
	write_config
	log "starting PostgreSQL on $PG_HOST:$PG_PORT (log $PG_LOG)"
	local out
	if ! out="$(as_owner "$BINDIR/pg_ctl" start -D "$PG_DATA" -l "$PG_LOG" -W 2>&1 {LOCK_FD}>&-)"; then
		printf '%s\n' "$out" >&2
		print_log
		die "pg_ctl start failed"
	fi
	wait_ready
	log "ready on $PG_HOST:$PG_PORT"
}

cmd_down() {
	local purge=0
	case "${1:-}" in
	"") ;;
	--purge) purge=1 ;;
	*) usage ;;
	esac
	BINDIR="$(find_bindir)"
	if server_running; then
		log "stopping PostgreSQL (data $PG_DATA)"
		if ! as_owner "$BINDIR/pg_ctl" stop -D "$PG_DATA" -m fast -w -t 30 >/dev/null 2>&1; then
			log "fast shutdown did not finish in 30s; using immediate shutdown"
			as_owner "$BINDIR/pg_ctl" stop -D "$PG_DATA" -m immediate -w -t 30 >/dev/null 2>&1 ||
				die "could not stop the server (see $PG_LOG)"
		fi
		log "stopped"
	else
		log "not running"
	fi
	if ((purge)); then
		# Keep the lock file: it is held by this process.
		find "$PG_DIR" -mindepth 1 -maxdepth 1 ! -name .lock -exec rm -rf -- {} +
		log "purged $PG_DIR"
	fi
}

cmd_status() {
	BINDIR="$(find_bindir)"
	if server_running && server_ready; then
		local pid
		pid="$(head -n 1 -- "$PG_DATA/postmaster.pid" 2>/dev/null || echo '?')"
		log "running (pid $pid) on $PG_HOST:$PG_PORT, data $PG_DATA"
		return 0
	fi
	if server_running; then
		log "process running but not answering on $PG_HOST:$PG_PORT (data $PG_DATA)"
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
	url) [[ $# -eq 0 ]] || usage; url ;;
	-h | --help | help) usage ;;
	*) usage ;;
	esac
}

main "$@"
