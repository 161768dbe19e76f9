/**
 * The PCI capability list in configuration space (PCI Local Bus 3.0 §6.7): the status
 * register's capability bit, the pointer at 0x34, and a linked list of (id, next) pairs.
 *
 * @module
 */

import type { RegionIo } from "./pci_device.ts";

/** Config-space offset of the vendor id. */
export const PCI_VENDOR_ID = 0x00;
/** Config-space offset of the device id. */
export const PCI_DEVICE_ID = 0x02;
/** Config-space offset of the command register. */
export const PCI_COMMAND = 0x04;
/** Config-space offset of the status register. */
export const PCI_STATUS = 0x06;
/** Config-space offset of the subsystem id. */
export const PCI_SUBSYSTEM_ID = 0x2e;
/** Status bit: the capability list exists. */
export const PCI_STATUS_CAP_LIST = 0x10;
/** Config-space offset of the first capability pointer. */
export const PCI_CAPABILITY_LIST = 0x34;
/** Command bit: the function answers I/O-space accesses (a legacy virtio I/O BAR0). */
export const PCI_COMMAND_IO = 0x1;
/** Command bit: the function answers memory accesses. */
export const PCI_COMMAND_MEMORY = 0x2;
/** Command bit: the function may master DMA. */
export const PCI_COMMAND_MASTER = 0x4;
/** Capability id: vendor specific (virtio's structures use it). */
export const PCI_CAP_ID_VNDR = 0x09;
/** Capability id: MSI-X. */
export const PCI_CAP_ID_MSIX = 0x11;

/** One capability: its id and where it sits in config space. */
export interface PciCapability {
  /** Capability id (PCI_CAP_ID_*). */
  id: number;
  /** Config-space offset of the capability header. */
  offset: number;
}

/**
 * Walks the capability list. A loop or a pointer into the header is reported as an error
 * instead of spinning: config space comes from the device and is validated like any
 * other device input.
 *
 * @example
 * ```ts
 * import { MappedRegionIo } from "./pci_device.ts";
 * import { listCapabilities } from "./capabilities.ts";
 * const cfg = new Uint8Array(256);
 * cfg[0x06] = 0x10; cfg[0x34] = 0x40; cfg[0x40] = 0x09; cfg[0x41] = 0;
 * listCapabilities(new MappedRegionIo(cfg.buffer)); // [{ id: 9, offset: 64 }]
 * ```
 */
export function listCapabilities(config: RegionIo): PciCapability[] {
  const caps: PciCapability[] = [];
  if (!(config.read16(PCI_STATUS) & PCI_STATUS_CAP_LIST)) return caps;
  let off = config.read8(PCI_CAPABILITY_LIST) & 0xfc;
  const seen = new Set<number>();
  while (off !== 0) {
    if (off < 0x40 || off > 0xfc || seen.has(off)) {
      throw new RangeError(`PCI capability list is malformed at offset 0x${off.toString(16)}`);
    }
    seen.add(off);
    caps.push({ id: config.read8(off), offset: off });
    off = config.read8(off + 1) & 0xfc;
  }
  return caps;
}
