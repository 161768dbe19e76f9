/**
 * DMA memory: memfd-backed, mmap'd shared memory (2 MiB huge pages when the system has
 * free ones, 4 KiB pages otherwise), mapped for one or more devices at an IOVA.
 *
 * Every region gets its IOVA from one process-wide allocator, so regions never overlap in
 * any device's IOMMU and a region can be mapped for several devices at the same address:
 * a packet buffer received on one port can be transmitted on another without a copy.
 *
 * Memory comes from a memfd so that both transports can use it: kernel VFIO maps the
 * process address, vfio-user passes the fd to the server. The bytes are reached through
 * one ArrayBuffer built once over the mapping; nothing here runs per packet.
 *
 * @module
 */

import { exists, readText } from "../../ffi/fs.ts";
import {
  addressOf,
  cstr,
  F_ADD_SEALS,
  F_SEAL_GROW,
  F_SEAL_SEAL,
  F_SEAL_SHRINK,
  libc,
  MAP_FAILED,
  MAP_POPULATE,
  MAP_SHARED,
  MFD_ALLOW_SEALING,
  MFD_CLOEXEC,
  MFD_HUGE_2MB,
  MFD_HUGETLB,
  PROT_READ,
  PROT_WRITE,
  SysError,
} from "../../ffi/libc.ts";
import { DriverError } from "../errors.ts";
import type { DmaTarget } from "./dma_target.ts";
import { processIovas } from "./iova.ts";
import { physicalPages, readPagemapEntry } from "./pagemap.ts";

/** 2 MiB, the huge page size used when available. */
export const HUGE_PAGE_SIZE = 2 * 1024 * 1024;
/** 4 KiB, the base page size. */
export const PAGE_SIZE = 4096;

const HUGEPAGES_FREE = "/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages";

/**
 * Free 2 MiB huge pages in the system (0 when huge pages are not configured).
 *
 * @example
 * ```ts
 * import { freeHugePages } from "./memory.ts";
 * freeHugePages(); // e.g. 0
 * ```
 */
export function freeHugePages(): number {
  if (!exists(HUGEPAGES_FREE)) return 0;
  return parseInt(readText(HUGEPAGES_FREE).trim(), 10) || 0;
}

/**
 * Rounds `n` up to a multiple of `align` (a power of two).
 *
 * @example
 * ```ts
 * import { alignUp } from "./memory.ts";
 * alignUp(5000, 4096); // 8192
 * ```
 */
export function alignUp(n: number, align: number): number {
  return Math.ceil(n / align) * align;
}

/** One piece of DMA memory: process mapping, backing memfd and device address. */
export class DmaRegion {
  /** The memory, as one ArrayBuffer over the mapping. */
  readonly buffer: ArrayBuffer;
  /** Process virtual address. */
  readonly vaddr: bigint;
  /** Size in bytes (a multiple of the page size). */
  readonly size: number;
  /** Backing memfd. */
  readonly fd: number;
  /** True when backed by 2 MiB huge pages. */
  readonly hugePages: boolean;
  /** Device (IO virtual) address of the first byte, the same for every device. */
  readonly iova: number;
  /**
   * Physically addressed memory ({@linkcode DmaRegion.allocate} with `physical`): each
   * 2 MiB page's IOVA is its physical address, pages need not be contiguous. Null for
   * memory at one contiguous IOVA range.
   */
  readonly pageIovas: readonly number[] | null;
  #ptr: Deno.PointerObject;
  /** The IOVA range's start as allocated, given back by free() (-1: physical). */
  readonly #allocatedIova: bigint;
  readonly #mappedFor = new Set<DmaTarget>();
  #retainedBy: string | null = null;
  #freed = false;

  private constructor(
    ptr: Deno.PointerObject,
    size: number,
    fd: number,
    huge: boolean,
    pages: number[] | null,
  ) {
    this.#ptr = ptr;
    this.vaddr = addressOf(ptr);
    this.size = size;
    this.fd = fd;
    this.hugePages = huge;
    this.pageIovas = pages === null ? null : Object.freeze(pages);
    this.#allocatedIova = pages === null
      ? processIovas.allocate(size, huge ? HUGE_PAGE_SIZE : PAGE_SIZE)
      : -1n;
    this.iova = pages === null ? Number(this.#allocatedIova) : pages[0];
    this.buffer = Deno.UnsafePointerView.getArrayBuffer(ptr, size);
  }

  /**
   * The device address of byte `offset`: within one page of a physically addressed
   * region, the page's physical address plus the offset in it.
   *
   * @example
   * ```ts
   * import { DmaRegion } from "./memory.ts";
   * const r = DmaRegion.allocate(8192, { hugePages: false });
   * r.iovaAt(100) === r.iova + 100; // true: one contiguous range
   * r.free();
   * ```
   */
  iovaAt(offset: number): number {
    const p = this.pageIovas;
    if (p === null) return this.iova + offset;
    return p[Math.floor(offset / HUGE_PAGE_SIZE)] + (offset % HUGE_PAGE_SIZE);
  }

  /**
   * True when bytes `offset … offset + length - 1` are contiguous for the device (always,
   * except across two physically discontiguous pages of a physical region).
   *
   * @example
   * ```ts
   * import { DmaRegion } from "./memory.ts";
   * const r = DmaRegion.allocate(8192, { hugePages: false });
   * r.contiguous(0, 8192); // true
   * r.free();
   * ```
   */
  contiguous(offset: number, length: number): boolean {
    return this.iovaAt(offset + length - 1) === this.iovaAt(offset) + length - 1;
  }

  /**
   * Allocates at least `bytes` of zeroed, populated memory. Uses huge pages when enough
   * are free (and `hugePages` is not false), 4 KiB pages otherwise. With `physical`, huge
   * pages only, each at IOVA = its physical address (root only; for legacy devices, which
   * bypass the IOMMU): see {@linkcode DmaRegion.pageIovas}.
   *
   * @example
   * ```ts
   * import { DmaRegion } from "./memory.ts";
   * const r = DmaRegion.allocate(8192, { hugePages: false });
   * new Uint8Array(r.buffer)[0] = 1;
   * r.free();
   * ```
   */
  static allocate(
    bytes: number,
    options: { hugePages?: boolean; physical?: boolean } = {},
  ): DmaRegion {
    if (!(Number.isSafeInteger(bytes) && bytes >= 1)) {
      throw new DriverError(
        "BAD_ARGUMENT",
        `${bytes} bytes of DMA memory is not possible: give a whole number of bytes, 1 or more.`,
      );
    }
    const huge = options?.hugePages;
    if (huge !== undefined && typeof huge !== "boolean") {
      throw new DriverError(
        "BAD_ARGUMENT",
        `hugePages is ${
          typeof huge === "string" ? `'${huge}'` : String(huge)
        }, not true or false: give a boolean or leave it out.`,
      );
    }
    const hugeSize = alignUp(bytes, HUGE_PAGE_SIZE);
    if (options.physical) return DmaRegion.#allocatePhysical(hugeSize);
    if (huge !== false && freeHugePages() >= hugeSize / HUGE_PAGE_SIZE) {
      const r = DmaRegion.#tryAllocate(hugeSize, MFD_HUGETLB | MFD_HUGE_2MB);
      if (r) return r;
    }
    const r = DmaRegion.#tryAllocate(alignUp(bytes, PAGE_SIZE), 0);
    if (!r) {
      throw new DriverError(
        "DMA",
        `Could not allocate ${bytes} bytes of DMA memory (${
          new SysError("mmap", "").message
        }): free memory or lower the queue sizes.`,
      );
    }
    return r;
  }

  /**
   * Huge-page memory whose IOVA is its physical address, page by page (the module
   * pagemap.ts says why): for devices that do not use the IOMMU.
   */
  static #allocatePhysical(size: number): DmaRegion {
    const pages = size / HUGE_PAGE_SIZE;
    const free = freeHugePages();
    const r = free >= pages ? DmaRegion.#tryAllocate(size, MFD_HUGETLB | MFD_HUGE_2MB, true) : null;
    if (!r) {
      throw new DriverError(
        "DMA",
        `A legacy virtio device needs ${pages} free 2 MiB huge pages of physically addressed DMA memory and ${free} are free: reserve more (echo N > /proc/sys/vm/nr_hugepages).`,
      );
    }
    return r;
  }

  static #tryAllocate(size: number, flags: number, physical = false): DmaRegion | null {
    const fd = libc.memfd_create(cstr("virtio-net-dma"), MFD_CLOEXEC | MFD_ALLOW_SEALING | flags);
    if (fd < 0) return null;
    // Sealed at its size: a vfio-user server or vhost-user back-end given the fd cannot
    // shrink it under the driver, whose next access would then die of SIGBUS.
    if (
      libc.ftruncate(fd, BigInt(size)) < 0 ||
      libc.fcntl_int(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0
    ) {
      libc.close(fd);
      return null;
    }
    const p = libc.mmap(
      null,
      BigInt(size),
      PROT_READ | PROT_WRITE,
      MAP_SHARED | MAP_POPULATE,
      fd,
      0n,
    );
    if (p === null || addressOf(p) === MAP_FAILED) {
      libc.close(fd);
      return null;
    }
    let pages: number[] | null = null;
    if (physical) {
      try {
        pages = physicalPages(
          addressOf(p),
          size / HUGE_PAGE_SIZE,
          HUGE_PAGE_SIZE,
          readPagemapEntry,
        );
      } catch (e) {
        libc.munmap(p, BigInt(size));
        libc.close(fd);
        throw e;
      }
    }
    return new DmaRegion(p, size, fd, flags !== 0, pages);
  }

  /** A pointer to byte `offset` of the region (for FFI calls that take addresses). */
  pointer(offset = 0): Deno.PointerValue {
    return Deno.UnsafePointer.offset(this.#ptr, offset);
  }

  /**
   * Maps the region for `device` at its IOVA. A region may be mapped for several devices
   * (a buffer pool shared by ports); it has the same IOVA in each. Throws DMA when the IOVA
   * lies outside what the device's IOMMU accepts.
   */
  mapFor(device: DmaTarget): void {
    if (this.#mappedFor.has(device)) return;
    const pieces = this.#pieces();
    for (const { iova, size } of pieces) {
      const end = iova + BigInt(size) - 1n;
      if (!device.iovaRanges().some((r) => r.start <= iova && end <= r.end)) {
        throw new DriverError(
          "DMA",
          `${device.name}'s IOMMU cannot map IOVA 0x${iova.toString(16)}–0x${
            end.toString(16)
          }: its usable ranges are ${
            device.iovaRanges().map((r) => `0x${r.start.toString(16)}–0x${r.end.toString(16)}`)
              .join(", ")
          }; use less DMA memory (fewer or smaller queues and pools).`,
        );
      }
    }
    const done: typeof pieces = [];
    try {
      for (const piece of pieces) {
        const { iova, size, offset } = piece;
        device.dmaMap(
          { vaddr: this.vaddr + BigInt(offset), size, fd: this.fd, fdOffset: offset },
          iova,
        );
        done.push(piece);
      }
    } catch (e) {
      for (const { iova, size } of done) device.dmaUnmap(iova, size);
      throw e;
    }
    this.#mappedFor.add(device);
  }

  /** The mappings the region needs: one range, or one per page of a physical region. */
  #pieces(): { iova: bigint; size: number; offset: number }[] {
    const p = this.pageIovas;
    if (p === null) return [{ iova: BigInt(this.iova), size: this.size, offset: 0 }];
    return p.map((pa, i) => ({
      iova: BigInt(pa),
      size: HUGE_PAGE_SIZE,
      offset: i * HUGE_PAGE_SIZE,
    }));
  }

  /**
   * Keeps the region mapped (for the process and every device) until the process exits:
   * {@linkcode DmaRegion.free} and {@linkcode DmaRegion.unmapFrom} do nothing from now
   * on. For memory that something this thread cannot stop may still use, such as a
   * forwarding worker that did not confirm it stopped (the engine retains the shared pool
   * then). `reason` names it.
   *
   * @example
   * ```ts
   * import { DmaRegion } from "./memory.ts";
   * const r = DmaRegion.allocate(4096, { hugePages: false });
   * r.retain("a worker may still use it");
   * r.free(); // false: still mapped
   * ```
   */
  retain(reason: string): void {
    this.#retainedBy ??= reason;
  }

  /** Why the region is kept mapped ({@linkcode DmaRegion.retain}), or null. */
  get retainedBy(): string | null {
    return this.#retainedBy;
  }

  /** Removes the mapping for `device` (no-op when not mapped for it, or retained). */
  unmapFrom(device: DmaTarget): void {
    if (this.#retainedBy !== null) return;
    if (!this.#mappedFor.delete(device)) return;
    for (const { iova, size } of this.#pieces()) device.dmaUnmap(iova, size);
  }

  /**
   * Unmaps from every device it is mapped for, unmaps the memory, closes the memfd and
   * gives its IOVA range back for reuse. Returns false, and does nothing, when the region
   * is retained ({@linkcode DmaRegion.retain}). Idempotent.
   */
  free(): boolean {
    if (this.#retainedBy !== null) return false;
    // Once only: the IOVA range and the address may belong to another region by now.
    if (this.#freed) return true;
    this.#freed = true;
    let unmapped = false;
    try {
      for (const d of [...this.#mappedFor]) this.unmapFrom(d);
      unmapped = true;
    } finally {
      this.#mappedFor.clear();
      libc.munmap(this.#ptr, BigInt(this.size));
      libc.close(this.fd);
      // Its IOVA range goes back for reuse only when no device maps it any more: a device
      // that refused to unmap still has it in its IOMMU.
      if (unmapped && this.pageIovas === null) processIovas.free(this.#allocatedIova, this.size);
    }
    return true;
  }
}
