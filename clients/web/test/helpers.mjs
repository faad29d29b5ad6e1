// Helpers for the SDK tests against a real parley started by
// tests/integration/73-web-sdk.sh (tests/lib.sh): tokens, waiting, and
// killing / restarting gateway 1.
import { createHmac } from "node:crypto";
import { openSync, readFileSync, writeFileSync } from "node:fs";
import { spawn } from "node:child_process";
import WebSocket from "ws";
import { ParleyClient, websocketTransport } from "../dist/index.js";

export const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run through tests/integration/73-web-sdk.sh`);
  return v;
};

const b64 = (x) => Buffer.from(typeof x === "string" ? x : JSON.stringify(x)).toString("base64url");

/** An HS256 token for user, as `parley token` makes. */
export function token(user, ttlS = 3600) {
  const now = Math.floor(Date.now() / 1000);
  const head = b64({ alg: "HS256", typ: "JWT" }) + "." + b64({ sub: user, iat: now, exp: now + ttlS });
  const sig = createHmac("sha256", env("PARLEY_JWT_SECRET")).update(head).digest("base64url");
  return `${head}.${sig}`;
}

export const gwUrl = (n) => `ws://127.0.0.1:${env(`GW_PORT_${n}`)}/`;

const clients = [];

/** Close every client the tests made (call from after()). */
export function closeAll() {
  for (const c of clients) c.close();
}

/** A client of user on the given gateways, connected (resolves once open);
 * setup(c) runs before it connects (to attach listeners). */
export async function connected(user, urls, extra = {}, setup = () => {}) {
  const c = new ParleyClient({
    url: urls,
    token: () => token(user),
    transports: [websocketTransport(WebSocket)],
    backoffMaxMs: 2000,
    ...extra,
  });
  const states = [];
  c.on("state", (s) => states.push(s.status));
  c.states = states;
  clients.push(c);
  setup(c);
  c.connect();
  await until(() => c.state.status === "open", 15000, `${user} connected`);
  return c;
}

export async function until(pred, ms, what) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (pred()) return;
    await sleep(50);
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** kill -9 gateway n (its pid file is in $T). */
export function killGateway(n) {
  const pid = Number(readFileSync(`${env("T")}/gateway${n}.pid`, "utf8"));
  process.kill(pid, "SIGKILL");
}

/** Start gateway n again on the same ports; resolves once /readyz says so. */
export async function restartGateway(n) {
  const T = env("T");
  const log = openSync(`${T}/gateway${n}.log`, "a");
  const p = spawn(`${env("PARLEY_BIN")}/parley-gateway`, [], {
    env: {
      ...process.env,
      PARLEY_GATEWAY_PORT: env(`GW_PORT_${n}`),
      PARLEY_GATEWAY_NNG: `tcp://127.0.0.1:${env(`GW_NNG_${n}`)}`,
      PARLEY_ROUTERS: env("ROUTER_URLS"),
    },
    stdio: ["ignore", log, log],
    detached: true,
  });
  p.unref();
  // lib.sh's cleanup stops what the pid file names.
  writeFileSync(`${T}/gateway${n}.pid`, String(p.pid));
  const ready = `http://127.0.0.1:${env(`GW_PORT_${n}`)}/readyz`;
  const end = Date.now() + 30000;
  while (Date.now() < end) {
    try {
      if ((await fetch(ready)).ok) return;
    } catch {
      /* not up yet */
    }
    await sleep(100);
  }
  throw new Error(`gateway ${n} did not come back`);
}
