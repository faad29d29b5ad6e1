#!/usr/bin/env bash
# Runs a PostgreSQL 15 cluster whose data, socket and log live in one folder,
# with a database and role "parley" (trust auth, loopback only).
#   pg.sh start DIR PORT | stop DIR [fast|immediate] | status DIR | url DIR PORT
set -euo pipefail

bin=/usr/lib/postgresql/15/bin
start_timeout=60

usage() {
	echo "usage: pg.sh start DIR PORT | stop DIR [fast|immediate] | status DIR | url DIR PORT" >&2
	exit 2
}

die() {
	echo "pg: $*" >&2
	exit 1
}

fail_with_log() {
	echo "pg: $1; last lines of $dir/pg.log:" >&2
	tail -n 40 "$dir/pg.log" >&2 || true
	exit 1
}

# PostgreSQL refuses to run as root, so every server command runs as the
# postgres user, from a folder it may enter.
as_postgres() {
	(cd "$dir" && runuser -u postgres -- "$@")
}

# Prints the pid in postmaster.pid if that process still exists and is a
# postgres, alive or a zombie.
postmaster_pid() {
	local pid
	pid=$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null) || return 1
	[ -n "$pid" ] && [ "$(ps -o comm= -p "$pid")" = postgres ] || return 1
	echo "$pid"
}

# Not "pg_ctl status": it counts a killed postmaster that is still a zombie as
# running.
is_running() {
	local pid
	pid=$(postmaster_pid) || return 1
	[[ $(ps -o stat= -p "$pid") != Z* ]]
}

# After a kill -9 the postmaster stays a zombie until init reaps it, and a new
# postmaster refuses to start while that pid exists.
wait_dead_postmaster_gone() {
	local deadline=$((SECONDS + 30))

	while postmaster_pid >/dev/null; do
		[ $SECONDS -lt $deadline ] || die "old postmaster $(postmaster_pid) does not go away"
		sleep 0.1
	done
}

sql() {
	"$bin/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$dir/sock" -p "$port" \
		-U postgres -d postgres -c "$1"
}

# The postgres user must be able to walk down to DIR; a clone under /root
# (mode 700) would not let it. Grant only search permission where missing.
ensure_reachable() {
	local d=$dir
	while [ "$d" != / ]; do
		d=$(dirname "$d")
		if ! runuser -u postgres -- test -x "$d"; then
			echo "pg: granting o+x on $d so that postgres can reach $dir" >&2
			chmod o+x "$d"
		fi
	done
}

init_cluster() {
	[ -f "$dir/data/PG_VERSION" ] && return 0

	as_postgres "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 \
		--locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
		die "initdb failed, see $dir/initdb.log"
	echo "include_if_exists = 'parley.conf'" >>"$dir/data/postgresql.conf"
}

# Settings that depend on the arguments are rewritten at every start into a
# file that postgresql.conf includes last.
write_config() {
	cat >"$dir/data/parley.conf" <<EOF
# Written by deploy/local/pg.sh at every start; edits are lost.
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir/sock'
max_connections = 200
shared_buffers = 32MB
# Acknowledged writes must survive a crash of the server or the machine.
fsync = on
synchronous_commit = on
full_page_writes = on
log_checkpoints = off
EOF
	chown postgres:postgres "$dir/data/parley.conf"
}

ensure_parley_db() {
	if [ -z "$(sql "SELECT 1 FROM pg_roles WHERE rolname = 'parley'")" ]; then
		sql "CREATE ROLE parley LOGIN SUPERUSER"
	fi
	if [ -z "$(sql "SELECT 1 FROM pg_database WHERE datname = 'parley'")" ]; then
		sql "CREATE DATABASE parley OWNER parley"
	fi
}

wait_ready() {
	local deadline=$((SECONDS + start_timeout))

	until "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres; do
		[ $SECONDS -lt $deadline ] || fail_with_log "not ready on 127.0.0.1:$port after ${start_timeout}s"
		sleep 0.2
	done
}

cmd_start() {
	mkdir -p "$dir/sock"
	chown postgres:postgres "$dir" "$dir/sock"
	ensure_reachable
	init_cluster

	if is_running; then
		echo "pg: already running in $dir" >&2
	else
		wait_dead_postmaster_gone
		write_config
		# Keep the previous run's log for a post-mortem; a failure below
		# then shows only lines from this run.
		[ -f "$dir/pg.log" ] && mv "$dir/pg.log" "$dir/pg.log.1"
		as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/pg.log" \
			-w -t "$start_timeout" -s start ||
			fail_with_log "pg_ctl start failed"
	fi
	wait_ready
	ensure_parley_db
	echo "pg: up on 127.0.0.1:$port ($dir)" >&2
}

cmd_stop() {
	local mode=${1:-fast}

	case "$mode" in
	fast | immediate) ;;
	*) usage ;;
	esac
	if ! is_running; then
		echo "pg: not running in $dir" >&2
		return 0
	fi
	as_postgres "$bin/pg_ctl" -D "$dir/data" -m "$mode" -w -t 60 -s stop
	echo "pg: stopped ($mode)" >&2
}

cmd_status() {
	if is_running; then
		echo "pg: running in $dir"
		return 0
	fi
	echo "pg: not running in $dir"
	return 3
}

[ $# -ge 2 ] || usage
dir=$(realpath -m "$2")
case "$1" in
start)
	[ $# -eq 3 ] || usage
	port=$3
	cmd_start
	;;
stop)
	[ $# -le 3 ] || usage
	cmd_stop "${3:-fast}"
	;;
status) cmd_status ;;
url)
	[ $# -eq 3 ] || usage
	echo "host=127.0.0.1 port=$3 dbname=parley user=parley"
	;;
*) usage ;;
esac
