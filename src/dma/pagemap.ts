/**
 * Physical addresses of this process's memory, from /proc/self/pagemap (Linux
 * Documentation/admin-guide/mm/pagemap.rst): one little-endian u64 per virtual 4 KiB page,
 * bit 63 "present", bits 0–54 the page frame number (shown as 0 without CAP_SYS_ADMIN).
 *
 * Why: a legacy virtio device DMAs to physical addresses, bypassing the IOMMU (it cannot
 * negotiate VIRTIO_F_ACCESS_PLATFORM), so the driver gives it physical addresses, as ixy
 * and DPDK's IOVA-as-PA mode do. Huge pages do not move once populated, and VFIO pins
 * them when they are mapped.
 *
 * @module
 */

import { check, cstr, libc, O_CLOEXEC, O_RDONLY, SysError } from "../../ffi/libc.ts";
import { DriverError } from "../errors.ts";

/** Bytes per pagemap entry. */
export const PAGEMAP_ENTRY_BYTES = 8;
/** The base page size pagemap counts in. */
const BASE_PAGE = 4096;
const PRESENT = 1n << 63n;
const PFN_MASK = (1n << 55n) - 1n;

/**
 * The physical address of virtual address `vaddr` from its pagemap entry, or null when
 * the page is not present or the PFN is hidden (0: the process lacks CAP_SYS_ADMIN).
 *
 * @example
 * ```ts
 * import { physicalFromEntry } from "./pagemap.ts";
 * physicalFromEntry((1n << 63n) | 0x12345n, 0x7f00_0000_0123n); // 0x12345123
 * physicalFromEntry(0x12345n, 0x1000n); // null: not present
 * ```
 */
export function physicalFromEntry(entry: bigint, vaddr: bigint): number | null {
  if ((entry & PRESENT) === 0n) return null;
  const pfn = entry & PFN_MASK;
  if (pfn === 0n) return null;
  return Number(pfn * BigInt(BASE_PAGE) + (vaddr % BigInt(BASE_PAGE)));
}

/**
 * Reads the pagemap entries of `count` pages of `pageSize` bytes from `vaddr` through
 * `readEntry` (the entry of the 4 KiB page at a virtual address) and returns each page's
 * physical address. Throws DMA with one sentence when a page is not present, not aligned
 * to `pageSize` physically, or hidden.
 *
 * @example
 * ```ts
 * import { physicalPages } from "./pagemap.ts";
 * const entries = new Map([[0x40000000n, (1n << 63n) | 0x800n], [0x40200000n, (1n << 63n) | 0x400n]]);
 * physicalPages(0x40000000n, 2, 2 * 1024 * 1024, (v) => entries.get(v) ?? 0n); // [0x800000, 0x400000]
 * ```
 */
export function physicalPages(
  vaddr: bigint,
  count: number,
  pageSize: number,
  readEntry: (vaddr: bigint) => bigint,
): number[] {
  const pages: number[] = [];
  for (let i = 0; i < count; i++) {
    const v = vaddr + BigInt(i * pageSize);
    const pa = physicalFromEntry(readEntry(v), v);
    if (pa === null) {
      throw new DriverError(
        "DMA",
        `The physical address of DMA memory at 0x${
          v.toString(16)
        } is not visible in /proc/self/pagemap: run as root (CAP_SYS_ADMIN), which a legacy virtio device's physical addressing needs.`,
      );
    }
    if (pa % pageSize !== 0) {
      throw new DriverError(
        "DMA",
        `DMA memory at 0x${v.toString(16)} lies at physical 0x${
          pa.toString(16)
        }, not on a ${pageSize}-byte page boundary: allocate it from huge pages.`,
      );
    }
    pages.push(pa);
  }
  return pages;
}

/**
 * Reads this process's pagemap entry of the 4 KiB page holding `vaddr` (pread on
 * /proc/self/pagemap through libc: only --allow-ffi needed).
 *
 * @example
 * ```ts ignore
 * import { readPagemapEntry } from "./pagemap.ts";
 * readPagemapEntry(region.vaddr); // bit 63 set once the page is populated
 * ```
 */
export function readPagemapEntry(vaddr: bigint): bigint {
  const path = "/proc/self/pagemap";
  const fd = check(libc.open(cstr(path), O_RDONLY | O_CLOEXEC, 0), "open", path);
  try {
    const buf = new Uint8Array(PAGEMAP_ENTRY_BYTES);
    const at = (vaddr / BigInt(BASE_PAGE)) * BigInt(PAGEMAP_ENTRY_BYTES);
    const n = Number(libc.pread(fd, buf, BigInt(PAGEMAP_ENTRY_BYTES), at));
    if (n !== PAGEMAP_ENTRY_BYTES) throw new SysError("pread", path);
    return new DataView(buf.buffer).getBigUint64(0, true);
  } finally {
    libc.close(fd);
  }
}
