// @parley/web: the parley chat SDK for browsers and Node.
export { ParleyClient } from "./client.js";
export type { ClientOptions, TokenCallback, TokenReason } from "./client.js";
export { websocketTransport } from "./websocket.js";
export { sseTransport } from "./sse.js";
export type { SseOptions } from "./sse.js";
export type { WebSocketCtor, WebSocketLike } from "./websocket.js";
export { CloseCode } from "./transport.js";
export type {
  Transport,
  TransportFactory,
  TransportHandlers,
  TransportOptions,
} from "./transport.js";
export { ParleyError } from "./types.js";
export type * from "./types.js";
