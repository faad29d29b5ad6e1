#!/usr/bin/env bash
# Bad input is answered with a documented close or error code while the
# gateway goes on serving a well-behaved client: bad signature, expired token,
# no token within 10 s, a frame that is not a ClientFrame, a text frame, and a
# send to a DM room of two other users.
. "$(dirname "$0")/../lib.sh"
lib_init badinput
start_stack
port=$GW_PORT_1

mint() { # mint SUB EXP SECRET
	python3 - "$@" <<'PY'
import base64, hashlib, hmac, json, sys
b = lambda d: base64.urlsafe_b64encode(d).rstrip(b"=").decode()
h = b(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
p = b(json.dumps({"sub": sys.argv[1], "exp": int(sys.argv[2])}).encode())
s = b(hmac.new(sys.argv[3].encode(), f"{h}.{p}".encode(), hashlib.sha256).digest())
print(f"{h}.{p}.{s}")
PY
}
now=$(date +%s)
good=$(mint carol $((now + 600)) "$PARLEY_JWT_SECRET")

# The well-behaved pair chats in the background during all of it.
PARLEY_URL=$(url 1) parley listen --as bob --count 2 --timeout 60 \
	>"$T/bob.out" 2>"$T/bob.err" &
listener=$!
wait_file_line "$T/bob.err" listening 20
PARLEY_URL=$(url 1) parley send --as alice dm:alice:bob "before" >/dev/null

# No token at all: closed with 4003 after the 10 s default deadline.
wsclient probe --port "$port" --wait 14 >"$T/silent.json" &
silent=$!

check() { # check NAME FIELD WANT (json from $T/NAME.json)
	local got
	got=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2]))' "$T/$1.json" "$2")
	[ "$got" = "$3" ] || fail "$1: $2 is $got, want $3 ($(cat "$T/$1.json"))"
	echo "$1: $2 = $got"
}

wsclient probe --port "$port" --token "$(mint carol $((now + 600)) wrong-secret-wrong-secret)" >"$T/badsig.json"
check badsig close_code 4001
wsclient probe --port "$port" --token "$(mint carol $((now - 60)) "$PARLEY_JWT_SECRET")" >"$T/expired.json"
check expired close_code 4002
wsclient probe --port "$port" --auth "garbage.token.here" >"$T/badauth.json"
check badauth close_code 4001
wsclient probe --port "$port" --token "$good" --send-raw ffffffffff0102 >"$T/notpb.json"
check notpb close_code 4004
wsclient probe --port "$port" --token "$good" --send-text hello >"$T/text.json"
check text close_code 4004
wsclient probe --port "$port" --token "$good" --send dm:alice:bob "sneaky" --wait 2 >"$T/foreign.json"
python3 - "$T/foreign.json" <<'PY' || fail "send to a foreign DM: $(cat "$T/foreign.json")"
import json, sys
r = json.load(open(sys.argv[1]))
errs = [f for f in r["frames"] if f["type"] == "error"]
assert r["close_code"] is None, "connection must stay open"
assert errs and errs[0]["code"] == 3 and not errs[0]["retryable"], r
print("foreign DM send: Error FORBIDDEN, connection open")
PY
# Auth by first frame works too.
wsclient probe --port "$port" --auth "$good" --wait 1 >"$T/authframe.json"
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["frames"][0]["type"]=="welcome", r' \
	"$T/authframe.json" || fail "Auth frame: $(cat "$T/authframe.json")"

wait "$silent"
check silent close_code 4003

# The good client was served all along, and still is.
PARLEY_URL=$(url 1) parley send --as alice dm:alice:bob "after" >/dev/null
wait "$listener" || fail "bob's listener: exit $?"
# Only messages: listen also prints presence and receipt events.
grep '"type":"message"' "$T/bob.out" >"$T/bob.msgs" || true
[ "$(json_field "$T/bob.msgs" body | tr '\n' ' ')" = "before after " ] ||
	fail "bob got: $(cat "$T/bob.out")"
kill -0 "$(cat "$T/gateway1.pid")" || fail "gateway died"
echo "ok"
