// The fallback transport of docs/PROTOCOL.md ("Fallback transport"): the
// gateway's server-sent events (GET /v1/events) carry ServerFrames, POST
// /v1/send carries ClientFrames (size-delimited). Built on fetch() so it
// works the same in browsers and Node 18+ and can send the token in an
// Authorization header. One transport object is one session; a stream cut
// without a close event is resumed from its cursor (Last-Event-ID), and if
// the gateway cannot resume it the new session's Welcome tells the client
// to sync and resend, as after any reconnect.
import type {
  Transport,
  TransportFactory,
  TransportHandlers,
  TransportOptions,
} from "./transport.js";

/** http(s)://host:port/PATH from the ws(s):// URL the client was given. */
export function httpUrl(wsUrl: string, path: string): string {
  const u = new URL(wsUrl);
  u.protocol = u.protocol === "wss:" ? "https:" : u.protocol === "ws:" ? "http:" : u.protocol;
  u.pathname = path;
  u.search = "";
  return u.toString();
}

function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return out;
}

function fromBase64(s: string): Uint8Array {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** What the transport needs of fetch(). */
export type FetchFn = (url: string, init?: RequestInit) => Promise<Response>;

/** Resumes of a cut stream in a row, and the pause before each. */
const SSE_RESUME_TRIES = 3;
const SSE_RESUME_WAIT_MS = 300;

class SseTransport implements Transport {
  readonly kind = "sse";
  private abort = new AbortController();
  private session = "";
  private secret = "";
  private opened = false;
  private closed = false;
  private queue: Uint8Array[] = [];
  private posting = false;
  private watchdog?: ReturnType<typeof setTimeout>;
  private idleMs = 35000;
  private lastId = "";
  private resumes = 0;
  private fetch: FetchFn;

  constructor(
    private opts: TransportOptions,
    private h: TransportHandlers,
    fetchFn?: FetchFn,
  ) {
    this.fetch = fetchFn ?? ((url, init) => globalThis.fetch(url, init));
    void this.stream();
  }

  private finish(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.watchdog);
    this.abort.abort();
    this.h.onClose(code, reason, this.opened);
  }

  /** No byte for 2 × ping_s + 5 s: the stream is dead. */
  private alive(): void {
    clearTimeout(this.watchdog);
    this.watchdog = setTimeout(() => this.finish(1006, "event stream silent"), this.idleMs);
  }

  /**
   * Keep the stream going: a stream cut without a close event is resumed
   * with the last cursor (Last-Event-ID), a few times in a row at most; the
   * gateway answers with the frames after it (resumed) or a new session
   * whose Welcome the client takes as a reconnect.
   */
  private async stream(): Promise<void> {
    for (let tries = 0; ; tries++) {
      const why = await this.streamOnce();
      if (why === null || this.closed) return;
      if (!this.opened || !this.lastId || this.resumes >= SSE_RESUME_TRIES)
        return this.finish(1006, why);
      this.resumes++;
      await new Promise((r) => setTimeout(r, SSE_RESUME_WAIT_MS));
      if (this.closed) return;
    }
  }

  /** One GET /v1/events; null when the transport closed, else why it ended. */
  private async streamOnce(): Promise<string | null> {
    let res: Response;
    const headers: Record<string, string> = {
      authorization: `Bearer ${this.opts.token}`,
      accept: "text/event-stream",
    };
    if (this.lastId) headers["last-event-id"] = this.lastId;
    try {
      res = await this.fetch(httpUrl(this.opts.url, "/v1/events"), {
        headers,
        cache: "no-store",
        signal: this.abort.signal,
      });
    } catch (err) {
      return `event stream: ${err}`;
    }
    if (!res.ok || !res.body) {
      await res.body?.cancel().catch(() => {});
      return `event stream: HTTP ${res.status}`;
    }
    this.alive();
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    let ev = { event: "", data: "", id: "" };
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        this.alive();
        buf += value;
        let nl: number;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl).replace(/\r$/, "");
          buf = buf.slice(nl + 1);
          if (line === "") {
            if (ev.data || ev.event) this.onEvent(ev.event || "message", ev.data);
            if (ev.id) this.lastId = ev.id;
            ev = { event: "", data: "", id: "" };
            if (this.closed) {
              void reader.cancel().catch(() => {});
              return null;
            }
          } else if (!line.startsWith(":")) {
            const c = line.indexOf(":");
            const field = c < 0 ? line : line.slice(0, c);
            const val = c < 0 ? "" : line.slice(c + 1).replace(/^ /, "");
            if (field === "event") ev.event = val;
            else if (field === "id") ev.id = val;
            else if (field === "data") ev.data = ev.data ? `${ev.data}\n${val}` : val;
          }
        }
      }
    } catch (err) {
      return this.closed ? null : `event stream: ${err}`;
    }
    return this.closed ? null : "event stream ended without a close event";
  }

  private onEvent(event: string, data: string): void {
    if (event === "session") {
      const s = JSON.parse(data) as { session_id: string; secret: string; ping_s?: number };
      this.session = s.session_id;
      this.secret = s.secret;
      if (s.ping_s) this.idleMs = (2 * s.ping_s + 5) * 1000;
      this.resumes = 0;
      if (!this.opened) {
        this.opened = true;
        this.h.onOpen();
      }
    } else if (event === "close") {
      const c = JSON.parse(data) as { code?: number; reason?: string };
      this.finish(c.code ?? 1006, c.reason ?? "");
    } else if (event === "message" && this.opened) {
      this.h.onFrame(fromBase64(data));
    }
  }

  send(bytes: Uint8Array): boolean {
    if (this.closed || !this.opened) return false;
    this.queue.push(bytes);
    if (!this.posting) void this.post();
    return true;
  }

  /** One POST at a time (order), carrying every frame queued meanwhile. */
  private async post(): Promise<void> {
    this.posting = true;
    while (this.queue.length && !this.closed) {
      const frames = this.queue;
      this.queue = [];
      const parts = frames.flatMap((f) => [Uint8Array.from(varint(f.byteLength)), f]);
      const body = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
      let off = 0;
      for (const p of parts) {
        body.set(p, off);
        off += p.byteLength;
      }
      let res: Response;
      try {
        res = await this.fetch(httpUrl(this.opts.url, "/v1/send"), {
          method: "POST",
          headers: {
            authorization: `Bearer ${this.opts.token}`,
            "x-parley-session": this.session,
            "x-parley-secret": this.secret,
            "content-type": "application/x-protobuf",
          },
          body,
          signal: this.abort.signal,
        });
      } catch (err) {
        // Frames whose fate is unknown: the client resends what matters
        // (sends by client_msg_id) on the next session.
        this.finish(1006, `send: ${err}`);
        break;
      }
      if (res.status !== 204) {
        let code = 1006;
        let reason = `send: HTTP ${res.status}`;
        try {
          const j = (await res.json()) as { code?: number; reason?: string };
          code = j.code ?? code;
          reason = j.reason ?? reason;
        } catch {
          /* no JSON body */
        }
        this.finish(code, reason);
        break;
      }
    }
    this.posting = false;
  }

  close(code = 1000, reason = ""): void {
    this.finish(code, reason);
  }
}

export interface SseOptions {
  /** The fetch to use (default: the global one). */
  fetch?: FetchFn;
}

/** The SSE + POST fallback transport factory. */
export function sseTransport(options: SseOptions = {}): TransportFactory {
  return {
    kind: "sse",
    // The token goes with the request; no Auth frame.
    authenticated: true,
    connect(opts) {
      return new SseTransport(opts, opts.handlers, options.fetch);
    },
  };
}
