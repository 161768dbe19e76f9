/**
 * BAR address assignment for a PCI function that no firmware has enumerated. Over kernel
 * VFIO the host's firmware and kernel assigned the BARs; a vfio-user server's device starts
 * with every BAR register at 0, and QEMU's server routes REGION_READ/WRITE of a BAR through
 * the BAR's place in its (private) memory map, which exists only once the BAR has a non-zero
 * address and memory decoding is on (PCI Local Bus 3.0 §6.2.5.1: the address is written to
 * the BAR register; the low 4 bits are read-only type bits).
 *
 * The addresses are never used for access by this driver (it names regions, not
 * addresses) and the server keeps one device per address space, so any aligned
 * non-overlapping layout does.
 *
 * @module
 */

import type { RegionIo } from "../pci/pci_device.ts";

/** Config offset of BAR0; BAR n is at 0x10 + 4n. */
export const PCI_BASE_ADDRESS_0 = 0x10;
/** BAR bit 0: an I/O space BAR. */
export const PCI_BASE_ADDRESS_SPACE_IO = 0x1;
/** BAR bits 2:1 = 10b: a 64-bit memory BAR (it takes the next register too). */
export const PCI_BASE_ADDRESS_MEM_TYPE_64 = 0x4;
/** Mask of a memory BAR's address bits. */
export const PCI_BASE_ADDRESS_MEM_MASK = ~0xf >>> 0;
/** Where assignment starts by default: below 4 GiB, above typical RAM. */
export const DEFAULT_BAR_BASE = 0xc000_0000;

/** One BAR given an address. */
export interface BarAssignment {
  /** BAR index 0–5. */
  index: number;
  /** Address written. */
  address: number;
  /** Size of the BAR. */
  size: number;
  /** True for a 64-bit BAR (register index+1 holds the upper half, written 0). */
  is64: boolean;
}

/**
 * Gives every memory BAR whose address is 0 an address aligned to its size (sizes from
 * `sizeOf`, 0 = no BAR), packed upwards from `base`. I/O BARs are left alone. Returns what
 * it assigned.
 *
 * @example
 * ```ts
 * import { MappedRegionIo } from "../pci/pci_device.ts";
 * import { assignBars } from "./bar_assignment.ts";
 * const config = new MappedRegionIo(new ArrayBuffer(256));
 * config.write32(0x20, 0x4); // BAR4: 64-bit memory BAR, address 0
 * assignBars(config, (i) => (i === 4 ? 16384 : 0)); // [{ index: 4, address: 0xc0000000, size: 16384, is64: true }]
 * ```
 */
export function assignBars(
  config: RegionIo,
  sizeOf: (index: number) => number,
  base = DEFAULT_BAR_BASE,
): BarAssignment[] {
  const out: BarAssignment[] = [];
  let next = base;
  for (let i = 0; i < 6; i++) {
    const reg = PCI_BASE_ADDRESS_0 + 4 * i;
    const v = config.read32(reg);
    const is64 = (v & PCI_BASE_ADDRESS_SPACE_IO) === 0 &&
      (v & 0x6) === PCI_BASE_ADDRESS_MEM_TYPE_64;
    const size = sizeOf(i);
    const high = is64 && i < 5 ? config.read32(reg + 4) : 0;
    if (
      size > 0 && (v & PCI_BASE_ADDRESS_SPACE_IO) === 0 && (v & PCI_BASE_ADDRESS_MEM_MASK) === 0 &&
      high === 0
    ) {
      const align = Math.max(size, 4096);
      const address = Math.ceil(next / align) * align;
      config.write32(reg, address);
      if (is64) config.write32(reg + 4, 0);
      out.push({ index: i, address, size, is64 });
      next = address + size;
    }
    if (is64) i++; // the upper half is not a BAR of its own
  }
  return out;
}

/**
 * The six BAR registers, to put back with {@linkcode restoreBars} after a reset.
 *
 * @example
 * ```ts
 * import { MappedRegionIo } from "../pci/pci_device.ts";
 * import { saveBars } from "./bar_assignment.ts";
 * saveBars(new MappedRegionIo(new ArrayBuffer(256))).length; // 6
 * ```
 */
export function saveBars(config: RegionIo): number[] {
  return [0, 1, 2, 3, 4, 5].map((i) => config.read32(PCI_BASE_ADDRESS_0 + 4 * i));
}

/**
 * Writes saved BAR registers back (read-only type bits are ignored by the device).
 *
 * @example
 * ```ts
 * import { MappedRegionIo } from "../pci/pci_device.ts";
 * import { restoreBars } from "./bar_assignment.ts";
 * restoreBars(new MappedRegionIo(new ArrayBuffer(256)), [0, 0, 0, 0, 0xc000000c, 0]);
 * ```
 */
export function restoreBars(config: RegionIo, saved: readonly number[]): void {
  saved.forEach((v, i) => config.write32(PCI_BASE_ADDRESS_0 + 4 * i, v >>> 0));
}
