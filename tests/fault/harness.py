#!/usr/bin/env python3
"""Fault harness: real parley processes, real clients, real faults.

Starts presence, store, routers and gateways (two each by default), runs
`parley send` loops in several DM rooms (both directions) and one
`parley listen` per user, and meanwhile kills, freezes and restarts every
part of the system, one fault at a time. At the end it fetches each room's
history and checks that

  * every acknowledged message is in history exactly once, with the seq,
    sender and body of its ack;
  * each room's seqs are 1..n with no gap, and no body appears twice (a
    body is unique per `parley send`, so a repeat is a duplicate message);
  * every message in history was sent by us (no phantoms);
  * every listener printed exactly the (room, seq) set of its rooms'
    history, each once, with the same content.

Any loss or duplicate makes it exit 1 with a report. Driven by
tests/fault/fault.sh, which makes the test's topic, groups and database
(tests/lib.sh) and passes --dir; see tests/fault/README.md.

    harness.py --dir DIR (--short | --long --minutes M | --control [--unsafe])
               [--seed N] [--deadline S]
"""
import argparse
import collections
import json
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
T0 = time.monotonic()


def now():
    return time.monotonic() - T0


def log(msg):
    print(f"[{now():6.1f}s] {msg}", flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Abort(Exception):
    """The run cannot go on (a service does not come back, time is up)."""


# ---------------------------------------------------------------- services

READY_MARK = {
    "presence": b'"presence.start"',
    "store": b'"store.start"',
    "router": b'"router.start"',
}


class Services:
    """The parley processes of one run: $DIR/NAME.log, $DIR/NAME.pid (the
    format tests/lib.sh uses, so its clean-up stops whatever is left)."""

    def __init__(self, d, tag, n_routers, n_gateways, n_stores=1):
        self.dir, self.tag = d, tag
        # store is the one gateways query; store2.. only share the ingest.
        self.store_ports = {n: free_port() for n in range(2, n_stores + 1)}
        self.bin = os.environ["PARLEY_BIN"]
        self.router_ports = {n: free_port() for n in range(1, n_routers + 1)}
        self.gw_ports = {n: (free_port(), free_port())
                         for n in range(1, n_gateways + 1)}
        self.procs = {}      # base name -> Popen
        self.down = set()    # base names we stopped on purpose
        self.crashes = []    # (time, name, rc) of exits we did not cause
        self.restarts = collections.Counter()
        self.spare = set()   # (scale) not started yet; gateways unlisted

    def router_urls(self):
        return ",".join(f"tcp://127.0.0.1:{p}"
                        for p in self.router_ports.values())

    def gateway_urls(self):
        return [f"ws://127.0.0.1:{ws}/" for n, (ws, _) in
                self.gw_ports.items() if f"gateway{n}" not in self.spare]

    def names(self):
        return (["presence", "store"] +
                [f"store{n}" for n in self.store_ports] +
                [f"router{n}" for n in self.router_ports] +
                [f"gateway{n}" for n in self.gw_ports])

    @staticmethod
    def kind(base):
        return base.rstrip("0123456789")

    def path(self, base, ext):
        return os.path.join(self.dir, f"{self.tag}{base}.{ext}")

    def env(self, base):
        env = dict(os.environ)
        kind, n = self.kind(base), base[len(self.kind(base)):]
        if kind == "store" and n:
            env["PARLEY_STORE_LISTEN"] = \
                f"tcp://127.0.0.1:{self.store_ports[int(n)]}"
        elif kind == "router":
            env["PARLEY_ROUTER_LISTEN"] = \
                f"tcp://127.0.0.1:{self.router_ports[int(n)]}"
        elif kind == "gateway":
            ws, nng = self.gw_ports[int(n)]
            env["PARLEY_GATEWAY_PORT"] = str(ws)
            env["PARLEY_GATEWAY_NNG"] = f"tcp://127.0.0.1:{nng}"
            env["PARLEY_ROUTERS"] = self.router_urls()
        return env

    def start(self, base, timeout=90):
        kind = self.kind(base)
        logpath = self.path(base, "log")
        offset = os.path.getsize(logpath) if os.path.exists(logpath) else 0
        with open(logpath, "ab") as out:
            p = subprocess.Popen([os.path.join(self.bin, f"parley-{kind}")],
                                 env=self.env(base), stdout=out,
                                 stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL)
        with open(self.path(base, "pid"), "w") as f:
            f.write(f"{p.pid}\n")
        self.procs[base] = p
        self.down.discard(base)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if p.poll() is not None:
                raise Abort(f"{base} exited with {p.returncode} while "
                            f"starting (see {logpath})")
            if self.ready(base, logpath, offset):
                return
            time.sleep(0.1)
        raise Abort(f"{base} not ready after {timeout} s (see {logpath})")

    def ready(self, base, logpath, offset):
        kind = self.kind(base)
        if kind == "gateway":
            port = self.gw_ports[int(base[len(kind):])][0]
            try:
                with urllib.request.urlopen(
                        f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                    return r.status == 200
            except (urllib.error.URLError, OSError):
                return False
        with open(logpath, "rb") as f:
            f.seek(offset)
            return READY_MARK[kind] in f.read()

    def pid(self, base):
        return self.procs[base].pid

    def stop(self, base, sig=signal.SIGKILL, timeout=30):
        """Signal base and wait for it; returns (exit code, seconds)."""
        p = self.procs[base]
        self.down.add(base)
        t = time.monotonic()
        try:
            p.send_signal(sig)
        except ProcessLookupError:
            pass
        try:
            rc = p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = p.wait()
            log(f"  {base} ignored {signal.Signals(sig).name} for "
                f"{timeout} s: killed")
        try:
            os.unlink(self.path(base, "pid"))
        except FileNotFoundError:
            pass
        return rc, time.monotonic() - t

    def restart(self, base):
        self.start(base)
        self.restarts[base] += 1

    def check_alive(self):
        """Note services that exited without us; restart them so that the
        run goes on (the crash itself is a failure of the run)."""
        for base, p in list(self.procs.items()):
            if base in self.down or p.poll() is None:
                continue
            self.crashes.append((round(now(), 1), base, p.returncode))
            log(f"  !! {base} exited by itself with {p.returncode}; "
                f"restarting it")
            self.down.add(base)
            self.restart(base)

    def stop_all(self):
        for base in reversed(list(self.procs)):
            if base not in self.down:
                self.stop(base, signal.SIGTERM, timeout=20)


# ---------------------------------------------------------------- infra

class Infra:
    """The suite's Kafka broker and PostgreSQL, restarted in place."""

    def __init__(self):
        e = os.environ
        self.kdir = e.get("PARLEY_TEST_KAFKA_DIR")
        self.kport = e.get("PARLEY_TEST_KAFKA_PORT")
        self.kcport = e.get("PARLEY_TEST_KAFKA_CPORT")
        self.pgdir = e.get("PARLEY_TEST_PG_DIR")
        self.pgport = e.get("PARLEY_TEST_PG_PORT")
        self.kafka_stopped = False   # SIGSTOPped by us
        self.kafka_dead = False
        self.pg_dead = False

    def has_kafka(self):
        return bool(self.kdir and self.kport and self.kcport)

    def has_pg(self):
        return bool(self.pgdir and self.pgport)

    def kafka_pid(self):
        with open(os.path.join(self.kdir, "kafka.pid")) as f:
            return int(f.read().strip())

    def script(self, *args, timeout=180):
        t = time.monotonic()
        r = subprocess.run(list(args), cwd=ROOT, capture_output=True,
                           text=True, timeout=timeout)
        if r.returncode != 0:
            raise Abort(f"{' '.join(args)} failed ({r.returncode}): "
                        f"{r.stderr.strip()[-2000:]}")
        return time.monotonic() - t

    def kafka_kill9(self):
        pid = self.kafka_pid()
        os.kill(pid, signal.SIGKILL)
        self.kafka_dead = True
        for _ in range(100):  # the JVM is not our child: poll /proc
            if not os.path.exists(f"/proc/{pid}") or \
                    open(f"/proc/{pid}/stat").read().split()[2] == "Z":
                break
            time.sleep(0.1)

    def kafka_start(self):
        took = self.script("deploy/local/kafka.sh", "start", self.kdir,
                           self.kport, self.kcport)
        self.kafka_dead = False
        return took

    def kafka_signal(self, sig):
        os.kill(self.kafka_pid(), sig)
        self.kafka_stopped = sig == signal.SIGSTOP

    def pg_restart(self):
        self.pg_dead = True
        self.script("deploy/local/pg.sh", "stop", self.pgdir, "immediate")
        took = self.script("deploy/local/pg.sh", "start", self.pgdir,
                           self.pgport)
        self.pg_dead = False
        return took

    def heal(self):
        """Leave the broker and the database running, whatever happened."""
        try:
            if self.kafka_stopped:
                self.kafka_signal(signal.SIGCONT)
            if self.kafka_dead:
                self.kafka_start()
            if self.pg_dead:
                self.script("deploy/local/pg.sh", "start", self.pgdir,
                            self.pgport)
        except Exception as e:  # best effort: report and go on
            log(f"  could not heal the infrastructure: {e}")


# ---------------------------------------------------------------- clients

RETRY_LINES = re.compile(r"retryable error, retrying|attempt via .* failed")
UNSAFE_LINE = re.compile(r"unsafe: attempt \d+ uses new id (\S+)")


class Clients:
    """Sender loops (one thread each, one `parley send` process at a time)
    and one `parley listen` per user."""

    def __init__(self, h):
        self.h = h
        self.parley = os.path.join(os.environ["PARLEY_BIN"], "parley")
        self.lock = threading.Lock()
        self.sends = []
        self.sends_file = open(os.path.join(h.dir, f"{h.tag}sends.jsonl"),
                               "a")
        self.stop_sending = threading.Event()
        self.threads = []
        self.listeners = {}  # user -> (Popen, out path, err path)

    def cli_env(self, rotate):
        urls = self.h.svc.gateway_urls()
        rotate %= len(urls)
        env = dict(os.environ)
        env["PARLEY_URL"] = ",".join(urls[rotate:] + urls[:rotate])
        # Set but empty: the CLI then says on stderr why an attempt failed
        # (so that we can count retries) without libwebsockets' own logs.
        env["PARLEY_DEBUG"] = ""
        return env

    def send(self, user, room, label, rotate, timeout=90):
        h = self.h
        cmid = f"{h.tag}{user}.{label}"
        body = f"{user} to {room}: {label} [{cmid}] run {h.run_id}"
        argv = [self.parley, "send", "--as", user, "--id", cmid,
                "--timeout", str(timeout)]
        if h.args.unsafe:
            argv.append("--unsafe-new-id-per-attempt")
        argv += [room, body]
        t0 = now()
        try:
            r = subprocess.run(argv, env=self.cli_env(rotate),
                               capture_output=True, text=True,
                               timeout=timeout + 30)
            rc, out, err = r.returncode, r.stdout, r.stderr
        except subprocess.TimeoutExpired as e:
            rc, out, err = -9, e.stdout or "", (e.stderr or "") + \
                "harness: parley send did not end; killed"
            if isinstance(out, bytes):
                out, err = out.decode(), err.decode(errors="replace")
        ack = None
        if rc == 0:
            try:
                ack = json.loads(out.strip().splitlines()[-1])
            except (ValueError, IndexError):
                ack = None
                err += f"\nharness: exit 0 without an ack line: {out!r}"
                rc = -1
        failed_attempts = len(RETRY_LINES.findall(err))
        rec = {
            "user": user, "room": room, "label": label, "cmid": cmid,
            "body": body, "rc": rc, "ack": ack, "t0": round(t0, 2),
            "t1": round(now(), 2),
            "retries": failed_attempts if rc == 0 else
            max(0, failed_attempts - 1),
            "unsafe_ids": UNSAFE_LINE.findall(err),
            "stderr": err.strip()[-600:] if (rc != 0 or failed_attempts)
            else "",
        }
        with self.lock:
            self.sends.append(rec)
            self.sends_file.write(json.dumps(rec) + "\n")
            self.sends_file.flush()
        return rec

    def sender(self, user, room, rotate, max_n, pace):
        rng = random.Random(f"{self.h.args.seed}-{user}-{room}")
        for i in range(1, max_n + 1):
            if self.stop_sending.is_set() or self.h.out_of_time():
                return
            self.send(user, room, f"m{i}", rotate)
            time.sleep(pace * rng.uniform(0.5, 1.5))

    def cli(self, args, rotate=0, timeout=60):
        """Run one CLI command with retries until it succeeds or timeout;
        returns its stdout (the membership churn's commands)."""
        end = now() + timeout
        while True:
            r = subprocess.run([self.parley] + args, env=self.cli_env(rotate),
                               capture_output=True, text=True,
                               timeout=timeout + 30)
            if r.returncode == 0 or now() > end:
                return r.returncode, r.stdout
            time.sleep(1)

    def churn(self, room, owner, extra, rotate):
        """Membership changes in the middle of the conversation: a user who
        is no listener is added and removed again, in the room's order with
        the messages, for as long as the senders run."""
        n = 0
        while not self.stop_sending.is_set():
            for verb in ("add", "remove"):
                rc, _ = self.cli(["room", verb, "--as", owner, room, extra,
                                  "--timeout", "90"], rotate)
                if rc == 0:
                    n += 1
            self.stop_sending.wait(3)
        self.churned = n

    def start_churn(self, room, owner, extra):
        self.churned = 0
        t = threading.Thread(target=self.churn, args=(room, owner, extra, 1),
                             name="churn", daemon=True)
        t.start()
        self.threads.append(t)

    def start_senders(self, pairs, max_n, pace):
        for k, (user, room) in enumerate(pairs):
            t = threading.Thread(target=self.sender,
                                 args=(user, room, k, max_n, pace),
                                 name=f"send-{user}-{room}", daemon=True)
            t.start()
            self.threads.append(t)

    def stop_senders(self, timeout):
        self.stop_sending.set()
        end = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.1, end - time.monotonic()))
        return sum(t.is_alive() for t in self.threads)

    def start_listener(self, user, rotate, seconds):
        out = os.path.join(self.h.dir, f"{self.h.tag}listen-{user}.out")
        err = os.path.join(self.h.dir, f"{self.h.tag}listen-{user}.err")
        with open(out, "w") as o, open(err, "w") as e:
            p = subprocess.Popen(
                [self.parley, "listen", "--as", user, "--timeout",
                 str(int(seconds))], env=self.cli_env(rotate), stdout=o,
                stderr=e, stdin=subprocess.DEVNULL)
        self.listeners[user] = (p, out, err)

    def wait_listening(self, timeout=30):
        end = time.monotonic() + timeout
        for user, (p, _, err) in self.listeners.items():
            while "listening" not in open(err).read():
                if p.poll() is not None or time.monotonic() > end:
                    raise Abort(f"listener {user} did not start: "
                                f"{open(err).read()[-500:]}")
                time.sleep(0.1)

    def listener_lines(self, user):
        _, out, _ = self.listeners[user]
        res = []
        with open(out) as f:
            for line in f:
                if line.endswith("\n") and line.strip():
                    try:
                        res.append(json.loads(line))
                    except ValueError:
                        res.append({"type": "unparsable", "line": line})
        return res

    def stop_listeners(self):
        for user, (p, _, _) in self.listeners.items():
            if p.poll() is None:
                p.terminate()
        for user, (p, _, _) in self.listeners.items():
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def history(self, user, room, rotate=0):
        """The room's messages, or None when the request failed."""
        try:
            r = subprocess.run(
                [self.parley, "history", "--as", user, "--timeout", "10",
                 room], env=self.cli_env(rotate), capture_output=True,
                text=True, timeout=60)
        except subprocess.TimeoutExpired:
            return None
        if r.returncode != 0:
            return None
        return [json.loads(line) for line in r.stdout.splitlines()
                if line.strip()]


# ---------------------------------------------------------------- checker

def check(sends, history, members, listened, unsafe):
    """Compare what was acknowledged and listened with history.

    sends: records of Clients.send; history: room -> list of messages;
    members: room -> users; listened: user -> list of printed events (None
    when no listener ran); unsafe: the senders changed ids on retry.
    Returns (problems: {kind: [text]}, counts: dict)."""
    problems = collections.defaultdict(list)
    counts = collections.OrderedDict()
    by_body = {}
    for s in sends:
        by_body[s["body"]] = s

    # History: dense seqs, no repeated body, nothing we did not send.
    hist_by_seq = {}
    stored_bodies = collections.Counter()
    for room, msgs in history.items():
        seqs = [m["seq"] for m in msgs]
        if seqs != list(range(1, len(seqs) + 1)):
            missing = sorted(set(range(1, max(seqs, default=0) + 1)) -
                             set(seqs))
            repeated = [q for q, c in collections.Counter(seqs).items()
                        if c > 1]
            problems["seq not dense"].append(
                f"{room}: {len(seqs)} messages, max seq "
                f"{max(seqs, default=0)}, missing {missing[:20]}, "
                f"repeated {repeated[:20]}")
        bodies = collections.Counter(m["body"] for m in msgs)
        for body, c in bodies.items():
            stored_bodies[body] += c
            if c > 1:
                dups = [(m["seq"], m["client_msg_id"]) for m in msgs
                        if m["body"] == body]
                problems["duplicate message"].append(
                    f"{room}: body {body!r} stored {c} times as "
                    f"(seq, client_msg_id) {dups}")
        for m in msgs:
            hist_by_seq[(room, m["seq"])] = m
            s = by_body.get(m["body"])
            if s is None:
                problems["phantom message"].append(
                    f"{room} seq {m['seq']}: body {m['body']!r} was never "
                    f"sent")
            elif s["room"] != room or m["sender_id"] != s["user"] or \
                    (not unsafe and m["client_msg_id"] != s["cmid"]):
                problems["wrong content"].append(
                    f"{room} seq {m['seq']}: {m} does not match the send "
                    f"{s['user']}/{s['room']}/{s['cmid']}")

    # Every ack: in history once, with the acked seq.
    acked = [s for s in sends if s["ack"]]
    for s in acked:
        a = s["ack"]
        room = s["room"]
        same_id = [m for m in history.get(room, [])
                   if m["client_msg_id"] == a["client_msg_id"]]
        if a["room_id"] != room:
            problems["wrong ack"].append(f"{s['cmid']}: ack {a}")
        if not same_id:
            problems["LOST acknowledged message"].append(
                f"{room} seq {a['seq']} {a['client_msg_id']} "
                f"({s['body']!r}), acked at {s['t1']} s: not in history")
        elif len(same_id) > 1:
            problems["duplicate message"].append(
                f"{room}: acked id {a['client_msg_id']} stored "
                f"{len(same_id)} times at seqs "
                f"{[m['seq'] for m in same_id]}")
        else:
            m = same_id[0]
            if m["seq"] != a["seq"] or m["body"] != s["body"] or \
                    m["sender_id"] != s["user"]:
                problems["ack disagrees with history"].append(
                    f"{room} {a['client_msg_id']}: acked seq {a['seq']}, "
                    f"history has seq {m['seq']} body {m['body']!r} "
                    f"sender {m['sender_id']}")

    # Listeners: each printed exactly its rooms' history, once each.
    delivered = collections.OrderedDict()
    for user, events in listened.items():
        if events is None:
            continue
        rooms = [r for r, us in members.items() if user in us]
        want = {k for k in hist_by_seq if k[0] in rooms}
        msgs = [e for e in events if e.get("type") == "message"]
        seen = collections.Counter((m["room_id"], m["seq"]) for m in msgs)
        delivered[user] = len(msgs)
        twice = sorted(k for k, c in seen.items() if c > 1)
        if twice:
            problems["listener printed a message twice"].append(
                f"{user}: {len(twice)} (room, seq) pairs, e.g. {twice[:10]}")
        missing = sorted(want - set(seen))
        if missing:
            per_room = collections.Counter(r for r, _ in missing)
            problems["listener missed messages"].append(
                f"{user}: {len(missing)} missing ({dict(per_room)}), "
                f"e.g. {missing[:10]}")
        extra = sorted(set(seen) - want)
        if extra:
            problems["listener printed messages not in history"].append(
                f"{user}: {len(extra)}, e.g. {extra[:10]}")
        for m in msgs:
            h = hist_by_seq.get((m["room_id"], m["seq"]))
            if h and (h["body"] != m["body"] or
                      h["client_msg_id"] != m["client_msg_id"] or
                      h["sender_id"] != m["sender_id"]):
                problems["listener saw different content"].append(
                    f"{user}: {m['room_id']} seq {m['seq']}: live "
                    f"{m['body']!r}, history {h['body']!r}")
        bad = [e for e in events if e.get("type") == "unparsable"]
        if bad:
            problems["listener printed unparsable lines"].append(
                f"{user}: {bad[:3]}")

    not_acked = [s for s in sends if not s["ack"]]
    exit_codes = collections.Counter(s["rc"] for s in not_acked)
    counts["send attempts"] = len(sends)
    counts["acked"] = len(acked)
    counts["not acked"] = len(not_acked)
    if not_acked:
        counts["not acked by exit code"] = dict(sorted(exit_codes.items()))
        counts["not acked but stored"] = sum(
            1 for s in not_acked if stored_bodies[s["body"]])
    counts["stored"] = sum(len(m) for m in history.values())
    counts["rooms"] = {r: len(m) for r, m in sorted(history.items())}
    counts["duplicate-suppressed acks"] = sum(
        1 for s in acked if s["ack"].get("duplicate"))
    counts["retries"] = sum(s["retries"] for s in sends)
    counts["sends that retried"] = sum(1 for s in sends if s["retries"])
    if unsafe:
        counts["retries with a new id"] = sum(len(s["unsafe_ids"])
                                              for s in sends)
    counts["duplicate messages in history"] = sum(
        c - 1 for c in stored_bodies.values() if c > 1)
    counts["delivered per listener"] = dict(delivered)
    lat = sorted(s["t1"] - s["t0"] for s in acked)
    if lat:
        counts["ack latency s (p50, p99, max)"] = (
            round(lat[len(lat) // 2], 2),
            round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 2),
            round(lat[-1], 2))
    return problems, counts


def self_test():
    """The checker on made-up data: it must pass a clean run and name each
    kind of loss and duplicate. No services needed."""
    room = "dm:a:b"

    def send(user, i, seq, dup=False):
        cmid = f"{user}.m{i}"
        return {"user": user, "room": room, "cmid": cmid,
                "body": f"{user} says {i}", "rc": 0, "retries": 0,
                "unsafe_ids": [], "t0": 0, "t1": 0,
                "ack": {"type": "ack", "room_id": room, "seq": seq,
                        "client_msg_id": cmid, "duplicate": dup}}

    def msg(s, seq=None):
        return {"type": "message", "room_id": room,
                "seq": seq or s["ack"]["seq"], "sender_id": s["user"],
                "client_msg_id": s["cmid"], "body": s["body"]}

    sends = [send("a", 1, 1), send("b", 1, 2), send("a", 2, 3, dup=True)]
    members = {room: ["a", "b"]}

    def run(history, listened, sends=sends):
        problems, _ = check(sends, {room: history}, members, listened, False)
        return set(problems)

    good = [msg(s) for s in sends]
    cases = [
        ("clean run", good, {"a": good, "b": good}, set()),
        ("acked message lost", [good[0], msg(sends[2], 2)],
         {"a": [good[0], msg(sends[2], 2)], "b": []},
         {"LOST acknowledged message", "ack disagrees with history",
          "listener missed messages"}),
        ("gap in seqs", [good[0], good[2]],
         {"a": [good[0], good[2]], "b": [good[0], good[2]]},
         {"LOST acknowledged message", "seq not dense"}),
        ("a retry stored twice", good + [dict(good[1], seq=4)],
         {"a": good + [dict(good[1], seq=4)],
          "b": good + [dict(good[1], seq=4)]},
         {"duplicate message"}),
        ("listener missed one", good, {"a": good, "b": good[:2]},
         {"listener missed messages"}),
        ("listener printed one twice", good,
         {"a": good, "b": good + [good[1]]},
         {"listener printed a message twice"}),
        ("listener saw other content", good,
         {"a": good, "b": [good[0], dict(good[1], body="x"), good[2]]},
         {"listener saw different content"}),
        ("phantom message",
         good + [dict(good[0], seq=4, body="?", client_msg_id="z")],
         {"a": None, "b": None}, {"phantom message"}),
    ]
    bad = 0
    for name, hist, listened, want in cases:
        got = run(hist, listened)
        ok = got == want
        bad += not ok
        print(f"  {'ok  ' if ok else 'FAIL'} {name}: found {sorted(got)}"
              + ("" if ok else f", want {sorted(want)}"))
    print(f"checker self-test: {len(cases) - bad} passed, {bad} failed")
    return 1 if bad else 0


# ---------------------------------------------------------------- the run

class Harness:
    def __init__(self, args):
        self.args = args
        self.dir = args.dir
        self.tag = args.tag
        self.run_id = f"{int(time.time())}-{os.getpid()}"
        self.rng = random.Random(args.seed)
        self.deadline = args.deadline
        n_gateways, n_stores = 2, 1
        if args.control:
            n_routers, n_users = 1, 4
        elif args.scale:
            # A third router, gateway and a second store join later; every
            # gateway knows every router address from the start, as the
            # Kubernetes manifests list the StatefulSet's names.
            n_routers, n_users, n_gateways, n_stores = 3, 6, 3, 2
        else:
            n_routers, n_users = 2, 6
        self.svc = Services(self.dir, self.tag, n_routers, n_gateways,
                            n_stores)
        if args.scale:
            self.svc.spare = {"router3", "gateway3", "store2"}
        self.infra = Infra()
        self.clients = Clients(self)
        self.users = [f"{self.tag}u{i}" for i in range(1, n_users + 1)]
        u = self.users
        pairs = [(u[0], u[1]), (u[2], u[3])]
        if not args.control:
            pairs += [(u[4], u[5]), (u[0], u[3])]
        self.members = {"dm:" + ":".join(sorted(p)): sorted(p) for p in pairs}
        self.faults_done = []
        self.extra = collections.defaultdict(list)  # problems seen by faults

    def out_of_time(self):
        return now() > self.deadline

    def pause(self, seconds):
        """Sleep, watching the services; stops at the deadline."""
        end = now() + seconds
        while now() < end:
            if self.out_of_time():
                raise Abort(f"out of time ({self.deadline} s)")
            self.svc.check_alive()
            time.sleep(min(1.0, max(0.0, end - now())))

    # ---- faults: each leaves everything running again

    def fault(self, name, fn):
        t0 = now()
        log(f"FAULT {name}")
        note = fn() or ""
        self.faults_done.append({"fault": name, "start": round(t0, 1),
                                 "end": round(now(), 1), "note": note})
        log(f"  back to normal after {now() - t0:.1f} s {note}")

    def kill9(self, base, dead=1.0):
        def run():
            others = [r for r in self.svc.procs if r != base and
                      r.startswith("router") and r not in self.svc.down]
            marks = {r: os.path.getsize(self.svc.path(r, "log"))
                     for r in others} if base.startswith("router") else {}
            t = time.monotonic()
            self.svc.stop(base, signal.SIGKILL)
            note = ""
            if dead >= 10 and marks:
                took = self.wait_takeover(marks, t, dead)
                note = (f", takeover by the other router after {took:.1f} s"
                        if took is not None else
                        f", NO takeover by the other router in {dead} s")
            time.sleep(max(0, dead - (time.monotonic() - t)))
            self.svc.restart(base)
            return f"(down {dead:.0f} s{note})"
        return run

    def wait_takeover(self, marks, t, limit):
        """Seconds from t until a surviving router logs a new partition
        assignment, or None."""
        while time.monotonic() - t < limit:
            for r, off in marks.items():
                with open(self.svc.path(r, "log"), "rb") as f:
                    f.seek(off)
                    if b'"router.assign"' in f.read():
                        return time.monotonic() - t
            time.sleep(0.2)
        return None

    def drain_probe(self, base):
        """A raw WebSocket session on gateway base that waits for its close
        frame; returns (thread, result dict with "code")."""
        sys.path.insert(0, os.path.join(ROOT, "tests", "tools"))
        import wsclient  # noqa: E402 (the tests' raw WebSocket client)
        result = {}
        token = subprocess.run(
            [self.clients.parley, "token", f"{self.tag}probe"],
            capture_output=True, text=True, check=True).stdout.strip()
        port = self.svc.gw_ports[int(base[len("gateway"):])][0]
        c = wsclient.Conn(port, "/?token=" + token)
        if c.status != 101:
            result["error"] = f"HTTP {c.status}"
            return None, result
        c.recv_frame(time.time() + 10)  # the Welcome

        def read():
            deadline = time.time() + 40
            try:
                while time.time() < deadline:
                    op, payload = c.recv_frame(deadline)
                    if op == 8:
                        result["code"] = struct.unpack(
                            "!H", payload[:2])[0] if len(payload) >= 2 \
                            else 1005
                        return
            except Exception as e:  # eof, timeout: no close frame
                result["error"] = repr(e)
        t = threading.Thread(target=read, daemon=True)
        t.start()
        return t, result

    def gateway_term(self, base):
        def run():
            try:
                probe, closed = self.drain_probe(base)
            except Exception as e:
                probe, closed = None, {"error": repr(e)}
            rc, took = self.svc.stop(base, signal.SIGTERM, timeout=30)
            if probe:
                probe.join(5)
            drained = b'"gateway.drained"' in open(
                self.svc.path(base, "log"), "rb").read()
            note = (f"(exit {rc} after {took:.1f} s, "
                    f"{'drained' if drained else 'NO drain log line'}, "
                    f"a client saw close {closed.get('code')}"
                    f"{' ' + closed['error'] if 'error' in closed else ''})")
            if closed.get("code") != 1001:
                self.extra["gateway drain"].append(
                    f"{base}: a connected client got close code "
                    f"{closed.get('code')} {closed.get('error', '')}, "
                    f"want 1001")
            if rc != 0:
                self.extra["gateway drain"].append(
                    f"{base}: exit code {rc} after SIGTERM, want 0")
            time.sleep(1)
            self.svc.restart(base)
            return note
        return run

    def kafka_kill9(self, dead=10):
        def run():
            self.infra.kafka_kill9()
            time.sleep(dead)
            took = self.infra.kafka_start()
            return f"(dead {dead} s, start took {took:.1f} s)"
        return run

    def kafka_freeze(self, frozen=20):
        def run():
            self.infra.kafka_signal(signal.SIGSTOP)
            time.sleep(frozen)
            self.infra.kafka_signal(signal.SIGCONT)
            return f"(frozen {frozen} s)"
        return run

    def pg_restart(self):
        def run():
            took = self.infra.pg_restart()
            return f"(stop immediate + start took {took:.1f} s)"
        return run

    def fault_menu(self):
        """(name, fn) of every fault, some per instance."""
        m = []
        for base in self.svc.names():
            m.append((f"kill -9 {base}, restart", self.kill9(base)))
        if self.infra.has_kafka():
            m.append(("kill -9 Kafka, restart after 10 s", self.kafka_kill9()))
            m.append(("SIGSTOP Kafka 20 s, SIGCONT", self.kafka_freeze()))
        if self.infra.has_pg():
            m.append(("PostgreSQL stop immediate, start", self.pg_restart()))
        for n in self.svc.gw_ports:
            m.append((f"SIGTERM gateway{n} (drain), restart",
                      self.gateway_term(f"gateway{n}")))
        for n in self.svc.router_ports:
            if len(self.svc.router_ports) > 1:
                m.append((f"kill -9 router{n}, dead 15 s, restart",
                          self.kill9(f"router{n}", dead=15)))
        return m

    def short_list(self):
        menu = dict(self.fault_menu())
        names = ["kill -9 router1, restart",
                 "kill -9 gateway1, restart",
                 "kill -9 store, restart",
                 "kill -9 presence, restart",
                 "kill -9 Kafka, restart after 10 s",
                 "SIGSTOP Kafka 20 s, SIGCONT",
                 "PostgreSQL stop immediate, start",
                 "SIGTERM gateway2 (drain), restart",
                 "kill -9 router2, dead 15 s, restart"]
        missing = [n for n in names if n not in menu]
        if missing:
            log(f"skipping (no broker/database to restart): {missing}")
        return [(n, menu[n]) for n in names if n in menu and
                (not self.args.only or self.args.only in n)]

    # ---- phases

    def start(self):
        log(f"starting presence, store, "
            f"{len(self.svc.router_ports) - len(self.svc.spare & {'router3'})} "
            f"router(s), "
            f"{len(self.svc.gw_ports) - len(self.svc.spare & {'gateway3'})} "
            f"gateways "
            f"(topic {os.environ.get('PARLEY_TOPIC')})")
        for base in self.svc.names():
            if base not in self.svc.spare:
                self.svc.start(base)
        listen_s = self.deadline + 60
        for k, user in enumerate(self.users):
            self.clients.start_listener(user, k + 1, listen_s)
        self.clients.wait_listening()
        pairs = []
        for room, (a, b) in self.members.items():
            pairs += [(a, room), (b, room)]
        group = None if self.args.control else self.make_group()
        if group:
            pairs += [(self.users[0], group), (self.users[4], group)]
        log(f"{len(self.users)} listeners up; {len(pairs)} senders in "
            f"{len(self.members)} rooms: {', '.join(self.members)}")
        self.clients.start_senders(pairs, self.args.max_per_sender,
                                   self.args.pace)
        if group:
            self.clients.start_churn(group, self.users[0],
                                     f"{self.tag}churner")

    def make_group(self):
        """A group of three listeners; its membership changes all along."""
        u = self.users
        rc, out = self.clients.cli(["room", "create", "--as", u[0], "--name",
                                    "fault", u[2], u[4]])
        if rc != 0:
            raise Abort("cannot create the group room")
        room = json.loads(out)["room_id"]
        self.members[room] = sorted([u[0], u[2], u[4]])
        return room

    def run_faults(self):
        a = self.args
        if a.scale:
            self.pause(a.first)
            for i, (name, fn) in enumerate(self.scale_list()):
                if i:
                    self.pause(self.rng.uniform(a.gap_min, a.gap_max))
                self.fault(name, fn)
            self.pause(a.first)
        elif a.control:
            self.pause(5)
            self.fault(f"SIGSTOP router1 {a.freeze} s, SIGCONT",
                       self.freeze_router(a.freeze))
            self.pause(6)
        elif a.short:
            self.pause(a.first)
            for i, (name, fn) in enumerate(self.short_list()):
                if i:
                    self.pause(self.rng.uniform(a.gap_min, a.gap_max))
                self.fault(name, fn)
            self.pause(a.first)
        else:
            menu = self.fault_menu()
            end = a.minutes * 60
            self.pause(a.first)
            while now() < end - 30:
                name, fn = self.rng.choice(menu)
                self.fault(name, fn)
                self.pause(min(self.rng.uniform(a.gap_min, a.gap_max),
                               max(0, end - now())))

    # ---- scaling (--scale): each step changes one tier's size for good

    # A log line saying the process got partitions (a store's count > 0).
    OWNS = {"router": re.compile(rb'"router\.assign".*partition \d+'),
            "store": re.compile(rb'"store\.assign".*assigned [1-9]')}

    def wait_owns(self, base, offset, limit=45):
        """Seconds until base logs that it owns partitions, or None."""
        pat, t = self.OWNS[self.svc.kind(base)], time.monotonic()
        while time.monotonic() - t < limit:
            with open(self.svc.path(base, "log"), "rb") as f:
                f.seek(offset)
                if pat.search(f.read()):
                    return time.monotonic() - t
            time.sleep(0.2)
        return None

    def scale_up(self, base):
        """Start base; a router or store must get a share of the
        partitions (the consumer group splits the work)."""
        def run():
            self.svc.spare.discard(base)
            logpath = self.svc.path(base, "log")
            offset = os.path.getsize(logpath) if os.path.exists(logpath) \
                else 0
            t = time.monotonic()
            self.svc.start(base)
            note = f"(ready after {time.monotonic() - t:.1f} s"
            if self.svc.kind(base) in self.OWNS:
                took = self.wait_owns(base, offset)
                if took is None:
                    self.extra["scale up"].append(
                        f"{base} got no partitions of the topic")
                    note += ", NO partitions"
                else:
                    note += f", owns partitions after {took:.1f} s"
            return note + ")"
        return run

    def scale_down(self, base):
        """SIGTERM, as Kubernetes stops a pod; it stays down."""
        def run():
            rc, took = self.svc.stop(base, signal.SIGTERM, timeout=30)
            if rc != 0:
                self.extra["scale down"].append(
                    f"{base}: exit code {rc} after SIGTERM, want 0")
            if base.startswith("gateway"):
                self.svc.spare.add(base)  # new clients no longer try it
            return f"(exit {rc} after {took:.1f} s)"
        return run

    def scale_list(self):
        return [("scale up: router3 joins (partitions rebalance)",
                 self.scale_up("router3")),
                ("scale up: store2 joins the store group",
                 self.scale_up("store2")),
                ("scale up: gateway3 joins", self.scale_up("gateway3")),
                ("scale down: router1 stops (SIGTERM)",
                 self.scale_down("router1")),
                ("scale down: gateway1 drains and stops (SIGTERM)",
                 self.scale_down("gateway1")),
                ("scale down: store2 stops (SIGTERM)",
                 self.scale_down("store2")),
                ("scale up: router1 back (a rolling restart's end)",
                 self.scale_up("router1"))]

    def freeze_router(self, seconds):
        def run():
            pid = self.svc.pid("router1")
            os.kill(pid, signal.SIGSTOP)
            time.sleep(seconds)
            os.kill(pid, signal.SIGCONT)
            return f"(frozen {seconds} s)"
        return run

    def finish(self):
        """Stop the senders, fence every room, wait for the store and the
        listeners; returns (history, listened)."""
        log("stopping senders (each finishes its send)")
        left = self.clients.stop_senders(150)
        if left:
            raise Abort(f"{left} sender loops did not end")
        self.svc.check_alive()
        # Live delivery is best effort: a listener learns that it missed a
        # room's last message only from a later one (a seq jump) or a
        # reconnect. One acknowledged message per room after the faults
        # makes any missed tail visible, so that the listeners repair it.
        time.sleep(3)
        for k, (room, us) in enumerate(self.members.items()):
            s = self.clients.send(us[0], room, "fence", k, timeout=60)
            if not s["ack"]:
                log(f"  fence of {room} not acknowledged: {s['stderr']}")
        log("waiting for the store to catch up (history stops changing)")
        history = self.stable_history()
        log("waiting for the listeners to print everything")
        self.wait_listeners(history)
        self.svc.check_alive()
        self.clients.stop_listeners()
        listened = {u: self.clients.listener_lines(u) for u in self.users}
        return history, listened

    def stable_history(self, timeout=120):
        want = collections.Counter()
        for s in self.clients.sends:
            if s["ack"]:
                want[s["room"]] = max(want[s["room"]], s["ack"]["seq"])
        end = time.monotonic() + timeout
        last = None
        while True:
            hist = {}
            for k, (room, us) in enumerate(self.members.items()):
                h = self.clients.history(us[k % 2], room, k)
                if h is None:
                    break
                hist[room] = h
            if len(hist) == len(self.members):
                sig = {r: [(m["seq"], m["body"]) for m in h]
                       for r, h in hist.items()}
                caught_up = all(len(hist[r]) >= want[r] for r in want)
                if caught_up and sig == last:
                    return hist
                last = sig
            if time.monotonic() > end:
                log("  history did not settle; checking what it says now")
                return hist if len(hist) == len(self.members) else \
                    self.must_history()
            time.sleep(3)

    def must_history(self):
        hist = {}
        for room, us in self.members.items():
            h = self.clients.history(us[0], room)
            if h is None:
                raise Abort(f"history of {room} cannot be fetched")
            hist[room] = h
        return hist

    def wait_listeners(self, history, timeout=60):
        end = time.monotonic() + timeout
        want = {}
        for u in self.users:
            want[u] = {(r, m["seq"]) for r, us in self.members.items()
                       if u in us for m in history.get(r, [])}
        while time.monotonic() < end:
            done = True
            for u in self.users:
                seen = {(e["room_id"], e["seq"])
                        for e in self.clients.listener_lines(u)
                        if e.get("type") == "message"}
                if not want[u] <= seen:
                    done = False
                    break
            if done:
                return
            time.sleep(1)

    def report(self, problems, counts, elapsed):
        a = self.args
        mode = ("control" + (" --unsafe" if a.unsafe else "")) if a.control \
            else ("short" if a.short else "scale" if a.scale
                  else f"long {a.minutes} min")
        print()
        print(f"==== fault harness report ({mode}, seed {a.seed}, "
              f"{elapsed:.0f} s) ====")
        print(f"faults ({len(self.faults_done)}):")
        for f in self.faults_done:
            print(f"  {f['start']:6.1f}-{f['end']:6.1f} s  {f['fault']} "
                  f"{f['note']}")
        # Availability around each fault: the slowest ack of a send that
        # overlapped it, and the sends that ended without an ack.
        for f in self.faults_done:
            over = [s for s in self.clients.sends
                    if s["t1"] >= f["start"] and s["t0"] <= f["end"] + 5]
            if over:
                worst = max(s["t1"] - s["t0"] for s in over if s["ack"]) \
                    if any(s["ack"] for s in over) else None
                na = sum(1 for s in over if not s["ack"])
                print(f"    during '{f['fault']}': {len(over)} sends, "
                      f"slowest ack {worst if worst is None else round(worst, 1)} s, "
                      f"{na} not acked")
        if self.svc.crashes:
            print(f"services that exited by themselves: {self.svc.crashes}")
        print("counts:")
        for k, v in counts.items():
            print(f"  {k}: {v}")
        gaveup = {}
        reconnects = {}
        for u in self.users:
            err = open(self.clients.listeners[u][2]).read()
            reconnects[u] = err.count("reconnected to")
            g = err.count("going on without them")
            if g:
                gaveup[u] = g
        print(f"  listener reconnects: {reconnects}")
        if gaveup:
            print(f"  listener gave up on a gap (said on stderr): {gaveup}")
        print("checks:")
        for name in ["LOST acknowledged message", "ack disagrees with history",
                     "wrong ack", "seq not dense", "duplicate message",
                     "phantom message", "wrong content",
                     "listener missed messages",
                     "listener printed a message twice",
                     "listener printed messages not in history",
                     "listener saw different content",
                     "listener printed unparsable lines", "gateway drain"]:
            p = problems.get(name, [])
            print(f"  {'FAIL' if p else 'ok  '} {name}"
                  f"{': ' + str(len(p)) if p else ''}")
            for line in p[:15]:
                print(f"         {line}")
            if len(p) > 15:
                print(f"         ... {len(p) - 15} more")
        with open(os.path.join(self.dir, f"{self.tag}report.json"), "w") as f:
            json.dump({"mode": mode, "faults": self.faults_done,
                       "counts": counts, "problems": problems,
                       "crashes": self.svc.crashes}, f, indent=1,
                      default=str)

    def verdict(self, problems):
        a = self.args
        dups = problems.get("duplicate message", [])
        others = {k: v for k, v in problems.items()
                  if k != "duplicate message"}
        if a.control and a.unsafe:
            # Idempotence off: the checker must see duplicates, and the
            # rest (no loss, dense seqs, listeners) must still hold.
            if others:
                print("RESULT: FAIL (control --unsafe: problems other than "
                      "duplicates)")
                return 1
            if not dups:
                print("RESULT: FAIL (control --unsafe: the checker saw NO "
                      "duplicate although ids changed on retry)")
                return 1
            print(f"RESULT: PASS (control --unsafe: the checker caught "
                  f"{len(dups)} duplicate(s), as it must)")
            return 0
        if a.control and not any(s["retries"] for s in self.clients.sends):
            print("RESULT: FAIL (control: the frozen router provoked no "
                  "retry, so the run proves nothing)")
            return 1
        if problems or (self.svc.crashes and not a.allow_crashes):
            why = ", ".join(sorted(problems)) or "a service crashed"
            print(f"RESULT: FAIL ({why})")
            return 1
        print("RESULT: PASS (nothing acknowledged lost, nothing shown twice)")
        return 0

    def run(self):
        try:
            self.start()
            self.run_faults()
            history, listened = self.finish()
        finally:
            self.clients.stop_sending.set()
            self.infra.heal()
        problems, counts = check(self.clients.sends, history, self.members,
                                 listened, self.args.unsafe)
        problems.update(self.extra)
        counts["group membership changes"] = getattr(self.clients,
                                                     "churned", 0)
        self.svc.stop_all()
        self.report(problems, counts, now())
        return self.verdict(problems)

    def cleanup(self):
        self.clients.stop_sending.set()
        self.infra.heal()
        try:
            self.clients.stop_listeners()
        except Exception:
            pass
        self.svc.stop_all()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--short", action="store_true",
                      help="the fault list once (CI)")
    mode.add_argument("--long", action="store_true",
                      help="random faults for --minutes (soak)")
    mode.add_argument("--control", action="store_true",
                      help="one router, SIGSTOPped --freeze s while sending")
    mode.add_argument("--scale", action="store_true",
                      help="tiers scale up and down under traffic "
                      "(routers 2-3, gateways 2-3, stores 1-2)")
    mode.add_argument("--self-test", action="store_true",
                      help="check the checker on made-up data, then exit")
    ap.add_argument("--unsafe", action="store_true",
                    help="senders use --unsafe-new-id-per-attempt (control: "
                    "the run passes only if duplicates are found)")
    ap.add_argument("--dir", help="logs and outputs go here (required)")
    ap.add_argument("--tag", default="",
                    help="prefix of users, ids and file names")
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--pace", type=float, default=None,
                    help="mean seconds between two sends of one sender")
    ap.add_argument("--max-per-sender", type=int, default=None)
    ap.add_argument("--first", type=float, default=10,
                    help="seconds of quiet traffic before the first fault")
    ap.add_argument("--gap-min", type=float, default=None)
    ap.add_argument("--gap-max", type=float, default=None)
    ap.add_argument("--only", metavar="TEXT",
                    help="short: only the faults whose name has TEXT")
    ap.add_argument("--freeze", type=float, default=8,
                    help="control: seconds router1 stays SIGSTOPped")
    ap.add_argument("--deadline", type=float, default=None,
                    help="give up after this many seconds")
    ap.add_argument("--allow-crashes", action="store_true",
                    help="a service exiting by itself is not a failure")
    a = ap.parse_args()
    if a.self_test:
        sys.exit(self_test())
    if not a.dir:
        ap.error("--dir is required")
    if a.seed is None:
        a.seed = random.randrange(1 << 30)
    if a.short:
        a.pace = a.pace or 0.5
        a.max_per_sender = a.max_per_sender or 1000
        a.gap_min = a.gap_min or 10
        a.gap_max = a.gap_max or 15
        a.deadline = a.deadline or 480
    elif a.scale:
        a.pace = a.pace or 0.5
        a.max_per_sender = a.max_per_sender or 1000
        a.gap_min = a.gap_min or 6
        a.gap_max = a.gap_max or 9
        a.first = min(a.first, 6)
        a.deadline = a.deadline or 300
    elif a.long:
        a.pace = a.pace or 0.5
        a.max_per_sender = a.max_per_sender or 100000
        a.gap_min = a.gap_min or 10
        a.gap_max = a.gap_max or 60
        a.deadline = a.deadline or a.minutes * 60 + 400
    else:
        a.pace = a.pace or 0.2
        a.max_per_sender = a.max_per_sender or 1000
        a.deadline = a.deadline or 240
    log(f"fault harness: seed {a.seed} (rerun with --seed {a.seed})")
    h = Harness(a)

    def on_term(sig, frame):
        raise Abort(f"stopped by signal {sig}")
    signal.signal(signal.SIGTERM, on_term)
    try:
        rc = h.run()
    except Abort as e:
        print(f"RESULT: FAIL (harness aborted: {e})", flush=True)
        rc = 1
    finally:
        h.cleanup()
    sys.exit(rc)


if __name__ == "__main__":
    main()
