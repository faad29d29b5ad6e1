// The parley demo page: sign in as anyone (dev tokens), rooms with unread
// badges and presence dots, conversations with ✓ / ✓✓ / blue ✓✓, typing,
// history, groups, and the connection state. Everything goes through the SDK.
import { ParleyClient, sseTransport, websocketTransport } from "../src/index.js";
import type { ChatMessage, ConnectionState, RoomInfo } from "../src/index.js";

const $ = <T extends HTMLElement = HTMLElement>(sel: string) =>
  document.querySelector(sel) as T;

interface Shown extends ChatMessage {
  pending?: boolean; // sent, not acknowledged yet (seq 0)
}

interface ConvState {
  msgs: Map<string, Shown>; // by client_msg_id (own) or room:seq
  oldest: number; // lowest seq loaded; 1 means all
  loaded: boolean;
  // Per other user: the highest seq they got / read.
  delivered: Map<string, number>;
  read: Map<string, number>;
}

const params = new URLSearchParams(location.search);
const wsUrl =
  params.get("ws") ??
  `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/`;

let client: ParleyClient | null = null;
let me = "";
let current = "";
const convs = new Map<string, ConvState>();
const presence = new Map<string, boolean>();
const typing = new Map<string, Map<string, number>>(); // room -> user -> until
let renderQueued = false;
const watched = new Set<string>(); // users whose presence dots we show

function watchPeer(peer: string): void {
  watched.add(peer);
  if (client?.state.status === "open")
    void client.subscribePresence([...watched]).catch(() => {});
}

// ---- storage: who is signed in (per tab) and unacknowledged sends ------

const store = sessionStorage;
function pendingKey(): string {
  return `parley.pending.${me}`;
}
function savePending(): void {
  if (client) store.setItem(pendingKey(), JSON.stringify(client.pendingSends));
}

async function fetchToken(user: string): Promise<string> {
  const res = await fetch(`/dev/token?user=${encodeURIComponent(user)}`, {
    cache: "no-store",
  });
  if (!res.ok) throw new Error(`dev token: ${res.status} ${await res.text()}`);
  return (await res.json()).token as string;
}

// ---- helpers -----------------------------------------------------------

function conv(roomId: string): ConvState {
  let c = convs.get(roomId);
  if (!c) {
    c = { msgs: new Map(), oldest: 0, loaded: false, delivered: new Map(), read: new Map() };
    convs.set(roomId, c);
  }
  return c;
}

function keyOf(m: ChatMessage): string {
  return m.senderId === me && m.clientMsgId ? `c:${m.clientMsgId}` : `s:${m.seq}`;
}

function addMessage(m: Shown): void {
  const c = conv(m.roomId);
  c.msgs.set(keyOf(m), m);
  if (m.seq && (c.oldest === 0 || m.seq < c.oldest)) c.oldest = m.seq;
}

function dmPeer(roomId: string): string {
  const [, a, b] = roomId.split(":");
  return a === me ? b : a;
}

function roomTitle(r: { roomId: string; name?: string }): string {
  if (r.roomId.startsWith("dm:")) return dmPeer(r.roomId);
  return r.name || r.roomId;
}

function dmRoom(peer: string): string {
  return "dm:" + [me, peer].sort().join(":");
}

function schedule(): void {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    render();
  });
}

// ---- rendering ---------------------------------------------------------

function renderConn(s: ConnectionState): void {
  const el = $("#conn");
  el.dataset.status = s.status;
  el.dataset.transport = s.transport;
  const how = s.transport === "websocket" ? "WebSocket" : s.transport === "sse" ? "SSE + POST (fallback)" : s.transport;
  const text: Record<string, string> = {
    idle: "not connected",
    connecting: `connecting (${how})…`,
    open: `connected · ${how}`,
    reconnecting:
      `reconnecting` +
      (s.retryInMs !== undefined ? ` in ${(s.retryInMs / 1000).toFixed(1)} s` : "…") +
      (s.closeCode ? ` (lost: ${s.closeCode})` : ""),
    closed: `disconnected${s.closeCode ? ` (${s.closeCode} ${s.reason ?? ""})` : ""}`,
  };
  el.textContent = text[s.status];
}

function renderRooms(): void {
  if (!client) return;
  const list = client
    .roomList()
    .filter((r) => r.member)
    .sort((a, b) => (b.lastSeq > 0 ? 1 : 0) - (a.lastSeq > 0 ? 1 : 0) || roomTitle(a).localeCompare(roomTitle(b)));
  const ul = $("#rooms");
  ul.replaceChildren(
    ...list.map((r) => {
      const li = document.createElement("li");
      li.dataset.room = r.roomId;
      if (r.roomId === current) li.classList.add("active");
      const dot = document.createElement("span");
      dot.className = "dot";
      if (r.roomId.startsWith("dm:")) {
        if (presence.get(dmPeer(r.roomId))) dot.classList.add("online");
      } else dot.classList.add("group");
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = roomTitle(r);
      const badge = document.createElement("span");
      badge.className = "badge";
      badge.textContent = r.unread > 0 && r.roomId !== current ? String(r.unread) : "";
      li.append(dot, name, badge);
      li.onclick = () => openRoom(r.roomId);
      return li;
    }),
  );
}

/** ✓ acknowledged; ✓✓ delivered to the others; blue ✓✓ read by them. */
function ticks(c: ConvState, m: Shown): [string, string] {
  if (m.pending || !m.seq) return ["pending", "○"];
  const others = new Set([...c.delivered.keys(), ...c.read.keys()]);
  others.delete(me);
  const peer = current.startsWith("dm:") ? dmPeer(current) : "";
  const who = peer ? [peer] : [...others];
  const all = (map: Map<string, number>) =>
    who.length > 0 && who.every((u) => (map.get(u) ?? 0) >= m.seq);
  if (all(c.read)) return ["read", "✓✓"];
  if (all(c.delivered) || who.some((u) => (c.read.get(u) ?? 0) >= m.seq))
    return ["delivered", "✓✓"];
  return ["sent", "✓"];
}

function renderConversation(): void {
  const list = $("#msg-list");
  if (!current) {
    list.replaceChildren();
    return;
  }
  const c = conv(current);
  const box = $("#messages");
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  const msgs = [...c.msgs.values()].sort(
    (a, b) => (a.seq || Infinity) - (b.seq || Infinity) || a.tsMs - b.tsMs,
  );
  list.replaceChildren(
    ...msgs.map((m) => {
      const li = document.createElement("li");
      li.className = "msg" + (m.senderId === me ? " mine" : "");
      li.dataset.seq = String(m.seq);
      li.dataset.cid = m.clientMsgId;
      if (m.senderId !== me && !current.startsWith("dm:")) {
        const from = document.createElement("div");
        from.className = "from";
        from.textContent = m.senderId;
        li.append(from);
      }
      const body = document.createElement("span");
      body.className = "body";
      body.textContent = m.body;
      const meta = document.createElement("span");
      meta.className = "meta";
      meta.textContent = m.tsMs ? new Date(m.tsMs).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : "";
      if (m.senderId === me) {
        const [cls, txt] = ticks(c, m);
        const t = document.createElement("span");
        t.className = "ticks " + cls;
        t.textContent = txt;
        meta.append(t);
      }
      li.append(body, meta);
      return li;
    }),
  );
  ($("#older") as HTMLButtonElement).hidden = !c.loaded || c.oldest <= 1;
  if (atBottom) box.scrollTop = box.scrollHeight;
  const now = Date.now();
  const who = [...(typing.get(current) ?? new Map<string, number>()).entries()]
    .filter(([u, until]) => u !== me && until > now)
    .map(([u]) => u);
  $("#typing").textContent = who.length
    ? `${who.join(", ")} ${who.length > 1 ? "are" : "is"} typing…`
    : "";
}

function render(): void {
  renderRooms();
  renderConversation();
}

// ---- reading -----------------------------------------------------------

function readVisible(): void {
  if (!client || !current || document.visibilityState !== "visible") return;
  const r = client.getRoom(current);
  if (r && r.cursor > r.readSeq) client.markRead(current, r.cursor);
}

async function openRoom(roomId: string): Promise<void> {
  if (!client) return;
  current = roomId;
  const info = client.getRoom(roomId);
  $("#conv-title").textContent = roomTitle({ roomId, name: info?.name });
  $("#conv-sub").textContent = roomId;
  ($("#composer") as HTMLFormElement).hidden = false;
  ($("#add-people") as HTMLFormElement).hidden = roomId.startsWith("dm:");
  history.replaceState(null, "", `#${encodeURIComponent(roomId)}`);
  schedule();
  const c = conv(roomId);
  if (!c.loaded) await loadOlder(roomId, 0);
  // What the others got and read already (receipts only come on change).
  void refreshReceipts(roomId);
  readVisible();
  ($("#composer input") as HTMLInputElement).focus();
}

async function loadOlder(roomId: string, before: number): Promise<void> {
  if (!client) return;
  try {
    const msgs = await client.history(roomId, { beforeSeq: before, limit: 30 });
    const c = conv(roomId);
    for (const m of msgs) addMessage(m);
    c.loaded = true;
    if (msgs.length === 0 || msgs[0].seq <= 1) c.oldest = 1;
    const box = $("#messages");
    const fromBottom = box.scrollHeight - box.scrollTop;
    renderConversation();
    if (before) box.scrollTop = box.scrollHeight - fromBottom;
    readVisible();
  } catch {
    const c = conv(roomId);
    c.loaded = true; // e.g. a DM with no message yet
    c.oldest = 1;
    renderConversation();
  }
}

/** Learn the other side's markers from the receipt summary of our last message. */
async function refreshReceipts(roomId: string): Promise<void> {
  if (!client || !roomId.startsWith("dm:")) return;
  const c = conv(roomId);
  const mine = [...c.msgs.values()].filter((m) => m.senderId === me && m.seq);
  if (!mine.length) return;
  const peer = dmPeer(roomId);
  // Binary search the highest of our seqs the peer read / got.
  const seqs = mine.map((m) => m.seq).sort((a, b) => a - b);
  const top = seqs[seqs.length - 1];
  try {
    const s = await client.receipts(roomId, top);
    // The sender counts as having read its own message.
    if (s.read >= s.members) c.read.set(peer, Math.max(c.read.get(peer) ?? 0, top));
    if (s.delivered >= s.members)
      c.delivered.set(peer, Math.max(c.delivered.get(peer) ?? 0, top));
    schedule();
  } catch {
    /* receipts are a nicety */
  }
}

// ---- the session -------------------------------------------------------

function start(user: string): void {
  me = user;
  $("#me").textContent = `signed in as ${user}`;
  ($("#signin") as HTMLElement).hidden = true;
  ($("#app") as HTMLElement).hidden = false;
  ($("#signout") as HTMLButtonElement).hidden = false;
  // ?transport=sse forces the fallback (SSE + POST), ?transport=websocket
  // WebSocket only; by default WebSocket first, the fallback when it fails.
  const only = params.get("transport");
  const transports =
    only === "sse" ? [sseTransport()] : only === "websocket" ? [websocketTransport()] : undefined;
  const c = new ParleyClient({ url: wsUrl, token: () => fetchToken(user), transports });
  client = c;
  c.on("state", (s) => {
    renderConn(s);
    if (s.status === "open") {
      for (const r of c.roomList()) if (r.roomId.startsWith("dm:")) watched.add(dmPeer(r.roomId));
      if (watched.size) void c.subscribePresence([...watched]).catch(() => {});
      // History may have moved on while we were away.
      if (current) void refreshReceipts(current);
    }
  });
  c.on("room", (r) => {
    if (r.roomId.startsWith("dm:") && !watched.has(dmPeer(r.roomId))) watchPeer(dmPeer(r.roomId));
    schedule();
  });
  c.on("message", (m) => {
    addMessage(m);
    if (m.roomId === current) readVisible();
    const t = typing.get(m.roomId);
    t?.delete(m.senderId);
    schedule();
  });
  c.on("ack", (a) => {
    const cv = conv(a.roomId);
    const m = cv.msgs.get(`c:${a.clientMsgId}`);
    if (m) {
      m.pending = false;
      m.seq = a.seq;
      m.tsMs = a.tsMs;
    }
    savePending();
    schedule();
  });
  c.on("receipt", (r) => {
    const cv = conv(r.roomId);
    const map = r.kind === "read" ? cv.read : cv.delivered;
    if (r.seq > (map.get(r.userId) ?? 0)) map.set(r.userId, r.seq);
    if (r.kind === "read" && r.seq > (cv.delivered.get(r.userId) ?? 0)) cv.delivered.set(r.userId, r.seq);
    schedule();
  });
  c.on("typing", (t) => {
    let m = typing.get(t.roomId);
    if (!m) typing.set(t.roomId, (m = new Map()));
    if (t.active) m.set(t.userId, Date.now() + 6000);
    else m.delete(t.userId);
    schedule();
    setTimeout(schedule, 6100);
  });
  c.on("presence", (p) => {
    presence.set(p.userId, p.online);
    schedule();
  });
  c.on("roomEvent", () => schedule());
  c.on("sendFailed", (f) => {
    const m = conv(f.roomId).msgs.get(`c:${f.clientMsgId}`);
    if (m) m.body += `  ⚠ not sent: ${f.error.message}`;
    savePending();
    schedule();
  });
  c.connect();
  // Sends that were not acknowledged before a reload go again, same ids.
  const pending = JSON.parse(store.getItem(pendingKey()) ?? "[]") as {
    roomId: string;
    clientMsgId: string;
    body: string;
  }[];
  for (const p of pending) sendMessage(p.roomId, p.body, p.clientMsgId);
  const hash = decodeURIComponent(location.hash.slice(1));
  if (hash) void openRoom(hash);
}

function sendMessage(roomId: string, body: string, id?: string): void {
  if (!client) return;
  const { clientMsgId, acked } = client.send(roomId, body, id);
  addMessage({ roomId, seq: 0, senderId: me, clientMsgId, body, tsMs: Date.now(), pending: true });
  savePending();
  acked.catch(() => {});
  schedule();
}

// ---- wiring ------------------------------------------------------------

let typingSent = 0;
let typingStop: ReturnType<typeof setTimeout> | undefined;

function wire(): void {
  $("#signin-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const user = (new FormData(e.target as HTMLFormElement).get("user") as string).trim();
    try {
      await fetchToken(user); // fails early when dev tokens are off
      store.setItem("parley.user", user);
      start(user);
    } catch (err) {
      $("#signin-error").textContent = String(err);
    }
  });
  $("#signout").addEventListener("click", () => {
    store.removeItem("parley.user");
    client?.close();
    location.hash = "";
    location.reload();
  });
  $("#new-chat").addEventListener("submit", (e) => {
    e.preventDefault();
    const f = e.target as HTMLFormElement;
    const peer = (new FormData(f).get("peer") as string).trim();
    if (!peer || peer === me) return;
    f.reset();
    void openRoom(dmRoom(peer));
    watchPeer(peer);
  });
  $("#new-group-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = e.target as HTMLFormElement;
    const d = new FormData(f);
    const members = String(d.get("members")).split(/[\s,]+/).filter(Boolean);
    try {
      const ev = await client!.createRoom(String(d.get("name")), members);
      f.reset();
      ($("#new-group") as HTMLDetailsElement).open = false;
      void openRoom(ev.roomId);
    } catch (err) {
      alert(`could not create the group: ${err}`);
    }
  });
  $("#add-people").addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = e.target as HTMLFormElement;
    const users = String(new FormData(f).get("users")).split(/[\s,]+/).filter(Boolean);
    try {
      await client!.addMembers(current, users);
      f.reset();
    } catch (err) {
      alert(`could not add: ${err}`);
    }
  });
  $("#composer").addEventListener("submit", (e) => {
    e.preventDefault();
    const input = $("#composer input") as HTMLInputElement;
    const body = input.value;
    if (!body.trim() || !current) return;
    input.value = "";
    sendMessage(current, body);
    clearTimeout(typingStop);
    if (typingSent) client?.setTyping(current, false);
    typingSent = 0;
  });
  $("#composer input").addEventListener("input", () => {
    if (!client || !current) return;
    const now = Date.now();
    if (now - typingSent > 3000) {
      client.setTyping(current, true);
      typingSent = now;
    }
    clearTimeout(typingStop);
    typingStop = setTimeout(() => {
      client?.setTyping(current, false);
      typingSent = 0;
    }, 4000);
  });
  $("#older").addEventListener("click", () => {
    const c = conv(current);
    void loadOlder(current, c.oldest);
  });
  $("#messages").addEventListener("scroll", () => {
    const box = $("#messages");
    const c = conv(current);
    if (box.scrollTop === 0 && c.loaded && c.oldest > 1) void loadOlder(current, c.oldest);
  });
  document.addEventListener("visibilitychange", readVisible);
  window.addEventListener("online", () => client?.reconnectNow());
  setInterval(() => client && renderConn(client.state), 500);
}

wire();
const saved = store.getItem("parley.user");
if (saved) start(saved);
