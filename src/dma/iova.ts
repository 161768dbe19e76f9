/**
 * IOVA allocation: hands out device addresses from the ranges the IOMMU accepts.
 *
 * A bump allocator: a port allocates its DMA memory once at start-up and frees it all at
 * close. What is freed is reused, so a process that opens and closes ports again and
 * again does not run out of IOVA space (the 39-bit default holds ~50,000 opens of a port
 * with 10 MiB of DMA memory, tests/soak/). IOVAs stay below 2^53 so the hot path can
 * keep them as plain numbers.
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
  /** Extents given back below #next, [start, end) sorted by start, none touching another. */
  readonly #freed: { start: bigint; end: bigint }[] = [];

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
    for (const [i, f] of this.#freed.entries()) {
      const at = ((f.start + al - 1n) / al) * al;
      if (at + sz > f.end) continue;
      const rest = [{ start: f.start, end: at }, { start: at + sz, end: f.end }];
      this.#freed.splice(i, 1, ...rest.filter((p) => p.start < p.end));
      return at;
    }
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

  /**
   * Gives back `size` bytes at `iova` that {@linkcode IovaAllocator.allocate} returned and
   * no device maps any more: later allocations may reuse them. Throws a RangeError for a
   * range that is not allocated (a bug: freed twice, or never allocated).
   */
  free(iova: bigint, size: number): void {
    if (!(Number.isSafeInteger(size) && size > 0)) {
      throw new RangeError(`freeing ${size} bytes of IOVA space: give the size allocated.`);
    }
    let start = iova, end = iova + BigInt(size);
    const list = this.#freed;
    let i = 0;
    while (i < list.length && list[i].end < start) i++;
    if (end > this.#next || list.some((f) => f.start < end && start < f.end)) {
      throw new RangeError(
        `IOVA 0x${iova.toString(16)} (${size} bytes) is not allocated: freed twice?`,
      );
    }
    if (i < list.length && list[i].end === start) start = list.splice(i, 1)[0].start;
    if (i < list.length && list[i].start === end) end = list.splice(i, 1)[0].end;
    if (end === this.#next) this.#next = start; // the top: the bump pointer goes back
    else list.splice(i, 0, { start, end });
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
