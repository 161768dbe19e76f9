/**
 * A worker's partition of the shared buffer pool: the buffer indices this worker alone
 * allocates from and frees to, over the pool's DMA memory as the worker sees it. No locks:
 * the main thread splits the pool once, before the workers start, and buffers never cross
 * workers afterwards (queue pair k receives and transmits on worker k only, so a buffer
 * received by worker k is reclaimed from a transmit ring of worker k).
 *
 * It offers what the data path uses of {@linkcode BufferPool}: alloc, free, offset,
 * precomputed IOVA halves, the bytes; nothing per packet allocates.
 *
 * @module
 */

import { NO_BUFFER, type PacketBuffers } from "../dma/packet_buffers.ts";

export { NO_BUFFER };

/** The page size of a physically addressed pool (src/dma/memory.ts HUGE_PAGE_SIZE). */
const PAGE_2M = 2 * 1024 * 1024;

const NOT_MINE = 0;
const FREE = 1;
const IN_USE = 2;

/**
 * Buffers of a shared pool that belong to one worker.
 *
 * @example
 * ```ts
 * import { PartitionPool } from "./partition_pool.ts";
 * const mem = new ArrayBuffer(8 * 2048);
 * // Buffers 4-7 are this worker's: 4 and 5 free, 6 and 7 posted in rings.
 * const p = new PartitionPool(mem, 0x1_0000_0000, 8, 2048, [4, 5], [6, 7]);
 * const b = p.alloc(); // 5 (last in, first out)
 * p.free(b);
 * p.available; // 2
 * ```
 */
export class PartitionPool implements PacketBuffers {
  /** Buffers in the whole pool (indices run from 0 to count-1). */
  readonly count: number;
  /** Bytes per buffer. */
  readonly bufferSize: number;
  /** All bytes of the pool. */
  readonly data: Uint8Array;
  /** The same bytes as 32-bit words (for word-wise copies of frames). */
  readonly words: Uint32Array;
  /** Low 32 bits of each buffer's IOVA. */
  readonly iovaLo: Uint32Array;
  /** High 32 bits of each buffer's IOVA. */
  readonly iovaHi: Uint32Array;
  /** Per buffer, the next one of its frame, or NO_BUFFER (see PacketBuffers.next). */
  readonly next: Uint32Array;
  /** Per buffer, 1 when its header holds a transmit request (see PacketBuffers.txHeader). */
  readonly txHeader: Uint8Array;
  /** Buffers this partition holds, free or in use. */
  readonly size: number;
  readonly #free: Uint32Array;
  readonly #state: Uint8Array;
  #top = 0;

  /**
   * `memory` holds `count` buffers of `bufferSize` bytes from byte 0, the first at device
   * address `iova`. `free` are this worker's free buffers, `inUse` those it already
   * owns elsewhere (posted in its receive rings). `pageIovas`: a physically addressed
   * pool's IOVA per 2 MiB page (DmaRegion.pageIovas), which then replaces `iova`.
   */
  constructor(
    memory: ArrayBuffer,
    iova: number,
    count: number,
    bufferSize: number,
    free: ArrayLike<number>,
    inUse: ArrayLike<number>,
    pageIovas: readonly number[] | null = null,
  ) {
    if (count * bufferSize > memory.byteLength || bufferSize % 4 !== 0) {
      throw new RangeError(`a pool of ${count}×${bufferSize} bytes does not fit its memory`);
    }
    this.count = count;
    this.bufferSize = bufferSize;
    this.data = new Uint8Array(memory, 0, count * bufferSize);
    this.words = new Uint32Array(memory, 0, (count * bufferSize) >> 2);
    this.iovaLo = new Uint32Array(count);
    this.iovaHi = new Uint32Array(count);
    for (let i = 0; i < count; i++) {
      const at = i * bufferSize;
      const a = pageIovas === null
        ? iova + at
        : pageIovas[Math.floor(at / PAGE_2M)] + (at % PAGE_2M);
      this.iovaLo[i] = a % 0x1_0000_0000;
      this.iovaHi[i] = Math.floor(a / 0x1_0000_0000);
    }
    this.next = new Uint32Array(count).fill(NO_BUFFER);
    this.txHeader = new Uint8Array(count);
    this.#state = new Uint8Array(count);
    this.#free = new Uint32Array(free.length + inUse.length);
    this.size = free.length + inUse.length;
    const claim = (b: number, s: number) => {
      if (!(Number.isInteger(b) && b >= 0 && b < count) || this.#state[b] !== NOT_MINE) {
        throw new RangeError(`buffer ${b} cannot join this partition (twice, or not in the pool)`);
      }
      this.#state[b] = s;
    };
    for (let i = 0; i < inUse.length; i++) claim(inUse[i], IN_USE);
    // Lowest index on top, so that a fresh partition hands out its buffers in order.
    for (let i = free.length - 1; i >= 0; i--) {
      claim(free[i], FREE);
      this.#free[this.#top++] = free[i];
    }
  }

  /** Free buffers left. */
  get available(): number {
    return this.#top;
  }

  /** Byte offset of buffer `i` in {@linkcode PartitionPool.data}. */
  offset(i: number): number {
    return i * this.bufferSize;
  }

  /** True when buffer `i` belongs to this partition and is in use. */
  inUse(i: number): boolean {
    return this.#state[i] === IN_USE;
  }

  /** Takes a buffer; {@linkcode NO_BUFFER} when none is free. */
  alloc(): number {
    if (this.#top === 0) return NO_BUFFER;
    const b = this.#free[--this.#top];
    this.#state[b] = IN_USE;
    return b;
  }

  /**
   * Returns buffer `i` and the rest of its frame (`next`). A buffer that is not this
   * partition's or not in use throws: a corrupt free list would hand one buffer out twice.
   */
  free(i: number): void {
    do {
      if (this.#state[i] !== IN_USE) {
        throw new RangeError(
          `buffer ${i} is not in use in this worker's partition (freed twice, or another worker's)`,
        );
      }
      const after = this.next[i];
      this.next[i] = NO_BUFFER;
      this.txHeader[i] = 0;
      this.#state[i] = FREE;
      this.#free[this.#top++] = i;
      i = after;
    } while (i !== NO_BUFFER);
  }
}
