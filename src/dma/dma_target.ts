/**
 * What DMA memory is mapped for: anything that gives a device (or a vhost-user back-end)
 * access to process memory at an IOVA. A PCI function over kernel VFIO or vfio-user is one
 * (src/pci/pci_device.ts); a vhost-user connection is another (its memory table).
 *
 * @module
 */

/** A piece of process memory to make visible to the device at an IOVA. */
export interface DmaSegment {
  /** Process virtual address of the memory. */
  vaddr: bigint;
  /** Size in bytes (a multiple of the page size). */
  size: number;
  /** memfd that backs the memory (vfio-user and vhost-user pass it to their peer). */
  fd: number;
  /** Offset of the memory within `fd`. */
  fdOffset: number;
}

/**
 * A device that DMA memory can be mapped for.
 *
 * @example
 * ```ts ignore
 * import { DmaRegion } from "./memory.ts";
 * const region = DmaRegion.allocate(1 << 20);
 * region.mapFor(target); // target: a PciDevice, or a vhost-user connection
 * ```
 */
export interface DmaTarget {
  /** How users name the port, for messages. */
  readonly name: string;
  /** The usable IOVA ranges [start, end] the device accepts. */
  iovaRanges(): { start: bigint; end: bigint }[];
  /** Maps a segment of memory for device DMA at `iova`. */
  dmaMap(segment: DmaSegment, iova: bigint): void;
  /** Removes a mapping made with {@linkcode DmaTarget.dmaMap}. */
  dmaUnmap(iova: bigint, size: number): void;
}
