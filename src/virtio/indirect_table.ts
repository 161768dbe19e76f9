/**
 * Indirect descriptor tables (VIRTIO_F_INDIRECT_DESC; virtio 1.x §2.7.5.3 split, §2.8.19
 * packed): a buffer of several pieces takes one ring slot, a descriptor with the INDIRECT
 * flag whose address and length name a table of descriptors, one per piece.
 *
 * The tables are allocated once, with the ring: one table of
 * {@linkcode INDIRECT_TABLE_DESCS} descriptors per ring slot, in the same DMA memory, right
 * after the ring's own areas ({@linkcode indirectTablesOffset}), so the device reaches them
 * through the IOVA mapping it has for the ring in every transport, and a forwarding worker
 * that adopts the ring's memory adopts the tables with it. A table belongs to what owns a
 * ring slot while the buffer is in flight: the head descriptor (split), the buffer id
 * (packed). The hot path writes a table with plain stores and allocates nothing.
 *
 * The device only reads the tables (§2.7.5.3.1: it must not write them), and the driver
 * never reads them back: what completion needs is in the driver's own per-slot state.
 * docs/indirect.md has the whole story.
 *
 * @module
 */

import { VIRTQ_DESC_F_NEXT } from "./ring_math.ts";

/** Descriptors per indirect table: a frame of up to this many pieces takes one slot. */
export const INDIRECT_TABLE_DESCS = 16;

/** Bytes of one table (16-byte descriptors in either format, §2.7.5 / §2.8.13). */
export const INDIRECT_TABLE_BYTES = 16 * INDIRECT_TABLE_DESCS;

/**
 * Where a ring's indirect tables start, from the ring's start: after its `ringBytes`
 * (the layout's totalBytes), on a 64-byte boundary.
 *
 * @example
 * ```ts
 * import { indirectTablesOffset } from "./indirect_table.ts";
 * indirectTablesOffset(6726); // 6784
 * ```
 */
export function indirectTablesOffset(ringBytes: number): number {
  return Math.ceil(ringBytes / 64) * 64;
}

/**
 * Bytes of the indirect tables of a `size`-entry ring (one table per slot).
 *
 * @example
 * ```ts
 * import { indirectTablesBytes } from "./indirect_table.ts";
 * indirectTablesBytes(256); // 65536
 * ```
 */
export function indirectTablesBytes(size: number): number {
  return size * INDIRECT_TABLE_BYTES;
}

/**
 * The most pieces one table of a `size`-entry ring holds: {@linkcode INDIRECT_TABLE_DESCS},
 * and fewer than the queue size (§2.7.5.3.1: a chain is no longer than the queue size;
 * DPDK's vhost refuses a table of queue-size entries or more).
 *
 * @example
 * ```ts
 * import { indirectMaxPieces } from "./indirect_table.ts";
 * indirectMaxPieces(256); // 16
 * indirectMaxPieces(8); // 7
 * ```
 */
export function indirectMaxPieces(size: number): number {
  return Math.min(INDIRECT_TABLE_DESCS, size - 1);
}

/**
 * The indirect tables of one ring: `size` tables over `memory` at `offset`, the first at
 * IOVA `iova` for the device.
 *
 * @example
 * ```ts
 * import { IndirectTables } from "./indirect_table.ts";
 * const mem = new ArrayBuffer(8 * 256);
 * const t = new IndirectTables(mem, 0, 8, 0x10_0000, false);
 * const bytes = t.fill(3, new Uint32Array([0x2000, 0x3000]), new Uint32Array(2), new Uint32Array([2048, 100]), 2);
 * bytes; // 2148: what the two pieces hold
 * t.iovaLo[3]; // 0x100300: the address the ring's descriptor gives for table 3
 * ```
 */
export class IndirectTables {
  /** Tables (one per ring slot). */
  readonly count: number;
  /** Per table: low 32 bits of its IOVA. */
  readonly iovaLo: Uint32Array;
  /** Per table: high 32 bits of its IOVA. */
  readonly iovaHi: Uint32Array;
  /** The IOVA of the first table. */
  readonly iova: number;
  readonly #d32: Uint32Array;
  readonly #d16: Uint16Array;
  readonly #packed: boolean;

  /**
   * Views over `count` tables at `offset` in `memory` (not zeroed: see
   * {@linkcode IndirectTables.zero}); `packed`: the descriptors have the packed format
   * (§2.8.13), otherwise the split one (§2.7.5).
   */
  constructor(memory: ArrayBuffer, offset: number, count: number, iova: number, packed: boolean) {
    if (!(Number.isSafeInteger(iova) && iova >= 0 && iova % 16 === 0)) {
      throw new RangeError(`indirect tables at IOVA ${iova}: not a 16-byte aligned address`);
    }
    this.count = count;
    this.iova = iova;
    this.#packed = packed;
    this.#d32 = new Uint32Array(memory, offset, 4 * INDIRECT_TABLE_DESCS * count);
    this.#d16 = new Uint16Array(memory, offset, 8 * INDIRECT_TABLE_DESCS * count);
    this.iovaLo = new Uint32Array(count);
    this.iovaHi = new Uint32Array(count);
    for (let t = 0; t < count; t++) {
      const a = iova + t * INDIRECT_TABLE_BYTES;
      this.iovaLo[t] = a % 0x1_0000_0000;
      this.iovaHi[t] = Math.floor(a / 0x1_0000_0000);
    }
  }

  /** Zeroes every table (a new ring; an adopted one keeps what is in flight). */
  zero(): void {
    this.#d32.fill(0);
  }

  /**
   * Writes table `t`: `count` device-readable pieces, piece i at `lo[i]`/`hi[i]`, `lens[i]`
   * bytes (`count` at most {@linkcode INDIRECT_TABLE_DESCS}; the caller checks). Split
   * (§2.7.5.3): each but the last has NEXT and names the next entry of the table. Packed
   * (§2.8.19): the entries are in order and the table's length counts them, so no NEXT, and
   * the buffer id is the ring descriptor's. Plain stores: the caller publishes the ring
   * descriptor after them (x86 TSO keeps the order). Returns the bytes of the pieces.
   */
  fill(t: number, lo: Uint32Array, hi: Uint32Array, lens: Uint32Array, count: number): number {
    const d32 = this.#d32, d16 = this.#d16, base = t * INDIRECT_TABLE_DESCS;
    let total = 0;
    for (let i = 0; i < count; i++) {
      const e = base + i;
      d32[4 * e] = lo[i];
      d32[4 * e + 1] = hi[i];
      d32[4 * e + 2] = lens[i];
      total += lens[i];
      if (this.#packed) {
        d32[4 * e + 3] = 0; // id 0 (unused in a table), flags 0: device-readable
      } else {
        const more = i < count - 1;
        d16[8 * e + 6] = more ? VIRTQ_DESC_F_NEXT : 0;
        d16[8 * e + 7] = more ? i + 1 : 0; // `next` indexes the table (§2.7.5.3)
      }
    }
    return total;
  }

  /** The IOVA of the first piece table `t` lists (for the control path's advisory reads). */
  firstAddr(t: number): number {
    const e = t * INDIRECT_TABLE_DESCS;
    return this.#d32[4 * e] + this.#d32[4 * e + 1] * 0x1_0000_0000;
  }
}
