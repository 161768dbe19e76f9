/**
 * An emulated modern virtio-net-pci function for unit tests: QEMU's config space (virtio
 * capabilities for common, ISR, device-config and notify structures in BAR4), a BAR4
 * whose common configuration registers behave as virtio 1.x §4.1.4.3 describes (feature
 * select windows, a 16-bit queue_select, status handshake, config generation), and a log
 * of what the driver did to the function (resets, DMA mappings, close), in order. Serves
 * the transport directly ({@linkcode device}) and real {@linkcode VirtioNetPort}s opened
 * on it ({@linkcode portDevice}, {@linkcode openFakePort}), as vfio-user ports are opened.
 *
 * BAR4 is a {@linkcode MappedRegionIo} over ordinary memory, so the engine hands workers
 * its address as it would a mmap'd BAR's: a worker's notification is a store there.
 *
 * @module
 */

import assert from "node:assert/strict";
import { DriverError } from "../../src/errors.ts";
import {
  PCI_CAP_ID_VNDR,
  PCI_CAPABILITY_LIST,
  PCI_COMMAND,
  PCI_STATUS,
  PCI_STATUS_CAP_LIST,
} from "../../src/pci/capabilities.ts";
import type { Doorbell } from "../../src/dma/doorbell.ts";
import {
  type DmaSegment,
  mappedDoorbell16,
  MappedRegionIo,
  type PciDevice,
  type RegionIo,
} from "../../src/pci/pci_device.ts";
import {
  COMMON_CFGGENERATION,
  COMMON_DF,
  COMMON_DFSELECT,
  COMMON_GF,
  COMMON_GFSELECT,
  COMMON_NUMQ,
  COMMON_Q_AVAILLO,
  COMMON_Q_DESCLO,
  COMMON_Q_ENABLE,
  COMMON_Q_MSIX,
  COMMON_Q_NOFF,
  COMMON_Q_SELECT,
  COMMON_Q_SIZE,
  COMMON_Q_USEDLO,
  COMMON_STATUS,
  VirtioPciTransport,
} from "../../src/virtio/pci_transport.ts";
import {
  VIRTIO_CONFIG_S_DRIVER_OK,
  VIRTIO_CONFIG_S_FEATURES_OK,
  VIRTIO_CONFIG_S_NEEDS_RESET,
} from "../../src/virtio/status.ts";
import { VirtioNetPort } from "../../src/net/port.ts";
import { pciTransport } from "../../src/open_port.ts";
import type { PortOptions } from "../../src/net/port.ts";

/** Where BAR4 holds each structure (as QEMU lays them out). */
export const COMMON_AT = 0x0000, ISR_AT = 0x1000, DEVCFG_AT = 0x2000, NOTIFY_AT = 0x3000;
/** BAR4's size. */
export const BAR_SIZE = 0x4000;
/** notify_off_multiplier of {@linkcode configSpace} unless told otherwise. */
export const MULTIPLIER = 4;
/** Where a "moved" notify capability points after the function is enabled. */
export const NOTIFY_MOVED_TO = 0x3800;

/** One queue's registers as the device holds them. */
export interface QueueRegs {
  size: number;
  msix: number;
  enable: number;
  notifyOff: number;
  desc: number[]; // [lo, hi]
  driver: number[];
  device: number[];
}

/**
 * BAR4 of an emulated virtio-net device: the common configuration registers emulated, the
 * rest plain memory ({@linkcode mem} writes it as the device would, bypassing emulation).
 *
 * @example
 * ```ts ignore
 * const bar = new FakeBar4(3);
 * bar.deviceFeatures = 1n << 32n;
 * bar.mem.write16(DEVCFG_AT + 10, 1500); // the device's MTU
 * ```
 */
export class FakeBar4 extends MappedRegionIo {
  /** The same memory without the emulation, for a test playing the device. */
  readonly mem: MappedRegionIo = new MappedRegionIo(this.buffer);
  /** "reset" per reset the driver wrote; the function's log (see {@linkcode FakePci}). */
  readonly events: string[] = [];
  deviceFeatures = 0n;
  driverFeatures = 0n;
  dfselect = 0;
  gfselect = 0;
  status = 0;
  /** Whether FEATURES_OK sticks for the driver's features. */
  accept: (features: bigint) => boolean = () => true;
  /** Status reads that still show the old value after a reset write (-1: forever). */
  resetLag = 0;
  #lagged = 0;
  #oldStatus = 0;
  /** The device sets DEVICE_NEEDS_RESET as soon as the driver sets DRIVER_OK. */
  needsResetOnDriverOk = false;
  generation = 0;
  /** Device-config reads at offset 0 that bump the generation (a change mid-read). */
  configChanges = 0;
  queueSelect = 0;
  queues: QueueRegs[];
  /** queue_notify_off read for an enabled queue (a device that changes its mind later). */
  notifyOffAfterEnable: number | undefined;
  notifications: { offset: number; value: number }[] = [];
  /** Vectors the device has (a mapping to one beyond reads back as NO_VECTOR). */
  msixTableSize = 4;

  constructor(numQueues: number, maxSize = 256) {
    super(new ArrayBuffer(BAR_SIZE));
    this.queues = Array.from({ length: numQueues }, (_, i) => ({
      size: maxSize,
      msix: 0,
      enable: 0,
      notifyOff: i,
      desc: [0, 0],
      driver: [0, 0],
      device: [0, 0],
    }));
  }
  #q(): QueueRegs {
    return this.queues[this.queueSelect] ??
      { size: 0, msix: 0, enable: 0, notifyOff: 0, desc: [0, 0], driver: [0, 0], device: [0, 0] };
  }

  override read8(o: number): number {
    if (o === COMMON_AT + COMMON_STATUS) {
      if (this.#lagged !== 0) {
        if (this.#lagged > 0) this.#lagged--;
        return this.#oldStatus;
      }
      return this.status;
    }
    if (o === COMMON_AT + COMMON_CFGGENERATION) return this.generation;
    if (o === DEVCFG_AT && this.configChanges > 0) {
      this.configChanges--;
      this.generation = (this.generation + 1) & 0xff;
    }
    return super.read8(o);
  }
  override read16(o: number): number {
    const q = this.#q();
    switch (o - COMMON_AT) {
      case COMMON_NUMQ:
        return this.queues.length;
      case COMMON_Q_SELECT:
        return this.queueSelect;
      case COMMON_Q_SIZE:
        return q.size;
      case COMMON_Q_MSIX:
        return q.msix;
      case COMMON_Q_ENABLE:
        return q.enable;
      case COMMON_Q_NOFF:
        return q.enable && this.notifyOffAfterEnable !== undefined
          ? this.notifyOffAfterEnable
          : q.notifyOff;
    }
    return super.read16(o);
  }
  override read32(o: number): number {
    if (o === COMMON_AT + COMMON_DF) {
      if (this.dfselect > 1) return 0;
      return Number((this.deviceFeatures >> BigInt(32 * this.dfselect)) & 0xffff_ffffn);
    }
    return super.read32(o);
  }
  override write8(o: number, v: number): void {
    if (o === COMMON_AT + COMMON_STATUS) {
      if (v === 0) {
        this.events.push("reset");
        this.#oldStatus = this.status;
        this.#lagged = this.resetLag;
        this.status = 0;
        this.driverFeatures = 0n;
        return;
      }
      const newlyOk = (v & VIRTIO_CONFIG_S_FEATURES_OK) &&
        !(this.status & VIRTIO_CONFIG_S_FEATURES_OK);
      this.status = newlyOk && !this.accept(this.driverFeatures)
        ? v & ~VIRTIO_CONFIG_S_FEATURES_OK
        : v;
      if (this.needsResetOnDriverOk && (v & VIRTIO_CONFIG_S_DRIVER_OK)) {
        this.status |= VIRTIO_CONFIG_S_NEEDS_RESET;
      }
      return;
    }
    super.write8(o, v);
  }
  override write16(o: number, v: number): void {
    if (o >= NOTIFY_AT) {
      this.notifications.push({ offset: o - NOTIFY_AT, value: v });
      return;
    }
    const q = this.#q();
    switch (o - COMMON_AT) {
      case COMMON_Q_SELECT:
        this.queueSelect = v & 0xffff; // a 16-bit register
        return;
      case COMMON_Q_SIZE:
        q.size = v;
        return;
      case COMMON_Q_MSIX:
        // QEMU's virtio_pci_common_write: a vector msix_vector_use() refuses reads back as
        // VIRTIO_NO_VECTOR.
        q.msix = v !== 0xffff && v >= this.msixTableSize ? 0xffff : v;
        return;
      case COMMON_Q_ENABLE:
        q.enable = v;
        return;
    }
    super.write16(o, v);
  }
  override write32(o: number, v: number): void {
    const q = this.#q();
    const r = o - COMMON_AT;
    if (r === COMMON_DFSELECT) this.dfselect = v;
    else if (r === COMMON_GFSELECT) this.gfselect = v;
    else if (r === COMMON_GF) {
      const shift = BigInt(32 * this.gfselect);
      this.driverFeatures = (this.driverFeatures & ~(0xffff_ffffn << shift)) |
        (BigInt(v >>> 0) << shift);
    } else if (r >= COMMON_Q_DESCLO && r < COMMON_Q_USEDLO + 8) {
      const which = r < COMMON_Q_AVAILLO ? q.desc : r < COMMON_Q_USEDLO ? q.driver : q.device;
      which[(r & 4) >> 2] = v;
    } else super.write32(o, v);
  }
}

/**
 * Writes a virtio vendor capability (struct virtio_pci_cap, §4.1.4) at `at`, BAR4.
 *
 * @example
 * ```ts ignore
 * writeCap(new DataView(cfg.buffer), 0x40, 0, 1, COMMON_AT, 0x1000); // common config
 * ```
 */
export function writeCap(
  cfg: DataView,
  at: number,
  next: number,
  type: number,
  off: number,
  len: number,
) {
  cfg.setUint8(at, PCI_CAP_ID_VNDR);
  cfg.setUint8(at + 1, next);
  cfg.setUint8(at + 2, type === 2 ? 0x14 : 0x10);
  cfg.setUint8(at + 3, type);
  cfg.setUint8(at + 4, 4);
  cfg.setUint32(at + 8, off, true);
  cfg.setUint32(at + 12, len, true);
}

/**
 * QEMU virtio-net-pci (1af4:1041) config space: caps notify (0x70), device (0x60), ISR
 * (0x50) and common (0x40) on BAR4.
 *
 * @example
 * ```ts ignore
 * const pci = new FakePci(configSpace({ multiplier: 0x400 }), new FakeBar4(3));
 * ```
 */
export function configSpace(opts: { multiplier?: number; omitCommon?: boolean } = {}): Uint8Array {
  const bytes = new Uint8Array(256);
  const cfg = new DataView(bytes.buffer);
  cfg.setUint16(0, 0x1af4, true);
  cfg.setUint16(2, 0x1041, true);
  cfg.setUint16(PCI_COMMAND, 0x0400, true); // INTx disabled, memory and master off
  cfg.setUint16(PCI_STATUS, PCI_STATUS_CAP_LIST, true);
  cfg.setUint8(PCI_CAPABILITY_LIST, 0x70);
  writeCap(cfg, 0x70, 0x60, 2, NOTIFY_AT, 0x1000);
  cfg.setUint32(0x70 + 16, opts.multiplier ?? MULTIPLIER, true);
  writeCap(cfg, 0x60, 0x50, 4, DEVCFG_AT, 0x1000);
  writeCap(cfg, 0x50, opts.omitCommon ? 0 : 0x40, 3, ISR_AT, 0x1000);
  if (!opts.omitCommon) writeCap(cfg, 0x40, 0, 1, COMMON_AT, 0x1000);
  return bytes;
}

/** Config space that rewrites its capabilities when PCI_COMMAND is written. */
class FakeConfig extends MappedRegionIo {
  /**
   * Once the driver enables the function (writes PCI_COMMAND, which the transport does
   * after its walk of the capabilities): "loop" makes the capability list a loop, "moved"
   * has the notify capability name offset {@linkcode NOTIFY_MOVED_TO}.
   */
  capsAfterEnable: "loop" | "moved" | undefined;
  override write16(o: number, v: number): void {
    super.write16(o, v);
    if (o !== PCI_COMMAND) return;
    if (this.capsAfterEnable === "loop") super.write8(0x40 + 1, 0x70);
    if (this.capsAfterEnable === "moved") super.write32(0x70 + 8, NOTIFY_MOVED_TO);
  }
}

/**
 * The emulated function: `cfg` as config space, `bar4` as BAR4, and {@linkcode events}
 * logging what the driver did to it.
 *
 * @example
 * ```ts ignore
 * const pci = new FakePci(configSpace(), new FakeBar4(3));
 * new VirtioPciTransport(pci).reset();
 * pci.events; // ["reset"]
 * ```
 */
export class FakePci implements PciDevice {
  readonly name: string;
  readonly config: FakeConfig;
  readonly cfgBytes: Uint8Array;
  readonly bar4: FakeBar4;
  /** "reset", "dmaMap <iova>", "dmaUnmap <iova>", "function reset", "close", in order. */
  readonly events: string[];
  /** DMA mappings asked for. */
  dmaMaps = 0;

  constructor(cfg: Uint8Array, bar4: FakeBar4, name = "0000:00:04.0") {
    this.name = name;
    this.cfgBytes = cfg;
    this.config = new FakeConfig(cfg.buffer as ArrayBuffer);
    this.bar4 = bar4;
    this.events = bar4.events;
  }
  bar(index: number): RegionIo {
    // As vfio_pci_device.ts does for a BAR the function does not have.
    if (index !== 4) throw new DriverError("DEVICE_MISBEHAVED", `${this.name} has no BAR${index}.`);
    return this.bar4;
  }
  iovaRanges(): { start: bigint; end: bigint }[] {
    return [{ start: 0n, end: (1n << 39n) - 1n }];
  }
  dmaMap(_segment: DmaSegment, iova: bigint): void {
    this.dmaMaps++;
    this.events.push(`dmaMap ${iova}`);
  }
  dmaUnmap(iova: bigint, _size: number): void {
    this.events.push(`dmaUnmap ${iova}`);
  }
  reset(): void {
    this.events.push("function reset");
  }
  doorbell16(bar: number, offset: number, value: number): Doorbell {
    const bell = mappedDoorbell16(this.bar(bar), offset, value, `BAR${bar} of ${this.name}`);
    if (!bell) throw new Error(`BAR${bar} of the fake is not mapped`);
    return bell;
  }
  irqCount(_index: number): number {
    return 0;
  }
  setIrqEventfds(_index: number, _start: number, _fds: number[]): void {}
  close(_options?: { restoreDriver?: boolean }): void {
    this.events.push("close");
  }
}

/**
 * The function with `queues` queues and its transport.
 *
 * @example
 * ```ts ignore
 * const { bar, t } = device({ multiplier: 0x400 });
 * ```
 */
export function device(opts: { multiplier?: number; queues?: number } = {}) {
  const bar = new FakeBar4(opts.queues ?? 3);
  const pci = new FakePci(configSpace(opts), bar);
  return { bar, pci, t: new VirtioPciTransport(pci) };
}

/**
 * Asserts that `fn` throws a {@linkcode DriverError} with `code` and a message matching `what`.
 *
 * @example
 * ```ts ignore
 * assertDriverError(() => device({ multiplier: 3 }), "DEVICE_MISBEHAVED", /multiplier/);
 * ```
 */
export function assertDriverError(fn: () => unknown, code: string, what: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof DriverError, `expected DriverError, got ${e}`);
    assert.equal(e.code, code);
    assert.match(e.message, what);
    return true;
  });
}

/**
 * {@linkcode device} with every struct virtio_net_config field set (§5.1.4): MAC
 * 52:54:00:12:34:56, link down, 4 pairs, MTU 9000, 10 Gb/s full duplex, RSS limits.
 *
 * @example
 * ```ts ignore
 * const { t } = netConfigDevice();
 * readNetConfig(t, bit(VIRTIO_NET_F_MTU)).mtu; // 9000
 * ```
 */
export function netConfigDevice() {
  const d = device();
  const m = d.bar.mem;
  [0x52, 0x54, 0x00, 0x12, 0x34, 0x56].forEach((b, i) => m.write8(DEVCFG_AT + i, b));
  m.write16(DEVCFG_AT + 6, 0); // status: link down
  m.write16(DEVCFG_AT + 8, 4); // max_virtqueue_pairs
  m.write16(DEVCFG_AT + 10, 9000); // mtu
  m.write32(DEVCFG_AT + 12, 10000); // speed
  m.write8(DEVCFG_AT + 16, 1); // duplex
  m.write8(DEVCFG_AT + 17, 40); // rss_max_key_size
  m.write16(DEVCFG_AT + 18, 128); // rss_max_indirection_table_length
  m.write32(DEVCFG_AT + 20, 0x1ff); // supported_hash_types
  return d;
}

/** VERSION_1 | ACCESS_PLATFORM | VIRTIO_NET_F_MAC: what the driver cannot do without. */
const PORT_FEATURES = (1n << 32n) | (1n << 33n) | (1n << 5n);

/**
 * A function named `name` for {@linkcode openFakePort}: one queue pair and a control queue
 * slot, offering only the features a port needs, MAC 02:00:00:00:fa:00.
 *
 * @example
 * ```ts ignore
 * const dev = portDevice("vfio-user:/fake");
 * dev.bar4.needsResetOnDriverOk = true; // opening fails after DMA memory was mapped
 * ```
 */
export function portDevice(name = "vfio-user:/fake"): FakePci {
  const bar = new FakeBar4(3);
  bar.deviceFeatures = PORT_FEATURES;
  [2, 0, 0, 0, 0xfa, 0].forEach((b, i) => bar.mem.write8(DEVCFG_AT + i, b));
  return new FakePci(configSpace(), bar, name);
}

/**
 * Opens a port on `device` (small pool, no huge pages).
 *
 * @example
 * ```ts ignore
 * const dev = portDevice();
 * const port = openFakePort(dev);
 * port.close();
 * dev.events; // ["reset", "dmaMap …", …]
 * ```
 */
export function openFakePort(device: FakePci, options: PortOptions = {}): VirtioNetPort {
  return VirtioNetPort.open(pciTransport(device), {
    hugePages: false,
    poolSize: 512,
    ...options,
  });
}
