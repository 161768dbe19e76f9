/**
 * Register access to a vfio-user region: by REGION_READ/REGION_WRITE messages where the
 * server offers no mapping ("Device Read and Write"), and by mapping where it offers
 * sparse mmap areas for part of a region ("Sparse Regions").
 *
 * @module
 */

import type { MappedRegionIo, RegionIo } from "../pci/pci_device.ts";
import type { VfioUserClient } from "./client.ts";

/**
 * A region reached by messages: each read is a REGION_READ round trip, each write a
 * REGION_WRITE (a round trip, or with `posted` a No_reply message the server runs in
 * order, like a PCI posted write).
 *
 * @example
 * ```ts ignore
 * import { MessageRegionIo } from "./region_io.ts";
 * const config = new MessageRegionIo(client, 7, 256);
 * config.read16(0); // 0x1af4 for a virtio device
 * ```
 */
export class MessageRegionIo implements RegionIo {
  readonly size: number;
  readonly mapped = false;
  readonly #client: VfioUserClient;
  readonly #region: number;
  readonly #posted: boolean;

  /** Region `region` of `size` bytes of `client`'s device. */
  constructor(
    client: VfioUserClient,
    region: number,
    size: number,
    options: { posted?: boolean } = {},
  ) {
    this.#client = client;
    this.#region = region;
    this.size = size;
    this.#posted = options.posted ?? false;
  }

  #check(offset: number, width: number): void {
    if (!(offset >= 0 && offset + width <= this.size && offset % width === 0)) {
      throw new RangeError(
        `${width}-byte access at ${offset} of region ${this.#region} (${this.size} bytes) is out of range or unaligned`,
      );
    }
  }

  /** Reads one byte. */
  read8(offset: number): number {
    this.#check(offset, 1);
    return this.#client.readSmall(this.#region, offset, 1);
  }
  /** Reads a little-endian u16. */
  read16(offset: number): number {
    this.#check(offset, 2);
    return this.#client.readSmall(this.#region, offset, 2);
  }
  /** Reads a little-endian u32. */
  read32(offset: number): number {
    this.#check(offset, 4);
    return this.#client.readSmall(this.#region, offset, 4);
  }
  /** Writes one byte. */
  write8(offset: number, value: number): void {
    this.#check(offset, 1);
    this.#client.writeSmall(this.#region, offset, 1, value, this.#posted);
  }
  /** Writes a little-endian u16. */
  write16(offset: number, value: number): void {
    this.#check(offset, 2);
    this.#client.writeSmall(this.#region, offset, 2, value, this.#posted);
  }
  /** Writes a little-endian u32. */
  write32(offset: number, value: number): void {
    this.#check(offset, 4);
    this.#client.writeSmall(this.#region, offset, 4, value, this.#posted);
  }
}

/** One mmap'd area of a sparse region. */
export interface MappedArea {
  /** Offset of the area within the region. */
  offset: number;
  /** Its size. */
  size: number;
  /** Access to the mapping. */
  io: MappedRegionIo;
}

/**
 * A region mapped in part: accesses inside a mapped area are loads and stores, the rest
 * go by messages.
 *
 * @example
 * ```ts ignore
 * import { SparseRegionIo } from "./region_io.ts";
 * const bar = new SparseRegionIo(messageIo, [{ offset: 0x3000, size: 0x1000, io: mapped }]);
 * bar.write16(0x3000, 0); // a store into the mapping
 * ```
 */
export class SparseRegionIo implements RegionIo {
  readonly size: number;
  readonly mapped = false;
  readonly #areas: MappedArea[];
  readonly #messages: RegionIo;

  /** `messages` reaches the whole region; `areas` are the mapped parts. */
  constructor(messages: RegionIo, areas: MappedArea[]) {
    this.size = messages.size;
    this.#messages = messages;
    this.#areas = areas;
  }

  #area(offset: number, width: number): MappedArea | undefined {
    for (const a of this.#areas) {
      if (offset >= a.offset && offset + width <= a.offset + a.size) return a;
    }
    return undefined;
  }

  /** Reads one byte. */
  read8(offset: number): number {
    const a = this.#area(offset, 1);
    return a ? a.io.read8(offset - a.offset) : this.#messages.read8(offset);
  }
  /** Reads a little-endian u16. */
  read16(offset: number): number {
    const a = this.#area(offset, 2);
    return a ? a.io.read16(offset - a.offset) : this.#messages.read16(offset);
  }
  /** Reads a little-endian u32. */
  read32(offset: number): number {
    const a = this.#area(offset, 4);
    return a ? a.io.read32(offset - a.offset) : this.#messages.read32(offset);
  }
  /** Writes one byte. */
  write8(offset: number, value: number): void {
    const a = this.#area(offset, 1);
    if (a) a.io.write8(offset - a.offset, value);
    else this.#messages.write8(offset, value);
  }
  /** Writes a little-endian u16. */
  write16(offset: number, value: number): void {
    const a = this.#area(offset, 2);
    if (a) a.io.write16(offset - a.offset, value);
    else this.#messages.write16(offset, value);
  }
  /** Writes a little-endian u32. */
  write32(offset: number, value: number): void {
    const a = this.#area(offset, 4);
    if (a) a.io.write32(offset - a.offset, value);
    else this.#messages.write32(offset, value);
  }
}
