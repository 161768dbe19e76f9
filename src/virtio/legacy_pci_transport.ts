/**
 * The legacy virtio-pci transport (virtio 0.9.5; virtio 1.x §4.1.4.8 "Legacy Interfaces: A
 * Note on PCI Device Layout"): one register block at the start of I/O BAR0, 32-bit
 * features, no FEATURES_OK, one guest-physical page frame number per queue (the split
 * ring laid out contiguously, used ring 4096-aligned: §2.7 legacy note), a queue size the
 * device fixes, and notifications by a 16-bit write of the queue index to QUEUE_NOTIFY.
 *
 * A legacy device does not translate its DMA through the IOMMU (it cannot negotiate
 * VIRTIO_F_ACCESS_PLATFORM), so every address it gets must be a physical address: the
 * port allocates its DMA memory physically addressed for it (src/dma/memory.ts).
 *
 * @module
 */

import { DriverError } from "../errors.ts";
import { PCI_COMMAND, PCI_COMMAND_IO, PCI_COMMAND_MASTER } from "../pci/capabilities.ts";
import { findMsix, msixControlOffset, PCI_MSIX_FLAGS_ENABLE } from "../pci/msix.ts";
import { type PciDevice, type RegionIo, SubRegionIo } from "../pci/pci_device.ts";
import type { Doorbell } from "../dma/doorbell.ts";
import { featureNames } from "./features.ts";
import { type MsixVectorTransport, routeMsixQueueInterrupt } from "./pci_queue_interrupts.ts";
import { RegionNotifier, VIRTIO_MSI_NO_VECTOR } from "./pci_transport.ts";
import { LEGACY_VRING_ALIGN, splitRingLayout } from "./ring_math.ts";
import type { QueueNotifier } from "./virtqueue.ts";
import type { QueueInterruptOptions, QueueInterruptRoute, VirtioTransport } from "./transport.ts";
import {
  VIRTIO_CONFIG_S_DRIVER_OK,
  VIRTIO_CONFIG_S_FAILED,
  VIRTIO_CONFIG_S_NEEDS_RESET,
} from "./status.ts";

// The legacy register block in BAR0 (§4.1.4.8, Linux's virtio_pci_legacy.h).
/** Device features, bits 0–31 (read-only). */
export const LEGACY_HOST_FEATURES = 0;
/** Driver (guest) features, bits 0–31. */
export const LEGACY_GUEST_FEATURES = 4;
/** Queue address: the ring's physical address / 4096; 0 disables the queue. */
export const LEGACY_QUEUE_PFN = 8;
/** Size of the selected queue (u16, read-only: the device fixes it). */
export const LEGACY_QUEUE_NUM = 12;
/** Queue select (u16). */
export const LEGACY_QUEUE_SEL = 14;
/** Queue notify: the driver writes a queue index (u16). */
export const LEGACY_QUEUE_NOTIFY = 16;
/** Device status (u8). */
export const LEGACY_STATUS = 18;
/** ISR status (u8; reading clears it). */
export const LEGACY_ISR = 19;
/** With MSI-X enabled: configuration-change vector (u16). */
export const LEGACY_MSI_CONFIG_VECTOR = 20;
/** With MSI-X enabled: the selected queue's vector (u16). */
export const LEGACY_MSI_QUEUE_VECTOR = 22;
/** Device-specific configuration without MSI-X enabled. */
export const LEGACY_CONFIG = 20;
/** Device-specific configuration with MSI-X enabled. */
export const LEGACY_CONFIG_MSIX = 24;
/** Page size of QUEUE_PFN (VIRTIO_PCI_QUEUE_ADDR_SHIFT 12). */
export const LEGACY_PFN_SHIFT = 12;

/**
 * The legacy virtio-pci transport of one device, over a {@linkcode PciDevice} whose BAR0
 * is the legacy register block (an I/O BAR under kernel VFIO: pread/pwrite).
 *
 * @example
 * ```ts ignore
 * import { LegacyPciTransport } from "./legacy_pci_transport.ts";
 * const t = new LegacyPciTransport(pciDevice);
 * t.reset();
 * t.deviceFeatures(); // 32 bits only
 * ```
 */
export class LegacyPciTransport implements VirtioTransport, MsixVectorTransport {
  /** The underlying PCI function. */
  readonly pci: PciDevice;
  /** The PCI function's name. */
  readonly name: string;
  /** DMA memory is mapped for the PCI function (at physical addresses: see the module). */
  readonly dma: PciDevice;
  /** Always true: a legacy device (§4.1.4.8). */
  readonly legacy = true;
  /** The register block (BAR0). */
  readonly regs: RegionIo;
  readonly #notifiable = new Set<number>();

  /**
   * Takes `pci`'s BAR0 as the legacy register block and enables I/O decoding and bus
   * mastering. Throws DEVICE_MISBEHAVED when BAR0 is too small for the registers.
   *
   * @example
   * ```ts ignore
   * const t = new LegacyPciTransport(VfioPciDevice.open(address, { bind: true }));
   * ```
   */
  constructor(pci: PciDevice) {
    this.pci = pci;
    this.name = pci.name;
    this.dma = pci;
    this.regs = pci.bar(0);
    if (this.regs.size < LEGACY_CONFIG) {
      throw new DriverError(
        "DEVICE_MISBEHAVED",
        `${pci.name}'s BAR0 is ${this.regs.size} bytes, too small for the ${LEGACY_CONFIG}-byte legacy virtio register block: the device is broken.`,
      );
    }
    const cmd = pci.config.read16(PCI_COMMAND);
    pci.config.write16(PCI_COMMAND, cmd | PCI_COMMAND_IO | PCI_COMMAND_MASTER);
  }

  /** device_status. */
  get status(): number {
    return this.regs.read8(LEGACY_STATUS);
  }

  /** Sets status bits. */
  addStatus(bits: number): void {
    this.regs.write8(LEGACY_STATUS, this.status | bits);
  }

  /** Writes 0 to the status and waits until it reads 0 (the legacy reset, §4.1.4.8). */
  reset(timeoutMs = 1000): void {
    this.#notifiable.clear();
    this.regs.write8(LEGACY_STATUS, 0);
    const deadline = Date.now() + timeoutMs;
    while (this.regs.read8(LEGACY_STATUS) !== 0) {
      if (Date.now() > deadline) {
        throw new DriverError(
          "DEVICE_MISBEHAVED",
          `${this.name} did not complete its reset within ${timeoutMs} ms: reset the function (echo 1 > /sys/bus/pci/devices/.../reset) and try again.`,
        );
      }
    }
  }

  /** The device's 32 feature bits (a legacy device has no more). */
  deviceFeatures(): bigint {
    return BigInt(this.regs.read32(LEGACY_HOST_FEATURES));
  }

  /**
   * Writes the driver's features. A legacy device has no FEATURES_OK (§3.1.2 legacy
   * note): it takes what it is given, so only bits it offered may be written.
   */
  setDriverFeatures(features: bigint): void {
    const offered = this.deviceFeatures();
    if (features >> 32n !== 0n || (features & ~offered) !== 0n) {
      this.addStatus(VIRTIO_CONFIG_S_FAILED);
      throw new DriverError(
        "DEVICE_REFUSED",
        `${this.name} is a legacy device offering 0x${offered.toString(16)}, which cannot take ${
          featureNames(features & ~offered).join(", ")
        }: negotiate only offered bits 0–31.`,
      );
    }
    this.regs.write32(LEGACY_GUEST_FEATURES, Number(features));
  }

  /** The size of queue `index` (0: no such queue); the driver cannot change it. */
  queueMaxSize(index: number): number {
    this.regs.write16(LEGACY_QUEUE_SEL, index);
    return this.regs.read16(LEGACY_QUEUE_NUM);
  }

  /**
   * Registers queue `index` by writing its ring's page frame number (§4.1.4.8). The device
   * derives the avail and used rings from it, so the three addresses must follow the legacy
   * layout (splitRingLayout with `legacy`) at a 4096-aligned physical address below 2^44.
   */
  setupQueue(
    index: number,
    size: number,
    descIova: number,
    availIova: number,
    usedIova: number,
  ): QueueNotifier {
    const max = this.queueMaxSize(index);
    if (size !== max) {
      throw new RangeError(
        `${this.name}: legacy queue ${index} has ${max} entries, fixed by the device, not ${size}`,
      );
    }
    const l = splitRingLayout(size, true);
    const pfn = descIova / LEGACY_VRING_ALIGN;
    if (
      !Number.isInteger(pfn) || pfn < 1 || pfn > 0xffff_ffff ||
      availIova !== descIova + l.availOffset || usedIova !== descIova + l.usedOffset
    ) {
      throw new RangeError(
        `${this.name}: queue ${index}'s ring (0x${
          descIova.toString(16)
        }) is not one 4096-aligned legacy ring below 2^44`,
      );
    }
    this.regs.write16(LEGACY_QUEUE_SEL, index);
    // Polling: no MSI-X vector for the queue (the register exists only with MSI-X on).
    if (this.#msixEnabled()) this.regs.write16(LEGACY_MSI_QUEUE_VECTOR, VIRTIO_MSI_NO_VECTOR);
    this.regs.write32(LEGACY_QUEUE_PFN, pfn);
    if (this.regs.read32(LEGACY_QUEUE_PFN) !== pfn) {
      throw new DriverError(
        "DEVICE_MISBEHAVED",
        `${this.name} did not take queue ${index}'s ring address (QUEUE_PFN reads back otherwise): the device is broken.`,
      );
    }
    this.#notifiable.add(index);
    return new RegionNotifier(this.regs, LEGACY_QUEUE_NOTIFY, index);
  }

  /** How a worker notifies queue `index`: QUEUE_NOTIFY through the PCI function. */
  doorbell(index: number): Doorbell {
    if (!this.#notifiable.has(index)) {
      throw new RangeError(`${this.name} has not set up queue ${index}: it has no doorbell yet`);
    }
    return this.pci.doorbell16(0, LEGACY_QUEUE_NOTIFY, index);
  }

  /** Routes queue `index`'s interrupts through an MSI-X vector (pci_queue_interrupts.ts). */
  routeQueueInterrupt(
    index: number,
    fd: number,
    options: QueueInterruptOptions = {},
  ): QueueInterruptRoute {
    return routeMsixQueueInterrupt(this, index, fd, options);
  }

  /**
   * Maps queue `index` to MSI-X vector `vector` and returns the read-back value
   * (VIRTIO_MSI_NO_VECTOR on failure). Needs MSI-X enabled: the register exists only then.
   */
  setQueueVector(index: number, vector: number): number {
    if (!this.#msixEnabled()) return VIRTIO_MSI_NO_VECTOR;
    this.regs.write16(LEGACY_QUEUE_SEL, index);
    this.regs.write16(LEGACY_MSI_QUEUE_VECTOR, vector);
    return this.regs.read16(LEGACY_MSI_QUEUE_VECTOR);
  }

  /** Throws when the device set DEVICE_NEEDS_RESET or FAILED, or lost DRIVER_OK. */
  checkHealthy(): void {
    const s = this.status;
    if (s & (VIRTIO_CONFIG_S_NEEDS_RESET | VIRTIO_CONFIG_S_FAILED)) {
      throw new DriverError(
        "DEVICE_MISBEHAVED",
        `${this.name} reports ${
          s & VIRTIO_CONFIG_S_NEEDS_RESET ? "DEVICE_NEEDS_RESET" : "FAILED"
        }: restart the port to reset the device.`,
      );
    }
    if (!(s & VIRTIO_CONFIG_S_DRIVER_OK)) {
      throw new DriverError(
        "DEVICE_MISBEHAVED",
        `${this.name} was reset under the driver (device_status reads ${s}, without DRIVER_OK): restart the port to set it up again.`,
      );
    }
  }

  /**
   * Reads device configuration consistently. A legacy device has no config_generation:
   * reads repeat until two agree (§4.1.4.8 / §2.5 legacy note). The structure starts at 20,
   * or 24 while MSI-X is enabled.
   */
  readConfig<T>(read: (cfg: RegionIo) => T): T {
    const at = this.#msixEnabled() ? LEGACY_CONFIG_MSIX : LEGACY_CONFIG;
    const cfg = new SubRegionIo(this.regs, at, Math.max(0, this.regs.size - at));
    let last = read(cfg);
    for (let i = 0; i < 100; i++) {
      const again = read(cfg);
      if (sameValue(last, again)) return again;
      last = again;
    }
    throw new DriverError(
      "DEVICE_MISBEHAVED",
      `${this.name}'s configuration never read the same twice: the device is broken.`,
    );
  }

  /** Closes the PCI function (`restoreDriver`: back to its kernel driver if this process took it). */
  close(options?: { restoreDriver?: boolean }): void {
    this.pci.close(options);
  }

  /** True when the function's MSI-X capability is enabled (moves the config to 24). */
  #msixEnabled(): boolean {
    const cap = findMsix(this.pci.config);
    return cap !== null &&
      (this.pci.config.read16(msixControlOffset(cap)) & PCI_MSIX_FLAGS_ENABLE) !== 0;
  }
}

/** Deep equality of two configuration reads (plain objects, numbers, typed arrays). */
function sameValue(a: unknown, b: unknown): boolean {
  const text = (v: unknown) =>
    JSON.stringify(
      v,
      (_, x) =>
        ArrayBuffer.isView(x) ? Array.from(x as Uint8Array) : typeof x === "bigint" ? `${x}n` : x,
    );
  return text(a) === text(b);
}
