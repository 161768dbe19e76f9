/**
 * A packet buffer pool: `count` fixed-size buffers in DMA memory and a free list.
 *
 * A buffer is named by its index. Its bytes are `pool.data.subarray(pool.offset(i), …)`
 * and its device address is precomputed as two u32 halves, so the hot path touches only
 * typed arrays: no objects, no BigInt, no FFI. A pool belongs to one thread (one queue
 * pair's worker); it takes no locks.
 *
 * @module
 */

import { DriverError } from "../errors.ts";
import { DmaRegion } from "./memory.ts";
import { NO_BUFFER, type PacketBuffers } from "./packet_buffers.ts";

export { NO_BUFFER };

/** The most buffers a pool made by {@linkcode createSharedPool} (or a port) takes. */
export const MAX_POOL_BUFFERS = 1 << 24;
/** The largest buffer of such a pool: a 9216-byte MTU needs 9280 bytes. */
export const MAX_BUFFER_SIZE = 65536;

/**
 * Fixed-size DMA buffers with a LIFO free list (recently freed buffers are cache-warm).
 *
 * @example
 * ```ts
 * import { BufferPool, DmaRegion } from "../../mod.ts";
 * const region = DmaRegion.allocate(64 * 2048, { hugePages: false });
 * const pool = new BufferPool(region, 0, 64, 2048);
 * const i = pool.alloc();
 * pool.data[pool.offset(i)] = 0xff;
 * pool.free(i);
 * region.free();
 * ```
 */
export class BufferPool implements PacketBuffers {
  /** The DMA region the buffers live in. */
  readonly region: DmaRegion;
  /** Number of buffers. */
  readonly count: number;
  /** Size of each buffer in bytes. */
  readonly bufferSize: number;
  /** All bytes of the region the pool lives in. */
  readonly data: Uint8Array;
  /** The same bytes as 32-bit words. */
  readonly words: Uint32Array;
  /** Low 32 bits of each buffer's IOVA. */
  readonly iovaLo: Uint32Array;
  /** High 32 bits of each buffer's IOVA. */
  readonly iovaHi: Uint32Array;
  /** Per buffer, the next one of its frame, or NO_BUFFER (see PacketBuffers.next). */
  readonly next: Uint32Array;
  /** Per buffer, 1 when its header holds a transmit request (see PacketBuffers.txHeader). */
  readonly txHeader: Uint8Array;
  readonly #base: number;
  readonly #free: Uint32Array;
  readonly #owned: Uint8Array;
  #top: number;
  /** Times {@linkcode BufferPool.alloc} found the pool empty. */
  allocFailures = 0;

  /**
   * Carves `count` buffers of `bufferSize` bytes from `region` starting at byte `base`.
   */
  constructor(region: DmaRegion, base: number, count: number, bufferSize: number) {
    if (!(Number.isInteger(count) && count >= 1 && count <= 0xffff_fffe)) {
      throw new RangeError(`A pool of ${count} buffers is not possible: give 1 or more.`);
    }
    if (!(Number.isInteger(bufferSize) && bufferSize >= 4 && Number.isInteger(base) && base >= 0)) {
      throw new RangeError(
        `Buffers of ${bufferSize} bytes from byte ${base} are not possible: give a size of 4 or more bytes and a base of 0 or more.`,
      );
    }
    if (base + count * bufferSize > region.size) {
      throw new RangeError(
        `A pool of ${count}×${bufferSize} bytes from byte ${base} does not fit the ${region.size}-byte DMA region: allocate a larger region or take fewer buffers.`,
      );
    }
    if (base % 4 !== 0 || bufferSize % 4 !== 0) {
      throw new RangeError(
        `Pool buffers must start at multiples of 4 bytes (base ${base}, size ${bufferSize}): round both to a multiple of 4.`,
      );
    }
    this.region = region;
    this.count = count;
    this.bufferSize = bufferSize;
    this.data = new Uint8Array(region.buffer);
    this.words = new Uint32Array(region.buffer, 0, region.buffer.byteLength >> 2);
    this.#base = base;
    this.iovaLo = new Uint32Array(count);
    this.iovaHi = new Uint32Array(count);
    this.next = new Uint32Array(count).fill(NO_BUFFER);
    this.txHeader = new Uint8Array(count);
    this.#free = new Uint32Array(count);
    this.#owned = new Uint8Array(count);
    for (let i = 0; i < count; i++) {
      const at = base + i * bufferSize;
      // Physically addressed memory (legacy devices) is contiguous within a 2 MiB page only:
      // a buffer the device would see in two places is refused.
      if (region.pageIovas !== null && !region.contiguous(at, bufferSize)) {
        throw new RangeError(
          `Pool buffer ${i} (bytes ${at}…${
            at + bufferSize - 1
          }) straddles two physically separate huge pages: use a buffer size that divides 2 MiB.`,
        );
      }
      const iova = region.iovaAt(at);
      this.iovaLo[i] = iova % 0x1_0000_0000;
      this.iovaHi[i] = Math.floor(iova / 0x1_0000_0000);
      this.#free[i] = count - 1 - i; // so that alloc() hands out 0, 1, 2, … first
    }
    this.#top = count;
  }

  /** Free buffers left. */
  get available(): number {
    return this.#top;
  }

  /** Byte offset of buffer `i` within {@linkcode BufferPool.data}. */
  offset(i: number): number {
    return this.#base + i * this.bufferSize;
  }

  /** Takes a buffer; returns {@linkcode NO_BUFFER} when none is free. */
  alloc(): number {
    if (this.#top === 0) {
      this.allocFailures++;
      return NO_BUFFER;
    }
    const i = this.#free[--this.#top];
    this.#owned[i] = 1;
    return i;
  }

  /**
   * Returns buffer `i` and the rest of its frame (`next`). Freeing a buffer that is not
   * allocated (twice, or never taken) is a programming error and throws: a corrupt free
   * list would hand one buffer out twice.
   */
  free(i: number): void {
    do {
      if (i >= this.count || this.#owned[i] !== 1) {
        throw new RangeError(`buffer ${i} is not allocated from this pool`);
      }
      const after = this.next[i];
      this.next[i] = NO_BUFFER;
      this.txHeader[i] = 0;
      this.#owned[i] = 0;
      this.#free[this.#top++] = i;
      i = after;
    } while (i !== NO_BUFFER);
  }
}

/**
 * Allocates DMA memory for `count` buffers of `bufferSize` bytes and makes a pool of it,
 * not yet mapped for any device: pass it as `pool` to several ports to forward between
 * them without copying. Free it with `pool.region.free()` after the ports are closed.
 * `physical`: at physical addresses, for legacy devices (see DmaRegion.allocate).
 *
 * @example
 * ```ts
 * import { createSharedPool } from "./buffer_pool.ts";
 * const pool = createSharedPool(1024, 2048, { hugePages: false });
 * pool.available; // 1024
 * pool.region.free();
 * ```
 */
export function createSharedPool(
  count: number,
  bufferSize = 2048,
  options: { hugePages?: boolean; physical?: boolean } = {},
): BufferPool {
  // Checked before any memory is taken, in one sentence each.
  if (!(Number.isInteger(count) && count >= 1 && count <= MAX_POOL_BUFFERS)) {
    throw new DriverError(
      "BAD_ARGUMENT",
      `A shared pool of ${count} buffers is not possible: give an integer from 1 to ${MAX_POOL_BUFFERS}.`,
    );
  }
  if (
    !(Number.isInteger(bufferSize) && bufferSize % 64 === 0 && bufferSize >= 64 &&
      bufferSize <= MAX_BUFFER_SIZE)
  ) {
    throw new DriverError(
      "BAD_ARGUMENT",
      `A shared pool of ${bufferSize}-byte buffers is not possible: give a multiple of 64 from 64 to ${MAX_BUFFER_SIZE}.`,
    );
  }
  const region = DmaRegion.allocate(count * bufferSize, options);
  try {
    return new BufferPool(region, 0, count, bufferSize);
  } catch (e) {
    region.free();
    throw e;
  }
}
