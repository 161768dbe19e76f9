/**
 * The device side of the virtio-net control virtqueue, served by the vhost-user transport
 * itself: a vhost-user back-end moves packets only, so the front-end answers control
 * commands, as QEMU's virtio-net (hw/net/virtio-net.c, virtio_net_handle_ctrl) and DPDK's
 * virtio-user (virtio_user_handle_cq) do for their vhost back-ends.
 *
 * The ring lives in the driver's DMA memory. When the driver notifies, every available
 * chain is taken (§2.7.13 from the device's side): descriptors followed through NEXT and
 * one level of INDIRECT (§2.7.5.3), device-readable parts before device-writable ones
 * (§2.7.4.2), the readable bytes being `{u8 class; u8 command; u8 data[]}` and the first
 * writable byte the ack (§5.1.6.5). The used entry reports the 1 byte written (§2.7.8).
 *
 * Everything read is validated — indices, lengths, addresses, loops — although the memory
 * is our own: a chain that cannot be answered is returned with length 0 (the driver then
 * sees a broken answer), and a ring that cannot be walked at all (a head out of range, more
 * chains than entries) stops the queue and reports why, as a device sets
 * DEVICE_NEEDS_RESET (§2.1.2).
 *
 * @module
 */

import { vringNeedEvent } from "./ring_math.ts";
import {
  VIRTQ_AVAIL_F_NO_INTERRUPT,
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE,
} from "./ring_math.ts";

// virtio-net control constants (§5.1.6.5; src/net/control_queue.ts has them too, but
// virtio/ may not import net/).
/** Ack: the command succeeded. */
export const CTRL_OK = 0;
/** Ack: the command failed. */
export const CTRL_ERR = 1;
/** Class: multiqueue (VIRTIO_NET_CTRL_MQ). */
export const CTRL_MQ = 4;
/** CTRL_MQ command: number of queue pairs to use (le16, §5.1.6.5.5). */
export const CTRL_MQ_VQ_PAIRS_SET = 0;
/** The fewest pairs VQ_PAIRS_SET accepts (VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MIN). */
export const CTRL_MQ_VQ_PAIRS_MIN = 1;
/** The most pairs VQ_PAIRS_SET accepts (VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MAX). */
export const CTRL_MQ_VQ_PAIRS_MAX = 0x8000;

/** Most command bytes (class, command, data) accepted; an RSS table with its key fits. */
export const CONTROL_COMMAND_MAX: number = 2 + 65536 + 64;

/** Reaches the driver's memory by IOVA: `len` bytes at `addr`, or null when not mapped. */
export interface DeviceMemory {
  /** The bytes, or null unless all `len` lie in mapped memory. */
  bytes(addr: number, len: number): Uint8Array | null;
}

/** Answers one command: VIRTIO_NET_OK or VIRTIO_NET_ERR. */
export type ControlHandler = (cls: number, cmd: number, data: Uint8Array) => number;

/** Where the control ring lives and how to answer. */
export interface DeviceControlOptions {
  /** For messages, e.g. "controlq of vhost-user:/tmp/a.sock". */
  name: string;
  /** Queue size (a power of two). */
  size: number;
  /** The driver's memory. */
  memory: DeviceMemory;
  /** IOVA of the descriptor table. */
  descAddr: number;
  /** IOVA of the available ring. */
  availAddr: number;
  /** IOVA of the used ring. */
  usedAddr: number;
  /** VIRTIO_F_EVENT_IDX was negotiated. */
  eventIdx: boolean;
  /** Answers the commands. */
  handle: ControlHandler;
}

interface Segment {
  addr: number;
  len: number;
  write: boolean;
}

/**
 * The device side of one control virtqueue. Its {@linkcode DeviceControlQueue.notify} is
 * the queue's notifier: it answers every available command before returning.
 *
 * @example
 * ```ts ignore
 * const q = new DeviceControlQueue({ name: "controlq", size: 64, memory, descAddr, availAddr, usedAddr, eventIdx: false, handle: () => CTRL_OK });
 * q.notify(); // answers what the driver published
 * ```
 */
export class DeviceControlQueue {
  /** Commands answered. */
  answered = 0;
  /** What the handler last threw (the command was answered VIRTIO_NET_ERR), or null. */
  lastError: unknown = null;
  /** Called after used entries were added when the driver wants an interrupt. */
  signal: (() => void) | null = null;
  readonly #o: DeviceControlOptions;
  readonly #desc: DataView;
  readonly #avail: DataView;
  readonly #used: DataView;
  readonly #usedIdx: Uint16Array;
  #lastAvail = 0;
  #used16 = 0;
  #broken: string | null = null;

  /** Views the ring (throws RangeError when a part of it is not in `memory`). */
  constructor(o: DeviceControlOptions) {
    if (!Number.isInteger(o.size) || o.size < 1 || o.size > 32768 || (o.size & (o.size - 1))) {
      throw new RangeError(`${o.name}: size ${o.size} is not a power of two up to 32768`);
    }
    const view = (addr: number, len: number, what: string) => {
      const b = o.memory.bytes(addr, len);
      if (!b) throw new RangeError(`${o.name}: its ${what} is not in mapped memory`);
      return new DataView(b.buffer, b.byteOffset, b.byteLength);
    };
    this.#o = o;
    this.#desc = view(o.descAddr, 16 * o.size, "descriptor table");
    this.#avail = view(o.availAddr, 6 + 2 * o.size, "available ring");
    this.#used = view(o.usedAddr, 6 + 8 * o.size, "used ring");
    this.#usedIdx = new Uint16Array(this.#used.buffer, this.#used.byteOffset, 2);
    // A queue set up after a reset starts at index 0 on both sides (§2.7.6, §2.7.8): the
    // ring's memory is not read yet (the driver zeroes it after setting the queue up).
  }

  /** Why the queue stopped answering, or null while it works. */
  get broken(): string | null {
    return this.#broken;
  }

  /** The driver's notification: answers every available command. */
  notify(): void {
    this.process();
  }

  /** Answers every available command; returns how many. */
  process(): number {
    if (this.#broken !== null) return 0;
    const size = this.#o.size;
    const availIdx = this.#avail.getUint16(2, true);
    const pending = (availIdx - this.#lastAvail) & 0xffff;
    if (pending > size) {
      this.#broken =
        `avail->idx ${availIdx} is ${pending} entries ahead of ${this.#lastAvail}, more than the ${size} the ring holds`;
      return 0;
    }
    const oldUsed = this.#used16;
    let n = 0;
    for (; n < pending; n++) {
      const head = this.#avail.getUint16(4 + 2 * (this.#lastAvail & (size - 1)), true);
      if (head >= size) {
        this.#broken = `available entry ${this.#lastAvail} names descriptor ${head} of ${size}`;
        break;
      }
      const written = this.#answer(head);
      const slot = this.#used16 & (size - 1);
      this.#used.setUint32(4 + 8 * slot, head, true);
      this.#used.setUint32(8 + 8 * slot, written, true);
      this.#used16 = (this.#used16 + 1) & 0xffff;
      this.#lastAvail = (this.#lastAvail + 1) & 0xffff;
    }
    if (n === 0) return 0;
    // Entries first, then the index (§2.7.8); then the avail_event the driver checks
    // before notifying again (§2.7.10: notify as soon as avail->idx moves past it).
    Atomics.store(this.#usedIdx, 1, this.#used16);
    if (this.#o.eventIdx) this.#used.setUint16(4 + 8 * size, this.#lastAvail, true);
    this.answered += n;
    if (this.signal && this.#wantsInterrupt(oldUsed)) this.signal();
    return n;
  }

  #wantsInterrupt(oldUsed: number): boolean {
    if (this.#o.eventIdx) {
      const usedEvent = this.#avail.getUint16(4 + 2 * this.#o.size, true);
      return vringNeedEvent(usedEvent, this.#used16, oldUsed);
    }
    return (this.#avail.getUint16(0, true) & VIRTQ_AVAIL_F_NO_INTERRUPT) === 0;
  }

  /** Answers the chain at `head`; returns the bytes written (1, or 0 when it could not). */
  #answer(head: number): number {
    const segs = this.#walk(head);
    if (segs === null) return 0;
    const readable = segs.filter((s) => !s.write);
    const ackSeg = segs.find((s) => s.write);
    const total = readable.reduce((a, s) => a + s.len, 0);
    if (!ackSeg || total < 2 || total > CONTROL_COMMAND_MAX) return 0;
    const ack = this.#o.memory.bytes(ackSeg.addr, 1);
    if (!ack) return 0;
    const cmd = new Uint8Array(total);
    let at = 0;
    for (const s of readable) {
      const b = this.#o.memory.bytes(s.addr, s.len);
      if (!b) return 0;
      cmd.set(b, at);
      at += s.len;
    }
    let result = CTRL_ERR;
    try {
      result = this.#o.handle(cmd[0], cmd[1], cmd.subarray(2)) === CTRL_OK ? CTRL_OK : CTRL_ERR;
    } catch (e) {
      this.lastError = e;
      result = CTRL_ERR;
    }
    ack[0] = result;
    return 1;
  }

  /**
   * The chain at `head` as segments, or null when it is malformed: an index out of range,
   * a loop, an indirect table that is misaligned, nested or unmapped, or a readable part
   * after a writable one.
   */
  #walk(head: number): Segment[] | null {
    const segs: Segment[] = [];
    let seenWrite = false;
    const push = (addr: number, len: number, flags: number): boolean => {
      const write = (flags & VIRTQ_DESC_F_WRITE) !== 0;
      if (!write && seenWrite) return false;
      seenWrite ||= write;
      if (len > 0) segs.push({ addr, len, write });
      return true;
    };
    const size = this.#o.size;
    let table = this.#desc, count = size, i = head, indirect = false;
    for (let steps = 0;; steps++) {
      if (steps >= count || i >= count) return null; // a loop, or an index out of range
      const addr = table.getUint32(16 * i, true) + table.getUint32(16 * i + 4, true) * 2 ** 32;
      const len = table.getUint32(16 * i + 8, true);
      const flags = table.getUint16(16 * i + 12, true);
      const next = table.getUint16(16 * i + 14, true);
      if (flags & VIRTQ_DESC_F_INDIRECT) {
        // §2.7.5.3.1: not inside an indirect table, not with NEXT, a whole number of
        // descriptors; the table then replaces the chain.
        if (indirect || flags & VIRTQ_DESC_F_NEXT || len === 0 || len % 16 !== 0) return null;
        const b = this.#o.memory.bytes(addr, len);
        if (!b) return null;
        table = new DataView(b.buffer, b.byteOffset, b.byteLength);
        count = len / 16;
        i = 0;
        steps = -1;
        indirect = true;
        continue;
      }
      if (!push(addr, len, flags)) return null;
      if (!(flags & VIRTQ_DESC_F_NEXT)) return segs;
      i = next;
    }
  }
}

/** What the control commands act on. */
export interface NetControlTarget {
  /** VIRTIO_NET_F_MQ was negotiated. */
  mq: boolean;
  /** max_virtqueue_pairs as the configuration reports it. */
  maxPairs: number;
  /** Makes the device use pairs 0 … n-1 (the transport: SET_VRING_ENABLE). */
  setPairs(n: number): void;
}

/**
 * The commands this transport answers: VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET with MQ and
 * 1 ≤ n ≤ max_virtqueue_pairs (§5.1.6.5.5); every other class or command, or a failure to
 * apply it, is VIRTIO_NET_ERR.
 *
 * @example
 * ```ts
 * import { CTRL_MQ, CTRL_MQ_VQ_PAIRS_SET, netControlHandler } from "./vhost_user_control.ts";
 * const h = netControlHandler({ mq: true, maxPairs: 4, setPairs: (n) => console.log(n) });
 * h(CTRL_MQ, CTRL_MQ_VQ_PAIRS_SET, new Uint8Array([2, 0])); // 0 (VIRTIO_NET_OK), after setPairs(2)
 * ```
 */
export function netControlHandler(t: NetControlTarget): ControlHandler {
  return (cls, cmd, data) => {
    if (cls !== CTRL_MQ || cmd !== CTRL_MQ_VQ_PAIRS_SET || !t.mq || data.length !== 2) {
      return CTRL_ERR;
    }
    const n = data[0] | (data[1] << 8);
    if (n < CTRL_MQ_VQ_PAIRS_MIN || n > CTRL_MQ_VQ_PAIRS_MAX || n > t.maxPairs) return CTRL_ERR;
    t.setPairs(n);
    return CTRL_OK;
  };
}
