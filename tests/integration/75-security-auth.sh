#!/usr/bin/env bash
# Auth attacks against real gateways: expired, tampered, alg none, wrong
# key type, algorithm confusion (HS256 signed with the RSA public key),
# wrong audience, wrong issuer, not yet valid, and revoked (parley revoke,
# on a live session and at connect, on every gateway). Each is refused with
# its documented close code, and the CLI given such a token exits 4 at
# once instead of reconnecting in a loop.
. "$(dirname "$0")/../lib.sh"
lib_init secauth
export PARLEY_JWT_AUDIENCE=parley-test PARLEY_JWT_ISSUER=https://id.parley.test

openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$T/rsa.key" 2>/dev/null
openssl pkey -in "$T/rsa.key" -pubout -out "$T/rsa.pub"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/ec.key" 2>/dev/null

start_presence
start_store
start_router 1
start_gateway 1 # HS256, audience and issuer checked
PARLEY_JWT_ALG=RS256 PARLEY_JWT_PUBLIC_KEY=$T/rsa.pub start_gateway 2
hs=$GW_PORT_1 rs=$GW_PORT_2

# probe NAME PORT TOKEN WANT: the connection's close code must be WANT
# (welcome: a Welcome arrived and the connection stayed open).
probe() {
	wsclient probe --port "$2" --token "$3" --wait 2 >"$T/$1.json"
	python3 - "$T/$1.json" "$4" "$1" <<'PY' || fail "$1: $(cat "$T/$1.json")"
import json, sys
r, want, name = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
if want == "welcome":
    assert r["close_code"] is None and r["frames"] and r["frames"][0]["type"] == "welcome", r
else:
    assert str(r["close_code"]) == want, r
print(f"{name}: {want}")
PY
}

# nologin NAME PORT TOKEN: `parley listen` and `parley send` with TOKEN
# exit 4 within 5 s, without a reconnect attempt.
nologin() {
	local t0 rc
	t0=$(date +%s)
	rc=0
	timeout 30 parley listen --token "$3" --url "ws://127.0.0.1:$2/" --timeout 20 \
		>"$T/$1.listen.out" 2>"$T/$1.listen.err" || rc=$?
	[ "$rc" = 4 ] || fail "$1: listen exit $rc, want 4 ($(cat "$T/$1.listen.err"))"
	rc=0
	timeout 30 parley send --token "$3" --url "ws://127.0.0.1:$2/" --timeout 20 \
		dm:alice:bob "x" >"$T/$1.send.out" 2>"$T/$1.send.err" || rc=$?
	[ "$rc" = 4 ] || fail "$1: send exit $rc, want 4 ($(cat "$T/$1.send.err"))"
	[ $(($(date +%s) - t0)) -le 5 ] || fail "$1: the CLI took $(($(date +%s) - t0)) s to give up"
	! grep -q "reconnect" "$T/$1.listen.err" || fail "$1: listen reconnected"
	echo "$1: CLI exits 4 at once"
}

# Tokens. The CLI mints aud and iss from the environment.
good=$(parley token alice)
expired=$(parley token alice --offset -7200 --ttl 3600)
wrong_aud=$(parley token alice --aud someone-else)
wrong_iss=$(parley token alice --iss https://evil.example)
no_aud=$(env -u PARLEY_JWT_AUDIENCE parley token alice)
not_yet=$(parley token alice --nbf 600)
rs_good=$(parley token alice --alg RS256 --key "$T/rsa.key")
es_tok=$(parley token alice --alg ES256 --key "$T/ec.key")
# Tampered: the payload says bob, the signature is alice's.
tampered=$(python3 - "$good" <<'PY'
import base64, json, sys
h, p, s = sys.argv[1].split(".")
claims = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
claims["sub"] = "bob"
p2 = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode()).rstrip(b"=").decode()
print(f"{h}.{p2}.{s}")
PY
)
# alg none, and HS256 "signed" with the RSA public key (the confusion).
forge() { # forge ALG KEYFILE|-
	python3 - "$1" "$2" <<'PY'
import base64, hashlib, hmac, json, os, sys, time
b = lambda d: base64.urlsafe_b64encode(d).rstrip(b"=").decode()
now = int(time.time())
h = b(json.dumps({"alg": sys.argv[1], "typ": "JWT"}).encode())
p = b(json.dumps({"sub": "alice", "iat": now, "exp": now + 600,
                  "aud": os.environ["PARLEY_JWT_AUDIENCE"],
                  "iss": os.environ["PARLEY_JWT_ISSUER"]}).encode())
if sys.argv[1] == "none":
    print(f"{h}.{p}.")
else:
    key = open(sys.argv[2], "rb").read()
    print(f"{h}.{p}.{b(hmac.new(key, f'{h}.{p}'.encode(), hashlib.sha256).digest())}")
PY
}
none=$(forge none -)
confused=$(forge HS256 "$T/rsa.pub")

probe good "$hs" "$good" welcome
probe rs_good "$rs" "$rs_good" welcome
probe expired "$hs" "$expired" 4002
probe tampered "$hs" "$tampered" 4001
probe alg_none "$hs" "$none" 4001
probe alg_none_rs "$rs" "$none" 4001
probe wrong_aud "$hs" "$wrong_aud" 4001
probe no_aud "$hs" "$no_aud" 4001
probe wrong_iss "$hs" "$wrong_iss" 4001
probe not_yet "$hs" "$not_yet" 4001
probe rs_on_hs "$hs" "$rs_good" 4001   # wrong key type
probe es_on_rs "$rs" "$es_tok" 4001    # wrong key type
probe hs_on_rs "$rs" "$good" 4001      # HS256 where RS256 is pinned
probe confusion "$rs" "$confused" 4001 # HMAC keyed with the public key

for c in expired tampered none wrong_aud; do
	nologin "cli_$c" "$hs" "${!c}"
done
nologin cli_confusion "$rs" "$confused"

# Revocation. Tokens issued before the epoch (iat a few seconds ago).
old=$(parley token alice --offset -5)
rs_old=$(parley token alice --offset -5 --alg RS256 --key "$T/rsa.key")
PARLEY_URL=$(url 1) parley listen --token "$old" --timeout 60 \
	>"$T/live.out" 2>"$T/live.err" &
live=$!
wait_file_line "$T/live.err" listening 20
PARLEY_URL=$(url 2) parley listen --token "$rs_old" --timeout 60 \
	>"$T/live2.out" 2>"$T/live2.err" &
live2=$!
wait_file_line "$T/live2.err" listening 20
t0=$(date +%s)
parley revoke alice >"$T/revoke.out" || fail "parley revoke: exit $?"
grep -q '"type":"revoked"' "$T/revoke.out" || fail "revoke printed $(cat "$T/revoke.out")"
rc=0
wait "$live" || rc=$?
[ "$rc" = 4 ] || fail "live session of a revoked token: listen exit $rc, want 4 ($(cat "$T/live.err"))"
rc=0
wait "$live2" || rc=$?
[ "$rc" = 4 ] || fail "live RS256 session of a revoked token: listen exit $rc ($(cat "$T/live2.err"))"
[ $(($(date +%s) - t0)) -le 15 ] || fail "revocation took $(($(date +%s) - t0)) s to close live sessions"
! grep -q reconnect "$T/live.err" "$T/live2.err" || fail "listen reconnected after revocation"
echo "revoked: live sessions on both gateways closed, no reconnect"
probe revoked "$hs" "$old" 4006
probe revoked_rs "$rs" "$rs_old" 4006
nologin cli_revoked "$hs" "$old"
# A token issued after the revocation works; bob was not affected.
sleep 1
probe after_revoke "$hs" "$(parley token alice)" welcome
probe bob "$hs" "$(parley token bob --offset -5)" welcome
# A restarted gateway reads the revocation from the topic's beginning.
stop gateway1
start_gateway 1
probe revoked_after_restart "$GW_PORT_1" "$old" 4006
grep -q "PARLEY_JWT_SECRET\|$PARLEY_JWT_SECRET" "$T"/gateway*.log && fail "a gateway log names the secret"
echo ok
