/**
 * The transport-neutral view of a PCI function that every layer above uses: config space,
 * BAR regions, DMA mapping, reset. Kernel VFIO (`src/vfio/`) and vfio-user
 * (`src/vfio_user/`) each implement it, so virtio and virtio-net code never knows which
 * one it runs on.
 *
 * @module
 */

import { DriverError } from "../errors.ts";
import type { Doorbell } from "../dma/doorbell.ts";
import type { DmaSegment, DmaTarget } from "../dma/dma_target.ts";

export type { DmaSegment };

/**
 * Register access to one region (a BAR or config space). Offsets are bytes from the
 * region's start; accesses are naturally aligned and of exactly the width asked for,
 * as MMIO registers require.
 */
export interface RegionIo {
  /** Region size in bytes. */
  readonly size: number;
  /** True when the region is mmap'd: accesses are plain loads and stores. */
  readonly mapped: boolean;
  /** Reads one byte. */
  read8(offset: number): number;
  /** Reads a little-endian u16. */
  read16(offset: number): number;
  /** Reads a little-endian u32. */
  read32(offset: number): number;
  /** Writes one byte. */
  write8(offset: number, value: number): void;
  /** Writes a little-endian u16. */
  write16(offset: number, value: number): void;
  /** Writes a little-endian u32. */
  write32(offset: number, value: number): void;
}

/** A PCI function opened for user-space driving. */
export interface PciDevice extends DmaTarget {
  /** How users name the port: a PCI address or `vfio-user:/path`. */
  readonly name: string;
  /** PCI configuration space. */
  readonly config: RegionIo;
  /** Access to BAR `index` (0–5); throws when the BAR is absent. */
  bar(index: number): RegionIo;
  /** The usable IOVA ranges [start, end] the IOMMU accepts. */
  iovaRanges(): { start: bigint; end: bigint }[];
  /** Maps a segment of memory for device DMA at `iova`. */
  dmaMap(segment: DmaSegment, iova: bigint): void;
  /** Removes a mapping made with {@linkcode PciDevice.dmaMap}. */
  dmaUnmap(iova: bigint, size: number): void;
  /**
   * How another thread writes the 16-bit `value` at `offset` of BAR `bar` (a notification
   * register): a store into the mapped BAR, or a message to the vfio-user server.
   */
  doorbell16(bar: number, offset: number, value: number): Doorbell;
  /** Resets the function (VFIO_DEVICE_RESET or the vfio-user equivalent), if supported. */
  reset(): void;
  /**
   * Number of interrupts of IRQ type `index` (VFIO_PCI_INTX_IRQ_INDEX 0, MSI 1, MSI-X 2:
   * Linux vfio.h `struct vfio_irq_info`): for MSI-X the table size, 0 when the function
   * has none.
   */
  irqCount(index: number): number;
  /**
   * Routes interrupts `start`…`start + fds.length - 1` of IRQ type `index` to eventfds
   * (VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER): each time vector
   * `start + i` fires, `fds[i]` is signalled. An fd of -1 detaches that one vector. An
   * empty list turns the whole type off again (DATA_NONE with count 0). The caller keeps
   * its fds (the transport holds its own reference); {@linkcode PciDevice.close} turns
   * off every type this set up before it lets go of the device.
   */
  setIrqEventfds(index: number, start: number, fds: number[]): void;
  /**
   * Releases everything the transport holds, in reverse order. Idempotent. With
   * `restoreDriver`, a function this process took from its kernel driver is handed back
   * (used when opening a port fails half-way).
   */
  close(options?: { restoreDriver?: boolean }): void;
}

/**
 * Throws a RangeError naming `what` unless a 16-bit register at `offset` lies inside `io`
 * and is 2-byte aligned (a doorbell's notify register; checked once, when it is built).
 *
 * @example
 * ```ts
 * import { checkRegister16, MappedRegionIo } from "./pci_device.ts";
 * checkRegister16(new MappedRegionIo(new ArrayBuffer(64)), 8, "BAR4"); // fine
 * ```
 */
export function checkRegister16(io: RegionIo, offset: number, what: string): void {
  if (!(Number.isInteger(offset) && offset >= 0 && offset + 2 <= io.size && offset % 2 === 0)) {
    throw new RangeError(
      `${what}: a 16-bit register at ${offset} is outside its ${io.size} bytes or misaligned`,
    );
  }
}

/**
 * The doorbell of a 16-bit register at `offset` of a mapped region `io`, or null when `io`
 * is not mapped (its accesses go through the transport).
 *
 * @example
 * ```ts
 * import { MappedRegionIo, mappedDoorbell16 } from "./pci_device.ts";
 * const bar = new MappedRegionIo(new ArrayBuffer(64));
 * mappedDoorbell16(bar, 8, 1, "BAR4")?.kind; // "store16"
 * ```
 */
export function mappedDoorbell16(
  io: RegionIo,
  offset: number,
  value: number,
  what: string,
): Doorbell | null {
  if (!(io instanceof MappedRegionIo)) return null;
  checkRegister16(io, offset, what);
  const base = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(io.buffer)));
  return { kind: "store16", address: base + BigInt(offset), value, what };
}

/**
 * Register access over a mapping: exact-width typed-array loads and stores (never
 * DataView, whose accesses are not guaranteed to be single loads in every V8 tier).
 *
 * @example
 * ```ts
 * import { MappedRegionIo } from "./pci_device.ts";
 * const io = new MappedRegionIo(new ArrayBuffer(64));
 * io.write32(4, 0xdeadbeef);
 * io.read16(4); // 0xbeef (x86-64 is little-endian)
 * ```
 */
export class MappedRegionIo implements RegionIo {
  readonly size: number;
  readonly mapped = true;
  /**
   * The mapping itself. A Worker reaches the same registers by rebuilding a view from its
   * address (`Deno.UnsafePointer.of(buffer)`; workers share the address space).
   */
  readonly buffer: ArrayBuffer;
  readonly #u8: Uint8Array;
  readonly #u16: Uint16Array;
  readonly #u32: Uint32Array;

  /** Wraps `buffer` (a mapping of the region). */
  constructor(buffer: ArrayBuffer) {
    this.size = buffer.byteLength;
    this.buffer = buffer;
    this.#u8 = new Uint8Array(buffer);
    this.#u16 = new Uint16Array(buffer, 0, buffer.byteLength >> 1);
    this.#u32 = new Uint32Array(buffer, 0, buffer.byteLength >> 2);
  }

  /** Reads one byte. */
  read8(offset: number): number {
    return this.#u8[offset];
  }
  /** Reads a u16 at an even offset. */
  read16(offset: number): number {
    return this.#u16[offset >> 1];
  }
  /** Reads a u32 at a multiple of 4. */
  read32(offset: number): number {
    return this.#u32[offset >> 2];
  }
  /** Writes one byte. */
  write8(offset: number, value: number): void {
    this.#u8[offset] = value;
  }
  /** Writes a u16 at an even offset. */
  write16(offset: number, value: number): void {
    this.#u16[offset >> 1] = value;
  }
  /** Writes a u32 at a multiple of 4. */
  write32(offset: number, value: number): void {
    this.#u32[offset >> 2] = value;
  }
}

/**
 * A view of part of a region, for a virtio structure that lives at `offset` in a BAR.
 *
 * @example
 * ```ts
 * import { MappedRegionIo, SubRegionIo } from "./pci_device.ts";
 * const bar = new MappedRegionIo(new ArrayBuffer(4096));
 * const common = new SubRegionIo(bar, 0x100, 0x38);
 * common.write8(0x14, 1); // writes bar offset 0x114
 * ```
 */
export class SubRegionIo implements RegionIo {
  readonly size: number;
  readonly mapped: boolean;
  readonly #io: RegionIo;
  readonly #base: number;

  /** Views `length` bytes of `io` from `base`; throws when they do not fit. */
  constructor(io: RegionIo, base: number, length: number) {
    if (
      !Number.isInteger(base) || !Number.isInteger(length) || base < 0 || length < 0 ||
      base + length > io.size
    ) {
      throw new RangeError(`window ${base}+${length} lies outside a region of ${io.size} bytes`);
    }
    this.#io = io;
    this.#base = base;
    this.size = length;
    this.mapped = io.mapped;
  }
  /** Reads one byte. */
  read8(offset: number): number {
    return this.#io.read8(this.#base + offset);
  }
  /** Reads a u16. */
  read16(offset: number): number {
    return this.#io.read16(this.#base + offset);
  }
  /** Reads a u32. */
  read32(offset: number): number {
    return this.#io.read32(this.#base + offset);
  }
  /** Writes one byte. */
  write8(offset: number, value: number): void {
    this.#io.write8(this.#base + offset, value);
  }
  /** Writes a u16. */
  write16(offset: number, value: number): void {
    this.#io.write16(this.#base + offset, value);
  }
  /** Writes a u32. */
  write32(offset: number, value: number): void {
    this.#io.write32(this.#base + offset, value);
  }
}

/**
 * Throws BAD_ARGUMENT unless interrupts `start … start + n - 1` exist among the `count` of
 * IRQ type `index` (VFIO_DEVICE_GET_IRQ_INFO / VFIO_USER_DEVICE_GET_IRQ_INFO), as both
 * transports' `setIrqEventfds` require.
 *
 * @example
 * ```ts
 * import { checkIrqRange } from "./pci_device.ts";
 * checkIrqRange("0000:00:04.0", 2, 0, 3, 6); // vectors 0…2 of 6: fine
 * ```
 */
export function checkIrqRange(
  device: string,
  index: number,
  start: number,
  n: number,
  count: number,
): void {
  if (!Number.isInteger(start) || start < 0 || start + n > count) {
    throw new DriverError(
      "BAD_ARGUMENT",
      `Interrupts ${start}…${
        start + n - 1
      } of IRQ type ${index} do not exist on ${device}, which has ${count}: use vectors below ${count}.`,
    );
  }
}
