/**
 * Split-virtqueue arithmetic (virtio 1.x §2.7), documented once here and used by every
 * queue: the memory layout of the three parts, and the free-running 16-bit indices.
 *
 * Ring indices (avail->idx, used->idx) count up forever and wrap at 2^16; a ring slot is
 * `idx & (size - 1)`, which is why the queue size must be a power of two (§2.7).
 *
 * @module
 */

/** struct virtq_desc: addr u64, len u32, flags u16, next u16. */
export const VIRTQ_DESC_SIZE = 16;
/** virtq_desc.flags: the buffer continues in `next`. */
export const VIRTQ_DESC_F_NEXT = 1;
/** virtq_desc.flags: the device writes the buffer (otherwise it reads it). */
export const VIRTQ_DESC_F_WRITE = 2;
/** virtq_desc.flags: the buffer holds a table of indirect descriptors. */
export const VIRTQ_DESC_F_INDIRECT = 4;
/** virtq_avail.flags: the driver wants no used-buffer notifications (no EVENT_IDX). */
export const VIRTQ_AVAIL_F_NO_INTERRUPT = 1;
/** virtq_used.flags: the device wants no available-buffer notifications (no EVENT_IDX). */
export const VIRTQ_USED_F_NO_NOTIFY = 1;
/** The largest queue size a split virtqueue may have. */
export const VIRTQ_MAX_SIZE = 32768;

/** Byte layout of one split virtqueue in a single DMA allocation. */
export interface SplitRingLayout {
  /** Queue size (number of descriptors). */
  size: number;
  /** Offset of the descriptor table (16-byte aligned, §2.7). */
  descOffset: number;
  /** Offset of the available ring (2-byte aligned). */
  availOffset: number;
  /** Offset of the used ring (4-byte aligned). */
  usedOffset: number;
  /** Total bytes. */
  totalBytes: number;
}

/**
 * True for 1, 2, 4, … 32768 (valid split-queue sizes).
 *
 * @example
 * ```ts
 * import { isValidQueueSize } from "./ring_math.ts";
 * isValidQueueSize(256); // true
 * isValidQueueSize(100); // false
 * ```
 */
export function isValidQueueSize(n: number): boolean {
  return Number.isInteger(n) && n > 0 && n <= VIRTQ_MAX_SIZE && (n & (n - 1)) === 0;
}

/** The legacy interface's ring alignment: the used ring starts on a 4096-byte boundary (§2.7 legacy note). */
export const LEGACY_VRING_ALIGN = 4096;

/**
 * The layout of a split virtqueue of `size` entries: descriptor table (16·size bytes),
 * available ring (flags, idx, ring[size], used_event: 6 + 2·size bytes) and used ring
 * (flags, idx, ring[size] of {id u32, len u32}, avail_event: 6 + 8·size bytes). Each part
 * starts on a 64-byte boundary (more than the spec's 16/2/4 minimum: no false sharing
 * between the parts the driver writes and the part the device writes).
 *
 * With `legacy`, the layout a legacy device computes itself from the one address it gets
 * (§2.7 "Legacy Interfaces: A Note on Virtqueue Layout"): the available ring right after
 * the descriptors, the used ring at the next {@linkcode LEGACY_VRING_ALIGN} boundary.
 *
 * @example
 * ```ts
 * import { splitRingLayout } from "./ring_math.ts";
 * splitRingLayout(256); // { size: 256, descOffset: 0, availOffset: 4096, usedOffset: 4672, totalBytes: 6726 }
 * splitRingLayout(256, true).usedOffset; // 8192
 * ```
 */
export function splitRingLayout(size: number, legacy = false): SplitRingLayout {
  if (!isValidQueueSize(size)) {
    throw new RangeError(`queue size ${size} is not a power of two ≤ 32768`);
  }
  const to = (n: number, a: number) => Math.ceil(n / a) * a;
  const availOffset = legacy ? VIRTQ_DESC_SIZE * size : to(VIRTQ_DESC_SIZE * size, 64);
  const usedOffset = to(availOffset + 6 + 2 * size, legacy ? LEGACY_VRING_ALIGN : 64);
  return { size, descOffset: 0, availOffset, usedOffset, totalBytes: usedOffset + 6 + 8 * size };
}

/**
 * Entries between two free-running 16-bit indices: `(to - from) mod 2^16`.
 *
 * @example
 * ```ts
 * import { ringDistance } from "./ring_math.ts";
 * ringDistance(65530, 4); // 10
 * ```
 */
export function ringDistance(from: number, to: number): number {
  return (to - from) & 0xffff;
}

/**
 * vring_need_event (§2.7.10): with VIRTIO_F_EVENT_IDX, after moving an index from `oldIdx`
 * to `newIdx`, notify the other side only if its event index lies in [oldIdx, newIdx).
 *
 * @example
 * ```ts
 * import { vringNeedEvent } from "./ring_math.ts";
 * vringNeedEvent(10, 12, 10); // true: the event index 10 was passed
 * vringNeedEvent(20, 12, 10); // false: the device asked to be told at 21
 * ```
 */
export function vringNeedEvent(eventIdx: number, newIdx: number, oldIdx: number): boolean {
  return ((newIdx - eventIdx - 1) & 0xffff) < ((newIdx - oldIdx) & 0xffff);
}
