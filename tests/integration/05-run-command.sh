#!/usr/bin/env bash
# The README's run command (deploy/local/run.sh behind `make run`): brings
# Kafka, PostgreSQL and every parley process up in a var folder, restarts a
# process that dies, stops everything on Ctrl-C, and finds the data intact
# on the next start. Runs on ports shifted by an offset, in the test's folder.
. "$(dirname "$0")/../lib.sh"
lib_init runcmd
root=$(cd "$(dirname "$0")/../.." && pwd)
export PARLEY_PORT_OFFSET=11000 PARLEY_VAR=$T/var
gw1=$((8080 + PARLEY_PORT_OFFSET))
gw2=$((8081 + PARLEY_PORT_OFFSET))
router_http=$((9201 + PARLEY_PORT_OFFSET))
unset PARLEY_TOPIC PARLEY_PG PARLEY_STORE_GROUP PARLEY_ROUTER_GROUP PARLEY_HTTP_PORT

up() {
	setsid "$root/deploy/local/run.sh" >>"$T/run$1.log" 2>&1 &
	echo $! >"$T/runcmd.pid"
	wait_file_line "$T/run$1.log" "parley is up" 150
}

down() {
	local pid
	pid=$(cat "$T/runcmd.pid")
	# SIGTERM: a background script ignores SIGINT (bash never traps a
	# signal ignored on entry); run.sh handles both the same way.
	kill -TERM "$pid"
	for _ in $(seq 600); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	! kill -0 "$pid" 2>/dev/null || fail "run.sh still running 60 s after Ctrl-C"
	rm -f "$T/runcmd.pid"
	sleep 0.5
	! curl -fs "http://127.0.0.1:$gw1/livez" >/dev/null 2>&1 || fail "gateway still up after Ctrl-C"
	! pgrep -f "$T/var/kafka" >/dev/null || fail "Kafka still running after Ctrl-C"
	! pgrep -f "$T/var/pg" >/dev/null || fail "PostgreSQL still running after Ctrl-C"
}

listener_pid() { # the pid listening on a TCP port
	ss -Hltnp "sport = :$1" | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -n 1
}

make -C "$root" --no-print-directory -s web BUILD="${PARLEY_BUILD:-build}" >/dev/null
up 1
# The demo page and its dev tokens (make run turns them on).
curl -fs "http://127.0.0.1:$gw1/" | grep -q "parley demo" || fail "no demo page at /"
curl -fs "http://127.0.0.1:$gw1/dev/token?user=alice" | grep -q '"token"' ||
	fail "no dev token at /dev/token"
for i in 1 2 3; do
	parley send --url "ws://127.0.0.1:$gw1/" --as alice dm:alice:bob "kept $i" >/dev/null ||
		fail "send $i on the run command's stack"
done

# A router that dies is restarted by the supervisor.
old=$(listener_pid $router_http)
[ -n "$old" ] || fail "no router on $router_http"
kill -KILL "$old"
for _ in $(seq 100); do
	new=$(listener_pid $router_http)
	[ -n "$new" ] && [ "$new" != "$old" ] && break
	sleep 0.1
done
[ -n "$new" ] && [ "$new" != "$old" ] || fail "router was not restarted"
grep -q "router1 exited" "$T/run1.log" || fail "supervisor did not report the restart"
echo "router restarted by the supervisor ($old -> $new)"

down
echo "Ctrl-C stopped everything"
up 2
for _ in $(seq 100); do
	parley history --url "ws://127.0.0.1:$gw2/" --as bob dm:alice:bob >"$T/history.out" 2>/dev/null || true
	[ "$(wc -l <"$T/history.out")" -ge 3 ] && break
	sleep 0.2
done
[ "$(json_field "$T/history.out" body | tr '\n' '|')" = "kept 1|kept 2|kept 3|" ] ||
	fail "history after restart: $(cat "$T/history.out")"
echo "second start found the data intact"
down
echo ok
