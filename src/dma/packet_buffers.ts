/**
 * What a receive or transmit queue needs of a packet-buffer pool: the main thread's
 * {@linkcode BufferPool} and a forwarding worker's partition both provide it, so one
 * queue implementation serves both.
 *
 * @module
 */

/** Returned by `alloc()` when no buffer is free. */
export const NO_BUFFER = 0xffff_ffff;

/**
 * Fixed-size packet buffers in DMA memory, named by index.
 *
 * @example
 * ```ts ignore
 * const b = pool.alloc();
 * if (b !== NO_BUFFER) pool.data.set(frame, pool.offset(b) + headerSize);
 * ```
 */
export interface PacketBuffers {
  /** Bytes per buffer. */
  readonly bufferSize: number;
  /** The memory the buffers are in (buffer `b` starts at `offset(b)`). */
  readonly data: Uint8Array;
  /** The same memory as 32-bit words (buffers start at multiples of 4 bytes). */
  readonly words: Uint32Array;
  /** Low 32 bits of each buffer's IOVA. */
  readonly iovaLo: Uint32Array;
  /** High 32 bits of each buffer's IOVA. */
  readonly iovaHi: Uint32Array;
  /**
   * Per buffer, the next buffer of the same frame when a frame spans several (mergeable
   * receive buffers, docs/mergeable.md), {@linkcode NO_BUFFER} for the last or only one.
   * The frame's first buffer names the frame; every buffer but the last is full.
   */
  readonly next: Uint32Array;
  /**
   * Per buffer, 1 when its virtio-net header holds a transmit offload request
   * (src/net/tx_offload.ts): TxQueue.txBurst sends it as is and clears the mark; 0: the
   * header is zeroed on transmit (no offloads). Cleared when the buffer is freed.
   */
  readonly txHeader: Uint8Array;
  /** Byte offset of buffer `b` in `data`. */
  offset(b: number): number;
  /** A free buffer's index, or {@linkcode NO_BUFFER}. */
  alloc(): number;
  /** Gives buffer `b` back, and the rest of its frame's buffers (`next`) with it. */
  free(b: number): void;
}
