/**
 * The MSI-X capability (PCI Local Bus 3.0 §6.8.2): where the vector table lives and how
 * many entries it has, and the enable and function-mask bits of Message Control.
 *
 * Kernel VFIO programs all of it itself when VFIO_DEVICE_SET_IRQS routes MSI-X vectors to
 * eventfds. A vfio-user server is handed the registers as they are: a driver there plays
 * the part of the kernel and sets them (see `VfioUserDevice.setIrqEventfds`).
 *
 * @module
 */

import { listCapabilities, PCI_CAP_ID_MSIX } from "./capabilities.ts";
import type { RegionIo } from "./pci_device.ts";

/** Offset of Message Control within the capability (§6.8.2.3). */
export const PCI_MSIX_FLAGS = 2;
/** Offset of the Table Offset/Table BIR register (§6.8.2.4). */
export const PCI_MSIX_TABLE = 4;
/** Offset of the PBA Offset/PBA BIR register (§6.8.2.5). */
export const PCI_MSIX_PBA = 8;
/** Message Control bits 10:0: table size minus one. */
export const PCI_MSIX_FLAGS_QSIZE = 0x07ff;
/** Message Control bit 14: Function Mask (every vector masked). */
export const PCI_MSIX_FLAGS_MASKALL = 0x4000;
/** Message Control bit 15: MSI-X Enable. */
export const PCI_MSIX_FLAGS_ENABLE = 0x8000;
/** Bytes per table entry: address low, address high, data, vector control (§6.8.2.6). */
export const PCI_MSIX_ENTRY_SIZE = 16;
/** Offset of Vector Control within an entry (§6.8.2.9). */
export const PCI_MSIX_ENTRY_VECTOR_CTRL = 12;
/** Vector Control bit 0: the vector is masked. */
export const PCI_MSIX_ENTRY_CTRL_MASKBIT = 1;

/** Where a function's MSI-X structures are. */
export interface MsixCapability {
  /** Config-space offset of the capability. */
  offset: number;
  /** Number of table entries (vectors). */
  tableSize: number;
  /** BAR that holds the table. */
  tableBar: number;
  /** Offset of the table in that BAR. */
  tableOffset: number;
  /** BAR that holds the pending-bit array. */
  pbaBar: number;
  /** Offset of the pending-bit array in that BAR. */
  pbaOffset: number;
}

/**
 * Reads the MSI-X capability from config space; null when the function has none.
 *
 * @example
 * ```ts
 * import { MappedRegionIo } from "./pci_device.ts";
 * import { findMsix } from "./msix.ts";
 * const cfg = new Uint8Array(256);
 * cfg[0x06] = 0x10; cfg[0x34] = 0x98; cfg[0x98] = 0x11; // MSI-X at 0x98
 * cfg[0x9a] = 3; // 4 vectors
 * cfg[0x9c] = 1; // table in BAR1 at 0
 * cfg[0xa0] = 0x01; cfg[0xa1] = 0x08; // PBA in BAR1 at 0x800
 * findMsix(new MappedRegionIo(cfg.buffer)); // { offset: 152, tableSize: 4, tableBar: 1, … }
 * ```
 */
export function findMsix(config: RegionIo): MsixCapability | null {
  const cap = listCapabilities(config).find((c) => c.id === PCI_CAP_ID_MSIX);
  if (!cap) return null;
  const o = cap.offset;
  const table = config.read32(o + PCI_MSIX_TABLE);
  const pba = config.read32(o + PCI_MSIX_PBA);
  return {
    offset: o,
    tableSize: (config.read16(o + PCI_MSIX_FLAGS) & PCI_MSIX_FLAGS_QSIZE) + 1,
    tableBar: table & 7,
    tableOffset: (table & ~7) >>> 0,
    pbaBar: pba & 7,
    pbaOffset: (pba & ~7) >>> 0,
  };
}

/**
 * Config-space offset of Message Control of `cap`.
 *
 * @example
 * ```ts
 * import { msixControlOffset } from "./msix.ts";
 * msixControlOffset({ offset: 0x98, tableSize: 4, tableBar: 1, tableOffset: 0, pbaBar: 1, pbaOffset: 0x800 }); // 0x9a
 * ```
 */
export function msixControlOffset(cap: MsixCapability): number {
  return cap.offset + PCI_MSIX_FLAGS;
}

/**
 * Offset of vector `v`'s Vector Control word in the table's BAR.
 *
 * @example
 * ```ts
 * import { msixVectorControlOffset } from "./msix.ts";
 * msixVectorControlOffset({ offset: 0x98, tableSize: 4, tableBar: 1, tableOffset: 0, pbaBar: 1, pbaOffset: 0x800 }, 2); // 44
 * ```
 */
export function msixVectorControlOffset(cap: MsixCapability, v: number): number {
  return cap.tableOffset + v * PCI_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_VECTOR_CTRL;
}
