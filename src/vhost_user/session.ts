/**
 * Starting a vhost-user session, as QEMU (hw/virtio/vhost-user.c) and DPDK's virtio-user
 * do (vhost-user.rst, "Front-end message types"): SET_OWNER ("Issued when a new connection
 * is established"), GET_FEATURES, and — only when the back-end offers
 * VHOST_USER_F_PROTOCOL_FEATURES — GET_PROTOCOL_FEATURES / SET_PROTOCOL_FEATURES, then,
 * with protocol feature MQ, GET_QUEUE_NUM ("Multiple queue support").
 *
 * Protocol features taken: MQ and REPLY_ACK, when offered. Not CONFIG (the front-end
 * provides the device configuration itself), not STATUS (DPDK then holds a ring back
 * until SET_STATUS carries DRIVER_OK), nor the back-end channel ones (SLAVE_REQ …).
 *
 * @module
 */

import { DriverError } from "../errors.ts";
import type { VhostUserConnection } from "./connection.ts";
import { encodeU64, VRING_IDX_MASK } from "./payloads.ts";
import {
  VHOST_USER_F_PROTOCOL_FEATURES,
  VHOST_USER_PROTOCOL_F_MQ,
  VHOST_USER_PROTOCOL_F_REPLY_ACK,
  VhostUserRequest as R,
} from "./protocol.ts";

/** The most queue pairs a virtio-net device may have (virtio 1.x §5.1.4, 0x8000). */
const MAX_PAIRS_SPEC = 0x8000;
/** Vring indices have 8 bits in SET_VRING_KICK/CALL, so at most 128 pairs are reachable. */
const MAX_PAIRS_WIRE = (VRING_IDX_MASK + 1) / 2;

/** What a session start learned. */
export interface Session {
  /** GET_FEATURES: what the back-end offers, VHOST_USER_F_PROTOCOL_FEATURES included. */
  features: bigint;
  /** Protocol features negotiated (0 without VHOST_USER_F_PROTOCOL_FEATURES). */
  protocolFeatures: bigint;
  /** Queue pairs reachable: GET_QUEUE_NUM (at most 128), or 1 without protocol MQ. */
  queuePairs: number;
}

/**
 * Starts the session on `c`; sets `c.replyAck` once REPLY_ACK is negotiated. Throws
 * DEVICE_MISBEHAVED when GET_QUEUE_NUM is 0 or above 0x8000.
 *
 * @example
 * ```ts ignore
 * import { startSession } from "./session.ts";
 * const s = startSession(VhostUserConnection.connect("/tmp/a.sock"));
 * s.queuePairs; // 128 with DPDK 22.11, whatever its queues= says
 * ```
 */
export function startSession(c: VhostUserConnection): Session {
  c.send(R.SET_OWNER);
  const features = c.callU64(R.GET_FEATURES);
  if (!(features & bit(VHOST_USER_F_PROTOCOL_FEATURES))) {
    return { features, protocolFeatures: 0n, queuePairs: 1 };
  }
  const offered = c.callU64(R.GET_PROTOCOL_FEATURES);
  const protocol = offered &
    (bit(VHOST_USER_PROTOCOL_F_MQ) | bit(VHOST_USER_PROTOCOL_F_REPLY_ACK));
  c.send(R.SET_PROTOCOL_FEATURES, encodeU64(protocol));
  c.replyAck = (protocol & bit(VHOST_USER_PROTOCOL_F_REPLY_ACK)) !== 0n;
  let queuePairs = 1;
  if (protocol & bit(VHOST_USER_PROTOCOL_F_MQ)) {
    const n = c.callU64(R.GET_QUEUE_NUM);
    if (n < 1n || n > BigInt(MAX_PAIRS_SPEC)) {
      throw new DriverError(
        "DEVICE_MISBEHAVED",
        `The vhost-user back-end at ${c.path} reports ${n} queue pairs (GET_QUEUE_NUM), outside 1–${MAX_PAIRS_SPEC}: it is broken; restart it.`,
      );
    }
    queuePairs = Math.min(Number(n), MAX_PAIRS_WIRE);
  }
  return { features, protocolFeatures: protocol, queuePairs };
}

function bit(n: number): bigint {
  return 1n << BigInt(n);
}
