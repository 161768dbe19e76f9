/**
 * The vhost-user wire format (QEMU docs/interop/vhost-user.rst, "Message Specification"):
 * a 12-byte header — request u32, flags u32, size u32 — then `size` bytes of payload, all
 * in the machine's byte order (little-endian here, x86-64). This file encodes what the
 * front-end sends and decodes what the back-end answers; it does no I/O.
 *
 * The payloads are in payloads.ts.
 *
 * @module
 */

/** Bytes of the message header (request, flags, size). */
export const HEADER_SIZE = 12;
/** flags: the protocol version in the low 2 bits ("currently 0x01"). */
export const VHOST_USER_VERSION = 0x1;
/** flags mask of the version field. */
export const VERSION_MASK = 0x3;
/** flags bit 2: this message is a reply from the back-end. */
export const FLAG_REPLY = 0x4;
/** flags bit 3: need_reply, the back-end must ack (REPLY_ACK, "VHOST_USER_PROTOCOL_F_REPLY_ACK"). */
export const FLAG_NEED_REPLY = 0x8;

/** Feature bit 30: the back-end speaks GET/SET_PROTOCOL_FEATURES ("Communication"). */
export const VHOST_USER_F_PROTOCOL_FEATURES = 30;
/** vhost feature bit 26: dirty-page logging for migration (not a virtio feature). */
export const VHOST_F_LOG_ALL = 26;

/** Protocol feature: multiple queues, GET_QUEUE_NUM ("Multiple queue support"). */
export const VHOST_USER_PROTOCOL_F_MQ = 0;
/** Protocol feature: need_reply on any message ("VHOST_USER_PROTOCOL_F_REPLY_ACK"). */
export const VHOST_USER_PROTOCOL_F_REPLY_ACK = 3;
/** Protocol feature: GET_CONFIG / SET_CONFIG. */
export const VHOST_USER_PROTOCOL_F_CONFIG = 9;
/** Protocol feature: SET_STATUS / GET_STATUS. */
export const VHOST_USER_PROTOCOL_F_STATUS = 16;

/** Front-end request codes ("Front-end message types"). */
export const VhostUserRequest = {
  GET_FEATURES: 1,
  SET_FEATURES: 2,
  SET_OWNER: 3,
  RESET_OWNER: 4,
  SET_MEM_TABLE: 5,
  SET_VRING_NUM: 8,
  SET_VRING_ADDR: 9,
  SET_VRING_BASE: 10,
  GET_VRING_BASE: 11,
  SET_VRING_KICK: 12,
  SET_VRING_CALL: 13,
  SET_VRING_ERR: 14,
  GET_PROTOCOL_FEATURES: 15,
  SET_PROTOCOL_FEATURES: 16,
  GET_QUEUE_NUM: 17,
  SET_VRING_ENABLE: 18,
  GET_CONFIG: 24,
  SET_CONFIG: 25,
  SET_STATUS: 39,
  GET_STATUS: 40,
} as const;

const NAMES = new Map<number, string>(
  Object.entries(VhostUserRequest).map(([name, code]) => [code, name]),
);

/**
 * The spec name of a request code, e.g. "SET_MEM_TABLE" (or "request N").
 *
 * @example
 * ```ts
 * import { requestName } from "./protocol.ts";
 * requestName(5); // "SET_MEM_TABLE"
 * ```
 */
export function requestName(code: number): string {
  return NAMES.get(code) ?? `request ${code}`;
}

/** A decoded message header. */
export interface MessageHeader {
  /** Request code. */
  request: number;
  /** Flags (version, reply, need_reply). */
  flags: number;
  /** Payload bytes that follow. */
  size: number;
}

/**
 * One whole front-end message: header (version 1, plus `flags`) and `payload`.
 *
 * @example
 * ```ts
 * import { encodeMessage, FLAG_NEED_REPLY, VhostUserRequest } from "./protocol.ts";
 * encodeMessage(VhostUserRequest.SET_OWNER).length; // 12
 * encodeMessage(VhostUserRequest.SET_FEATURES, new Uint8Array(8), FLAG_NEED_REPLY)[4]; // 0x09
 * ```
 */
export function encodeMessage(
  request: number,
  payload: Uint8Array = new Uint8Array(0),
  flags = 0,
): Uint8Array {
  const out = new Uint8Array(HEADER_SIZE + payload.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, request, true);
  v.setUint32(4, VHOST_USER_VERSION | flags, true);
  v.setUint32(8, payload.length, true);
  out.set(payload, HEADER_SIZE);
  return out;
}

/**
 * Decodes a 12-byte header.
 *
 * @example
 * ```ts
 * import { decodeHeader } from "./protocol.ts";
 * decodeHeader(new Uint8Array([1, 0, 0, 0, 5, 0, 0, 0, 8, 0, 0, 0])); // { request: 1, flags: 5, size: 8 }
 * ```
 */
export function decodeHeader(bytes: Uint8Array): MessageHeader {
  if (bytes.length < HEADER_SIZE) {
    throw new RangeError(`a vhost-user header is ${HEADER_SIZE} bytes, got ${bytes.length}`);
  }
  const v = new DataView(bytes.buffer, bytes.byteOffset, HEADER_SIZE);
  return { request: v.getUint32(0, true), flags: v.getUint32(4, true), size: v.getUint32(8, true) };
}

/**
 * Why a reply header does not answer `request`, or null when it does: same request code,
 * version 1, the reply flag set, and exactly `size` payload bytes ("Header": "Bit 2 is the
 * reply flag - needs to be sent on each reply from the back-end").
 *
 * @example
 * ```ts
 * import { replyHeaderProblem } from "./protocol.ts";
 * replyHeaderProblem({ request: 1, flags: 5, size: 8 }, 1, 8); // null
 * replyHeaderProblem({ request: 1, flags: 1, size: 8 }, 1, 8); // "its reply flag is not set"
 * ```
 */
export function replyHeaderProblem(
  h: MessageHeader,
  request: number,
  size: number,
): string | null {
  if (h.request !== request) {
    return `it answered ${requestName(h.request)} instead of ${requestName(request)}`;
  }
  if ((h.flags & VERSION_MASK) !== VHOST_USER_VERSION) {
    return `its reply has protocol version ${h.flags & VERSION_MASK}, not ${VHOST_USER_VERSION}`;
  }
  if (!(h.flags & FLAG_REPLY)) return "its reply flag is not set";
  if (h.size !== size) return `its reply has ${h.size} payload bytes, not ${size}`;
  return null;
}
