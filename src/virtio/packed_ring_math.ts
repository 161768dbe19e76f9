/**
 * Packed-virtqueue arithmetic (virtio 1.x §2.8): the flag bits, the event suppression
 * values, the memory layout, and the mapping of a free-running 16-bit position to a ring
 * slot and its wrap counter.
 *
 * A packed ring has no indices in memory: the driver and the device each keep a position
 * and a wrap counter that flips every time the position passes the end of the ring
 * (§2.8.1). Counting positions free-running over 2^16, as the split ring's idx fields do,
 * gives both at once when the size is a power of two: slot `pos & (size - 1)`, wrap counter
 * `((pos >> log2(size)) & 1) ^ 1` (both counters start at 1). 2^16 is an even number of laps
 * for every size up to 32768, so the wrap counter stays right across the 16-bit wrap.
 *
 * @module
 */

import { isValidQueueSize } from "./ring_math.ts";

/** struct pvirtq_desc.flags: the driver's available-wrap bit (§2.8.1). */
export const VIRTQ_DESC_F_AVAIL = 1 << 7;
/** struct pvirtq_desc.flags: the device's used-wrap bit (§2.8.1). */
export const VIRTQ_DESC_F_USED = 1 << 15;
/** pvirtq_event_suppress.flags: notifications wanted (§2.8.10). */
export const RING_EVENT_FLAGS_ENABLE = 0;
/** pvirtq_event_suppress.flags: no notifications wanted (§2.8.10). */
export const RING_EVENT_FLAGS_DISABLE = 1;
/** pvirtq_event_suppress.flags: a notification at desc_event_off_wrap only (EVENT_IDX, §2.8.10). */
export const RING_EVENT_FLAGS_DESC = 2;
/** struct pvirtq_desc: addr u64, len u32, id u16, flags u16. */
export const PVIRTQ_DESC_SIZE = 16;

/**
 * Byte layout of one packed virtqueue in a single DMA allocation, plus the driver's shadow
 * (see {@linkcode packedRingLayout}).
 */
export interface PackedRingLayout {
  /** Queue size (descriptors). */
  size: number;
  /** Offset of the descriptor ring (16-byte aligned, §2.8.10.1). */
  descOffset: number;
  /** Offset of the driver event suppression area (the driver writes it; 4-byte aligned). */
  driverOffset: number;
  /** Offset of the device event suppression area (the device writes it; 4-byte aligned). */
  deviceOffset: number;
  /**
   * Offset of the driver's shadow: u32 last used position, u32 unused, then per buffer id
   * the IOVA posted (u32 low, u32 high), then per buffer id its descriptors (u32). Not
   * part of the ring the device is told about.
   */
  shadowOffset: number;
  /** Total bytes. */
  totalBytes: number;
}

/**
 * The layout of a packed virtqueue of `size` descriptors: descriptor ring (16·size bytes),
 * driver event suppression area (4 bytes), device event suppression area (4 bytes), then
 * the shadow (8 + 12·size bytes). Each part starts on a 64-byte boundary (more than the
 * spec's 16/4/4: the part the device writes shares no cache line with the driver's).
 *
 * @example
 * ```ts
 * import { packedRingLayout } from "./packed_ring_math.ts";
 * packedRingLayout(256); // { size: 256, descOffset: 0, driverOffset: 4096, deviceOffset: 4160, shadowOffset: 4224, totalBytes: 7304 }
 * ```
 */
export function packedRingLayout(size: number): PackedRingLayout {
  if (!isValidQueueSize(size)) {
    throw new RangeError(`queue size ${size} is not a power of two ≤ 32768`);
  }
  const align = (n: number) => Math.ceil(n / 64) * 64;
  const driverOffset = align(PVIRTQ_DESC_SIZE * size);
  const deviceOffset = driverOffset + 64;
  const shadowOffset = deviceOffset + 64;
  return {
    size,
    descOffset: 0,
    driverOffset,
    deviceOffset,
    shadowOffset,
    totalBytes: shadowOffset + 8 + 12 * size,
  };
}

/**
 * The wrap counter (0 or 1) of free-running position `pos` in a ring of `size` (a power of
 * two): 1 in the first lap, as both counters start (§2.8.1).
 *
 * @example
 * ```ts
 * import { positionWrap } from "./packed_ring_math.ts";
 * positionWrap(7, 8); // 1
 * positionWrap(8, 8); // 0: the position passed the end of the ring once
 * ```
 */
export function positionWrap(pos: number, size: number): number {
  return ((pos >> (31 - Math.clz32(size))) & 1) ^ 1;
}

/**
 * The free-running position that the event suppression value `offWrap` (offset in bits
 * 0–14, wrap counter in bit 15, §2.8.10) names, taken at or behind `newPos` within two laps
 * of a ring of `size`. -1 when the offset is outside the ring.
 *
 * @example
 * ```ts
 * import { eventPosition } from "./packed_ring_math.ts";
 * eventPosition(0x8000 | 3, 20, 8); // 19: slot 3 with wrap counter 1 (laps 0, 2, …)
 * eventPosition(3, 20, 8); // 11: slot 3 with wrap counter 0 (laps 1, 3, …)
 * ```
 */
export function eventPosition(offWrap: number, newPos: number, size: number): number {
  const off = offWrap & 0x7fff;
  if (off >= size) return -1;
  // Positions with this slot and wrap counter recur every 2·size (which divides 2^16).
  const lapPos = off + ((offWrap & 0x8000) !== 0 ? 0 : size);
  return (newPos - ((newPos - lapPos) & (2 * size - 1))) & 0xffff;
}
