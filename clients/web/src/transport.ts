// Transports carry encoded ClientFrames to the gateway and ServerFrames back.
// The client speaks to them only through this interface, so WebSocket and the
// SSE/POST fallback are interchangeable: one transport object is one session
// attempt; a new one is made for each reconnect.

/** Close codes of docs/PROTOCOL.md. */
export const CloseCode = {
  GoingAway: 1001,
  Abnormal: 1006,
  TooBig: 1009,
  Internal: 1011,
  Unauthorized: 4001,
  TokenExpired: 4002,
  AuthTimeout: 4003,
  BadFrame: 4004,
  TooSlow: 4005,
} as const;

export interface TransportHandlers {
  /** The connection is up: frames may be sent (the first one is Auth). */
  onOpen(): void;
  /** One encoded ServerFrame. */
  onFrame(bytes: Uint8Array): void;
  /**
   * The connection is gone (or never came up: opened is false then). Called
   * once; nothing is called after it.
   */
  onClose(code: number, reason: string, opened: boolean): void;
}

export interface Transport {
  /** "websocket", "sse", ... shown in the connection state. */
  readonly kind: string;
  /** Send one encoded ClientFrame; false when it cannot be sent now. */
  send(bytes: Uint8Array): boolean;
  /** Close; onClose follows (with this code). */
  close(code?: number, reason?: string): void;
}

export interface TransportOptions {
  /** The gateway's WebSocket URL, e.g. ws://127.0.0.1:8080/ */
  url: string;
  /** The token, for transports that must send it outside a frame. */
  token: string;
  handlers: TransportHandlers;
}

/** Makes one connection attempt; the client picks the factories in order. */
export interface TransportFactory {
  readonly kind: string;
  /** True when connect() authenticates with opts.token itself (no Auth frame). */
  readonly authenticated?: boolean;
  connect(opts: TransportOptions): Transport;
}
