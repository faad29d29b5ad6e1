// The SDK against a real parley (tests/integration/73-web-sdk.sh starts it):
// reconnect after a gateway is killed, resend without duplicates, gap
// repair, resume after being away, receipts. Counts what was acknowledged
// against what arrived.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { fromBinary } from "@bufbuild/protobuf";
import { ServerFrameSchema } from "../dist/gen/parley/v1/client_pb.js";
import { sseTransport, websocketTransport } from "../dist/index.js";
import {
  closeAll,
  connected,
  gwUrl,
  killGateway,
  restartGateway,
  sleep,
  until,
} from "./helpers.mjs";

after(closeAll);

const dm = (a, b) => "dm:" + [a, b].sort().join(":");

/** Record every message event of client c: room -> [seq...], plus bodies. */
function record(c) {
  const got = { seqs: new Map(), bodies: [], fromSync: 0 };
  c.on("message", (m) => {
    if (!got.seqs.has(m.roomId)) got.seqs.set(m.roomId, []);
    got.seqs.get(m.roomId).push(m.seq);
    got.bodies.push(m.body);
    if (m.fromSync) got.fromSync++;
  });
  return got;
}

/** History of room once the store has at least n messages (it follows the
 * log), read again a moment later so that extra ones would show. */
async function historyUntil(c, room, n) {
  for (let i = 0; i < 100; i++) {
    if ((await c.history(room, { limit: 100 })).length >= n) break;
    await sleep(100);
  }
  await sleep(500);
  return c.history(room, { limit: 100 });
}

const range = (n) => Array.from({ length: n }, (_, i) => i + 1);

test("a gateway killed mid-stream: every send acknowledged once, nothing lost or doubled", async () => {
  const room = dm("alice1", "bob1");
  let got;
  const bob = await connected("bob1", [gwUrl(2)], {}, (c) => (got = record(c)));
  const alice = await connected("alice1", [gwUrl(1)]);
  const N = 30;
  const acks = [];
  for (let i = 1; i <= N; i++) {
    acks.push(alice.send(room, `m${i}`).acked);
    if (i === 10) {
      // Some of the first ten are in flight: acknowledged or not, stored
      // or not. Each is resent with its id until acknowledged.
      await acks[0];
      killGateway(1);
      await until(() => alice.state.status === "reconnecting", 10000, "alice notices the loss");
    }
    if (i === 20) await restartGateway(1);
  }
  const res = await Promise.all(acks);
  const seqs = res.map((a) => a.seq).sort((a, b) => a - b);
  assert.deepEqual(seqs, range(N), "acks carry seqs 1..N, each once");
  const dups = res.filter((a) => a.duplicate).length;
  console.log(`${dups} of ${N} acks were for a resend of a stored message`);
  assert.ok(alice.states.includes("reconnecting"), "alice went through reconnecting");
  assert.equal(alice.state.status, "open");
  await until(() => (got.seqs.get(room) ?? []).length >= N, 20000, "bob gets all");
  await sleep(300);
  assert.deepEqual(got.seqs.get(room), range(N), "bob: each message once, in order");
  // History agrees: N messages, N distinct client ids.
  const hist = await historyUntil(bob, room, N);
  assert.equal(hist.length, N);
  assert.equal(new Set(hist.map((m) => m.clientMsgId)).size, N);
  alice.close();
  bob.close();
});

test("a retry with the same client_msg_id is acknowledged with the same seq", async () => {
  const room = dm("alice2", "bob2");
  const alice = await connected("alice2", [gwUrl(1), gwUrl(2)]);
  const first = await alice.send(room, "once", "fixed-id-1").acked;
  const again = await alice.send(room, "once", "fixed-id-1").acked;
  assert.equal(again.seq, first.seq);
  assert.equal(again.duplicate, true);
  const hist = await historyUntil(alice, room, 1);
  assert.equal(hist.length, 1);
  alice.close();
});

test("messages dropped on the way are fetched with Sync and shown in order", async () => {
  const room = dm("alice3", "bob3");
  // bob's transport loses the live Message frames of seqs 3, 4 and 7.
  const drop = new Set([3, 4, 7]);
  let dropped = 0;
  const base = websocketTransport(WebSocket);
  const lossy = {
    kind: "websocket",
    connect(opts) {
      return base.connect({
        ...opts,
        handlers: {
          ...opts.handlers,
          onFrame(bytes) {
            const f = fromBinary(ServerFrameSchema, bytes);
            if (f.msg.case === "message" && drop.has(Number(f.msg.value.seq))) {
              dropped++;
              return;
            }
            opts.handlers.onFrame(bytes);
          },
        },
      });
    },
  };
  let got;
  const bob = await connected("bob3", [gwUrl(2)], { transports: [lossy] }, (c) => (got = record(c)));
  const alice = await connected("alice3", [gwUrl(1)]);
  for (let i = 1; i <= 10; i++) await alice.send(room, `g${i}`).acked;
  await until(() => (got.seqs.get(room) ?? []).length >= 10, 20000, "bob has all ten");
  await sleep(300);
  assert.equal(dropped, 3, "the transport did drop three messages");
  assert.deepEqual(got.seqs.get(room), range(10));
  assert.ok(got.fromSync >= 3, "the dropped ones came through Sync");
  alice.close();
  bob.close();
});

test("a client away for a while gets what it missed, from its cursor", async () => {
  const room = dm("alice4", "bob4");
  const alice = await connected("alice4", [gwUrl(1)]);
  for (let i = 1; i <= 3; i++) await alice.send(room, `a${i}`).acked;
  // bob comes with a cursor at 1 (he saw message 1 in an earlier run).
  let got;
  const bob = await connected("bob4", [gwUrl(2)], { cursors: { [room]: 1 } }, (c) => (got = record(c)));
  for (let i = 4; i <= 5; i++) await alice.send(room, `a${i}`).acked;
  await until(() => (got.seqs.get(room) ?? []).length >= 4, 20000, "bob catches up");
  await sleep(300);
  assert.deepEqual(got.seqs.get(room), [2, 3, 4, 5]);
  // The server's count (the store follows the log) is what the SDK shows
  // once it asks again; the count kept between asks is an estimate.
  let info = bob.getRoom(room);
  for (let i = 0; i < 100 && info.unread !== 5; i++) {
    await sleep(100);
    info = (await bob.listRooms()).find((r) => r.roomId === room);
  }
  assert.equal(info.unread, 5);
  assert.equal(bob.getRoom(room).unread, 5);
  alice.close();
  bob.close();
});

test("receipts: Delivered goes by itself, Read on request, both reach the sender", async () => {
  const room = dm("alice5", "bob5");
  let got;
  const bob = await connected("bob5", [gwUrl(2)], {}, (c) => (got = record(c)));
  const alice = await connected("alice5", [gwUrl(1)]);
  const receipts = [];
  alice.on("receipt", (r) => r.userId === "bob5" && receipts.push(r));
  for (let i = 1; i <= 5; i++) await alice.send(room, `r${i}`).acked;
  await until(() => (got.seqs.get(room) ?? []).length >= 5, 20000, "bob has five");
  await until(
    () => receipts.some((r) => r.kind === "delivered" && r.seq === 5),
    10000,
    "a delivered receipt for seq 5",
  );
  assert.equal(receipts.filter((r) => r.kind === "read").length, 0, "nothing read yet");
  bob.markRead(room, 3);
  await until(() => receipts.some((r) => r.kind === "read" && r.seq === 3), 10000, "read 3");
  assert.equal(bob.getRoom(room).unread, 2);
  const sum = await alice.receipts(room, 3);
  assert.ok(sum.delivered >= 1, "bob counts as having got 3");
  assert.ok(sum.read >= 1, "bob counts as having read 3");
  // A second device of bob learns the exact unread count from the server
  // (the store follows the log: ask again until the marker is in).
  const bob2 = await connected("bob5", [gwUrl(1)]);
  let info = bob2.getRoom(room);
  for (let i = 0; i < 100 && info.readSeq < 3; i++) {
    await sleep(100);
    info = (await bob2.listRooms()).find((r) => r.roomId === room);
  }
  assert.equal(info.readSeq, 3);
  assert.equal(info.unread, 2);
  alice.close();
  bob.close();
  bob2.close();
});

test("a refused token is terminal without a token callback", async () => {
  const { ParleyClient } = await import("../dist/index.js");
  const c = new ParleyClient({
    url: gwUrl(1),
    token: "not-a-token",
    transports: [websocketTransport(WebSocket)],
  });
  c.connect();
  after(() => c.close());
  await until(() => c.state.status === "closed", 10000, "closed");
  assert.equal(c.state.closeCode, 4001);
  await sleep(1500);
  assert.equal(c.state.status, "closed", "no reconnect");
});

// ---- the fallback transport (SSE + POST) -------------------------------

/** Whether gateway n speaks the fallback transport (GET /v1/events). */
async function hasFallback(n) {
  const ctl = new AbortController();
  try {
    const res = await fetch(`http://127.0.0.1:${process.env[`GW_PORT_${n}`]}/v1/events`, {
      signal: ctl.signal,
    });
    return res.status !== 404;
  } catch {
    return false;
  } finally {
    ctl.abort();
  }
}

const NO_FALLBACK = "this gateway has no fallback transport (GET /v1/events is 404)";

test("on the fallback transport: messages, acks, receipts; a gateway killed mid-chat loses nothing", async (t) => {
  if (!(await hasFallback(2))) return t.skip(NO_FALLBACK);
  const room = dm("alice6", "bob6");
  let got;
  const bob = await connected("bob6", [gwUrl(2)], { transports: [sseTransport()] }, (c) => (got = record(c)));
  assert.equal(bob.state.transport, "sse");
  let agot;
  const alice = await connected("alice6", [gwUrl(1)], {}, (c) => (agot = record(c)));
  const receipts = [];
  alice.on("receipt", (r) => r.userId === "bob6" && receipts.push(r));
  const acks = [];
  for (let i = 1; i <= 5; i++) acks.push(alice.send(room, `s${i}`).acked);
  await Promise.all(acks);
  await until(() => (got.seqs.get(room) ?? []).length >= 5, 20000, "bob (SSE) has five");
  await until(() => receipts.some((r) => r.kind === "delivered" && r.seq === 5), 10000, "delivered 5");
  // bob's gateway dies; both sides go on; it comes back.
  killGateway(2);
  await until(() => bob.state.status === "reconnecting", 20000, "bob notices");
  for (let i = 6; i <= 10; i++) acks.push(alice.send(room, `s${i}`).acked);
  const bobAcks = [1, 2, 3].map((i) => bob.send(room, `b${i}`).acked);
  await restartGateway(2);
  const all = [...(await Promise.all(acks)), ...(await Promise.all(bobAcks))];
  assert.deepEqual(all.map((a) => a.seq).sort((a, b) => a - b), range(13), "13 acks, seqs 1..13");
  await until(() => (got.seqs.get(room) ?? []).length >= 13, 20000, "bob has all");
  await until(() => (agot.seqs.get(room) ?? []).length >= 8, 20000, "alice has bob's");
  await sleep(300);
  assert.deepEqual(got.seqs.get(room), range(13), "bob: each once, in order");
  assert.equal(bob.state.transport, "sse");
  bob.markRead(room, 13);
  await until(() => receipts.some((r) => r.kind === "read" && r.seq === 13), 10000, "read 13");
});

test("WebSocket blocked: the SDK falls back by itself and returns when it can", async (t) => {
  if (!(await hasFallback(1))) return t.skip(NO_FALLBACK);
  const room = dm("alice7", "bob7");
  let blocked = true;
  const ws = websocketTransport(WebSocket);
  const blockable = {
    kind: "websocket",
    connect(opts) {
      // A blocked network: the WebSocket goes nowhere.
      return ws.connect(blocked ? { ...opts, url: "ws://127.0.0.1:9/" } : opts);
    },
  };
  let got;
  const bob = await connected(
    "bob7",
    [gwUrl(1)],
    { transports: [blockable, sseTransport()], probeEveryMs: 1000, backoffMaxMs: 500 },
    (c) => (got = record(c)),
  );
  assert.equal(bob.state.transport, "sse", "fell back to SSE");
  const alice = await connected("alice7", [gwUrl(2)]);
  await alice.send(room, "over sse").acked;
  await until(() => (got.seqs.get(room) ?? []).length >= 1, 20000, "bob gets it over SSE");
  blocked = false;
  await until(
    () => bob.state.transport === "websocket" && bob.state.status === "open",
    20000,
    "back on WebSocket",
  );
  await alice.send(room, "over websocket").acked;
  await until(() => (got.seqs.get(room) ?? []).length >= 2, 20000, "bob gets it over WebSocket");
  await sleep(300);
  assert.deepEqual(got.seqs.get(room), [1, 2]);
});

test("a cut event stream is resumed from its cursor: same session, nothing lost or doubled", async (t) => {
  if (!(await hasFallback(2))) return t.skip(NO_FALLBACK);
  const room = dm("alice8", "bob8");
  // The first event stream is cut (as a proxy would) after its 4th frame.
  let streams = 0;
  let cut = false;
  const cutting = async (url, init) => {
    const res = await fetch(url, init);
    if (!url.endsWith("/v1/events") || streams++ > 0) return res;
    const reader = res.body.getReader();
    let frames = 0;
    const body = new ReadableStream({
      async pull(ctl) {
        const { value, done } = await reader.read();
        if (done) return ctl.close();
        ctl.enqueue(value);
        frames += (new TextDecoder().decode(value).match(/^data: /gm) ?? []).length;
        if (frames >= 4 && !cut) {
          cut = true;
          await reader.cancel();
          ctl.close();
        }
      },
    });
    return new Response(body, { status: res.status, headers: res.headers });
  };
  let got;
  const bob = await connected(
    "bob8",
    [gwUrl(2)],
    { transports: [sseTransport({ fetch: cutting })] },
    (c) => (got = record(c)),
  );
  const session = bob.state.sessionId;
  const alice = await connected("alice8", [gwUrl(1)]);
  for (let i = 1; i <= 8; i++) await alice.send(room, `c${i}`).acked;
  await until(() => (got.seqs.get(room) ?? []).length >= 8, 20000, "bob has eight");
  await sleep(300);
  assert.ok(cut, "the stream was cut");
  assert.ok(streams >= 2, "and opened again");
  assert.deepEqual(got.seqs.get(room), range(8));
  assert.equal(bob.state.sessionId, session, "the same session went on");
  assert.equal(bob.states.filter((s) => s === "reconnecting").length, 0, "no reconnect");
});
