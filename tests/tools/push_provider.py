#!/usr/bin/env python3
"""A local push provider for integration tests: one HTTP server that plays
FCM (HTTP v1), APNs and a generic webhook, records every request it gets,
and answers as each device token's script says. Standard library only.

    push_provider.py --port P [--secret S]

Provider endpoints (what parley-pusher is pointed at):
    POST /fcm/v1/projects/test/messages:send     FCM HTTP v1 JSON
    POST /apns/3/device/<token>                  APNs JSON + apns-* headers
    POST /webhook                                parley's webhook JSON, checked
                                                 against X-Parley-Signature
Control endpoints (what tests use):
    POST /_script {"token": T, "answers": [A, ...]}
        each request for T takes the next answer; the last one repeats.
        A is "200", "404", "410", "500", "400", "429:S" (429 with
        Retry-After: S), "unregistered" (FCM's 404 UNREGISTERED JSON) or
        "hang" (never answer).
    GET  /_requests    every request so far, oldest first, as JSON:
        {provider, token, status (null while hanging), room_id, seq, badge,
         sender_id, preview, collapse, push_id, auth, sig_ok, t}
    POST /_reset       forget requests and scripts
"""
import argparse
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

LOCK = threading.Lock()
REQUESTS = []
SCRIPTS = {}
STOP = threading.Event()
SECRET = b""

UNREGISTERED = {
    "error": {
        "code": 404,
        "message": "Requested entity was not found.",
        "status": "NOT_FOUND",
        "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                     "errorCode": "UNREGISTERED"}],
    }
}


def next_answer(token):
    with LOCK:
        script = SCRIPTS.get(token)
        if not script:
            return "200"
        return script.pop(0) if len(script) > 1 else script[0]


def parse_fcm(body, headers):
    msg = body["message"]
    data = msg.get("data", {})
    return {
        "token": msg.get("token"),
        "room_id": data.get("room_id"),
        "seq": int(data.get("seq", 0)),
        "badge": int(data.get("badge", 0)),
        "sender_id": data.get("sender_id"),
        "preview": data.get("preview"),
        "collapse": msg.get("android", {}).get("collapse_key"),
        "push_id": data.get("push_id"),
        "title": msg.get("notification", {}).get("title"),
    }


def parse_apns(token, body, headers):
    aps = body.get("aps", {})
    return {
        "token": token,
        "room_id": body.get("room_id"),
        "seq": int(body.get("seq", 0)),
        "badge": int(aps.get("badge", 0)),
        "sender_id": body.get("sender_id"),
        "preview": aps.get("alert", {}).get("body"),
        "collapse": headers.get("apns-collapse-id"),
        "push_id": headers.get("apns-id"),
        "push_type": headers.get("apns-push-type"),
        "topic": headers.get("apns-topic"),
    }


def parse_webhook(raw, body, headers):
    want = "sha256=" + hmac.new(SECRET, raw, hashlib.sha256).hexdigest()
    got = headers.get("X-Parley-Signature", "")
    return {
        "token": body.get("token"),
        "user_id": body.get("user_id"),
        "room_id": body.get("room_id"),
        "seq": int(body.get("seq", 0)),
        "badge": int(body.get("badge", 0)),
        "sender_id": body.get("sender_id"),
        "preview": body.get("preview"),
        "collapse": body.get("collapse_key"),
        "push_id": body.get("push_id"),
        "header_push_id": headers.get("X-Parley-Push-Id"),
        "sig_ok": hmac.compare_digest(want, got),
    }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, body=b"", headers=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def read_body(self):
        n = int(self.headers.get("Content-Length", 0))
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        if self.path == "/_requests":
            with LOCK:
                self.reply(200, list(REQUESTS))
        else:
            self.reply(404, {"error": "no such path"})

    def control(self, raw):
        if self.path == "/_reset":
            with LOCK:
                REQUESTS.clear()
                SCRIPTS.clear()
        elif self.path == "/_script":
            req = json.loads(raw)
            with LOCK:
                SCRIPTS[req["token"]] = list(req["answers"])
        else:
            return self.reply(404, {"error": "no such path"})
        self.reply(200, {"ok": True})

    def parse(self, raw):
        body = json.loads(raw)
        if self.path.startswith("/fcm/"):
            return "fcm", parse_fcm(body, self.headers)
        if self.path.startswith("/apns/3/device/"):
            token = unquote(self.path[len("/apns/3/device/"):])
            return "apns", parse_apns(token, body, self.headers)
        if self.path == "/webhook":
            return "webhook", parse_webhook(raw, body, self.headers)
        return None, None

    def do_POST(self):
        raw = self.read_body()
        if self.path.startswith("/_"):
            return self.control(raw)
        try:
            provider, rec = self.parse(raw)
        except (ValueError, KeyError, TypeError) as e:
            return self.reply(400, {"error": "bad request: %s" % e})
        if provider is None:
            return self.reply(404, {"error": "no such path"})
        rec.update(provider=provider, auth=self.headers.get("Authorization"),
                   t=time.time(), status=None)
        answer = next_answer(rec["token"])
        with LOCK:
            REQUESTS.append(rec)
        if answer == "hang":
            STOP.wait(600)
            self.close_connection = True
            return
        status, body, headers = self.answer(answer)
        with LOCK:
            rec["status"] = status
        self.reply(status, body, headers)

    @staticmethod
    def answer(answer):
        if answer == "unregistered":
            return 404, UNREGISTERED, None
        if answer.startswith("429"):
            after = answer.split(":", 1)[1] if ":" in answer else "1"
            return 429, {"error": "slow down"}, {"Retry-After": after}
        status = int(answer)
        if status == 200:
            return 200, {"name": "projects/test/messages/%d" % time.time_ns()}, None
        return status, {"error": "scripted %d" % status}, None


def main():
    global SECRET
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--secret", default="")
    args = ap.parse_args()
    SECRET = args.secret.encode()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        STOP.set()


if __name__ == "__main__":
    main()
