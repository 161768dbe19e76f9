/**
 * DMA memory: memfd-backed, mmap'd shared memory (2 MiB huge pages when the system has
 * free ones, 4 KiB pages otherwise), mapped for the device at an IOVA.
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
  libc,
  MAP_FAILED,
  MAP_POPULATE,
  MAP_SHARED,
  MFD_CLOEXEC,
  MFD_HUGE_2MB,
  MFD_HUGETLB,
  PROT_READ,
  PROT_WRITE,
  SysError,
} from "../../ffi/libc.ts";
import { DriverError } from "../errors.ts";
import type { PciDevice } from "../pci/pci_device.ts";
import type { IovaAllocator } from "./iova.ts";

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
  /** Device (IO virtual) address of the first byte, 0 until mapped. */
  iova = 0;
  #ptr: Deno.PointerObject;
  #unmap: (() => void) | null = null;

  private constructor(ptr: Deno.PointerObject, size: number, fd: number, huge: boolean) {
    this.#ptr = ptr;
    this.vaddr = addressOf(ptr);
    this.size = size;
    this.fd = fd;
    this.hugePages = huge;
    this.buffer = Deno.UnsafePointerView.getArrayBuffer(ptr, size);
  }

  /**
   * Allocates at least `bytes` of zeroed, populated memory. Uses huge pages when enough
   * are free (and `hugePages` is not false), 4 KiB pages otherwise.
   *
   * @example
   * ```ts
   * import { DmaRegion } from "./memory.ts";
   * const r = DmaRegion.allocate(8192, { hugePages: false });
   * new Uint8Array(r.buffer)[0] = 1;
   * r.free();
   * ```
   */
  static allocate(bytes: number, options: { hugePages?: boolean } = {}): DmaRegion {
    const hugeSize = alignUp(bytes, HUGE_PAGE_SIZE);
    if (options.hugePages !== false && freeHugePages() >= hugeSize / HUGE_PAGE_SIZE) {
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

  static #tryAllocate(size: number, flags: number): DmaRegion | null {
    const fd = libc.memfd_create(cstr("virtio-net-dma"), MFD_CLOEXEC | flags);
    if (fd < 0) return null;
    if (libc.ftruncate(fd, BigInt(size)) < 0) {
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
    return new DmaRegion(p, size, fd, flags !== 0);
  }

  /** A pointer to byte `offset` of the region (for FFI calls that take addresses). */
  pointer(offset = 0): Deno.PointerValue {
    return Deno.UnsafePointer.offset(this.#ptr, offset);
  }

  /**
   * Maps the region for `device` at an IOVA from `iovas`; {@linkcode DmaRegion.free}
   * unmaps it again.
   */
  mapFor(device: PciDevice, iovas: IovaAllocator): void {
    if (this.#unmap) throw new Error("DMA region is already mapped");
    const iova = iovas.allocate(this.size, this.hugePages ? HUGE_PAGE_SIZE : PAGE_SIZE);
    device.dmaMap({ vaddr: this.vaddr, size: this.size, fd: this.fd, fdOffset: 0 }, iova);
    this.iova = Number(iova);
    this.#unmap = () => device.dmaUnmap(iova, this.size);
  }

  /** Unmaps from the device (if mapped), unmaps the memory and closes the memfd. */
  free(): void {
    try {
      this.#unmap?.();
    } finally {
      this.#unmap = null;
      libc.munmap(this.#ptr, BigInt(this.size));
      libc.close(this.fd);
    }
  }
}
