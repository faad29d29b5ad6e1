#!/usr/bin/env bash
# Runs a single-node Apache Kafka (KRaft, broker and controller in one JVM) whose
# config, data and log live in one folder. The jars come from deps.sh.
#   kafka.sh start DIR PORT CONTROLLER_PORT | stop DIR | status DIR
set -euo pipefail

cache=${PARLEY_CACHE:-$HOME/.cache/parley}
libs="$cache/kafka/libs"
start_timeout=90
stop_timeout=30

usage() {
	echo "usage: kafka.sh start DIR PORT CONTROLLER_PORT | stop DIR | status DIR" >&2
	exit 2
}

die() {
	echo "kafka: $*" >&2
	exit 1
}

# Prints the broker's pid if DIR/kafka.pid names a live Kafka JVM; a pid file
# left by a killed broker, or a pid the kernel has since reused, does not count.
running_pid() {
	local pid cmdline
	pid=$(cat "$dir/kafka.pid" 2>/dev/null) || return 1
	[ -n "$pid" ] || return 1
	cmdline=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
	[[ $cmdline == *" kafka.Kafka "* ]] || return 1
	echo "$pid"
}

port_open() {
	timeout 1 bash -c ": </dev/tcp/127.0.0.1/$1" 2>/dev/null
}

write_config() {
	cat >"$dir/server.properties" <<EOF
# Written by deploy/local/kafka.sh at every start; edits are lost.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs=$dir/data

# One node: every replication factor and ISR is 1.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
min.insync.replicas=1
default.replication.factor=1

# Topics are created on purpose, never by a typo in a client.
num.partitions=8
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0

# Small and quick: fewer threads, small internal topics and segments, and a
# log cleaner buffer of 8 MiB instead of 128 MiB.
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=2
background.threads=4
offsets.topic.num.partitions=8
transaction.state.log.num.partitions=4
log.segment.bytes=67108864

# The largest record batch a topic takes, as the clients' limits
# (KAFKA_MESSAGE_MAX in common/kafka.h: 2 MiB).
message.max.bytes=2097152
log.cleaner.dedupe.buffer.size=8388608
log.cleaner.threads=1

# After a kill -9 the controller refuses the restarted broker until the old
# session expires (9 s by default); shorter sessions make that restart quick.
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=3000
EOF

	# Kafka's INFO chatter is hundreds of lines per start; keep warnings and
	# the lines that say the server has started or shut down.
	cat >"$dir/log4j.properties" <<'EOF'
log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaRaftServer=INFO
EOF
}

# Formats DIR/data once, with a cluster id made once and kept in DIR/cluster.id;
# a folder that holds data from an earlier run is left as it is.
format_storage() {
	[ -f "$dir/data/meta.properties" ] && return 0

	if [ ! -s "$dir/cluster.id" ]; then
		java -Dlog4j.configuration="file:$dir/log4j.properties" -cp "$libs/*" \
			kafka.tools.StorageTool random-uuid >"$dir/cluster.id.tmp"
		mv "$dir/cluster.id.tmp" "$dir/cluster.id"
	fi
	java -Dlog4j.configuration="file:$dir/log4j.properties" -cp "$libs/*" \
		kafka.tools.StorageTool format -t "$(cat "$dir/cluster.id")" \
		-c "$dir/server.properties" >>"$dir/kafka.log" 2>&1 ||
		fail_with_log "formatting $dir/data failed"
}

fail_with_log() {
	echo "kafka: $1; last lines of $dir/kafka.log:" >&2
	tail -n 40 "$dir/kafka.log" >&2
	exit 1
}

# True while process $1 exists and is not a zombie. Used right after the
# fork, when the child may not have exec'd java yet, so running_pid would not
# recognise it; a broker that died is our zombie until this script exits.
alive() {
	local state
	state=$(ps -o stat= -p "$1") && [[ $state != Z* ]]
}

# Waits until the broker accepts connections and has logged that it started.
wait_started() {
	local pid=$1
	local deadline=$((SECONDS + start_timeout))

	while [ $SECONDS -lt $deadline ]; do
		alive "$pid" || fail_with_log "broker exited during start"
		if port_open "$port" && grep -q 'Kafka Server started' "$dir/kafka.log"; then
			return 0
		fi
		sleep 0.2
	done
	fail_with_log "broker not up on 127.0.0.1:$port after ${start_timeout}s"
}

cmd_start() {
	local pid

	[ -d "$libs" ] || die "no jars in $libs: run deploy/local/deps.sh first"
	if pid=$(running_pid); then
		echo "kafka: already running (pid $pid) in $dir" >&2
		return 0
	fi
	port_open "$port" && die "port $port is taken by another process"
	port_open "$controller_port" && die "port $controller_port is taken by another process"

	mkdir -p "$dir"
	write_config
	# Keep the previous run's log for a post-mortem; the wait below then
	# only sees lines from this run.
	[ -f "$dir/kafka.log" ] && mv "$dir/kafka.log" "$dir/kafka.log.1"
	: >"$dir/kafka.log"
	format_storage

	# setsid: a Ctrl-C meant for the caller does not reach the broker, which
	# is stopped with "kafka.sh stop" in the order the caller chooses.
	setsid java -Xms256m -Xmx768m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
		-Djava.awt.headless=true \
		-Dlog4j.configuration="file:$dir/log4j.properties" \
		-cp "$libs/*" kafka.Kafka "$dir/server.properties" \
		>>"$dir/kafka.log" 2>&1 </dev/null &
	pid=$!
	echo "$pid" >"$dir/kafka.pid"

	wait_started "$pid"
	echo "kafka: up on 127.0.0.1:$port (pid $pid, $dir)" >&2
}

cmd_stop() {
	local pid deadline

	if ! pid=$(running_pid); then
		rm -f "$dir/kafka.pid"
		echo "kafka: not running in $dir" >&2
		return 0
	fi

	kill -TERM "$pid"
	deadline=$((SECONDS + stop_timeout))
	while running_pid >/dev/null && [ $SECONDS -lt $deadline ]; do
		sleep 0.2
	done
	if running_pid >/dev/null; then
		echo "kafka: still running ${stop_timeout}s after SIGTERM, sending SIGKILL" >&2
		kill -KILL "$pid"
		deadline=$((SECONDS + 10))
		while running_pid >/dev/null && [ $SECONDS -lt $deadline ]; do
			sleep 0.1
		done
	fi
	rm -f "$dir/kafka.pid"
	echo "kafka: stopped (pid $pid)" >&2
}

cmd_status() {
	local pid

	if pid=$(running_pid); then
		echo "kafka: running (pid $pid) in $dir"
		return 0
	fi
	echo "kafka: not running in $dir"
	return 3
}

[ $# -ge 2 ] || usage
dir=$(realpath -m "$2")
case "$1" in
start)
	[ $# -eq 4 ] || usage
	port=$3
	controller_port=$4
	cmd_start
	;;
stop) cmd_stop ;;
status) cmd_status ;;
*) usage ;;
esac
