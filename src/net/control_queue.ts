/**
 * The virtio-net control virtqueue (virtio 1.x §5.1.6.5): commands the driver sends to the
 * device (receive filtering, MAC address, announcements, multiqueue and steering), each a
 * two-part buffer — `{u8 class, u8 command, data}` for the device to read, then one ack
 * byte for it to write — answered VIRTIO_NET_OK or VIRTIO_NET_ERR.
 *
 * Commands are rare (set-up and steering changes) and synchronous: submit, notify, poll
 * for the answer with a timeout. One command is in flight at a time, in one buffer: a
 * command that does not complete cleanly (no answer in time, a ring entry that is not
 * the command's, a wrong length) leaves the queue broken, so that a late answer is never
 * taken for a later command's; the port must then be reset.
 *
 * @module
 */

import { DriverError } from "../errors.ts";
import type { DmaRegion } from "../dma/memory.ts";
import type { Virtqueue } from "../virtio/virtqueue.ts";

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
/** Class: VLAN filtering (needs VIRTIO_NET_F_CTRL_VLAN). */
export const VIRTIO_NET_CTRL_VLAN = 2;
/** CTRL_VLAN command: receive frames tagged with this VLAN id (le16). */
export const VIRTIO_NET_CTRL_VLAN_ADD = 0;
/** CTRL_VLAN command: stop receiving frames tagged with this VLAN id (le16). */
export const VIRTIO_NET_CTRL_VLAN_DEL = 1;
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
  readonly vq: Virtqueue;
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
  #seq = 0;
  #broken: string | null = null;

  /** Uses `CONTROL_BUFFER_BYTES` of `region` from byte `offset` for commands and acks. */
  constructor(port: string, vq: Virtqueue, region: DmaRegion, offset: number) {
    this.#port = port;
    this.vq = vq;
    this.#bytes = new Uint8Array(region.buffer);
    this.#cmdOffset = offset;
    this.#ackOffset = offset + 2 + CONTROL_DATA_MAX;
    // A physically addressed region (legacy devices) maps offsets page by page.
    const iova = (o: number) => region.pageIovas ? region.iovaAt(o) : region.iova + o;
    this.#cmdIova = iova(this.#cmdOffset);
    this.#ackIova = iova(this.#ackOffset);
  }

  /** Why the queue is broken (see {@linkcode ControlQueue.command}), or null while it works. */
  get broken(): string | null {
    return this.#broken;
  }

  /**
   * Sends one command and waits for the device's answer (at most `timeoutMs`). Throws
   * {@linkcode ControlCommandError} on VIRTIO_NET_ERR; DEVICE_MISBEHAVED on no answer or
   * a bad completion, after which the queue is broken and every later command throws
   * DEVICE_MISBEHAVED without being sent.
   */
  command(cls: number, cmd: number, data: Uint8Array, timeoutMs = 2000): void {
    const name = controlCommandName(cls, cmd);
    if (this.#broken !== null) {
      throw new DriverError(
        "DEVICE_MISBEHAVED",
        `${this.#port}'s control queue is broken (${this.#broken}), so ${name} was not sent: restart the port to reset the device.`,
      );
    }
    if (data.length > CONTROL_DATA_MAX) {
      throw new DriverError(
        "BAD_ARGUMENT",
        `${name} data of ${data.length} bytes is larger than ${CONTROL_DATA_MAX}: shorten it.`,
      );
    }
    const b = this.#bytes, o = this.#cmdOffset;
    b[o] = cls;
    b[o + 1] = cmd;
    b.set(data, o + 2);
    b[this.#ackOffset] = 0xff; // neither OK nor ERR until the device writes it
    const hi = (n: number) => Math.floor(n / 0x1_0000_0000);
    // A token per command (1…2^31-1: a virtqueue keeps tokens as int32), so an answer is
    // known to be this command's.
    const token = this.#seq = this.#seq % 0x7fff_ffff + 1;
    const added = this.vq.addChain(
      token,
      this.#cmdIova % 0x1_0000_0000,
      hi(this.#cmdIova),
      2 + data.length,
      this.#ackIova % 0x1_0000_0000,
      hi(this.#ackIova),
      1,
    );
    if (!added) {
      this.#fail(
        "its ring is too small for a command",
        `${this.#port}'s control queue has ${this.vq.size} descriptor(s), fewer than the 2 a command and its ack need: the device is broken (it must offer a control queue of at least 2 entries).`,
      );
    }
    try {
      this.vq.publish();
      this.commands++;
      this.#await(token, name, timeoutMs);
    } catch (e) {
      // The command may still be in flight, or the ring is corrupt: whatever the device
      // completes next could not be told apart from a later command's answer.
      this.#broken ??= `${name} did not complete`;
      throw e;
    }
    const ack = b[this.#ackOffset]; // read once: the device could rewrite it
    if (ack === VIRTIO_NET_OK) return;
    if (ack === VIRTIO_NET_ERR) throw new ControlCommandError(this.#port, cls, cmd, ack);
    // §5.1.6.5: the ack is VIRTIO_NET_OK or VIRTIO_NET_ERR; 0xff is the driver's own marker,
    // left there when the device returned the buffer without writing it.
    this.#fail(
      `the device answered ${name} with ack ${ack}`,
      `${this.#port} answered ${name} with ack ${ack}, neither VIRTIO_NET_OK nor VIRTIO_NET_ERR: the device is broken; restart the port to reset it.`,
    );
  }

  /** Waits for command `token`'s completion and checks it (§2.7.8). */
  #await(token: number, name: string, timeoutMs: number): void {
    const deadline = performance.now() + timeoutMs;
    while (this.vq.takeUsed(this.#tokens, this.#lens, 0, 1) === 0) {
      if (performance.now() > deadline) {
        this.#fail(
          `${name} timed out`,
          `${this.#port} did not answer ${name} within ${timeoutMs} ms: the device is stuck; restart the port to reset it.`,
        );
      }
    }
    if (this.#tokens[0] !== token) {
      this.#fail(
        "the device completed a command that was not in flight",
        `${this.#port} completed control command ${
          this.#tokens[0]
        } while ${name} (${token}) was in flight: the device is broken; restart the port to reset it.`,
      );
    }
    // The ack byte counts only if the used length covers it (§2.7.8: the driver must not
    // trust bytes beyond len).
    const len = this.#lens[0];
    if (len !== 1) {
      this.#fail(
        `the device wrote ${len} bytes of a 1-byte ack`,
        `${this.#port} reported ${len} bytes written for the 1-byte ack of ${name}: the device is broken; restart the port to reset it.`,
      );
    }
    // Nothing else was in flight: a second entry is a buffer returned twice (§2.7.8), which
    // would otherwise be taken as the next command's answer before the device saw it.
    if (this.vq.hasUsed()) {
      this.#fail(
        "the device returned a command twice",
        `${this.#port} returned more used buffers than the one command (${name}) in flight: the device is broken; restart the port to reset it.`,
      );
    }
  }

  /** Marks the queue broken (`reason` goes into later commands' errors) and throws `message`. */
  #fail(reason: string, message: string): never {
    this.#broken = reason;
    throw new DriverError("DEVICE_MISBEHAVED", message);
  }
}
