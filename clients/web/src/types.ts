// The SDK's public event and value types: plain objects with number seqs
// (seqs stay far below 2^53), independent of the generated protobuf code.

export type ConnectionStatus =
  | "idle" // not started
  | "connecting" // first attempt
  | "open" // a session is up (Welcome received)
  | "reconnecting" // lost; the next attempt is scheduled or under way
  | "closed"; // stopped: by close(), or by a terminal close code

export interface ConnectionState {
  status: ConnectionStatus;
  /** The transport in use or being tried ("websocket", "sse"). */
  transport: string;
  /** Failed attempts since the last session came up. */
  attempt: number;
  /** When status is "reconnecting": ms until the next attempt. */
  retryInMs?: number;
  /** The last close code and reason, when there was one. */
  closeCode?: number;
  reason?: string;
  userId?: string;
  sessionId?: string;
}

export interface ChatMessage {
  roomId: string;
  seq: number;
  senderId: string;
  clientMsgId: string;
  body: string;
  tsMs: number;
}

/** A message event: live, or fetched to repair a gap or a reconnect. */
export interface MessageEvent extends ChatMessage {
  fromSync: boolean;
}

export interface SendAck {
  roomId: string;
  clientMsgId: string;
  seq: number;
  tsMs: number;
  duplicate: boolean;
}

export interface Receipt {
  roomId: string;
  userId: string;
  kind: "delivered" | "read";
  seq: number;
}

export interface TypingEvent {
  roomId: string;
  userId: string;
  active: boolean;
}

export interface PresenceEvent {
  userId: string;
  online: boolean;
  lastSeenMs: number;
}

export type RoomEventKind =
  | "created"
  | "members_added"
  | "member_removed"
  | "member_left"
  | "unknown";

export interface RoomEvent {
  roomId: string;
  kind: RoomEventKind;
  userIds: string[];
  seq: number;
  actorId: string;
  name: string;
  tsMs: number;
}

export interface RoomInfo {
  roomId: string;
  name: string;
  kind: "direct" | "group" | "unknown";
  /** The highest seq known to exist. */
  lastSeq: number;
  /** The highest seq handed to the app as a message event. */
  cursor: number;
  readSeq: number;
  /** Messages after readSeq not sent by this user (the server's count, kept up to date). */
  unread: number;
  deliveredSeq: number;
  /** False once this user left or was removed. */
  member: boolean;
}

export interface ReceiptSummary {
  roomId: string;
  seq: number;
  members: number;
  delivered: number;
  read: number;
}

/** An Error from the server, or the SDK's own (code 0: connection lost). */
export class ParleyError extends Error {
  constructor(
    message: string,
    readonly code: number,
    readonly retryable: boolean,
    readonly roomId = "",
    readonly clientMsgId = "",
  ) {
    super(message);
    this.name = "ParleyError";
  }
}

export interface ClientEvents {
  state: ConnectionState;
  message: MessageEvent;
  ack: SendAck;
  /** A send the server refused for good (not retryable). */
  sendFailed: { roomId: string; clientMsgId: string; error: ParleyError };
  receipt: Receipt;
  typing: TypingEvent;
  presence: PresenceEvent;
  roomEvent: RoomEvent;
  /** A room's counters or membership changed, or a room appeared. */
  room: RoomInfo;
  /** A gap that could not be filled; messages after it are shown anyway. */
  gap: { roomId: string; afterSeq: number };
  /** A pushed Error that answers nothing the SDK waits for. */
  error: ParleyError;
}
