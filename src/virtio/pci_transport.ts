/**
 * The modern virtio-pci transport (virtio 1.x §4.1.4): finds the common, notify, ISR and
 * device-config structures through vendor-specific PCI capabilities, and drives the
 * device status handshake, feature negotiation and virtqueue registration through the
 * common configuration structure.
 *
 * @module
 */

import { DriverError } from "../errors.ts";
import {
  listCapabilities,
  PCI_CAP_ID_VNDR,
  PCI_COMMAND,
  PCI_COMMAND_MASTER,
  PCI_COMMAND_MEMORY,
} from "../pci/capabilities.ts";
import { type PciDevice, type RegionIo, SubRegionIo } from "../pci/pci_device.ts";
import type { Doorbell } from "../dma/doorbell.ts";
import { featureNames } from "./features.ts";
import { routeMsixQueueInterrupt } from "./pci_queue_interrupts.ts";
import type { QueueNotifier } from "./virtqueue.ts";
import type { QueueInterruptOptions, QueueInterruptRoute, VirtioTransport } from "./transport.ts";
import {
  VIRTIO_CONFIG_S_DRIVER_OK,
  VIRTIO_CONFIG_S_FAILED,
  VIRTIO_CONFIG_S_FEATURES_OK,
  VIRTIO_CONFIG_S_NEEDS_RESET,
} from "./status.ts";

/** virtio_pci_cap.cfg_type: common configuration (§4.1.4.3). */
export const VIRTIO_PCI_CAP_COMMON_CFG = 1;
/** virtio_pci_cap.cfg_type: notifications (§4.1.4.4). */
export const VIRTIO_PCI_CAP_NOTIFY_CFG = 2;
/** virtio_pci_cap.cfg_type: ISR status (§4.1.4.5). */
export const VIRTIO_PCI_CAP_ISR_CFG = 3;
/** virtio_pci_cap.cfg_type: device-specific configuration (§4.1.4.6). */
export const VIRTIO_PCI_CAP_DEVICE_CFG = 4;
/** virtio_pci_cap.cfg_type: PCI configuration access (§4.1.4.7). */
export const VIRTIO_PCI_CAP_PCI_CFG = 5;

/** "No MSI-X vector" for config_msix_vector / queue_msix_vector (§4.1.5.1.2). */
export const VIRTIO_MSI_NO_VECTOR = 0xffff;

// struct virtio_pci_common_cfg field offsets (§4.1.4.3).
/** Selects which 32 bits device_feature shows. */
export const COMMON_DFSELECT = 0;
/** 32 bits of the device's features. */
export const COMMON_DF = 4;
/** Selects which 32 bits driver_feature takes. */
export const COMMON_GFSELECT = 8;
/** 32 bits of the driver's accepted features. */
export const COMMON_GF = 12;
/** MSI-X vector for config changes. */
export const COMMON_MSIX = 16;
/** Number of virtqueues the device has. */
export const COMMON_NUMQ = 18;
/** device_status. */
export const COMMON_STATUS = 20;
/** config_generation. */
export const COMMON_CFGGENERATION = 21;
/** queue_select. */
export const COMMON_Q_SELECT = 22;
/** queue_size. */
export const COMMON_Q_SIZE = 24;
/** queue_msix_vector. */
export const COMMON_Q_MSIX = 26;
/** queue_enable. */
export const COMMON_Q_ENABLE = 28;
/** queue_notify_off. */
export const COMMON_Q_NOFF = 30;
/** queue_desc (64 bits, low word first). */
export const COMMON_Q_DESCLO = 32;
/** queue_driver (the available ring). */
export const COMMON_Q_AVAILLO = 40;
/** queue_device (the used ring). */
export const COMMON_Q_USEDLO = 48;
/** Size of the part of the common configuration this driver uses. */
export const COMMON_CFG_MIN_LEN = 56;

/** Where one virtio structure lives: BAR, offset and length from its capability. */
export interface VirtioCapLocation {
  /** cfg_type. */
  type: number;
  /** BAR index. */
  bar: number;
  /** Offset within the BAR. */
  offset: number;
  /** Length of the structure. */
  length: number;
  /** notify_off_multiplier (notify capability only). */
  notifyOffMultiplier?: number;
}

/**
 * The notification structure (§4.1.4.4) as the transport checked it, from its one walk of
 * the capability list: forwarding workers notify at `offset` plus a queue's set-up offset.
 */
export interface NotifyLocation {
  /** BAR index. */
  readonly bar: number;
  /** Offset of the structure within the BAR (2-byte aligned). */
  readonly offset: number;
  /** Bytes of the structure that lie inside the BAR (every queue's register is within). */
  readonly length: number;
  /** notify_off_multiplier: 0 or an even power of two (§4.1.4.4.1). */
  readonly multiplier: number;
}

/**
 * Reads virtio's vendor capabilities from config space (struct virtio_pci_cap, §4.1.4).
 * The first capability of each type wins, as the spec asks drivers to use (§4.1.4.1).
 *
 * @example
 * ```ts ignore
 * import { findVirtioCaps } from "./pci_transport.ts";
 * const caps = findVirtioCaps(device.config);
 * caps.get(1); // the common configuration
 * ```
 */
export function findVirtioCaps(config: RegionIo): Map<number, VirtioCapLocation> {
  const found = new Map<number, VirtioCapLocation>();
  for (const cap of listCapabilities(config)) {
    if (cap.id !== PCI_CAP_ID_VNDR) continue;
    const o = cap.offset;
    const type = config.read8(o + 3);
    if (found.has(type) || type < 1 || type > 5) continue;
    // struct virtio_pci_cap is 16 bytes, virtio_pci_notify_cap 20: one that does not fit
    // in config space (or claims a shorter cap_len) is malformed and ignored.
    const need = type === VIRTIO_PCI_CAP_NOTIFY_CFG ? 20 : 16;
    if (o + need > config.size || config.read8(o + 2) < need) continue;
    const bar = config.read8(o + 4);
    if (bar > 5) continue; // reserved BAR values must be ignored (§4.1.4)
    const loc: VirtioCapLocation = {
      type,
      bar,
      offset: config.read32(o + 8),
      length: config.read32(o + 12),
    };
    if (type === VIRTIO_PCI_CAP_NOTIFY_CFG) loc.notifyOffMultiplier = config.read32(o + 16);
    found.set(type, loc);
  }
  return found;
}

/**
 * Notifies one queue by writing its index at its notification address (§4.1.4.4), through
 * the notify structure's region (a mapped BAR or vfio-user messages).
 *
 * @example
 * ```ts ignore
 * const n = transport.setupQueue(0, 256, desc, avail, used); // a RegionNotifier
 * n.notify(); // 16-bit write of 0 at receiveq1's notification address
 * ```
 */
export class RegionNotifier implements QueueNotifier {
  readonly #io: RegionIo;
  readonly #at: number;
  readonly #index: number;

  /** Writes `index` at offset `at` of `io`. */
  constructor(io: RegionIo, at: number, index: number) {
    this.#io = io;
    this.#at = at;
    this.#index = index;
  }

  /** Sends the notification. */
  notify(): void {
    this.#io.write16(this.#at, this.#index);
  }

  /**
   * Offset of the register in the notify structure, as checked at set-up (§4.1.4.4:
   * queue_notify_off × notify_off_multiplier): forwarding workers notify here too.
   */
  get offset(): number {
    return this.#at;
  }
}

/** The modern virtio-pci transport of one device (§4.1), over kernel VFIO or vfio-user. */
export class VirtioPciTransport implements VirtioTransport {
  /** The underlying PCI function. */
  readonly pci: PciDevice;
  /** The PCI function's name. */
  readonly name: string;
  /** DMA memory is mapped for the PCI function (through its IOMMU, or its vfio-user server). */
  readonly dma: PciDevice;
  /** The common configuration structure. */
  readonly common: RegionIo;
  /** The device-specific configuration structure. */
  readonly deviceConfig: RegionIo;
  /** The ISR status byte. */
  readonly isr: RegionIo;
  /**
   * Where the notification structure is, checked against its BAR when the transport was
   * made; the capability list is not read again.
   *
   * @example
   * ```ts ignore
   * const { bar, offset } = transport.notifyLocation; // e.g. BAR4 +0x3000
   * ```
   */
  readonly notifyLocation: NotifyLocation;
  readonly #notify: RegionIo;
  readonly #notifyMultiplier: number;
  /** Each set-up queue's notification register, as an offset in the notify structure. */
  readonly #notifyAt = new Map<number, number>();

  /**
   * Locates the virtio structures of `pci` and enables memory decoding and bus mastering.
   * Throws NOT_VIRTIO_NET when a structure is missing, DEVICE_MISBEHAVED when the
   * capability list is malformed or a structure is misaligned or lies outside its BAR.
   *
   * @example
   * ```ts ignore
   * import { VirtioPciTransport } from "./pci_transport.ts";
   * const t = new VirtioPciTransport(pciDevice);
   * t.reset();
   * ```
   */
  constructor(pci: PciDevice) {
    this.pci = pci;
    this.name = pci.name;
    this.dma = pci;
    const caps = readCaps(pci);
    const broken = (what: string): never => {
      throw new DriverError("DEVICE_MISBEHAVED", `${pci.name}'s ${what}: the device is broken.`);
    };
    // `align`: §4.1.4.3.1, §4.1.4.4.1 and §4.1.4.6.1 (common and device configuration
    // 4-byte aligned, notifications 2-byte; ISR any).
    const need = (type: number, what: string, min: number, align: number): RegionIo => {
      const loc = caps.get(type);
      if (!loc) {
        throw new DriverError(
          "NOT_VIRTIO_NET",
          `${pci.name} has no virtio ${what} capability: it is not a modern (virtio 1.x) virtio-pci device; for QEMU use disable-legacy=on or a machine type that offers virtio 1.`,
        );
      }
      if (loc.offset % align !== 0) {
        broken(
          `virtio ${what} structure at BAR${loc.bar} +0x${
            loc.offset.toString(16)
          } is not ${align}-byte aligned`,
        );
      }
      const bar = pci.bar(loc.bar);
      if (loc.length < min || loc.offset + Math.max(min, 1) > bar.size) {
        throw new DriverError(
          "DEVICE_MISBEHAVED",
          `${pci.name}'s virtio ${what} structure (BAR${loc.bar} +0x${
            loc.offset.toString(16)
          }, ${loc.length} bytes) does not fit its BAR of ${bar.size} bytes: the device is broken.`,
        );
      }
      return new SubRegionIo(bar, loc.offset, Math.min(loc.length, bar.size - loc.offset));
    };
    this.common = need(VIRTIO_PCI_CAP_COMMON_CFG, "common configuration", COMMON_CFG_MIN_LEN, 4);
    this.#notify = need(VIRTIO_PCI_CAP_NOTIFY_CFG, "notification", 2, 2);
    const notifyCap = caps.get(VIRTIO_PCI_CAP_NOTIFY_CFG)!;
    const m = notifyCap.notifyOffMultiplier ?? 0;
    // §4.1.4.4.1: 0 or an even power of two, so every notification address stays 2-byte
    // aligned for the 16-bit write.
    if (m === 1 || (m & (m - 1)) !== 0) {
      broken(`notify_off_multiplier ${m} is neither 0 nor an even power of two`);
    }
    this.#notifyMultiplier = m;
    this.notifyLocation = Object.freeze({
      bar: notifyCap.bar,
      offset: notifyCap.offset,
      length: this.#notify.size,
      multiplier: m,
    });
    this.isr = need(VIRTIO_PCI_CAP_ISR_CFG, "ISR", 1, 1);
    this.deviceConfig = need(VIRTIO_PCI_CAP_DEVICE_CFG, "device configuration", 0, 4);
    const cmd = pci.config.read16(PCI_COMMAND);
    pci.config.write16(PCI_COMMAND, cmd | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
  }

  /** device_status. */
  get status(): number {
    return this.common.read8(COMMON_STATUS);
  }

  /** Sets status bits (the spec's handshake only ever adds bits until a reset). */
  addStatus(bits: number): void {
    this.common.write8(COMMON_STATUS, this.status | bits);
  }

  /**
   * Resets the device: writes 0 and waits until device_status reads 0 (§4.1.4.3.2),
   * up to `timeoutMs`.
   */
  reset(timeoutMs = 1000): void {
    this.#notifyAt.clear(); // queues are set up again after a reset
    this.common.write8(COMMON_STATUS, 0);
    const deadline = Date.now() + timeoutMs;
    while (this.common.read8(COMMON_STATUS) !== 0) {
      if (Date.now() > deadline) {
        throw new DriverError(
          "DEVICE_MISBEHAVED",
          `${this.pci.name} did not complete its reset within ${timeoutMs} ms: reset the function (echo 1 > /sys/bus/pci/devices/.../reset) and try again.`,
        );
      }
    }
  }

  /** The 64-bit device_feature (both halves). */
  deviceFeatures(): bigint {
    this.common.write32(COMMON_DFSELECT, 0);
    const lo = this.common.read32(COMMON_DF);
    this.common.write32(COMMON_DFSELECT, 1);
    const hi = this.common.read32(COMMON_DF);
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  /**
   * Writes driver_feature, sets FEATURES_OK and reads it back (§3.1.1 step 5–6): a device
   * that clears it does not accept the subset.
   */
  setDriverFeatures(features: bigint): void {
    this.common.write32(COMMON_GFSELECT, 0);
    this.common.write32(COMMON_GF, Number(features & 0xffff_ffffn));
    this.common.write32(COMMON_GFSELECT, 1);
    this.common.write32(COMMON_GF, Number(features >> 32n));
    this.addStatus(VIRTIO_CONFIG_S_FEATURES_OK);
    if (!(this.status & VIRTIO_CONFIG_S_FEATURES_OK)) {
      this.addStatus(VIRTIO_CONFIG_S_FAILED);
      throw new DriverError(
        "DEVICE_REFUSED",
        `${this.pci.name} refused the feature set ${
          featureNames(features).join(", ")
        } (FEATURES_OK did not stick): the device needs a feature this driver does not offer.`,
      );
    }
  }

  /** Number of virtqueues the device supports. */
  numQueues(): number {
    return this.common.read16(COMMON_NUMQ);
  }

  /** queue_size of queue `index` as the device offers it (0: the queue does not exist). */
  queueMaxSize(index: number): number {
    this.common.write16(COMMON_Q_SELECT, index);
    return this.common.read16(COMMON_Q_SIZE);
  }

  /**
   * Registers queue `index`: size, the three ring IOVAs, no MSI-X vector (this driver
   * polls), then queue_enable (§4.1.5.1.3). Returns what notifies the queue.
   */
  setupQueue(
    index: number,
    size: number,
    descIova: number,
    availIova: number,
    usedIova: number,
  ): QueueNotifier {
    const c = this.common;
    c.write16(COMMON_Q_SELECT, index);
    c.write16(COMMON_Q_SIZE, size);
    c.write16(COMMON_Q_MSIX, VIRTIO_MSI_NO_VECTOR);
    write64(c, COMMON_Q_DESCLO, descIova);
    write64(c, COMMON_Q_AVAILLO, availIova);
    write64(c, COMMON_Q_USEDLO, usedIova);
    const notifyOff = c.read16(COMMON_Q_NOFF);
    // §4.1.4.4: the queue's notification address is
    // cap.offset + queue_notify_off * notify_off_multiplier. Checked before the queue is
    // enabled, so a broken device does not get a live queue.
    const at = notifyOff * this.#notifyMultiplier;
    if (at + 2 > this.#notify.size) {
      throw new DriverError(
        "DEVICE_MISBEHAVED",
        `${this.pci.name} put queue ${index}'s notification address outside its notify structure: the device is broken.`,
      );
    }
    c.write16(COMMON_Q_ENABLE, 1);
    this.#notifyAt.set(index, at);
    return new RegionNotifier(this.#notify, at, index);
  }

  /**
   * How a worker notifies queue `index`: at the register set-up checked (§4.1.4.4), in the
   * notify structure found when the transport was made. Nothing is read from the device
   * again, so a device that answers something else now cannot move a worker's stores.
   */
  doorbell(index: number): Doorbell {
    const at = this.#notifyAt.get(index);
    if (at === undefined) {
      throw new RangeError(`${this.name} has not set up queue ${index}: it has no doorbell yet`);
    }
    const loc = this.notifyLocation;
    return this.pci.doorbell16(loc.bar, loc.offset + at, index);
  }

  /**
   * Routes queue `index`'s interrupts to eventfd `fd` through an MSI-X vector
   * (pci_queue_interrupts.ts).
   */
  routeQueueInterrupt(
    index: number,
    fd: number,
    options: QueueInterruptOptions = {},
  ): QueueInterruptRoute {
    return routeMsixQueueInterrupt(this, index, fd, options);
  }

  /** Closes the PCI function (`restoreDriver`: back to its kernel driver if this process took it). */
  close(options?: { restoreDriver?: boolean }): void {
    this.pci.close(options);
  }

  /**
   * Maps queue `index`'s interrupts to MSI-X vector `vector` (VIRTIO_MSI_NO_VECTOR
   * unmaps them) and returns what the device reads back (§4.1.5.1.2 MSI-X Vector
   * Configuration): the vector on success, VIRTIO_MSI_NO_VECTOR when the device could not
   * map it (§4.1.5.1.2.1: "on failure, NO_VECTOR is returned"). The caller checks.
   *
   * @example
   * ```ts ignore
   * if (transport.setQueueVector(0, 1) !== 1) throw new Error("receiveq1 has no vector");
   * ```
   */
  setQueueVector(index: number, vector: number): number {
    const c = this.common;
    c.write16(COMMON_Q_SELECT, index);
    c.write16(COMMON_Q_MSIX, vector);
    return c.read16(COMMON_Q_MSIX);
  }

  /** queue_msix_vector of queue `index` as the device reports it (§4.1.4.3). */
  queueVector(index: number): number {
    this.common.write16(COMMON_Q_SELECT, index);
    return this.common.read16(COMMON_Q_MSIX);
  }

  /**
   * Maps configuration-change interrupts to MSI-X vector `vector` (config_msix_vector,
   * §4.1.5.1.2) and returns the read-back value, VIRTIO_MSI_NO_VECTOR on failure.
   */
  setConfigVector(vector: number): number {
    this.common.write16(COMMON_MSIX, vector);
    return this.common.read16(COMMON_MSIX);
  }

  /** Throws when the device set DEVICE_NEEDS_RESET or FAILED. */
  checkHealthy(): void {
    const s = this.status;
    if (s & (VIRTIO_CONFIG_S_NEEDS_RESET | VIRTIO_CONFIG_S_FAILED)) {
      throw new DriverError(
        "DEVICE_MISBEHAVED",
        `${this.pci.name} reports ${
          s & VIRTIO_CONFIG_S_NEEDS_RESET ? "DEVICE_NEEDS_RESET" : "FAILED"
        }: restart the port to reset the device.`,
      );
    }
    // Reset under the driver (by someone else, or a device that reset itself): status no
    // longer says DRIVER_OK, and the queues the driver set up are gone.
    if (!(s & VIRTIO_CONFIG_S_DRIVER_OK)) {
      throw new DriverError(
        "DEVICE_MISBEHAVED",
        `${this.pci.name} was reset under the driver (device_status reads ${s}, without DRIVER_OK): restart the port to set it up again.`,
      );
    }
  }

  /**
   * Reads device configuration consistently: repeats `read` until config_generation is
   * the same before and after (§4.1.4.3.1).
   */
  readConfig<T>(read: (cfg: RegionIo) => T): T {
    for (let i = 0; i < 100; i++) {
      const before = this.common.read8(COMMON_CFGGENERATION);
      const value = read(this.deviceConfig);
      if (this.common.read8(COMMON_CFGGENERATION) === before) return value;
    }
    throw new DriverError(
      "DEVICE_MISBEHAVED",
      `${this.pci.name}'s configuration generation never settled: the device is broken.`,
    );
  }
}

/** findVirtioCaps over `pci`'s config space, a malformed capability list as a DriverError. */
function readCaps(pci: PciDevice): Map<number, VirtioCapLocation> {
  try {
    return findVirtioCaps(pci.config);
  } catch (e) {
    if (!(e instanceof RangeError)) throw e;
    throw new DriverError(
      "DEVICE_MISBEHAVED",
      `${pci.name}'s ${e.message}: the device is broken.`,
      { cause: e },
    );
  }
}

function write64(io: RegionIo, offset: number, value: number): void {
  io.write32(offset, value % 0x1_0000_0000);
  io.write32(offset + 4, Math.floor(value / 0x1_0000_0000));
}
