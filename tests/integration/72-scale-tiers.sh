#!/usr/bin/env bash
# Scaling under traffic (issue 9): while 8 senders and 6 listeners run, a
# third router joins (partitions rebalance), a second store joins the
# store's consumer group (partitions split between the two, each batch
# fenced by the offsets in PostgreSQL), a third gateway joins, then router1
# stops, gateway1 drains and stops, store2 stops (SIGTERM each, as
# Kubernetes scales down) and router1 comes back. Passes when every
# acknowledged message is in history once with its acked seq, seqs are
# dense, nothing is duplicated, every listener saw every message of its
# rooms, and every stopped process exited 0. See tests/fault/README.md.
exec "$(dirname "$0")/../fault/fault.sh" --scale "$@"
