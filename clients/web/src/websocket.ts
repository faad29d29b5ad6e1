// The WebSocket transport: subprotocol parley.v1, one binary frame per
// protobuf message. Uses the platform's WebSocket (browsers, Deno, Node 22+)
// or a constructor given by the caller (Node: the `ws` package).
import type {
  Transport,
  TransportFactory,
  TransportOptions,
} from "./transport.js";

/** What we need of a WebSocket constructor (DOM's and `ws`'s both fit). */
export interface WebSocketLike {
  binaryType: string;
  readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
}
export type WebSocketCtor = new (
  url: string,
  protocols?: string | string[],
) => WebSocketLike;

const OPEN = 1;

function toBytes(data: unknown): Uint8Array | null {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data))
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (Array.isArray(data)) {
    // `ws` may hand over fragments as an array of Buffers.
    const parts = data as Uint8Array[];
    const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
    let off = 0;
    for (const p of parts) {
      out.set(p, off);
      off += p.byteLength;
    }
    return out;
  }
  return null;
}

class WsTransport implements Transport {
  readonly kind = "websocket";
  private ws: WebSocketLike;
  private opened = false;
  private closed = false;

  constructor(ctor: WebSocketCtor, opts: TransportOptions) {
    const h = opts.handlers;
    this.ws = new ctor(opts.url, "parley.v1");
    this.ws.binaryType = "arraybuffer";
    this.ws.onopen = () => {
      this.opened = true;
      h.onOpen();
    };
    this.ws.onmessage = (ev) => {
      const b = toBytes(ev.data);
      if (b && !this.closed) h.onFrame(b);
    };
    this.ws.onclose = (ev) => this.finish(ev.code, ev.reason, h);
    // An error is followed by close; nothing to do here but not throw.
    this.ws.onerror = () => {};
  }

  private finish(
    code: number,
    reason: string,
    h: TransportOptions["handlers"],
  ): void {
    if (this.closed) return;
    this.closed = true;
    h.onClose(code || 1006, reason || "", this.opened);
  }

  send(bytes: Uint8Array): boolean {
    if (this.closed || this.ws.readyState !== OPEN) return false;
    this.ws.send(bytes);
    return true;
  }

  close(code = 1000, reason = ""): void {
    try {
      this.ws.close(code, reason);
    } catch {
      this.ws.close();
    }
  }
}

/**
 * The WebSocket transport factory. Pass the `ws` package's WebSocket in Node
 * versions without a global one.
 */
export function websocketTransport(ctor?: WebSocketCtor): TransportFactory {
  return {
    kind: "websocket",
    connect(opts) {
      const c =
        ctor ??
        ((globalThis as { WebSocket?: unknown }).WebSocket as
          | WebSocketCtor
          | undefined);
      if (!c)
        throw new Error(
          "no WebSocket here: pass one, e.g. websocketTransport(require('ws'))",
        );
      return new WsTransport(c, opts);
    },
  };
}
