#!/usr/bin/env python3
"""The parley benchmark runner (issue 5): starts the systems under test,
drives them with parley-bench, accounts CPU and memory of every server
process from /proc, and writes one JSON file and a markdown table per run.

  run.py quick            # <= 5 min: S2 (N=10,100,1000), S1, S3 small, floors
  run.py full             # every scenario at the issue's sizes, to the knee
  run.py smoke --attach --url WS[,WS] --pids name=pid,...   # CI smoke
  run.py report --out DIR # recompute the summary and table of a finished run

Systems: "floor" (bench-floor, the raw epoll fan-out), "centrifugo"
(v6.9.1, memory engine, history on) and "parley" (its own Kafka,
PostgreSQL and every service on shifted ports in var/bench/<run>/, or an
existing stack with --attach). Results go to var/bench/<run>/ unless --out.
"""
import argparse
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HZ = os.sysconf("SC_CLK_TCK")
SECRET = "parley-bench-secret-0123456789abcdef"
PER_PROC = 9000  # connections per parley-bench process (limit 18k)
KNEE_P99_NS = 100e6


def log(*a):
    print("bench:", *a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- /proc

def proc_cpu(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / HZ
    except (OSError, IndexError):
        return 0.0


def proc_rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def proc_children(pid):
    kids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    kids.append(int(d))
        except (OSError, ValueError, IndexError):
            pass
    return kids


def proc_environ_has(pid, needle):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return needle in f.read()
    except OSError:
        return False


def proc_exe(pid):
    try:
        return os.path.basename(os.readlink(f"/proc/{pid}/exe"))
    except OSError:
        return ""


class Groups:
    """Named groups of server pids, sampled together."""

    def __init__(self, groups):
        self.groups = groups  # name -> [pid]

    def cpu(self):
        return {g: sum(proc_cpu(p) for p in ps) for g, ps in self.groups.items()}

    def rss_kb(self):
        return {g: sum(proc_rss_kb(p) for p in ps) for g, ps in self.groups.items()}


def delta(a, b):
    return {k: round(b[k] - a.get(k, 0.0), 3) for k in b}


# ---------------------------------------------------------------- helpers

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return True
        except OSError:
            time.sleep(0.2)
    return False


def hist_upper(i):
    if i < 32:
        return i
    msb = (i - 32) // 16 + 5
    sub = (i - 32) % 16
    return ((17 + sub) << (msb - 4)) - 1


def hist_merge(hs):
    buckets, n, mx = {}, 0, 0
    for h in hs:
        n += h["n"]
        mx = max(mx, h["max"])
        for i, c in h["buckets"]:
            buckets[i] = buckets.get(i, 0) + c
    out = {"n": n, "max": mx}
    for name, q in (("p50", .5), ("p90", .9), ("p99", .99), ("p999", .999)):
        want, seen, val = min(int(n * q), max(n - 1, 0)), 0, 0
        for i in sorted(buckets):
            seen += buckets[i]
            if seen > want:
                val = min(hist_upper(i), mx)
                break
        out[name] = val if n else 0
    return out


def rss_per_conn(before, after, conns):
    """RSS growth per connection of the processes that hold connections
    (Kafka's heap and PostgreSQL's buffers grow on their own)."""
    grow = sum(after.get(k, 0) - before.get(k, 0) for k in after
               if k not in ("kafka", "postgres"))
    return round(grow / max(conns, 1), 2)


def hist_merge_raw(hs):
    """Merged buckets plus percentiles, keeping the buckets."""
    out = hist_merge(hs)
    b = {}
    for h in hs:
        for i, c in h["buckets"]:
            b[i] = b.get(i, 0) + c
    out["buckets"] = b
    return out


def hist_count_le(h, v):
    return sum(c for i, c in h["buckets"].items() if hist_upper(i) <= v)


def ms(ns):
    return round(ns / 1e6, 2)


# ---------------------------------------------------------------- systems

class System:
    name = "?"
    proto = "?"

    def urls(self):
        raise NotImplementedError

    def groups(self):
        return Groups({})

    def stop(self):
        pass


class Floor(System):
    name, proto = "floor", "raw"

    def __init__(self, rundir, binp):
        self.port = free_port()
        self.p = subprocess.Popen([os.path.join(binp, "bench-floor"), str(self.port)],
                                  stdout=subprocess.DEVNULL, stderr=open(f"{rundir}/floor.log", "w"))
        if not wait_port(self.port, 10):
            raise RuntimeError("bench-floor did not start")

    def urls(self):
        return [f"ws://127.0.0.1:{self.port}/"]

    def groups(self):
        return Groups({"floor": [self.p.pid]})

    def stop(self):
        self.p.terminate()
        self.p.wait(10)


class Centrifugo(System):
    name, proto = "centrifugo", "centrifugo"

    def __init__(self, rundir):
        binp = subprocess.check_output([os.path.join(ROOT, "tests/bench/centrifugo.sh")],
                                       text=True).strip()
        self.version = subprocess.run([binp, "version"], capture_output=True,
                                      text=True).stdout.strip()
        self.port = free_port()
        d = os.path.join(rundir, "centrifugo")
        os.makedirs(d, exist_ok=True)
        cfg = {
            "http_server": {"address": "127.0.0.1", "port": self.port},
            "log": {"level": "error"},
            "engine": {"type": "memory"},
            "client": {"token": {"hmac_secret_key": SECRET}},
            "channel": {"namespaces": [{
                "name": "bench", "history_size": 1000, "history_ttl": "600s",
                "allow_recovery": True, "allow_subscribe_for_client": True,
                "allow_publish_for_client": True}]},
        }
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f, indent=1)
        self.p = subprocess.Popen([binp, "-c", "config.json"], cwd=d,
                                  stdout=open(os.path.join(d, "log"), "w"),
                                  stderr=subprocess.STDOUT)
        if not wait_port(self.port, 30):
            raise RuntimeError("centrifugo did not start")

    def urls(self):
        return [f"ws://127.0.0.1:{self.port}/connection/websocket"]

    def groups(self):
        return Groups({"centrifugo": [self.p.pid]})

    def stop(self):
        self.p.terminate()
        try:
            self.p.wait(15)
        except subprocess.TimeoutExpired:
            self.p.kill()


class Parley(System):
    """parley's own stack via deploy/local/run.sh on shifted ports, from a
    snapshot of build/bin (colleagues rebuild build/ while we measure)."""
    name, proto = "parley", "parley"

    def __init__(self, rundir, offset, extra_env=None):
        self.var = os.path.join(rundir, "parley")
        self.bin = os.path.join(self.var, "bin")
        os.makedirs(self.bin, exist_ok=True)
        # every service run.sh starts (gateway, router, store, presence, pusher…)
        for b in os.listdir(os.path.join(ROOT, "build/bin")):
            if b.startswith("parley-") and b != "parley-bench":
                shutil.copy2(os.path.join(ROOT, "build/bin", b), self.bin)
        self.o = offset
        self.kafka_port = 9092 + offset
        env = dict(os.environ, PARLEY_BIN=self.bin, PARLEY_VAR=self.var,
                   PARLEY_PORT_OFFSET=str(offset), PARLEY_JWT_SECRET=SECRET,
                   PARLEY_LOG_LEVEL="warn",
                   # one bench connection sends for a whole room of users:
                   # lift the per-connection send rate (docs/SECURITY.md)
                   PARLEY_SEND_RATE="1000000", PARLEY_SEND_BURST="1000000",
                   **(extra_env or {}))
        self.p = subprocess.Popen([os.path.join(ROOT, "deploy/local/run.sh")], env=env,
                                  cwd=ROOT, stdout=open(os.path.join(rundir, "parley-run.log"), "w"),
                                  stderr=subprocess.STDOUT, start_new_session=True)
        end = time.time() + 180
        while not all(self._ready(8080 + offset + i) for i in (0, 1)):
            if self.p.poll() is not None or time.time() > end:
                self.stop()
                raise RuntimeError("parley never became ready")
            time.sleep(0.5)
        time.sleep(2)  # routers settle their partitions

    @staticmethod
    def _ready(port):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                return r.status == 200
        except (OSError, ValueError):
            return False

    def urls(self):
        return [f"ws://127.0.0.1:{8080 + self.o}/", f"ws://127.0.0.1:{8081 + self.o}/"]

    def gateway_pid(self, i):
        """The pid of gateway number i (0 or 1) of this stack."""
        needle = f"PARLEY_GATEWAY_PORT={8080 + self.o + i}\0".encode()
        for p in self.groups().groups["gateway"]:
            if proc_environ_has(p, needle):
                return p
        return None

    def store_metric(self, name):
        """One value from parley-store's /metrics (None when unreadable)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{9301 + self.o}/metrics",
                                        timeout=1) as r:
                for line in r.read().decode().splitlines():
                    if line.startswith(name + " ") or line.startswith(name + "{"):
                        return float(line.rsplit(" ", 1)[1])
        except (OSError, ValueError):
            pass
        return None

    def groups(self):
        g = {"gateway": [], "router": [], "store": [], "presence": [], "kafka": [], "postgres": []}
        needle = f"PARLEY_KAFKA_BROKERS=127.0.0.1:{self.kafka_port}\0".encode()
        for d in os.listdir("/proc"):
            if d.isdigit():
                exe = proc_exe(int(d))
                if exe.startswith("parley-") and proc_environ_has(int(d), needle):
                    g.setdefault(exe[len("parley-"):], []).append(int(d))
        try:
            kpid = int(open(os.path.join(self.var, "kafka/kafka.pid")).read().strip())
            g["kafka"] = [kpid]
        except (OSError, ValueError):
            pass
        try:
            pm = int(open(os.path.join(self.var, "pg/data/postmaster.pid")).readline())
            g["postgres"] = [pm] + proc_children(pm)
        except (OSError, ValueError):
            pass
        return Groups(g)

    def stop(self):
        # run.sh stops its services, Kafka and PostgreSQL on TERM (a
        # background shell ignores INT). Kafka and PostgreSQL run outside
        # its process group: stop them by their folders whatever happened.
        try:
            self.p.terminate()
            self.p.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(self.p.pid, signal.SIGKILL)
        for cmd in (["deploy/local/kafka.sh", "stop", os.path.join(self.var, "kafka")],
                    ["deploy/local/pg.sh", "stop", os.path.join(self.var, "pg"), "fast"]):
            subprocess.run(cmd, cwd=ROOT, capture_output=True, timeout=120)


class Attached(System):
    """A parley stack someone else started (the CI smoke)."""
    name, proto = "parley", "parley"

    def __init__(self, urls, pids):
        self._urls = urls
        self._groups = {}
        for kv in pids:
            k, v = kv.split("=")
            self._groups.setdefault(k.rstrip("0123456789"), []).append(int(v))

    def urls(self):
        return self._urls

    def groups(self):
        return Groups(self._groups)


# ---------------------------------------------------------------- driving

class Runner:
    def __init__(self, args, rundir, binp):
        self.args = args
        self.rundir = rundir
        self.bin = os.path.join(binp, "parley-bench")
        self.results = []
        self.seq = 0

    def _bench(self, system, tag, extra, secret, urls=None):
        self.seq += 1
        out = os.path.join(self.rundir, f"{tag}-{self.seq}.json")
        cmd = [self.bin, "--proto", system.proto, "--url", ",".join(urls or system.urls()),
               "--secret", secret, "--src", "4", "--out", out] + extra
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                             stderr=open(os.path.join(self.rundir, f"{tag}-{self.seq}.log"), "w"))
        return p, out

    def _recv_procs(self, system, prefix, streams, members, dm, idle, secret,
                    reconnect=False):
        procs = []
        total = idle if idle else streams * members
        n_proc = max(1, -(-total // PER_PROC))
        for i in range(n_proc):
            ready = os.path.join(self.rundir, f"ready-{self.seq + 1}")
            if idle:
                lo, hi = i * idle // n_proc, (i + 1) * idle // n_proc
                extra = ["--idle", str(hi - lo), "--recv", f"{lo}:{hi}"]
            else:
                lo, hi = i * members // n_proc, (i + 1) * members // n_proc
                extra = ["--recv", f"{lo}:{hi}", "--streams", str(streams),
                         "--members", str(members)]
            extra += ["--prefix", prefix, "--ready-file", ready, "--setup-timeout", "120"]
            if dm:
                extra.append("--dm")
            if reconnect:
                extra.append("--reconnect")
            p, out = self._bench(system, "recv", extra, secret)
            procs.append((p, out, ready))
        end = time.time() + 150
        for p, out, ready in procs:
            while not os.path.exists(ready) and time.time() < end and p.poll() is None:
                time.sleep(0.2)
            if not os.path.exists(ready):
                raise RuntimeError(f"receivers not ready ({out})")
        return procs

    @staticmethod
    def _collect(procs, final=False):
        for p, out, _ in procs:
            mt = os.path.getmtime(out) if os.path.exists(out) else 0
            p.send_signal(signal.SIGTERM if final else signal.SIGUSR1)
            end = time.time() + 10
            while time.time() < end:
                if final and p.poll() is not None:
                    break
                if not final and os.path.exists(out) and os.path.getmtime(out) > mt:
                    break
                time.sleep(0.05)
            if final:
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
        time.sleep(0.1)
        return [json.load(open(out)) for _, out, _ in procs]

    def stream_run(self, system, scen, streams, members, rates, dm, secret,
                   duration, prefix, store_lag=False):
        """Receivers stay connected; one sender process per step. A step
        counts as past the knee (p99 over 100 ms, or any loss) only when
        it fails twice: other work on a shared 2-core machine can spoil
        one step's tail without the server being at its limit."""
        recv = self._recv_procs(system, prefix, streams, members, dm, 0, secret)
        ctx = {"system": system, "scen": scen, "streams": streams, "members": members,
               "dm": dm, "secret": secret, "duration": duration, "prefix": prefix,
               "recv": recv, "groups": system.groups(), "store_lag": store_lag}
        ctx["rss0"] = ctx["groups"].rss_kb()
        # Warm-up (step 0, not reported): rooms made, JITs and caches warm.
        wp, _ = self._bench(system, "warmup", self._send_args(ctx, 0, rates[0], 2), secret)
        wp.wait(120)
        time.sleep(0.5)
        steps, k = [], 1
        for rate in rates:
            for attempt in (0, 1):
                st = self._one_step(ctx, k, rate)
                st["attempt"] = attempt
                st["top_step"] = rate == rates[-1]
                steps.append(st)
                k += 1
                # quick mode (<= 5 min) takes each step once
                if self.args.mode != "full" or not self._over(st):
                    break
            if self.args.mode != "smoke" and self._over(st):
                break
        self._collect(recv, final=True)
        return steps

    def _one_step(self, ctx, k, rate):
        groups, recv, system = ctx["groups"], ctx["recv"], ctx["system"]
        streams, members = ctx["streams"], ctx["members"]
        cpu0, gen0 = groups.cpu(), sum(proc_cpu(p.pid) for p, _, _ in recv)
        t0 = time.time()
        sp, sout = self._bench(system, "send", self._send_args(ctx, k, rate, ctx["duration"]),
                               ctx["secret"])
        lags, stored0 = [], None
        if ctx.get("store_lag") and hasattr(system, "store_metric"):
            stored0 = system.store_metric("parley_store_messages_total")
            while sp.poll() is None:
                lag = system.store_metric("parley_store_consumer_lag")
                if lag is not None:
                    lags.append(lag)
                time.sleep(1)
        sp.wait(ctx["duration"] + 180)
        time.sleep(0.5)
        snaps = self._collect(recv)
        wall = time.time() - t0
        cpu1 = groups.cpu()
        gen1 = sum(proc_cpu(p.pid) for p, _, _ in recv)
        snd = json.load(open(sout))
        st = self._step_summary(system, ctx["scen"], k, rate, members, streams, snd, snaps,
                                delta(cpu0, cpu1), gen1 - gen0 + snd["cpu_s"], wall,
                                groups.rss_kb(), ctx["rss0"], streams * members)
        if stored0 is not None:
            time.sleep(1)
            lags.sort()
            stored1 = system.store_metric("parley_store_messages_total") or 0
            st["store"] = {
                "lag_records_p99": lags[int(len(lags) * .99)] if lags else None,
                "lag_records_max": lags[-1] if lags else None,
                # records behind / records per second: seconds behind
                "lag_s_p99": round(lags[int(len(lags) * .99)] / rate, 3) if lags else None,
                "stored": stored1 - stored0, "sent": st["sent"]}
        self.results.append(st)
        log(f"{system.name} {ctx['scen']} N={members} x{streams} rate={rate:g}/s: "
            f"{st['deliveries_per_s']:.0f} deliv/s p99={st['lat_ms']['p99']} ms "
            f"loss={st['loss']} dup={st['dup']} cpu/1k={st['cpu_s_per_1k']} "
            f"gen={st['gen_core_frac']}")
        return st

    @staticmethod
    def _send_args(ctx, k, rate, duration):
        extra = ["--send", "--streams", str(ctx["streams"]), "--members", str(ctx["members"]),
                 "--rate", str(rate), "--duration", str(duration), "--step", str(k),
                 "--drain", "5", "--prefix", ctx["prefix"]]
        if ctx["dm"]:
            extra.append("--dm")
        return extra

    @staticmethod
    def _over(st):
        # A step that delivered nothing (the sender was closed, say) is
        # past the knee too, not a pass with p99 0.
        return (st["lat_ms"]["p99"] > KNEE_P99_NS / 1e6 or st["loss"] > 0
                or st["deliveries"] == 0)

    def _step_summary(self, system, scen, k, rate, members, streams, snd, snaps, cpu,
                      gen_cpu, wall, rss, rss0, conns):
        s = snd.get("sender", {})
        lat = hist_merge([x["steps"][str(k)]["lat"] for x in snaps if str(k) in x["steps"]])
        recv = sum(x["steps"].get(str(k), {}).get("recv", 0) for x in snaps)
        dup = sum(x["steps"].get(str(k), {}).get("dup", 0) for x in snaps)
        sent = s.get("sent", 0)
        dur = max(sent / rate if sent else s.get("send_s", 0), 1e-9)
        server_cpu = round(sum(cpu.values()), 3)
        ack = s.get("ack", {"n": 0})
        return {
            "system": system.name, "scenario": scen, "step": k, "members": members,
            "streams": streams, "offered_msgs_per_s": rate,
            "offered_deliveries_per_s": rate * members, "sent": sent,
            "acked": s.get("acked", 0), "send_errors": s.get("errors", 0) + s.get("send_fail", 0),
            "deliveries": recv, "deliveries_per_s": recv / dur,
            "loss": sent * members - recv, "dup": dup,
            "lat_ms": {q: ms(lat[q]) for q in ("p50", "p90", "p99", "p999", "max")},
            "ack_ms": {q: ms(ack.get(q, 0)) for q in ("p50", "p99", "max")},
            "gen_lag_ms": {q: ms(s.get("lag", {}).get(q, 0)) for q in ("p50", "p99", "max")},
            "window_s": round(wall, 3), "cpu_s": cpu, "server_cpu_s": server_cpu,
            "server_cores": round(server_cpu / wall, 3),
            "cpu_s_per_1k": round(server_cpu / max(recv / 1000, 1e-9), 4) if recv else None,
            "gen_cpu_s": round(gen_cpu, 3), "gen_core_frac": round(gen_cpu / wall, 3),
            "valid": gen_cpu / wall <= 0.6,
            "rss_kb": rss, "server_rss_mb": round(sum(rss.values()) / 1024, 1),
            "rss_kb_per_conn": round((sum(rss.values()) - sum(rss0.values())) / max(conns, 1), 2),
        }

    def storm_run(self, system, rooms, members, rate, duration, secret, prefix):
        """S5: receivers in rooms over two gateways, a steady sender on the
        first; kill -9 the second gateway a third of the way in. Its
        clients reconnect with backoff (rotating gateways), Sync from the
        last seq they saw, and must end with every message exactly once."""
        recv = self._recv_procs(system, prefix, rooms, members, False, 0, secret,
                                reconnect=True)
        ctx = {"streams": rooms, "members": members, "dm": False, "prefix": prefix}
        wp, _ = self._bench(system, "warmup", self._send_args(ctx, 0, rate, 2), secret)
        wp.wait(120)
        # Senders stay on the first gateway (they have no retry loop); the
        # second, which only receivers use, is the one killed.
        sp, sout = self._bench(system, "send", self._send_args(ctx, 1, rate, duration), secret,
                               urls=system.urls()[:1])
        time.sleep(duration / 3)
        victim = system.gateway_pid(1)
        t_kill = time.time()
        if victim:
            os.kill(victim, signal.SIGKILL)
        sp.wait(duration + 120)
        time.sleep(12)  # the last clients back, syncing
        snaps = self._collect(recv, final=True)
        snd = json.load(open(sout))["sender"]
        res = hist_merge_raw([x["resync"] for x in snaps])
        dropped = sum(x["dropped"] for x in snaps)
        resynced = sum(x["resynced"] for x in snaps)
        within = hist_count_le(res, 10e9)
        st1 = [x["steps"].get("1", {}) for x in snaps]
        recv_n = sum(x.get("recv", 0) for x in st1)
        st = {
            "system": system.name, "scenario": "S5", "streams": rooms, "members": members,
            "conns": rooms * members, "offered_msgs_per_s": rate, "killed_gateway_pid": victim,
            "sent": snd["sent"], "acked": snd["acked"],
            "send_fail": snd["send_fail"] + snd["errors"], "deliveries": recv_n,
            "loss": snd["sent"] * members - recv_n, "dup": sum(x.get("dup", 0) for x in st1),
            "synced": sum(x.get("synced", 0) for x in st1),
            "overlap": sum(x.get("overlap", 0) for x in st1),
            "dropped": dropped, "resynced": resynced,
            "back_within_10s_frac": round(within / dropped, 4) if dropped else None,
            "resync_ms": {q: ms(res[q]) for q in ("p50", "p99", "max")},
            "kill_at_s": round(t_kill, 3),
        }
        self.results.append(st)
        log(f"{system.name} S5: {dropped} dropped, {resynced} back and synced "
            f"(p99 {st['resync_ms']['p99']} ms, {st['back_within_10s_frac']} within 10 s), "
            f"loss={st['loss']} dup={st['dup']} synced={st['synced']}")
        return st

    def warm(self, system, secret, seconds):
        """Traffic that is not reported, right after a stack starts: Kafka's
        JIT compiles its hot paths in the first seconds (profiles showed the
        C2 compiler at 18% of all samples), which no steady state has."""
        p, _ = self._bench(system, "stackwarm",
                           ["--send", "--recv", "0:10", "--members", "10", "--rate", "200",
                            "--duration", str(seconds), "--drain", "1",
                            "--prefix", f"w{os.getpid()}"], secret)
        p.wait(seconds + 60)

    def idle_run(self, system, n, hold, secret, prefix):
        """S3: the servers' CPU with n idle connections minus their CPU with
        none (Kafka's idle fetch polling is not a per-connection cost), and
        RSS with them minus RSS before."""
        groups = system.groups()
        base = max(hold / 2, 5)
        rss0, c0 = groups.rss_kb(), groups.cpu()
        time.sleep(base)
        idle_rate = {k: v / base for k, v in delta(c0, groups.cpu()).items()}
        t0 = time.time()
        recv = self._recv_procs(system, prefix, 0, 0, False, n, secret)
        connect_s = time.time() - t0
        time.sleep(2)
        groups = system.groups()
        cpu0 = groups.cpu()
        time.sleep(hold)
        cpu1, rss2 = groups.cpu(), groups.rss_kb()
        snaps = self._collect(recv, final=True)
        cpu = delta(cpu0, cpu1)
        extra = {k: round(v - idle_rate.get(k, 0) * hold, 3) for k, v in cpu.items()}
        ready = sum(x["ready"] for x in snaps)
        st = {
            "system": system.name, "scenario": "S3", "conns": n, "ready": ready,
            "connect_s": round(connect_s, 2), "hold_s": hold,
            "closes": sum(x["closes"] for x in snaps), "pings": sum(x["pings"] for x in snaps),
            "rss_kb_before": rss0, "rss_kb_held": rss2,
            "rss_kb_per_conn": rss_per_conn(rss0, rss2, ready),
            "cpu_s": cpu, "cpu_s_no_conns_rate": {k: round(v, 4) for k, v in idle_rate.items()},
            "cpu_s_for_conns": extra, "server_cpu_s": round(sum(cpu.values()), 3),
            # Kafka and PostgreSQL hold no client connections; their idle
            # cost is reported apart (cpu_s_no_conns_rate).
            "cpu_us_per_conn_s": round(max(sum(v for k, v in extra.items()
                                               if k not in ("kafka", "postgres")), 0)
                                       / hold / max(ready, 1) * 1e6, 3),
            "gen_cpu_s": round(sum(x["cpu_s"] for x in snaps), 3),
        }
        self.results.append(st)
        log(f"{system.name} S3 {ready}/{n} idle: {st['rss_kb_per_conn']} KiB/conn, "
            f"{st['cpu_us_per_conn_s']} us CPU per conn per s")
        return st


# ---------------------------------------------------------------- floors

def floor_pg(rundir, parley):
    """PostgreSQL insert (pgbench, one row per transaction, 4 clients) and
    COPY rates against parley's own cluster (a scratch database)."""
    port = 5433 + parley.o
    env = dict(os.environ, PGHOST="127.0.0.1", PGPORT=str(port), PGUSER="parley")
    out = {}
    try:
        subprocess.run(["psql", "-q", "-d", "parley", "-c", "DROP DATABASE IF EXISTS benchfloor"],
                       env=env, check=True, capture_output=True)
        subprocess.run(["psql", "-q", "-d", "parley", "-c", "CREATE DATABASE benchfloor"],
                       env=env, check=True, capture_output=True)
        env["PGDATABASE"] = "benchfloor"
        subprocess.run(["psql", "-q", "-c",
                        "CREATE TABLE m (room text, seq bigint, sender text, body text, "
                        "ts bigint, PRIMARY KEY (room, seq))"], env=env, check=True,
                       capture_output=True)
        script = os.path.join(rundir, "insert.sql")
        with open(script, "w") as f:
            f.write("\\set s random(1, 1000000000)\n"
                    "INSERT INTO m VALUES ('r' || (:s % 100), :s, 'alice', "
                    "repeat('x', 64), :s) ON CONFLICT DO NOTHING;\n")
        r = subprocess.run(["pgbench", "-n", "-c", "4", "-j", "2", "-T", "3", "-f", script],
                           env=env, capture_output=True, text=True, timeout=60)
        for line in r.stdout.splitlines():
            if line.startswith("tps ="):
                out["insert_tx_per_s"] = round(float(line.split()[2]), 1)
            if "latency average" in line:
                out["insert_latency_ms"] = float(line.split()[3])
        rows = 200000
        t = time.time()
        subprocess.run(["psql", "-q", "-c",
                        f"COPY m FROM PROGRAM 'seq 1 {rows} | sed \"s/.*/c\\t&\\talice\\t"
                        f"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\\t0/\"'"],
                       env=env, check=True, capture_output=True, timeout=120)
        out["copy_rows_per_s"] = round(rows / (time.time() - t), 0)
    except (subprocess.SubprocessError, OSError) as e:
        out["error"] = str(e)[:200]
    log(f"floor postgres: {out}")
    return out


def floor_tool(binp, args, timeout=120):
    try:
        r = subprocess.run([os.path.join(binp, "bench-floors")] + args, capture_output=True,
                           text=True, timeout=timeout)
        out = json.loads(r.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, OSError, ValueError, IndexError) as e:
        out = {"error": str(e)[:200]}
    if "ack" in out:
        out["ack_ms"] = {q: ms(out["ack"][q]) for q in ("p50", "p99", "p999", "max")}
        del out["ack"]
    log(f"floor {args[0]}: {out}")
    return out


# ---------------------------------------------------------------- report

def machine():
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpu": cpu, "cores": os.cpu_count(), "mem_gib": round(mem, 1),
            "kernel": platform.release(), "loadavg_start": os.getloadavg()}


def markdown(run):
    lines = [f"# parley benchmark, {run['mode']} run {run['id']}", "",
             f"Machine: {run['machine']['cpu']}, {run['machine']['cores']} cores, "
             f"{run['machine']['mem_gib']} GiB, Linux {run['machine']['kernel']}; "
             f"load average at start {run['machine']['loadavg_start'][0]:.2f}, "
             f"at end {run.get('loadavg_end', [0])[0]:.2f}.",
             f"Versions: {json.dumps(run['versions'])}", ""]
    rows = [r for r in run["results"] if r["scenario"] in ("S1", "S2", "S4")]
    if rows:
        lines += ["| system | scen | N | streams | offered msg/s | deliveries/s | p50 ms | p99 ms "
                  "| p999 ms | max ms | ack p99 ms | loss | dup | server cores | CPU s /1k deliv "
                  "| gen core | RSS MB | valid |",
                  "|" + "---|" * 18]
        for r in rows:
            lines.append(
                f"| {r['system']} | {r['scenario']} | {r['members']} | {r['streams']} "
                f"| {r['offered_msgs_per_s']:g} | {r['deliveries_per_s']:.0f} "
                f"| {r['lat_ms']['p50']} | {r['lat_ms']['p99']} | {r['lat_ms']['p999']} "
                f"| {r['lat_ms']['max']} | {r['ack_ms']['p99']} | {r['loss']} | {r['dup']} "
                f"| {r['server_cores']} | {r['cpu_s_per_1k']} | {r['gen_core_frac']} "
                f"| {r['server_rss_mb']} | {'yes' if r['valid'] else 'NO'} |")
        lines.append("")
    lines += equal_rate_table(run["results"])
    idle = [r for r in run["results"] if r["scenario"] == "S3"]
    if idle:
        lines += ["| system | S3 idle conns | ready | RSS KiB/conn | CPU µs per conn-s | pings | closes |",
                  "|---|---|---|---|---|---|---|"]
        for r in idle:
            lines.append(f"| {r['system']} | {r['conns']} | {r['ready']} | {r['rss_kb_per_conn']} "
                         f"| {r['cpu_us_per_conn_s']} | {r['pings']} | {r['closes']} |")
        lines.append("")
    if run.get("summary"):
        lines += ["## Ratios (same run)", "", "| scenario | figure | parley | centrifugo | floor "
                  "| parley/centrifugo | parley/floor | goal |", "|---|---|---|---|---|---|---|---|"]
        for s in run["summary"]:
            lines.append(f"| {s['scenario']} | {s['figure']} | {s.get('parley')} | "
                         f"{s.get('centrifugo')} | {s.get('floor')} | {s.get('vs_centrifugo')} | "
                         f"{s.get('vs_floor')} | {s.get('goal', '')} |")
        lines.append("")
    if run.get("floors"):
        lines += ["Floors: " + json.dumps(run["floors"]), ""]
    return "\n".join(lines) + "\n"


def equal_rate_table(results):
    """Server CPU seconds per 1k deliveries (and p99 ms) of each system at
    the same offered rate: steadier than knees on a shared machine."""
    rows = {}
    for x in results:
        if x["scenario"] in ("S1", "S2"):
            key = (x["scenario"], x["members"], x["offered_deliveries_per_s"])
            rows.setdefault(key, {})[x["system"]] = x
    if not rows:
        return []
    out = ["CPU s per 1k deliveries (p99 ms) at equal offered rates:", "",
           "| scen | N | offered deliveries/s | floor | centrifugo | parley "
           "| parley/centrifugo | parley/floor |", "|---|---|---|---|---|---|---|---|"]
    for k in sorted(rows):
        v = rows[k]

        def cell(name):
            r = v.get(name)
            return f"{r['cpu_s_per_1k']} ({r['lat_ms']['p99']})" if r else "–"

        def rel(a, b):
            if a in v and b in v and v[a]["cpu_s_per_1k"] and v[b]["cpu_s_per_1k"]:
                return round(v[a]["cpu_s_per_1k"] / v[b]["cpu_s_per_1k"], 2)
            return "–"
        out.append(f"| {k[0]} | {k[1]} | {k[2]:g} | {cell('floor')} | {cell('centrifugo')} "
                   f"| {cell('parley')} | {rel('parley', 'centrifugo')} | {rel('parley', 'floor')} |")
    return out + [""]


def ratio(a, b):
    def num(x):
        return float(x.lstrip(">=")) if isinstance(x, str) else x
    if a is None or not b:
        return None
    r = round(num(a) / num(b), 3)
    # a lower bound over a lower bound is no ratio at all
    if isinstance(b, str) and b.startswith(">="):
        return f"<= {r}" if not (isinstance(a, str) and a.startswith(">=")) else f"~{r}"
    return f">= {r}" if isinstance(a, str) and a.startswith(">=") else r


def summarize(results):
    out = []
    s2 = [r for r in results if r["scenario"] == "S2"]
    for r in s2:  # runs written before top_step was recorded
        if "top_step" not in r:
            r["top_step"] = r["offered_msgs_per_s"] == max(
                x["offered_msgs_per_s"] for x in s2
                if x["system"] == r["system"] and x["members"] == r["members"])
    for n in sorted({r["members"] for r in s2}):
        knee, cpu = {}, {}
        for sysname in ("parley", "centrifugo", "floor"):
            good = [r for r in s2 if r["system"] == sysname and r["members"] == n
                    and r["loss"] == 0 and r["lat_ms"]["p99"] <= KNEE_P99_NS / 1e6
                    and r["deliveries"] > 0]
            if good:
                best = max(good, key=lambda r: r["deliveries_per_s"])
                # ">=": the plan's top step passed, the knee lies beyond it
                knee[sysname] = (">=" if best.get("top_step") else "") + \
                    str(round(best["deliveries_per_s"]))
                cpu[sysname] = best["cpu_s_per_1k"]
        out.append({"scenario": f"S2 N={n}", "figure": "deliveries/s at knee", **knee,
                    "vs_centrifugo": ratio(knee.get("parley"), knee.get("centrifugo")),
                    "vs_floor": ratio(knee.get("parley"), knee.get("floor")),
                    "goal": ">= 1.0x centrifugo, >= 0.5x floor"})
        out.append({"scenario": f"S2 N={n}", "figure": "CPU s per 1k deliveries (at knee)", **cpu,
                    "vs_centrifugo": ratio(cpu.get("parley"), cpu.get("centrifugo")),
                    "vs_floor": ratio(cpu.get("parley"), cpu.get("floor")),
                    "goal": "<= 2x floor"})
    s1 = [r for r in results if r["scenario"] == "S1"]
    for rate in sorted({r["offered_msgs_per_s"] for r in s1}):
        p = {r["system"]: r["lat_ms"]["p99"] for r in s1 if r["offered_msgs_per_s"] == rate}
        out.append({"scenario": f"S1 {rate:g} msg/s", "figure": "p99 ms", **p,
                    "vs_centrifugo": ratio(p.get("parley"), p.get("centrifugo")),
                    "goal": "<= 1.0x centrifugo"})
    for r in (r for r in results if r["scenario"] == "S4"):
        st = r.get("store") or {}
        out.append({"scenario": f"S4 {r['streams']}x{r['members']} @{r['offered_msgs_per_s']:g}/s",
                    "figure": "loss / ack p99 ms / store lag p99 s / stored of sent",
                    r["system"]: f"{r['loss']} / {r['ack_ms']['p99']} / {st.get('lag_s_p99')} / "
                                 f"{st.get('stored')} of {st.get('sent')}",
                    "goal": "0 loss, ack p99 < 10 ms, store lag p99 < 1 s"})
    for r in (r for r in results if r["scenario"] == "S5"):
        out.append({"scenario": f"S5 {r['conns']} clients", "figure":
                    "back+synced within 10 s / loss / dup",
                    r["system"]: f"{r['back_within_10s_frac']} of {r['dropped']} / {r['loss']} / "
                                 f"{r['dup']}",
                    "goal": ">= 0.99 within 10 s, 0 loss, 0 dup"})
    s3 = [r for r in results if r["scenario"] == "S3"]
    for n in sorted({r["conns"] for r in s3}):
        m = {r["system"]: r["rss_kb_per_conn"] for r in s3 if r["conns"] == n}
        c = {r["system"]: r["cpu_us_per_conn_s"] for r in s3 if r["conns"] == n}
        out.append({"scenario": f"S3 {n}", "figure": "RSS KiB per idle conn", **m,
                    "vs_centrifugo": ratio(m.get("parley"), m.get("centrifugo")),
                    "goal": "<= 0.3x centrifugo"})
        out.append({"scenario": f"S3 {n}", "figure": "CPU µs per idle conn-s", **c,
                    "vs_centrifugo": ratio(c.get("parley"), c.get("centrifugo")),
                    "goal": "<= 1.0x centrifugo"})
    return out


# ---------------------------------------------------------------- plans

PLANS = {
    # deliveries/s targets per step; msgs/s = target / N
    "quick": {"s2_n": [10, 100, 1000], "s2_deliv": [2000, 20000, 100000],
              "s2_dur": 2, "s1_rates": [200, 2000], "s1_dur": 2,
              "s3": [5000], "s3_hold": 8, "s4": (20, 50, 100, 4),
              "s5": (20, 100, 50, 8)},
    "full": {"s2_n": [10, 100, 1000, 10000],
             "s2_deliv": [5000, 10000, 20000, 50000, 100000, 150000, 200000, 300000, 400000],
             "s2_dur": 10, "s1_rates": [500, 1000, 2000, 5000, 10000, 20000], "s1_dur": 10,
             "s3": [10000, 18000], "s3_hold": 120, "s4": (100, 100, 1000, 600),
             "s5": (100, 100, 100, 60)},
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["quick", "full", "smoke", "report"])
    ap.add_argument("--systems", default="floor,centrifugo,parley")
    ap.add_argument("--scenarios", default="S2,S1,S3,S4,S5,floors")
    ap.add_argument("--attach", action="store_true")
    ap.add_argument("--url", default="")
    ap.add_argument("--pids", default="")
    ap.add_argument("--secret", default=SECRET)
    ap.add_argument("--out", default="")
    ap.add_argument("--bin", default=os.path.join(ROOT, "build/bin"))
    ap.add_argument("--offset", type=int, default=21000)
    ap.add_argument("--n", default="", help="S2 room sizes, e.g. 10,100")
    ap.add_argument("--deliv", default="", help="S2 deliveries/s steps, e.g. 5000,20000")
    ap.add_argument("--parley-env", default="",
                    help="K=V,... extra environment for parley's services (experiments)")
    a = ap.parse_args()
    if a.mode == "report":  # recompute summary and table of a finished run
        with open(os.path.join(a.out, "run.json")) as f:
            run = json.load(f)
        for r in run["results"]:
            if r["scenario"] == "S3":
                r["rss_kb_per_conn"] = rss_per_conn(r["rss_kb_before"], r["rss_kb_held"],
                                                    r["ready"])
            if r["scenario"] == "S3" and "cpu_s_for_conns" in r:
                c = sum(v for k, v in r["cpu_s_for_conns"].items()
                        if k not in ("kafka", "postgres"))  # no client connections
                r["cpu_us_per_conn_s"] = round(max(c, 0) / r["hold_s"] / max(r["ready"], 1)
                                               * 1e6, 3)
        run["summary"] = summarize(run["results"])
        with open(os.path.join(a.out, "run.json"), "w") as f:
            json.dump(run, f, indent=1)
        with open(os.path.join(a.out, "table.md"), "w") as f:
            f.write(markdown(run))
        print(markdown(run))
        return 0
    rid = time.strftime("%Y%m%d-%H%M%S")
    rundir = a.out or os.path.join(ROOT, "var/bench", rid)
    os.makedirs(rundir, exist_ok=True)
    run = {"id": rid, "mode": a.mode, "machine": machine(), "versions": {}, "results": [],
           "floors": {}}
    try:
        run["versions"]["parley"] = subprocess.run(["git", "-C", ROOT, "describe", "--always",
                                                    "--dirty"], capture_output=True,
                                                   text=True).stdout.strip()
    except OSError:
        pass
    plan = dict(PLANS["quick" if a.mode == "smoke" else a.mode])
    if a.n:
        plan["s2_n"] = [int(x) for x in a.n.split(",")]
    if a.deliv:
        plan["s2_deliv"] = [int(x) for x in a.deliv.split(",")]
    if a.parley_env:
        run["versions"]["parley_env"] = a.parley_env
    scen = a.scenarios.split(",")
    # A killed run stops its stacks (the finally clauses below), so a
    # rerun does not find the old Kafka on its port and talk to it.
    signal.signal(signal.SIGTERM, lambda sig, _: sys.exit(128 + sig))
    r = Runner(a, rundir, a.bin)
    t_start = time.time()
    deferred = []
    if a.mode == "smoke":
        sysm = Attached(a.url.split(","), [p for p in a.pids.split(",") if p])
        r.stream_run(sysm, "S2", 1, 10, [20], False, a.secret, 3, f"sm{os.getpid()}")
    else:
        for name in a.systems.split(","):
            sysm = None
            try:
                if name == "floor":
                    sysm = Floor(rundir, a.bin)
                elif name == "centrifugo":
                    sysm = Centrifugo(rundir)
                    run["versions"]["centrifugo"] = sysm.version
                else:
                    sysm = Parley(rundir, a.offset,
                                  dict(kv.split("=", 1) for kv in a.parley_env.split(",") if kv))
                    r.warm(sysm, a.secret, 15 if a.mode == "quick" else 30)
                pre = f"{name[0]}{rid[-6:]}"
                if "S2" in scen:
                    for n in plan["s2_n"]:
                        rates = [max(d / n, 1) for d in plan["s2_deliv"]]
                        r.stream_run(sysm, "S2", 1, n, rates, False, a.secret, plan["s2_dur"],
                                     f"{pre}n{n}")
                if "S1" in scen and name != "floor":
                    r.stream_run(sysm, "S1", 1000, 1, plan["s1_rates"], True, a.secret,
                                 plan["s1_dur"], f"{pre}dm")
                if "S3" in scen and name != "floor":
                    for n in plan["s3"]:
                        r.idle_run(sysm, n, plan["s3_hold"], a.secret, f"{pre}i{n}")
                if "S4" in scen and name != "floor":
                    rooms, members, rate, dur = plan["s4"]
                    r.stream_run(sysm, "S4", rooms, members, [rate], False, a.secret, dur,
                                 f"{pre}s4", store_lag=True)
                if "S5" in scen and name == "parley":
                    rooms, members, rate, dur = plan["s5"]
                    r.storm_run(sysm, rooms, members, rate, dur, a.secret, f"{pre}s5")
                if "floors" in scen and name == "parley":
                    run["floors"]["postgres"] = floor_pg(rundir, sysm)
                    run["floors"]["kafka"] = floor_tool(a.bin, [
                        "kafka", f"127.0.0.1:{sysm.kafka_port}", f"bench.floor.{rid}",
                        "500", str(plan["s2_dur"] + 1)])
                    run["floors"]["nng"] = floor_tool(a.bin, ["nng", "3"])
            except Exception as e:  # keep what was measured
                log(f"{name}: {e}")
                run.setdefault("errors", []).append(f"{name}: {e}")
            except BaseException:  # SIGTERM or Ctrl-C: stop what we started
                if sysm:
                    sysm.stop()
                    sysm = None
                for d in deferred:
                    d.stop()
                raise
            finally:
                # parley's stack (Kafka's controlled shutdown) takes a while to
                # stop: print the results first when it is the last system.
                if sysm and name == a.systems.split(",")[-1] and isinstance(sysm, Parley):
                    deferred.append(sysm)
                elif sysm:
                    sysm.stop()
    run["results"] = r.results
    run["summary"] = summarize(r.results)
    run["elapsed_s"] = round(time.time() - t_start, 1)
    run["loadavg_end"] = os.getloadavg()
    with open(os.path.join(rundir, "run.json"), "w") as f:
        json.dump(run, f, indent=1)
    md = markdown(run)
    with open(os.path.join(rundir, "table.md"), "w") as f:
        f.write(md)
    print(md)
    log(f"results in {rundir}/run.json and table.md ({run['elapsed_s']} s)")
    for sysm in deferred:
        sysm.stop()
    return 1 if run.get("errors") else 0


if __name__ == "__main__":
    sys.exit(main())
