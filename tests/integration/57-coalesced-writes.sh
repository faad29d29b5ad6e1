#!/usr/bin/env bash
# Write coalescing: frames queued for one WebSocket client go out several
# per write, each still a whole RFC 6455 frame (FIN, binary, unmasked,
# right length), in order, none lost or doubled — for bodies from a few
# bytes to 64 KiB (a 4-byte length header, and frames too big to share a
# write). Phase 1: bob reads as fast as he can (frames that came in one
# drain of the gateway's inbox share a write). Phase 2: bob stops reading
# with a small receive buffer while alice sends, so his frames queue and
# go out together once he reads again.
. "$(dirname "$0")/../lib.sh"
lib_init coalesce
export PARLEY_SEND_BURST=400
start_stack

coalesced() {
	curl -fs "http://127.0.0.1:$GW_PORT_1/metrics" |
		awk '$1 == "parley_gateway_writes_coalesced_total" {v = $2} END {print v + 0}'
}

phase() { # phase NAME STALL_S
	python3 - "$TOOLS" "$GW_PORT_1" "$GW_PORT_2" "$(parley token alice)" \
		"$(parley token bob)" "$1" "$2" <<'PY'
import json, os, socket, sys, time
sys.path.insert(0, sys.argv[1])
from wsclient import Conn, pb_send, pb_fields
gw1, gw2, alice_tok, bob_tok, name, stall = (int(sys.argv[2]), int(sys.argv[3]),
    sys.argv[4], sys.argv[5], sys.argv[6], float(sys.argv[7]))
n = 150

def body(i):
    if i == 75:
        return "m%d " % i + "x" * (65536 - 8)  # a frame over 64 KiB
    if i % 30 == 0:
        return "m%d " % i + "y" * 40000  # two of these never share a write
    return "m%d " % i + "z" * ((i * 37) % 3000)  # 2- and 4-byte headers

def frame(c, deadline):
    """One server frame, strictly: FIN set, no RSV bits, not masked."""
    c._need(2, deadline)
    b0, b1 = c.buf[0], c.buf[1]
    assert b1 & 0x80 == 0, "masked server frame"
    opcode, ln = b0 & 0x0F, b1 & 0x7F
    assert b0 & 0x80 and not b0 & 0x70, f"bad first byte {b0:#x}"
    op, payload = c.recv_frame(deadline)
    assert op == opcode
    return op, payload, ln

# bob on gateway 1 (the one measured); alice sends through gateway 2.
bob = Conn(gw1, "/?token=" + bob_tok, rcvbuf=4096 if stall else 0)
alice = Conn(gw2, "/?token=" + alice_tok)
deadline = time.time() + 20
for c in (bob, alice):
    op, p, _ = frame(c, deadline)
    assert 10 in pb_fields(p), "no Welcome"
for i in range(1, n + 1):
    alice.send_frame(2, pb_send(i, "dm:alice:bob", body(i), f"{name}-{i}"))
acks = {}
while len(acks) < n:
    op, p, _ = frame(alice, time.time() + 30)
    f = pb_fields(p)
    if 11 in f:
        acks[f[1][0]] = pb_fields(f[11][0]).get(3, [0])[0]
    assert 19 not in f, f"error frame: {p!r}"
if stall:
    time.sleep(stall)
got, lens = [], set()
deadline = time.time() + 30
while len(got) < n:
    op, p, ln = frame(bob, deadline)
    assert op == 2, f"opcode {op}"
    f = pb_fields(p)
    if 12 in f:
        m = pb_fields(f[12][0])
        got.append((m[2][0], m[5][0].decode()))
        lens.add(ln)
seqs = [s for s, _ in got]
assert seqs == sorted(acks.values()), "bob's seqs differ from alice's acks"
assert seqs == list(range(seqs[0], seqs[0] + n)), f"not dense: {seqs[:5]}..."
assert [b for _, b in got] == [body(i) for i in range(1, n + 1)], "bodies"
assert min(lens) < 126 and 126 in lens and 127 in lens, lens
print(f"{name}: bob got all {n} messages once, in order, intact "
      "(7-bit, 16-bit and 64-bit lengths)")
PY
}

c0=$(coalesced)
phase live 0 || fail "phase 1 (bob reading)"
c1=$(coalesced)
phase stalled 3 || fail "phase 2 (bob stalled)"
c2=$(coalesced)
echo "coalesced writes to bob: reading $((c1 - c0)), after a stall $((c2 - c1))"
[ "$((c2 - c1))" -gt 0 ] || fail "a stalled reader's queue went out one frame per write"
echo ok
