#!/usr/bin/env bash
# Delivery guarantees under faults, short run (CI): two routers, two
# gateways, presence and store serve 8 senders in 4 DM rooms and 6
# listeners while every kind of process is killed with -9 and restarted,
# Kafka is killed and frozen, PostgreSQL restarts in immediate mode, a
# gateway drains on SIGTERM and a router stays dead past the session
# timeout. Passes when every acknowledged message is in history once with
# its acked seq, seqs are dense, no message exists twice and every listener
# printed every message of its rooms once. See tests/fault/README.md.
exec "$(dirname "$0")/../fault/fault.sh" --short "$@"
