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
 * What does not depend on the ring format — the command bytes, the ack, the counters and
 * the broken state — is {@linkcode ControlQueueDevice}, shared with the packed ring's
 * device side (vhost_user_control_packed.ts).
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

/** What a control ring of either format needs: its size, memory, and how to answer. */
export interface ControlRingOptions {
  /** For messages, e.g. "controlq of vhost-user:/tmp/a.sock". */
  name: string;
  /** Queue size (a power of two). */
  size: number;
  /** The driver's memory. */
  memory: DeviceMemory;
  /** IOVA of the descriptor table (split) or descriptor ring (packed). */
  descAddr: number;
  /** VIRTIO_F_EVENT_IDX was negotiated. */
  eventIdx: boolean;
  /** Answers the commands. */
  handle: ControlHandler;
}

/** Where a split control ring lives and how to answer. */
export interface DeviceControlOptions extends ControlRingOptions {
  /** IOVA of the available ring. */
  availAddr: number;
  /** IOVA of the used ring. */
  usedAddr: number;
}

/** One part of a descriptor chain: `len` bytes at IOVA `addr`, device-writable or not. */
export interface ChainSegment {
  /** IOVA. */
  addr: number;
  /** Bytes. */
  len: number;
  /** Device-writable. */
  write: boolean;
}

/**
 * A chain's parts in ring order. Refuses a readable part after a writable one (split
 * §2.7.4.2, packed §2.8.17: writable elements come last); drops empty parts.
 */
export class ChainSegments {
  /** The non-empty parts so far. */
  readonly list: ChainSegment[] = [];
  #seenWrite = false;

  /** Adds a part; false when it is readable and follows a writable one. */
  add(addr: number, len: number, write: boolean): boolean {
    if (!write && this.#seenWrite) return false;
    this.#seenWrite ||= write;
    if (len > 0) this.list.push({ addr, len, write });
    return true;
  }
}

/**
 * The format-independent half of a control queue's device side: answering one chain's
 * command, the counters, the interrupt hook and the broken state. A ring format adds
 * {@linkcode ControlQueueDevice.process}.
 */
export abstract class ControlQueueDevice {
  /** Commands answered. */
  answered = 0;
  /** What the handler last threw (the command was answered VIRTIO_NET_ERR), or null. */
  lastError: unknown = null;
  /** Called after used entries were added when the driver wants an interrupt. */
  signal: (() => void) | null = null;
  /** Queue size. */
  protected readonly size: number;
  /** VIRTIO_F_EVENT_IDX was negotiated. */
  protected readonly eventIdx: boolean;
  /** The driver's memory. */
  protected readonly memory: DeviceMemory;
  /** Why the queue stopped answering, or null while it works. */
  protected stopped: string | null = null;
  readonly #name: string;
  readonly #handle: ControlHandler;

  /** Checks the size (RangeError unless a power of two up to 32768). */
  protected constructor(o: ControlRingOptions) {
    if (!Number.isInteger(o.size) || o.size < 1 || o.size > 32768 || (o.size & (o.size - 1))) {
      throw new RangeError(`${o.name}: size ${o.size} is not a power of two up to 32768`);
    }
    this.size = o.size;
    this.eventIdx = o.eventIdx;
    this.memory = o.memory;
    this.#name = o.name;
    this.#handle = o.handle;
  }

  /** Why the queue stopped answering, or null while it works. */
  get broken(): string | null {
    return this.stopped;
  }

  /** The driver's notification: answers every available command. */
  notify(): void {
    this.process();
  }

  /** Answers every available command; returns how many. */
  abstract process(): number;

  /** A view of `len` bytes at `addr` (RangeError naming `what` when not mapped). */
  protected view(addr: number, len: number, what: string): DataView {
    const b = this.memory.bytes(addr, len);
    if (!b) throw new RangeError(`${this.#name}: its ${what} is not in mapped memory`);
    return new DataView(b.buffer, b.byteOffset, b.byteLength);
  }

  /**
   * Answers the command in `segs` (null: a malformed chain); returns the bytes written: 1,
   * or 0 when it could not (no writable byte, a command too short or too long, unmapped).
   */
  protected answer(segs: ChainSegment[] | null): number {
    if (segs === null) return 0;
    const readable = segs.filter((s) => !s.write);
    const ackSeg = segs.find((s) => s.write);
    const total = readable.reduce((a, s) => a + s.len, 0);
    if (!ackSeg || total < 2 || total > CONTROL_COMMAND_MAX) return 0;
    const ack = this.memory.bytes(ackSeg.addr, 1);
    if (!ack) return 0;
    const cmd = new Uint8Array(total);
    let at = 0;
    for (const s of readable) {
      const b = this.memory.bytes(s.addr, s.len);
      if (!b) return 0;
      cmd.set(b, at);
      at += s.len;
    }
    let result = CTRL_ERR;
    try {
      result = this.#handle(cmd[0], cmd[1], cmd.subarray(2)) === CTRL_OK ? CTRL_OK : CTRL_ERR;
    } catch (e) {
      this.lastError = e;
      result = CTRL_ERR;
    }
    ack[0] = result;
    return 1;
  }
}

/**
 * The device side of one split control virtqueue. Its {@linkcode DeviceControlQueue.notify}
 * is the queue's notifier: it answers every available command before returning.
 *
 * @example
 * ```ts ignore
 * const q = new DeviceControlQueue({ name: "controlq", size: 64, memory, descAddr, availAddr, usedAddr, eventIdx: false, handle: () => CTRL_OK });
 * q.notify(); // answers what the driver published
 * ```
 */
export class DeviceControlQueue extends ControlQueueDevice {
  readonly #desc: DataView;
  readonly #avail: DataView;
  readonly #used: DataView;
  readonly #usedIdx: Uint16Array;
  #lastAvail = 0;
  #used16 = 0;

  /** Views the ring (throws RangeError when a part of it is not in `memory`). */
  constructor(o: DeviceControlOptions) {
    super(o);
    this.#desc = this.view(o.descAddr, 16 * o.size, "descriptor table");
    this.#avail = this.view(o.availAddr, 6 + 2 * o.size, "available ring");
    this.#used = this.view(o.usedAddr, 6 + 8 * o.size, "used ring");
    this.#usedIdx = new Uint16Array(this.#used.buffer, this.#used.byteOffset, 2);
    // A queue set up after a reset starts at index 0 on both sides (§2.7.6, §2.7.8): the
    // ring's memory is not read yet (the driver zeroes it after setting the queue up).
  }

  /** Answers every available command; returns how many. */
  process(): number {
    if (this.stopped !== null) return 0;
    const size = this.size;
    const availIdx = this.#avail.getUint16(2, true);
    const pending = (availIdx - this.#lastAvail) & 0xffff;
    if (pending > size) {
      this.stopped =
        `avail->idx ${availIdx} is ${pending} entries ahead of ${this.#lastAvail}, more than the ${size} the ring holds`;
      return 0;
    }
    const oldUsed = this.#used16;
    let n = 0;
    for (; n < pending; n++) {
      const head = this.#avail.getUint16(4 + 2 * (this.#lastAvail & (size - 1)), true);
      if (head >= size) {
        this.stopped = `available entry ${this.#lastAvail} names descriptor ${head} of ${size}`;
        break;
      }
      const written = this.answer(this.#walk(head));
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
    if (this.eventIdx) this.#used.setUint16(4 + 8 * size, this.#lastAvail, true);
    this.answered += n;
    if (this.signal && this.#wantsInterrupt(oldUsed)) this.signal();
    return n;
  }

  #wantsInterrupt(oldUsed: number): boolean {
    if (this.eventIdx) {
      const usedEvent = this.#avail.getUint16(4 + 2 * this.size, true);
      return vringNeedEvent(usedEvent, this.#used16, oldUsed);
    }
    return (this.#avail.getUint16(0, true) & VIRTQ_AVAIL_F_NO_INTERRUPT) === 0;
  }

  /**
   * The chain at `head` as segments, or null when it is malformed: an index out of range,
   * a loop, an indirect table that is misaligned, nested or unmapped, or a readable part
   * after a writable one.
   */
  #walk(head: number): ChainSegment[] | null {
    const segs = new ChainSegments();
    let table = this.#desc, count = this.size, i = head, indirect = false;
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
        const b = this.memory.bytes(addr, len);
        if (!b) return null;
        table = new DataView(b.buffer, b.byteOffset, b.byteLength);
        count = len / 16;
        i = 0;
        steps = -1;
        indirect = true;
        continue;
      }
      if (!segs.add(addr, len, (flags & VIRTQ_DESC_F_WRITE) !== 0)) return null;
      if (!(flags & VIRTQ_DESC_F_NEXT)) return segs.list;
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
