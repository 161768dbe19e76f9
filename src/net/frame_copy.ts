/**
 * Copying a whole frame out of, or into, packet buffers, whether it sits in one buffer or
 * spans several linked through `pool.next` (mergeable receive buffers, docs/mergeable.md).
 * For the control path and tests: the data path hands buffer indices around and copies
 * nothing.
 *
 * @module
 */

import { NO_BUFFER, type PacketBuffers } from "../dma/packet_buffers.ts";

/**
 * The `len` bytes of the frame named by buffer `buf` (its header of `headerSize` bytes in
 * front), as a new array.
 *
 * @example
 * ```ts ignore
 * const n = port.rx().rxBurst(bufs, lens, 32);
 * const first = readFrame(port.pool, port.headerSize, bufs[0], lens[0]);
 * ```
 */
export function readFrame(
  pool: PacketBuffers,
  headerSize: number,
  buf: number,
  len: number,
): Uint8Array {
  const out = new Uint8Array(len);
  let at = 0, skip = headerSize;
  for (let b = buf; b !== NO_BUFFER && at < len; b = pool.next[b]) {
    const from = pool.offset(b) + skip;
    const take = Math.min(pool.bufferSize - skip, len - at);
    out.set(pool.data.subarray(from, from + take), at);
    at += take;
    skip = 0;
  }
  if (at < len) {
    throw new RangeError(`buffer ${buf}'s frame holds ${at} bytes, fewer than ${len}`);
  }
  return out;
}

/**
 * Puts `frame` into buffers of `pool` behind room for a `headerSize`-byte header: one
 * buffer when it fits, else as many as it needs, linked through `pool.next` (every one
 * but the last full), ready for `txBurst`. Returns the first buffer, or NO_BUFFER (and
 * takes nothing) when the pool has too few free buffers.
 *
 * @example
 * ```ts ignore
 * const b = writeFrame(port.pool, port.headerSize, jumbo);
 * if (b !== NO_BUFFER) port.tx().txBurst(Uint32Array.of(b), Uint32Array.of(jumbo.length), 1);
 * ```
 */
export function writeFrame(pool: PacketBuffers, headerSize: number, frame: Uint8Array): number {
  let head = NO_BUFFER, tail = NO_BUFFER, at = 0, skip = headerSize;
  do {
    const b = pool.alloc();
    if (b === NO_BUFFER) {
      if (head !== NO_BUFFER) pool.free(head);
      return NO_BUFFER;
    }
    if (head === NO_BUFFER) head = b;
    else pool.next[tail] = b;
    tail = b;
    const take = Math.min(pool.bufferSize - skip, frame.length - at);
    pool.data.set(frame.subarray(at, at + take), pool.offset(b) + skip);
    at += take;
    skip = 0;
  } while (at < frame.length);
  return head;
}
