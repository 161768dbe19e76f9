/**
 * The virtio-net control virtqueue (virtio 1.x §5.1.6.5): commands the driver sends to the
 * device (receive filtering, MAC address, announcements, multiqueue and steering), each a
 * two-part buffer — `{u8 class, u8 command, data}` for the device to read, then one ack
 * byte for it to write — answered VIRTIO_NET_OK or VIRTIO_NET_ERR.
 *
 * Commands are rare (set-up and steering changes) and synchronous: submit, notify, poll
 * for the answer with a timeout.
 *
 * @module
 */

import { DriverError } from "../errors.ts";
import type { DmaRegion } from "../dma/memory.ts";
import type { SplitQueue } from "../virtio/split_queue.ts";

/** Ack: the command succeeded. */
export const VIRTIO_NET_OK = 0;
/** Ack: the command failed. */
export const VIRTIO_NET_ERR = 1;

/** Class: receive filtering (needs VIRTIO_NET_F_CTRL_RX). */
export const VIRTIO_NET_CTRL_RX = 0;
/** CTRL_RX command: promiscuous mode on/off (u8). */
export const VIRTIO_NET_CTRL_RX_PROMISC = 0;
/** CTRL_RX command: all-multicast on/off (u8). */
export const VIRTIO_NET_CTRL_RX_ALLMULTI = 1;
/** Class: MAC filtering and address. */
export const VIRTIO_NET_CTRL_MAC = 1;
/** CTRL_MAC command: set the filter tables. */
export const VIRTIO_NET_CTRL_MAC_TABLE_SET = 0;
/** CTRL_MAC command: set the default MAC address (needs VIRTIO_NET_F_CTRL_MAC_ADDR). */
export const VIRTIO_NET_CTRL_MAC_ADDR_SET = 1;
/** Class: VLAN filtering. */
export const VIRTIO_NET_CTRL_VLAN = 2;
/** Class: announcements (needs VIRTIO_NET_F_GUEST_ANNOUNCE). */
export const VIRTIO_NET_CTRL_ANNOUNCE = 3;
/** CTRL_ANNOUNCE command: the announcement was sent; clears VIRTIO_NET_S_ANNOUNCE. */
export const VIRTIO_NET_CTRL_ANNOUNCE_ACK = 0;
/** Class: multiqueue and steering (needs VIRTIO_NET_F_MQ, RSS or HASH_REPORT). */
export const VIRTIO_NET_CTRL_MQ = 4;
/** CTRL_MQ command: number of queue pairs for automatic steering (le16). */
export const VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET = 0;
/** CTRL_MQ command: RSS configuration (struct virtio_net_rss_config). */
export const VIRTIO_NET_CTRL_MQ_RSS_CONFIG = 1;
/** CTRL_MQ command: hash-report configuration (struct virtio_net_hash_config). */
export const VIRTIO_NET_CTRL_MQ_HASH_CONFIG = 2;
/** Class: guest offloads. */
export const VIRTIO_NET_CTRL_GUEST_OFFLOADS = 5;

const CLASS_NAMES: Record<number, [string, string[]]> = {
  [VIRTIO_NET_CTRL_RX]: ["VIRTIO_NET_CTRL_RX", ["PROMISC", "ALLMULTI", "ALLUNI", "NOMULTI"]],
  [VIRTIO_NET_CTRL_MAC]: ["VIRTIO_NET_CTRL_MAC", ["MAC_TABLE_SET", "MAC_ADDR_SET"]],
  [VIRTIO_NET_CTRL_VLAN]: ["VIRTIO_NET_CTRL_VLAN", ["ADD", "DEL"]],
  [VIRTIO_NET_CTRL_ANNOUNCE]: ["VIRTIO_NET_CTRL_ANNOUNCE", ["ACK"]],
  [VIRTIO_NET_CTRL_MQ]: ["VIRTIO_NET_CTRL_MQ", ["VQ_PAIRS_SET", "RSS_CONFIG", "HASH_CONFIG"]],
  [VIRTIO_NET_CTRL_GUEST_OFFLOADS]: ["VIRTIO_NET_CTRL_GUEST_OFFLOADS", ["SET"]],
};

/**
 * The spec name of a control command, e.g. "VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET".
 *
 * @example
 * ```ts
 * import { controlCommandName } from "./control_queue.ts";
 * controlCommandName(4, 0); // "VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET"
 * ```
 */
export function controlCommandName(cls: number, cmd: number): string {
  const c = CLASS_NAMES[cls];
  if (!c) return `class ${cls} command ${cmd}`;
  return `${c[0]}_${c[1][cmd] ?? `command ${cmd}`}`;
}

/**
 * A command the device answered VIRTIO_NET_ERR (or did not answer).
 *
 * @example
 * ```ts
 * import { ControlCommandError } from "./control_queue.ts";
 * const e = new ControlCommandError("0000:00:04.0", 4, 0, 1);
 * e.message; // "0000:00:04.0 refused VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET (class 4, command 0) …"
 * ```
 */
export class ControlCommandError extends DriverError {
  /** Command class. */
  readonly cls: number;
  /** Command within the class. */
  readonly cmd: number;
  /** The ack byte the device wrote (VIRTIO_NET_ERR, or something invalid). */
  readonly ack: number;
  /** Creates the error. */
  constructor(port: string, cls: number, cmd: number, ack: number) {
    super(
      "DEVICE_REFUSED",
      `${port} refused ${controlCommandName(cls, cmd)} (class ${cls}, command ${cmd}, ack ${ack}${
        ack === VIRTIO_NET_ERR ? " = VIRTIO_NET_ERR" : ""
      }): check that the device offers the feature and that the arguments are within its limits.`,
    );
    this.name = "ControlCommandError";
    this.cls = cls;
    this.cmd = cmd;
    this.ack = ack;
  }
}

/** Bytes reserved for a command's data (an RSS config with a 32768-entry table fits). */
export const CONTROL_DATA_MAX: number = 65536 + 64;
/** Bytes of DMA memory a control queue's command buffer needs. */
export const CONTROL_BUFFER_BYTES: number = 2 + CONTROL_DATA_MAX + 64;

/**
 * The driver side of the control virtqueue.
 *
 * @example
 * ```ts ignore
 * port.control!.command(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, new Uint8Array([1]));
 * ```
 */
export class ControlQueue {
  /** The virtqueue (controlq). */
  readonly vq: SplitQueue;
  /** Commands sent. */
  commands = 0;
  readonly #port: string;
  readonly #bytes: Uint8Array;
  readonly #cmdOffset: number;
  readonly #ackOffset: number;
  readonly #cmdIova: number;
  readonly #ackIova: number;
  readonly #tokens = new Uint32Array(1);
  readonly #lens = new Uint32Array(1);

  /** Uses `CONTROL_BUFFER_BYTES` of `region` from byte `offset` for commands and acks. */
  constructor(port: string, vq: SplitQueue, region: DmaRegion, offset: number) {
    this.#port = port;
    this.vq = vq;
    this.#bytes = new Uint8Array(region.buffer);
    this.#cmdOffset = offset;
    this.#ackOffset = offset + 2 + CONTROL_DATA_MAX;
    this.#cmdIova = region.iova + this.#cmdOffset;
    this.#ackIova = region.iova + this.#ackOffset;
  }

  /**
   * Sends one command and waits for the device's answer (at most `timeoutMs`). Throws
   * {@linkcode ControlCommandError} on VIRTIO_NET_ERR, DEVICE_MISBEHAVED on no answer.
   */
  command(cls: number, cmd: number, data: Uint8Array, timeoutMs = 2000): void {
    if (data.length > CONTROL_DATA_MAX) {
      throw new DriverError(
        "BAD_ARGUMENT",
        `${
          controlCommandName(cls, cmd)
        } data of ${data.length} bytes is larger than ${CONTROL_DATA_MAX}: shorten it.`,
      );
    }
    const b = this.#bytes, o = this.#cmdOffset;
    b[o] = cls;
    b[o + 1] = cmd;
    b.set(data, o + 2);
    b[this.#ackOffset] = 0xff; // neither OK nor ERR until the device writes it
    const hi = (n: number) => Math.floor(n / 0x1_0000_0000);
    this.vq.addChain(
      0,
      this.#cmdIova % 0x1_0000_0000,
      hi(this.#cmdIova),
      2 + data.length,
      this.#ackIova % 0x1_0000_0000,
      hi(this.#ackIova),
      1,
    );
    this.vq.publish();
    this.commands++;
    const deadline = performance.now() + timeoutMs;
    while (this.vq.takeUsed(this.#tokens, this.#lens, 0, 1) === 0) {
      if (performance.now() > deadline) {
        throw new DriverError(
          "DEVICE_MISBEHAVED",
          `${this.#port} did not answer ${
            controlCommandName(cls, cmd)
          } within ${timeoutMs} ms: the device is stuck; restart the port to reset it.`,
        );
      }
    }
    const ack = b[this.#ackOffset];
    if (ack !== VIRTIO_NET_OK) throw new ControlCommandError(this.#port, cls, cmd, ack);
  }
}
