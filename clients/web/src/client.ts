// ParleyClient: one user's connection to parley, kept up by itself.
//
// What it guarantees the app (the same rules the C CLI's `listen` and `send`
// follow, docs/PROTOCOL.md):
// * Reconnects after any loss with full-jitter exponential backoff (0.5 s
//   doubling to 20 s), except after a terminal close code (4001 bad token,
//   4002 expired, when no token callback gives a fresh token; 4004 bad frame).
// * Each send keeps its client_msg_id and is sent again after a reconnect, a
//   retryable error or a silent timeout until acknowledged: one message.
// * Message events of a room come in seq order, each once: a jump is held
//   back and the gap fetched with Sync; what a room got while away is
//   fetched after a reconnect from the room's cursor.
// * Delivered goes out by itself (per room, at most every 200 ms) for what
//   was handed to the app; Read when the app says.
// * Transports are tried in order: after two failed attempts on one the next
//   is used; while on a fallback, WebSocket is probed now and then and used
//   again once it opens.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  ClientFrameSchema,
  ReceiptKind,
  RoomEventKind as PbRoomEventKind,
  RoomKind,
  ServerFrameSchema,
} from "./gen/parley/v1/client_pb.js";
import type {
  Message as PbMessage,
  RoomEvent as PbRoomEvent,
  RoomSummary,
  ServerFrame,
  SyncResult,
  Welcome,
} from "./gen/parley/v1/client_pb.js";
import { Emitter } from "./emitter.js";
import { CloseCode } from "./transport.js";
import type { Transport, TransportFactory } from "./transport.js";
import { ParleyError } from "./types.js";
import type {
  ChatMessage,
  ClientEvents,
  ConnectionState,
  ConnectionStatus,
  RoomEvent,
  RoomEventKind,
  RoomInfo,
  ReceiptSummary,
  SendAck,
} from "./types.js";
import { sseTransport } from "./sse.js";
import { websocketTransport } from "./websocket.js";

type ClientFrameInit = MessageInitShape<typeof ClientFrameSchema>;
type ClientMsg = NonNullable<ClientFrameInit["msg"]>;

/** Why the token callback is asked: the first connect, or a refused token. */
export type TokenReason = "connect" | "reconnect" | "expired" | "rejected";
export type TokenCallback = (reason: TokenReason) => string | Promise<string>;

export interface ClientOptions {
  /** One gateway URL or several to rotate through (ws:// or wss://). */
  url: string | string[];
  /** A token, or a callback asked before every connection attempt. */
  token: string | TokenCallback;
  /** Transports in order of preference (default: WebSocket, then SSE + POST). */
  transports?: TransportFactory[];
  /** Backoff bounds in ms (default 500 and 20000). */
  backoffMinMs?: number;
  backoffMaxMs?: number;
  /** Send Delivered for messages handed to the app (default true). */
  autoDelivered?: boolean;
  /** Where each room's message events start (default: the room's last seq at the first Welcome). */
  cursors?: Record<string, number>;
  /** Failed attempts on a transport before the next one is tried (default 2). */
  fallbackAfter?: number;
  /** While on a fallback, how often WebSocket is probed (default 30000 ms). */
  probeEveryMs?: number;
  /** A send unanswered this long on a live session is sent again (default 10000). */
  sendTimeoutMs?: number;
  /** A request unanswered this long fails (default 30000). */
  requestTimeoutMs?: number;
}

const SYNC_LIMIT = 500;
const SYNC_TRIES = 25;
const SYNC_RETRY_MS = 200;
const SYNC_MAX_MS = 3000;
const DELIVERED_EVERY_MS = 200;
const WELCOME_TIMEOUT_MS = 15000;
const SEND_RETRY_MS = 1000;

interface PendingSend {
  roomId: string;
  clientMsgId: string;
  body: string;
  requestId: number; // 0 when not on the wire in this session
  timer?: ReturnType<typeof setTimeout>;
  resolve(ack: SendAck): void;
  reject(err: ParleyError): void;
}

interface PendingRequest {
  msg: ClientMsg;
  requestId: number; // 0 when waiting for a session
  /** How many frames make the answer (Presence: one per user); 1 otherwise. */
  collect?: number;
  got: ServerFrame[];
  deadline: ReturnType<typeof setTimeout>;
  resolve(f: ServerFrame[]): void;
  reject(err: ParleyError): void;
}

interface RoomState {
  info: RoomInfo;
  held: Map<number, ChatMessage>;
  syncReq: number;
  syncTries: number;
  retryTimer?: ReturnType<typeof setTimeout>;
  dlvWant: number;
  dlvSent: number;
  dlvLast: number;
  dlvTimer?: ReturnType<typeof setTimeout>;
  readWant: number;
  readSent: number;
  /** The server's unread count covers messages up to this seq. */
  counted: number;
}

function randomId(): string {
  const b = new Uint8Array(16);
  globalThis.crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

function toMessage(m: PbMessage): ChatMessage {
  return {
    roomId: m.roomId,
    seq: Number(m.seq),
    senderId: m.senderId,
    clientMsgId: m.clientMsgId,
    body: m.body,
    tsMs: Number(m.tsMs),
  };
}

const roomEventKinds: Record<number, RoomEventKind> = {
  [PbRoomEventKind.CREATED]: "created",
  [PbRoomEventKind.MEMBERS_ADDED]: "members_added",
  [PbRoomEventKind.MEMBER_REMOVED]: "member_removed",
  [PbRoomEventKind.MEMBER_LEFT]: "member_left",
};

function toRoomEvent(e: PbRoomEvent): RoomEvent {
  return {
    roomId: e.roomId,
    kind: roomEventKinds[e.kind] ?? "unknown",
    userIds: [...e.userIds],
    seq: Number(e.seq),
    actorId: e.actorId,
    name: e.name,
    tsMs: Number(e.tsMs),
  };
}

function serverError(f: ServerFrame): ParleyError | null {
  if (f.msg.case !== "error") return null;
  const e = f.msg.value;
  return new ParleyError(
    e.message,
    e.code,
    e.retryable,
    e.roomId,
    e.clientMsgId,
  );
}

function lost(): ParleyError {
  return new ParleyError("connection lost", 0, true);
}

export class ParleyClient extends Emitter<ClientEvents> {
  private opts: Required<Omit<ClientOptions, "cursors">> & {
    cursors: Record<string, number>;
  };
  private urls: string[];
  private urlIndex = 0;
  private t: Transport | null = null;
  private live = false; // Welcome received on t
  private welcome: Welcome | null = null;
  private status: ConnectionStatus = "idle";
  private attempt = 0;
  private authFailures = 0;
  private lastClose: { code?: number; reason?: string } = {};
  private retryTimer?: ReturnType<typeof setTimeout>;
  private retryAt = 0;
  private welcomeTimer?: ReturnType<typeof setTimeout>;
  private nextRequestId = 1;
  private tIndex = 0;
  private tFailures = 0;
  private probe: Transport | null = null;
  private probeTimer?: ReturnType<typeof setTimeout>;
  private initial = true;
  private rooms = new Map<string, RoomState>();
  private sends = new Map<string, PendingSend>();
  private requests = new Map<number, PendingRequest>();
  private waiting: PendingRequest[] = [];
  private watched: string[] = [];
  private closing = false;
  private tokenReason: TokenReason = "connect";

  constructor(options: ClientOptions) {
    super();
    this.opts = {
      backoffMinMs: 500,
      backoffMaxMs: 20000,
      autoDelivered: true,
      fallbackAfter: 2,
      probeEveryMs: 30000,
      sendTimeoutMs: 10000,
      requestTimeoutMs: 30000,
      ...options,
      transports: options.transports?.length
        ? options.transports
        : [websocketTransport(), sseTransport()],
      cursors: { ...(options.cursors ?? {}) },
    };
    this.urls = Array.isArray(options.url) ? [...options.url] : [options.url];
    if (this.urls.length === 0) throw new Error("parley: no url");
  }

  // ---- connection ----------------------------------------------------

  /** Start connecting (and stay connected until close()). */
  connect(): void {
    if (this.status !== "idle" && this.status !== "closed") return;
    this.closing = false;
    this.attempt = 0;
    this.setStatus("connecting");
    void this.open();
  }

  /** Stop for good: close the session and cancel every retry. */
  close(): void {
    this.closing = true;
    clearTimeout(this.retryTimer);
    this.stopProbe();
    clearTimeout(this.welcomeTimer);
    if (this.t) this.t.close(1000, "client closed");
    else this.setStatus("closed");
    for (const r of this.rooms.values()) {
      clearTimeout(r.retryTimer);
      clearTimeout(r.dlvTimer);
      r.retryTimer = r.dlvTimer = undefined;
    }
    for (const s of this.sends.values()) {
      clearTimeout(s.timer);
      s.reject(lost());
    }
    this.sends.clear();
    for (const r of [...this.requests.values(), ...this.waiting])
      this.failRequest(r, lost());
    this.waiting = [];
  }

  /** The current connection state. */
  get state(): ConnectionState {
    return {
      status: this.status,
      transport: this.opts.transports[this.tIndex].kind,
      attempt: this.attempt,
      retryInMs:
        this.status === "reconnecting" && this.retryAt
          ? Math.max(0, this.retryAt - Date.now())
          : undefined,
      closeCode: this.lastClose.code,
      reason: this.lastClose.reason,
      userId: this.welcome?.userId,
      sessionId: this.welcome?.sessionId,
    };
  }

  /** The signed-in user (after the first Welcome). */
  get userId(): string | undefined {
    return this.welcome?.userId;
  }

  /** Reconnect now instead of waiting for the backoff (e.g. when online again). */
  reconnectNow(): void {
    if (this.status !== "reconnecting" || this.t) return;
    clearTimeout(this.retryTimer);
    void this.open();
  }

  private setStatus(s: ConnectionStatus): void {
    this.status = s;
    this.emit("state", this.state);
  }

  private async token(): Promise<string> {
    const tok = this.opts.token;
    return typeof tok === "string" ? tok : tok(this.tokenReason);
  }

  private async open(): Promise<void> {
    let token: string;
    try {
      token = await this.token();
    } catch (err) {
      // Fetching a token can fail for the same reasons connecting can
      // (the server is down): try again with backoff.
      if (this.closing) return;
      this.lastClose = { code: 0, reason: `no token: ${err}` };
      this.scheduleReconnect();
      return;
    }
    if (this.closing) return;
    const url = this.urls[this.urlIndex % this.urls.length];
    const factory = this.opts.transports[this.tIndex];
    this.live = false;
    let t: Transport;
    try {
      t = factory.connect({
        url,
        token,
        handlers: {
          onOpen: () => this.onOpen(t, factory.authenticated ? "" : token),
          onFrame: (b) => this.onFrame(t, b),
          onClose: (code, reason) => this.onClose(t, code, reason),
        },
      });
    } catch (err) {
      this.t = null;
      this.onClose(null, 1006, String(err));
      return;
    }
    this.t = t;
    this.emit("state", this.state);
  }

  private onOpen(t: Transport, token: string): void {
    if (t !== this.t) return;
    if (token) this.write({ case: "auth", value: { token } }, this.takeRequestId());
    this.welcomeTimer = setTimeout(
      () => t.close(4003, "no Welcome"),
      WELCOME_TIMEOUT_MS,
    );
  }

  private onClose(t: Transport | null, code: number, reason: string): void {
    if (t && t !== this.t) return;
    const welcomed = this.live;
    clearTimeout(this.welcomeTimer);
    this.t = null;
    this.live = false;
    this.lastClose = { code, reason };
    this.endSession();
    if (this.closing) {
      this.setStatus("closed");
      return;
    }
    if (this.terminal(code)) {
      this.stopProbe();
      this.setStatus("closed");
      for (const s of this.sends.values())
        s.reject(new ParleyError(`closed: ${code} ${reason}`, 0, false));
      this.sends.clear();
      return;
    }
    this.urlIndex++;
    if (!welcomed) this.transportFailed();
    this.scheduleReconnect();
  }

  /** Whether close code means "stop"; may arrange a fresh token instead. */
  private terminal(code: number): boolean {
    if (code === CloseCode.BadFrame) return true;
    if (code !== CloseCode.Unauthorized && code !== CloseCode.TokenExpired)
      return false;
    if (typeof this.opts.token === "string") return true;
    // A fresh token that is refused again is not going to get better.
    if (++this.authFailures > 2) return true;
    this.tokenReason =
      code === CloseCode.TokenExpired ? "expired" : "rejected";
    return false;
  }

  /**
   * An attempt failed before a session came up. After fallbackAfter
   * failures of the preferred transport the next one is tried; when a
   * fallback fails too, the server is more likely down than WebSocket
   * blocked, so the preferred one is tried again.
   */
  private transportFailed(): void {
    const n = this.opts.transports.length;
    if (n < 2) return;
    if (this.tIndex !== 0) {
      this.tIndex = (this.tIndex + 1) % n;
      return;
    }
    if (++this.tFailures < this.opts.fallbackAfter) return;
    this.tFailures = 0;
    this.tIndex = 1;
  }

  private scheduleReconnect(): void {
    const cap = Math.min(
      this.opts.backoffMaxMs,
      this.opts.backoffMinMs * 2 ** Math.min(this.attempt, 30),
    );
    const delay = Math.floor(Math.random() * cap);
    this.attempt++;
    this.retryAt = Date.now() + delay;
    if (this.tokenReason === "connect") this.tokenReason = "reconnect";
    this.setStatus("reconnecting");
    this.retryTimer = setTimeout(() => void this.open(), delay);
  }

  /** The session ended: whatever was in flight is resent on the next one. */
  private endSession(): void {
    for (const s of this.sends.values()) {
      clearTimeout(s.timer);
      s.requestId = 0;
    }
    for (const r of this.requests.values()) {
      r.requestId = 0;
      r.got = [];
      this.waiting.push(r);
    }
    this.requests.clear();
    for (const room of this.rooms.values()) {
      room.syncReq = 0;
      clearTimeout(room.dlvTimer);
      room.dlvTimer = undefined;
    }
  }

  private onWelcome(w: Welcome): void {
    clearTimeout(this.welcomeTimer);
    this.welcome = w;
    this.live = true;
    this.attempt = 0;
    this.authFailures = 0;
    this.tFailures = 0;
    this.tokenReason = "reconnect";
    this.adopt(w.rooms);
    if (!w.roomsComplete) void this.listRooms().catch(() => {});
    for (const s of this.sends.values()) this.writeSend(s);
    const waiting = this.waiting;
    this.waiting = [];
    for (const r of waiting) this.issue(r);
    if (this.watched.length)
      void this.subscribePresence(this.watched).catch(() => {});
    for (const room of this.rooms.values()) {
      if (room.held.size && !room.syncReq) this.sync(room);
      this.flushDelivered(room, true);
      this.flushRead(room);
    }
    if (this.tIndex !== 0) this.startProbe();
    else this.stopProbe();
    // Last, so that listeners see the rooms of this Welcome.
    this.setStatus("open");
  }

  // ---- fallback probe -------------------------------------------------

  /** Probe soon (a restarted gateway), then every probeEveryMs. */
  private startProbe(): void {
    if (this.probeTimer) return;
    this.probeTimer = setTimeout(() => {
      this.probeOnce();
      this.probeTimer = setInterval(() => this.probeOnce(), this.opts.probeEveryMs);
    }, Math.min(3000, this.opts.probeEveryMs));
  }

  private stopProbe(): void {
    clearTimeout(this.probeTimer);
    clearInterval(this.probeTimer);
    this.probeTimer = undefined;
    this.probe?.close(1000, "probe");
    this.probe = null;
  }

  /** Open the first transport without a session; if it opens, move to it. */
  private probeOnce(): void {
    if (this.probe || this.tIndex === 0 || !this.live) return;
    const url = this.urls[this.urlIndex % this.urls.length];
    let p: Transport;
    try {
      p = this.opts.transports[0].connect({
        url,
        token: "",
        handlers: {
          onOpen: () => {
            p.close(1000, "probe");
            this.stopProbe();
            this.tIndex = 0;
            this.tFailures = 0;
            // Resends and syncs make the switch lose nothing.
            this.t?.close(1000, "back to the preferred transport");
          },
          onFrame: () => {},
          onClose: () => {
            if (this.probe === p) this.probe = null;
          },
        },
      });
    } catch {
      return;
    }
    this.probe = p;
  }

  // ---- frames ---------------------------------------------------------

  private takeRequestId(): number {
    return this.nextRequestId++;
  }

  private write(msg: ClientMsg, requestId = 0): boolean {
    if (!this.t) return false;
    const bytes = toBinary(
      ClientFrameSchema,
      create(ClientFrameSchema, { requestId: BigInt(requestId), msg }),
    );
    return this.t.send(bytes);
  }

  private onFrame(t: Transport, bytes: Uint8Array): void {
    if (t !== this.t) return;
    let f: ServerFrame;
    try {
      f = fromBinary(ServerFrameSchema, bytes);
    } catch {
      t.close(4004, "undecodable ServerFrame");
      return;
    }
    if (f.msg.case === "welcome") {
      // A second Welcome on a live transport (a fallback stream that
      // could not be resumed) starts a new session: as after a reconnect.
      if (this.live) this.endSession();
      this.onWelcome(f.msg.value);
      return;
    }
    if (!this.live) {
      if (f.msg.case === "error") this.emit("error", serverError(f)!);
      return;
    }
    this.dispatch(f);
  }

  private dispatch(f: ServerFrame): void {
    const rid = Number(f.requestId);
    const m = f.msg;
    switch (m.case) {
      case "sendAck":
        return this.onAck(m.value);
      case "message":
        return this.onMessage(toMessage(m.value), false);
      case "receipt":
        return this.onReceipt(m.value.roomId, m.value.userId, m.value.kind, Number(m.value.seq));
      case "typing":
        this.emit("typing", {
          roomId: m.value.roomId,
          userId: m.value.userId,
          active: m.value.active,
        });
        return;
      case "roomEvent":
        if (rid && this.requests.has(rid)) this.answer(rid, f);
        return this.onRoomEvent(toRoomEvent(m.value));
      case "error":
        return this.onError(rid, f);
      case "syncResult":
        if (this.onSyncResult(rid, m.value)) return;
        break;
      case "presence":
        this.emit("presence", {
          userId: m.value.userId,
          online: m.value.online,
          lastSeenMs: Number(m.value.lastSeenMs),
        });
        break;
    }
    if (rid && this.requests.has(rid)) this.answer(rid, f);
  }

  // ---- requests -------------------------------------------------------

  /**
   * Send a request and wait for its answer. Requests made while no session
   * is up, or cut off by a reconnect, go out (again) on the next session:
   * every request the SDK makes this way is safe to repeat.
   */
  private request(msg: ClientMsg, collect = 1): Promise<ServerFrame[]> {
    return new Promise((resolve, reject) => {
      const r: PendingRequest = {
        msg,
        requestId: 0,
        collect,
        got: [],
        resolve,
        reject,
        deadline: setTimeout(() => {
          this.requests.delete(r.requestId);
          this.waiting = this.waiting.filter((x) => x !== r);
          reject(new ParleyError("request timed out", 8, true));
        }, this.opts.requestTimeoutMs),
      };
      if (this.live) this.issue(r);
      else this.waiting.push(r);
    });
  }

  private issue(r: PendingRequest): void {
    r.requestId = this.takeRequestId();
    this.requests.set(r.requestId, r);
    this.write(r.msg, r.requestId);
  }

  private answer(rid: number, f: ServerFrame): void {
    const r = this.requests.get(rid)!;
    r.got.push(f);
    if (r.got.length < (r.collect ?? 1)) return;
    this.requests.delete(rid);
    clearTimeout(r.deadline);
    r.resolve(r.got);
  }

  private failRequest(r: PendingRequest, err: ParleyError): void {
    clearTimeout(r.deadline);
    r.reject(err);
  }

  private onError(rid: number, f: ServerFrame): void {
    const err = serverError(f)!;
    if (err.clientMsgId && this.sends.has(err.clientMsgId))
      return this.onSendError(this.sends.get(err.clientMsgId)!, err);
    for (const room of this.rooms.values())
      if (rid && room.syncReq === rid) return this.onSyncError(room, err);
    const r = this.requests.get(rid);
    if (!r) {
      this.emit("error", err);
      return;
    }
    this.requests.delete(rid);
    this.failRequest(r, err);
  }

  // ---- sending --------------------------------------------------------

  /**
   * Send body to roomId. Resolves with the ack once the message is durable;
   * until then it is retried with the same client_msg_id, across
   * reconnects. Rejects only when the server refuses it for good.
   */
  send(
    roomId: string,
    body: string,
    clientMsgId: string = randomId(),
  ): { clientMsgId: string; acked: Promise<SendAck> } {
    const existing = this.sends.get(clientMsgId);
    if (existing)
      return { clientMsgId, acked: new Promise((res, rej) => {
        const { resolve, reject } = existing;
        existing.resolve = (a) => (resolve(a), res(a));
        existing.reject = (e) => (reject(e), rej(e));
      }) };
    let s!: PendingSend;
    const acked = new Promise<SendAck>((resolve, reject) => {
      s = { roomId, clientMsgId, body, requestId: 0, resolve, reject };
    });
    // An app that ignores the promise must not get unhandled rejections.
    acked.catch(() => {});
    this.sends.set(clientMsgId, s);
    if (this.live) this.writeSend(s);
    return { clientMsgId, acked };
  }

  /** Sends not acknowledged yet, oldest first. */
  get pendingSends(): { roomId: string; clientMsgId: string; body: string }[] {
    return [...this.sends.values()].map(({ roomId, clientMsgId, body }) => ({
      roomId,
      clientMsgId,
      body,
    }));
  }

  private writeSend(s: PendingSend): void {
    clearTimeout(s.timer);
    s.requestId = this.takeRequestId();
    const { roomId, clientMsgId, body } = s;
    this.write({ case: "send", value: { roomId, clientMsgId, body } }, s.requestId);
    s.timer = setTimeout(() => {
      if (this.live && this.sends.get(s.clientMsgId) === s) this.writeSend(s);
    }, this.opts.sendTimeoutMs);
  }

  private onAck(a: {
    clientMsgId: string;
    roomId: string;
    seq: bigint;
    tsMs: bigint;
    duplicate: boolean;
  }): void {
    const ack: SendAck = {
      roomId: a.roomId,
      clientMsgId: a.clientMsgId,
      seq: Number(a.seq),
      tsMs: Number(a.tsMs),
      duplicate: a.duplicate,
    };
    const s = this.sends.get(a.clientMsgId);
    if (s) {
      clearTimeout(s.timer);
      this.sends.delete(a.clientMsgId);
    }
    const room = this.room(a.roomId);
    if (ack.seq > room.info.lastSeq) room.info.lastSeq = ack.seq;
    this.emit("ack", ack);
    s?.resolve(ack);
  }

  private onSendError(s: PendingSend, err: ParleyError): void {
    clearTimeout(s.timer);
    if (err.retryable) {
      s.timer = setTimeout(() => {
        if (this.live && this.sends.get(s.clientMsgId) === s) this.writeSend(s);
      }, SEND_RETRY_MS);
      return;
    }
    this.sends.delete(s.clientMsgId);
    this.emit("sendFailed", { roomId: s.roomId, clientMsgId: s.clientMsgId, error: err });
    s.reject(err);
  }

  // ---- rooms and messages --------------------------------------------

  private room(roomId: string, cursor?: number): RoomState {
    let r = this.rooms.get(roomId);
    if (r) return r;
    // A cursor the app gave wins: it says what the app has already.
    const start = this.opts.cursors[roomId] ?? cursor ?? 0;
    r = {
      info: {
        roomId,
        name: "",
        kind: roomId.startsWith("dm:") ? "direct" : "unknown",
        lastSeq: start,
        cursor: start,
        readSeq: 0,
        unread: 0,
        deliveredSeq: 0,
        member: true,
      },
      held: new Map(),
      syncReq: 0,
      syncTries: 0,
      dlvWant: 0,
      dlvSent: 0,
      dlvLast: 0,
      readWant: 0,
      readSent: 0,
      counted: start,
    };
    this.rooms.set(roomId, r);
    return r;
  }

  /** Every room this client knows, as the app should show it. */
  roomList(): RoomInfo[] {
    return [...this.rooms.values()].map((r) => ({ ...r.info }));
  }

  getRoom(roomId: string): RoomInfo | undefined {
    const r = this.rooms.get(roomId);
    return r ? { ...r.info } : undefined;
  }

  /** Take in a room list (Welcome, RoomList): learn rooms, fetch what is new. */
  private adopt(list: RoomSummary[]): void {
    for (const s of list) {
      const known = this.rooms.has(s.roomId);
      const last = Number(s.lastSeq);
      const r = this.room(
        s.roomId,
        known ? undefined : this.initial ? last : 0,
      );
      const i = r.info;
      i.name = s.name || i.name;
      i.kind =
        s.kind === RoomKind.DIRECT ? "direct" : s.kind === RoomKind.GROUP ? "group" : i.kind;
      i.lastSeq = Math.max(i.lastSeq, last);
      i.readSeq = Math.max(i.readSeq, Number(s.readSeq));
      i.unread = Number(s.unread);
      r.counted = Math.max(r.counted, last);
      i.deliveredSeq = Math.max(i.deliveredSeq, Number(s.deliveredSeq));
      i.member = true;
      if (last > i.cursor && !r.syncReq) this.sync(r);
      this.emit("room", { ...i });
    }
    this.initial = false;
  }

  private onMessage(m: ChatMessage, fromSync: boolean): void {
    const r = this.room(m.roomId, this.initial && m.seq ? m.seq - 1 : 0);
    if (m.seq > r.info.lastSeq) r.info.lastSeq = m.seq;
    if (m.seq <= r.info.cursor) return; // had it already
    if (m.seq === r.info.cursor + 1) {
      this.deliver(r, m, fromSync);
      this.release(r);
      return;
    }
    r.held.set(m.seq, m);
    if (!r.syncReq && !r.retryTimer) this.sync(r);
  }

  /** Hand m to the app: it is the room's next message. */
  private deliver(r: RoomState, m: ChatMessage, fromSync: boolean): void {
    r.info.cursor = m.seq;
    if (m.senderId !== this.welcome?.userId && m.seq > r.info.readSeq && m.seq > r.counted)
      r.info.unread++;
    if (m.seq > r.counted) r.counted = m.seq;
    this.emit("message", { ...m, fromSync });
    this.emit("room", { ...r.info });
    if (this.opts.autoDelivered && m.seq > r.dlvWant) {
      r.dlvWant = m.seq;
      this.flushDelivered(r, false);
    }
  }

  private release(r: RoomState): void {
    for (;;) {
      const next = r.held.get(r.info.cursor + 1);
      for (const seq of r.held.keys()) if (seq <= r.info.cursor) r.held.delete(seq);
      if (!next) return;
      r.held.delete(next.seq);
      this.deliver(r, next, true);
    }
  }

  private sync(r: RoomState): void {
    clearTimeout(r.retryTimer);
    r.retryTimer = undefined;
    if (!this.live) return; // the next Welcome asks again
    r.syncReq = this.takeRequestId();
    this.write(
      {
        case: "sync",
        value: { roomId: r.info.roomId, afterSeq: BigInt(r.info.cursor), limit: SYNC_LIMIT },
      },
      r.syncReq,
    );
  }

  private onSyncResult(rid: number, res: SyncResult): boolean {
    const r = this.rooms.get(res.roomId);
    if (!r || !rid || r.syncReq !== rid) return false;
    r.syncReq = 0;
    const before = r.info.cursor;
    const horizon = Number(res.lastSeq);
    if (horizon > r.info.lastSeq) r.info.lastSeq = horizon;
    for (const pm of res.messages) {
      const m = toMessage(pm);
      if (m.seq === r.info.cursor + 1) this.deliver(r, m, true);
      else if (m.seq > r.info.cursor) r.held.set(m.seq, m);
    }
    this.release(r);
    const behind = r.held.size > 0 || r.info.cursor < horizon;
    if (!behind) {
      r.syncTries = 0;
      return true;
    }
    if (res.hasMore && r.info.cursor > before) this.sync(r);
    else if (r.held.size) this.retryLater(r);
    return true;
  }

  private onSyncError(r: RoomState, err: ParleyError): void {
    r.syncReq = 0;
    if (err.retryable) this.retryLater(r);
    else this.giveUp(r);
  }

  private retryLater(r: RoomState): void {
    if (++r.syncTries >= SYNC_TRIES) return this.giveUp(r);
    const wait = Math.min(SYNC_MAX_MS, SYNC_RETRY_MS * 2 ** (r.syncTries - 1));
    r.retryTimer = setTimeout(() => this.sync(r), wait);
  }

  /** The gap cannot be filled: say so, and hand over what is held. */
  private giveUp(r: RoomState): void {
    this.emit("gap", { roomId: r.info.roomId, afterSeq: r.info.cursor });
    const held = [...r.held.values()].sort((a, b) => a.seq - b.seq);
    r.held.clear();
    for (const m of held) if (m.seq > r.info.cursor) this.deliver(r, m, true);
    r.syncTries = 0;
  }

  private onRoomEvent(ev: RoomEvent): void {
    const r = this.room(ev.roomId, this.initial ? ev.seq : 0);
    const me = this.welcome?.userId ?? "";
    if (ev.name) r.info.name = ev.name;
    if (r.info.kind === "unknown" && !ev.roomId.startsWith("dm:")) r.info.kind = "group";
    const gone =
      (ev.kind === "member_removed" || ev.kind === "member_left") && ev.userIds.includes(me);
    if (gone) r.info.member = false;
    else if (ev.userIds.includes(me)) r.info.member = true;
    this.emit("roomEvent", ev);
    this.emit("room", { ...r.info });
    // The event follows message ev.seq: one we have not seen is a gap.
    if (!gone && ev.seq > r.info.cursor && !r.syncReq && !r.retryTimer) this.sync(r);
  }

  // ---- receipts -------------------------------------------------------

  private onReceipt(roomId: string, userId: string, kind: ReceiptKind, seq: number): void {
    const r = this.rooms.get(roomId);
    if (r && userId === this.welcome?.userId && kind === ReceiptKind.READ) {
      // Another device of ours read up to seq.
      this.noteRead(r, seq);
    }
    this.emit("receipt", {
      roomId,
      userId,
      kind: kind === ReceiptKind.READ ? "read" : "delivered",
      seq,
    });
  }

  private flushDelivered(r: RoomState, now: boolean): void {
    if (r.dlvWant <= r.dlvSent || !this.live) return;
    const wait = r.dlvLast + DELIVERED_EVERY_MS - Date.now();
    if (!now && wait > 0) {
      if (!r.dlvTimer)
        r.dlvTimer = setTimeout(() => {
          r.dlvTimer = undefined;
          this.flushDelivered(r, true);
        }, wait);
      return;
    }
    const seq = r.dlvWant;
    if (this.write({ case: "delivered", value: { roomId: r.info.roomId, seq: BigInt(seq) } })) {
      r.dlvSent = seq;
      r.dlvLast = Date.now();
      if (seq > r.info.deliveredSeq) r.info.deliveredSeq = seq;
    }
  }

  private noteRead(r: RoomState, seq: number): void {
    if (seq <= r.info.readSeq) return;
    const gained = seq - r.info.readSeq;
    r.info.readSeq = seq;
    r.info.unread = seq >= r.info.lastSeq ? 0 : Math.max(0, r.info.unread - gained);
    this.emit("room", { ...r.info });
  }

  /** Move this user's read marker of roomId up to seq (default: the cursor). */
  markRead(roomId: string, seq?: number): void {
    const r = this.room(roomId);
    const s = seq ?? r.info.cursor;
    if (s <= r.readWant) return;
    r.readWant = s;
    this.noteRead(r, s);
    this.flushRead(r);
  }

  private flushRead(r: RoomState): void {
    if (r.readWant <= r.readSent || !this.live) return;
    if (this.write({ case: "read", value: { roomId: r.info.roomId, seq: BigInt(r.readWant) } }))
      r.readSent = r.readWant;
  }

  // ---- other requests -------------------------------------------------

  /** Tell the room's online members this user types (or stopped). */
  setTyping(roomId: string, active: boolean): void {
    if (this.live) this.write({ case: "typing", value: { roomId, active } });
  }

  /** Messages before beforeSeq (0: the newest), oldest first. */
  async history(
    roomId: string,
    opts: { beforeSeq?: number; limit?: number } = {},
  ): Promise<ChatMessage[]> {
    const [f] = await this.request({
      case: "history",
      value: { roomId, beforeSeq: BigInt(opts.beforeSeq ?? 0), limit: opts.limit ?? 50 },
    });
    if (f.msg.case !== "syncResult") throw new ParleyError("unexpected answer", 1, false);
    return f.msg.value.messages.map(toMessage);
  }

  /** Create a group room; resolves with its CREATED event (room id inside). */
  async createRoom(name: string, memberIds: string[]): Promise<RoomEvent> {
    const [f] = await this.request({
      case: "createRoom",
      value: { name, memberIds, clientRoomId: randomId() },
    });
    if (f.msg.case !== "roomEvent") throw new ParleyError("unexpected answer", 1, false);
    return toRoomEvent(f.msg.value);
  }

  async addMembers(roomId: string, userIds: string[]): Promise<RoomEvent> {
    return this.roomChange({ case: "addMembers", value: { roomId, userIds } });
  }

  async removeMember(roomId: string, userId: string): Promise<RoomEvent> {
    return this.roomChange({ case: "removeMember", value: { roomId, userId } });
  }

  async leaveRoom(roomId: string): Promise<RoomEvent> {
    return this.roomChange({ case: "leaveRoom", value: { roomId } });
  }

  private async roomChange(msg: ClientMsg): Promise<RoomEvent> {
    const [f] = await this.request(msg);
    if (f.msg.case !== "roomEvent") throw new ParleyError("unexpected answer", 1, false);
    return toRoomEvent(f.msg.value);
  }

  /** Ask the server for the room list again (it also updates roomList()). */
  async listRooms(): Promise<RoomInfo[]> {
    const [f] = await this.request({ case: "listRooms", value: {} });
    if (f.msg.case !== "roomList") throw new ParleyError("unexpected answer", 1, false);
    this.adopt(f.msg.value.rooms);
    return this.roomList();
  }

  /** How many members got and read message seq. */
  async receipts(roomId: string, seq: number): Promise<ReceiptSummary> {
    const [f] = await this.request({ case: "getReceipts", value: { roomId, seq: BigInt(seq) } });
    if (f.msg.case !== "receiptSummary") throw new ParleyError("unexpected answer", 1, false);
    const v = f.msg.value;
    return {
      roomId: v.roomId,
      seq: Number(v.seq),
      members: Number(v.members),
      delivered: Number(v.delivered),
      read: Number(v.read),
    };
  }

  /**
   * Watch these users' presence (replaces the set; kept across reconnects).
   * The current states come as presence events.
   */
  async subscribePresence(userIds: string[]): Promise<void> {
    const ids = [...new Set(userIds)];
    this.watched = ids;
    await this.request({ case: "subscribePresence", value: { userIds: ids } }, Math.max(1, ids.length));
  }
}
