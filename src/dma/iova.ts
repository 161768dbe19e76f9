/**
 * IOVA allocation: hands out device addresses from the ranges the IOMMU accepts.
 *
 * A bump allocator is enough: a port allocates its DMA memory once at start-up and frees
 * it all at close. IOVAs stay below 2^53 so the hot path can keep them as plain numbers.
 *
 * @module
 */

import { DriverError } from "../errors.ts";

/** Lowest IOVA handed out: keeps page 0 and the legacy low-memory area unused. */
export const IOVA_FLOOR = 1n << 32n;
/** Highest IOVA handed out (exclusive): 2^53, so IOVAs are exact JS numbers. */
export const IOVA_CEILING = 1n << 53n;

/**
 * Allocates aligned IOVA ranges from a list of usable [start, end] ranges.
 *
 * @example
 * ```ts
 * import { IovaAllocator } from "./iova.ts";
 * const a = new IovaAllocator([{ start: 0n, end: (1n << 39n) - 1n }]);
 * a.allocate(4096, 2 * 1024 * 1024); // 4294967296n (4 GiB, the floor)
 * ```
 */
export class IovaAllocator {
  readonly #ranges: { start: bigint; end: bigint }[];
  #next: bigint;

  /** Creates an allocator over `ranges` (inclusive ends, as VFIO reports them). */
  constructor(ranges: { start: bigint; end: bigint }[]) {
    this.#ranges = ranges
      .map((r) => ({
        start: r.start < IOVA_FLOOR ? IOVA_FLOOR : r.start,
        end: r.end >= IOVA_CEILING ? IOVA_CEILING - 1n : r.end,
      }))
      .filter((r) => r.start <= r.end)
      .sort((a, b) => (a.start < b.start ? -1 : 1));
    this.#next = this.#ranges.length ? this.#ranges[0].start : 0n;
  }

  /** Returns the IOVA of `size` bytes aligned to `align`; throws DMA when none is left. */
  allocate(size: number, align: number): bigint {
    const sz = BigInt(size);
    const al = BigInt(align);
    for (const r of this.#ranges) {
      let at = this.#next > r.start ? this.#next : r.start;
      at = ((at + al - 1n) / al) * al;
      if (at + sz - 1n <= r.end) {
        this.#next = at + sz;
        return at;
      }
    }
    throw new DriverError(
      "DMA",
      `No IOVA space left for ${size} bytes in the IOMMU's usable ranges: use fewer or smaller queues.`,
    );
  }
}

/**
 * The process-wide IOVA allocator every DmaRegion draws from: 4 GiB up to
 * 512 GiB, inside the 39-bit address width of the smallest Intel IOMMUs (and QEMU's
 * intel-iommu default). Each mapping is still checked against the device's own ranges.
 *
 * @example
 * ```ts
 * import { processIovas } from "./iova.ts";
 * typeof processIovas.allocate; // "function"
 * ```
 */
export const processIovas: IovaAllocator = new IovaAllocator([
  { start: IOVA_FLOOR, end: (1n << 39n) - 1n },
]);
