/**
 * The device side of a PACKED virtio-net control virtqueue (virtio 1.x §2.8), served by the
 * vhost-user transport itself when VIRTIO_F_RING_PACKED was negotiated; the split ring's
 * is vhost_user_control.ts, and both answer commands through the same
 * {@linkcode ControlQueueDevice} and handler.
 *
 * The device keeps an avail position and a used position, each a slot and a wrap counter
 * starting at 1 (§2.8.1). When the driver notifies, every available chain is taken in ring
 * order (§2.8.12): the descriptor at the avail position is available when its AVAIL flag
 * equals the avail wrap counter and its USED flag does not; the chain continues through
 * NEXT into the following slots (§2.8.6), or is one INDIRECT descriptor whose table lists
 * the parts (§2.8.7: only WRITE counts there). Readable parts hold the command, the first
 * writable byte takes the ack (§5.1.6.5). One used descriptor is written at the used
 * position for the whole chain: the buffer id of the chain's last descriptor (§2.8.6,
 * "Buffer ID is included in the last descriptor in the list"), len = bytes written, WRITE
 * when that is not 0 (§2.8.3, §2.8.4), then, last, flags with AVAIL = USED = the used wrap
 * counter. Both positions then skip the chain's length; a counter flips at the ring's end.
 *
 * Failures as on the split ring: a chain that cannot be answered (unmapped memory, a
 * readable part after a writable one, no writable byte, INDIRECT inside a NEXT list, a bad
 * indirect table) is returned with length 0; a ring that cannot be walked stops the queue
 * with the reason (`broken`), as a device sets DEVICE_NEEDS_RESET (§2.1.2): a chain whose
 * NEXT flags run over the whole ring (§2.8.17: no list is longer than the queue), or one
 * whose later descriptor was not made available. The buffer id is the driver's own
 * (the device never indexes anything with it), so it is echoed as read.
 *
 * @module
 */

import { VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from "./ring_math.ts";
import { vringNeedEvent } from "./ring_math.ts";
import {
  RING_EVENT_FLAGS_DESC,
  RING_EVENT_FLAGS_DISABLE,
  VIRTQ_DESC_F_AVAIL,
  VIRTQ_DESC_F_USED,
} from "./packed_ring_math.ts";
import {
  type ChainSegment,
  ChainSegments,
  ControlQueueDevice,
  type ControlRingOptions,
} from "./vhost_user_control.ts";

/** Where a packed control ring lives and how to answer. */
export interface PackedControlOptions extends ControlRingOptions {
  /** IOVA of the driver event suppression area (driver area, 4 bytes, §2.8.10). */
  driverAddr: number;
  /** IOVA of the device event suppression area (device area, 4 bytes). */
  deviceAddr: number;
}

/** A chain read at the avail position: its parts (null: malformed), buffer id, slots. */
interface Chain {
  segs: ChainSegment[] | null;
  id: number;
  count: number;
}

/**
 * The device side of one packed control virtqueue. Its
 * {@linkcode PackedDeviceControlQueue.notify} is the queue's notifier: it answers every
 * available command before returning.
 *
 * @example
 * ```ts ignore
 * const q = new PackedDeviceControlQueue({ name: "controlq", size: 64, memory, descAddr, driverAddr, deviceAddr, eventIdx: false, handle: () => CTRL_OK });
 * q.notify(); // answers what the driver made available
 * ```
 */
export class PackedDeviceControlQueue extends ControlQueueDevice {
  readonly #desc: DataView;
  /** The descriptor ring as 16-bit words, for the flags (word 8·slot + 7). */
  readonly #words: Uint16Array;
  readonly #driver: DataView;
  readonly #device: DataView;
  #availSlot = 0;
  #availWrap = true;
  #usedSlot = 0;
  #usedWrap = true;

  /**
   * Views the ring (RangeError when a part of it is not in `memory`, or not aligned as
   * §2.8.10.1 asks: the descriptor ring to 16 bytes, the areas to 4).
   */
  constructor(o: PackedControlOptions) {
    super(o);
    if (o.descAddr % 16 || o.driverAddr % 4 || o.deviceAddr % 4) {
      throw new RangeError(
        `${o.name}: the descriptor ring must be 16-byte aligned, the driver and device areas 4-byte aligned`,
      );
    }
    this.#desc = this.view(o.descAddr, 16 * o.size, "descriptor ring");
    this.#words = new Uint16Array(this.#desc.buffer, this.#desc.byteOffset, 8 * o.size);
    this.#driver = this.view(o.driverAddr, 4, "driver area");
    this.#device = this.view(o.deviceAddr, 4, "device area");
    // A queue set up after a reset starts at slot 0 with both wrap counters at 1 (§2.8.1);
    // the ring is not read yet (the driver zeroes it after setting the queue up).
  }

  /** Answers every available command; returns how many. */
  process(): number {
    if (this.stopped !== null) return 0;
    const size = this.size;
    const oldUsed = this.#usedSlot;
    let n = 0;
    // At most one lap: each used descriptor (and each skipped slot) stops looking
    // available under the flipped counter.
    for (let slots = 0; slots < size; n++) {
      const flags = Atomics.load(this.#words, 8 * this.#availSlot + 7);
      if (!isAvailable(flags, this.#availWrap)) break;
      const chain = this.#read();
      if (typeof chain === "string") {
        this.stopped = chain;
        break;
      }
      const written = this.answer(chain.segs);
      this.#writeUsed(chain.id, written);
      this.#usedSlot += chain.count;
      if (this.#usedSlot >= size) {
        [this.#usedSlot, this.#usedWrap] = [this.#usedSlot - size, !this.#usedWrap];
      }
      this.#availSlot += chain.count;
      if (this.#availSlot >= size) {
        [this.#availSlot, this.#availWrap] = [this.#availSlot - size, !this.#availWrap];
      }
      slots += chain.count;
    }
    if (n === 0) return 0;
    if (this.eventIdx) {
      // As the split ring's avail_event: notify me when the next descriptor is available.
      this.#device.setUint16(0, this.#availSlot | (this.#availWrap ? 0x8000 : 0), true);
      this.#device.setUint16(2, RING_EVENT_FLAGS_DESC, true);
    }
    this.answered += n;
    if (this.signal && this.#wantsInterrupt(oldUsed)) this.signal();
    return n;
  }

  /** Where the device stands: the next slot to read and to write, and their counters. */
  get position(): { availSlot: number; availWrap: boolean; usedSlot: number; usedWrap: boolean } {
    return {
      availSlot: this.#availSlot,
      availWrap: this.#availWrap,
      usedSlot: this.#usedSlot,
      usedWrap: this.#usedWrap,
    };
  }

  /**
   * Used-buffer notification per the driver area (§2.8.10): ENABLE yes, DISABLE no, and
   * with EVENT_IDX, DESC when the used descriptors written since `oldUsed` passed the event
   * offset and wrap counter (DPDK lib/vhost/vhost.h, vhost_vring_call_packed).
   */
  #wantsInterrupt(oldUsed: number): boolean {
    const flags = this.#driver.getUint16(2, true) & 3;
    if (!this.eventIdx || flags !== RING_EVENT_FLAGS_DESC) {
      return flags !== RING_EVENT_FLAGS_DISABLE;
    }
    const offWrap = this.#driver.getUint16(0, true);
    const now = this.#usedSlot;
    const old = now <= oldUsed ? oldUsed - this.size : oldUsed;
    let event = offWrap & 0x7fff;
    if ((offWrap >> 15 === 1) !== this.#usedWrap) event -= this.size;
    return vringNeedEvent(event, now, old);
  }

  /**
   * The used descriptor over the chain's first slot: len and id, then the flags, after
   * which the device no longer changes it (§2.8.15).
   */
  #writeUsed(id: number, written: number): void {
    const o = 16 * this.#usedSlot;
    this.#desc.setUint32(o + 8, written, true);
    this.#desc.setUint16(o + 12, id, true);
    const wrap = this.#usedWrap ? VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_USED : 0;
    Atomics.store(this.#words, 8 * this.#usedSlot + 7, wrap | (written ? VIRTQ_DESC_F_WRITE : 0));
  }

  /**
   * The chain at the avail position (its head is available), or why the ring cannot be
   * walked: NEXT over all `size` slots, or a later descriptor not made available.
   */
  #read(): Chain | string {
    const size = this.size, head = this.#availSlot;
    const segs = new ChainSegments();
    let ok = true;
    for (let i = 0; i < size; i++) {
      const slot = (head + i) & (size - 1);
      const o = 16 * slot;
      const flags = this.#desc.getUint16(o + 14, true);
      const wrap = head + i < size ? this.#availWrap : !this.#availWrap;
      if (i > 0 && !isAvailable(flags, wrap)) {
        return `descriptor ${slot}, part ${i + 1} of the chain at ${head}, was not made available`;
      }
      const addr = this.#desc.getUint32(o, true) + this.#desc.getUint32(o + 4, true) * 2 ** 32;
      const len = this.#desc.getUint32(o + 8, true);
      const next = (flags & VIRTQ_DESC_F_NEXT) !== 0;
      if (flags & VIRTQ_DESC_F_INDIRECT) {
        // §2.8.19: an indirect descriptor is a list by itself.
        ok &&= i === 0 && !next && this.#indirect(addr, len, segs);
      } else {
        ok &&= segs.add(addr, len, (flags & VIRTQ_DESC_F_WRITE) !== 0);
      }
      if (!next) {
        return {
          segs: ok ? segs.list : null,
          id: this.#desc.getUint16(o + 12, true),
          count: i + 1,
        };
      }
    }
    return `the chain at descriptor ${head} has NEXT on all ${size} descriptors of the ring`;
  }

  /**
   * Adds the parts an indirect table lists (§2.8.7: consecutive descriptors, only WRITE
   * counts); false when the table is empty, not whole descriptors, unmapped, or puts a
   * readable part after a writable one.
   */
  #indirect(addr: number, len: number, segs: ChainSegments): boolean {
    if (len === 0 || len % 16 !== 0) return false;
    const b = this.memory.bytes(addr, len);
    if (!b) return false;
    const t = new DataView(b.buffer, b.byteOffset, b.byteLength);
    for (let o = 0; o < len; o += 16) {
      const partAddr = t.getUint32(o, true) + t.getUint32(o + 4, true) * 2 ** 32;
      const write = (t.getUint16(o + 14, true) & VIRTQ_DESC_F_WRITE) !== 0;
      if (!segs.add(partAddr, t.getUint32(o + 8, true), write)) return false;
    }
    return true;
  }
}

/** AVAIL equals `wrap` and USED does not: made available in the lap of `wrap` (§2.8.1). */
function isAvailable(flags: number, wrap: boolean): boolean {
  const avail = (flags & VIRTQ_DESC_F_AVAIL) !== 0, used = (flags & VIRTQ_DESC_F_USED) !== 0;
  return avail === wrap && used !== wrap;
}
