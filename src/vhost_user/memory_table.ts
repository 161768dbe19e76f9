/**
 * The vhost-user memory table: which of this process's memory the back-end may reach,
 * and at which addresses (vhost-user.rst, "Memory access" and VHOST_USER_SET_MEM_TABLE).
 *
 * Each region has two base addresses. Its *guest address* is what descriptors carry: here
 * the IOVA the DMA layer gave the memory (src/dma/iova.ts), so the back-end translates
 * buffer addresses exactly as an IOMMU would. Its *user address* is the memory's address
 * in this process: ring addresses (VHOST_USER_SET_VRING_ADDR) are user addresses when
 * VIRTIO_F_IOMMU_PLATFORM is not negotiated with the back-end, which it never is here.
 * The back-end mmaps each region's memfd (passed with SCM_RIGHTS) at `mmap_offset`.
 *
 * Every change sends the whole table again (SET_MEM_TABLE replaces the back-end's table;
 * DPDK's vhost_user_set_mem_table compares, unmaps and maps anew), with one fd per region
 * in region order; the protocol carries at most 8 regions (VHOST_MEMORY_MAX_NREGIONS).
 *
 * @module
 */

import type { DmaSegment, DmaTarget } from "../dma/dma_target.ts";
import { DriverError } from "../errors.ts";
import { MAX_MEMORY_REGIONS, type MemoryRegion } from "./payloads.ts";

/** Lowest IOVA accepted: 4 GiB, as for vfio-user (no IOVA looks like a 32-bit address). */
export const VHOST_IOVA_START = 1n << 32n;
/** IOVAs stay below 2^48. */
export const VHOST_IOVA_END = 1n << 48n;

const PAGE = 4096n;

/** One region of the table, with what the front-end keeps about it. */
interface Region {
  iova: bigint;
  size: bigint;
  vaddr: bigint;
  fd: number;
  fdOffset: bigint;
  bytes: ArrayBuffer | null;
}

/**
 * Sends a whole table to the back-end (SET_MEM_TABLE with `fds`, one per region), throwing
 * when it refuses; `what` describes the change for the error sentence.
 */
export type PublishTable = (regions: MemoryRegion[], fds: number[], what: string) => void;

/**
 * The memory table of one vhost-user connection, as the {@linkcode DmaTarget} DMA memory
 * is mapped for.
 *
 * @example
 * ```ts
 * import { MemoryTable } from "./memory_table.ts";
 * const sent: number[] = [];
 * const t = new MemoryTable("vhost-user:/tmp/a.sock", (regions) => sent.push(regions.length), () => true);
 * t.dmaMap({ vaddr: 0x7f0000000000n, size: 1 << 21, fd: 5, fdOffset: 0 }, 1n << 32n);
 * t.toUserAddress(2 ** 32 + 64, 16); // 0x7f0000000040n
 * sent; // [1]
 * ```
 */
export class MemoryTable implements DmaTarget {
  /** The port's name, for messages. */
  readonly name: string;
  readonly #publish: PublishTable;
  readonly #connected: () => boolean;
  #regions: Region[] = [];

  /**
   * `publish` sends the table; `connected` says whether the back-end is still there (a
   * table is not re-sent to a back-end that went away: it dropped its mappings with the
   * connection).
   */
  constructor(name: string, publish: PublishTable, connected: () => boolean) {
    this.name = name;
    this.#publish = publish;
    this.#connected = connected;
  }

  /** The IOVA range accepted: [2^32, 2^48). */
  iovaRanges(): { start: bigint; end: bigint }[] {
    return [{ start: VHOST_IOVA_START, end: VHOST_IOVA_END - 1n }];
  }

  /** The regions as SET_MEM_TABLE last carried them (IOVA order). */
  get regions(): MemoryRegion[] {
    return this.#regions.map(toWire);
  }

  /**
   * Adds `segment` at `iova` and sends the table. Throws DMA when the range is unaligned,
   * outside [2^32, 2^48), overlaps a region, or would be a ninth region; DEVICE_REFUSED
   * when the back-end refuses the table (the region is then not added).
   */
  dmaMap(segment: DmaSegment, iova: bigint): void {
    const size = BigInt(segment.size);
    const end = iova + size;
    const at = `${segment.size} bytes at IOVA 0x${iova.toString(16)}`;
    if (
      size <= 0n || size % PAGE !== 0n || iova % PAGE !== 0n ||
      segment.fdOffset < 0 || segment.fdOffset % 4096 !== 0 || segment.fd < 0
    ) {
      throw new DriverError(
        "DMA",
        `${this.name} cannot map ${at} (fd ${segment.fd}, offset ${segment.fdOffset}): size, IOVA and offset must be multiples of 4096 and the memory backed by a file descriptor.`,
      );
    }
    if (iova < VHOST_IOVA_START || end > VHOST_IOVA_END) {
      throw new DriverError(
        "DMA",
        `${this.name} cannot map ${at}: vhost-user IOVAs lie in [0x${
          VHOST_IOVA_START.toString(16)
        }, 0x${VHOST_IOVA_END.toString(16)}).`,
      );
    }
    if (this.#regions.some((r) => iova < r.iova + r.size && r.iova < end)) {
      throw new DriverError(
        "DMA",
        `${this.name} cannot map ${at}: it overlaps memory mapped before.`,
      );
    }
    if (this.#regions.length >= MAX_MEMORY_REGIONS) {
      throw new DriverError(
        "DMA",
        `${this.name} cannot map ${at}: a vhost-user memory table holds at most ${MAX_MEMORY_REGIONS} regions; map fewer, larger DMA regions (one shared buffer pool for all ports).`,
      );
    }
    const region: Region = {
      iova,
      size,
      vaddr: segment.vaddr,
      fd: segment.fd,
      fdOffset: BigInt(segment.fdOffset),
      bytes: null,
    };
    const before = this.#regions;
    this.#regions = [...before, region].sort((a, b) => (a.iova < b.iova ? -1 : 1));
    try {
      this.#send(`mapping ${at}`);
    } catch (e) {
      this.#regions = before;
      throw e;
    }
  }

  /**
   * Removes the region mapped at `iova` (no-op when there is none) and sends the table,
   * unless the back-end has gone away.
   */
  dmaUnmap(iova: bigint, size: number): void {
    const i = this.#regions.findIndex((r) => r.iova === iova && r.size === BigInt(size));
    if (i < 0) return;
    this.#regions = this.#regions.filter((_, j) => j !== i);
    if (this.#connected()) this.#send(`unmapping ${size} bytes at IOVA 0x${iova.toString(16)}`);
  }

  /** Sends the table again (after a reconnect, or to re-check it). */
  resend(): void {
    this.#send("sending the memory table");
  }

  #send(what: string): void {
    this.#publish(this.#regions.map(toWire), this.#regions.map((r) => r.fd), what);
  }

  /**
   * The process (user) address of `len` bytes at `iova`, or null unless they lie inside one
   * region: what SET_VRING_ADDR carries, so the back-end finds the ring in one region.
   */
  toUserAddress(iova: number, len: number): bigint | null {
    const r = this.#find(iova, len);
    return r === null ? null : r.vaddr + (BigInt(iova) - r.iova);
  }

  /**
   * {@linkcode MemoryTable.toUserAddress}, or a DMA error naming `what` (e.g. "the used ring
   * of receiveq1 of vhost-user:/tmp/a.sock") when the bytes are not inside one region.
   *
   * @example
   * ```ts ignore
   * const used = table.requireUserAddress(usedIova, 6 + 8 * 256, "the used ring of receiveq1");
   * ```
   */
  requireUserAddress(iova: number, len: number, what: string): bigint {
    const a = this.toUserAddress(iova, len);
    if (a !== null) return a;
    throw new DriverError(
      "DMA",
      `${what[0].toUpperCase()}${what.slice(1)} (${len} bytes at IOVA 0x${
        iova.toString(16)
      }) is not in memory mapped for the port: map its DmaRegion with mapFor(transport.dma) first.`,
    );
  }

  /**
   * The `len` bytes at `iova` as a view of this process's memory, or null unless they lie
   * inside one region (for the device-side control queue, which reads and writes them).
   */
  bytes(iova: number, len: number): Uint8Array | null {
    const r = this.#find(iova, len);
    if (r === null) return null;
    r.bytes ??= Deno.UnsafePointerView.getArrayBuffer(
      Deno.UnsafePointer.create(r.vaddr)!,
      Number(r.size),
    );
    return new Uint8Array(r.bytes, Number(BigInt(iova) - r.iova), len);
  }

  #find(iova: number, len: number): Region | null {
    if (!Number.isSafeInteger(iova) || !Number.isSafeInteger(len) || iova < 0 || len < 0) {
      return null;
    }
    const a = BigInt(iova), e = a + BigInt(len);
    for (const r of this.#regions) {
      if (a >= r.iova && e <= r.iova + r.size) return r;
    }
    return null;
  }
}

function toWire(r: Region): MemoryRegion {
  return { guestPhysAddr: r.iova, size: r.size, userspaceAddr: r.vaddr, mmapOffset: r.fdOffset };
}
