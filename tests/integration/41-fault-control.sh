#!/usr/bin/env bash
# Control run of the fault checker. First on made-up data (every kind of
# loss and duplicate must be named), then for real: one router is
# SIGSTOPped for 8 s while senders send, so their sends time out and are
# retried through the other gateway. With client-side idempotence off
# (parley send --unsafe-new-id-per-attempt) the checker must find
# duplicate messages; the same scenario with normal ids must show none
# (and retries must have happened). See tests/fault/README.md.
set -euo pipefail
here=$(dirname "$0")
python3 "$here/../fault/harness.py" --self-test
"$here/../fault/fault.sh" --control --unsafe --tag unsafe- "$@"
"$here/../fault/fault.sh" --control --tag safe- "$@"
