/**
 * A fake virtio-net PCI function for opening real {@linkcode VirtioNetPort}s in unit tests
 * (through `openDevice`, as vfio-user ports are opened): QEMU's config-space layout with
 * the virtio capabilities on BAR4, a BAR4 whose common configuration registers behave as
 * §4.1.4.3 describes, and a log of what the driver did to the function (resets, DMA
 * mappings, close), in order.
 *
 * BAR4 is a {@linkcode MappedRegionIo} over ordinary memory, so the engine hands workers
 * its address as it would a mmap'd BAR's: a worker's notification is a store there.
 *
 * @module
 */

import {
  PCI_CAP_ID_VNDR,
  PCI_CAPABILITY_LIST,
  PCI_COMMAND,
  PCI_STATUS,
  PCI_STATUS_CAP_LIST,
} from "../../src/pci/capabilities.ts";
import {
  type DmaSegment,
  MappedRegionIo,
  type PciDevice,
  type RegionIo,
} from "../../src/pci/pci_device.ts";
import { VirtioNetPort } from "../../src/net/port.ts";
import type { PortOptions } from "../../src/net/port.ts";
import {
  COMMON_CFGGENERATION,
  COMMON_DF,
  COMMON_DFSELECT,
  COMMON_GF,
  COMMON_GFSELECT,
  COMMON_NUMQ,
  COMMON_Q_ENABLE,
  COMMON_Q_NOFF,
  COMMON_Q_SELECT,
  COMMON_Q_SIZE,
  COMMON_STATUS,
} from "../../src/virtio/pci_transport.ts";

/** Where the structures live in BAR4 (as QEMU lays them out). */
export const COMMON_AT = 0x0000, ISR_AT = 0x1000, DEVCFG_AT = 0x2000, NOTIFY_AT = 0x3000;
/** BAR4's size. */
export const BAR_SIZE = 0x4000;
/** notify_off_multiplier. */
export const MULTIPLIER = 4;

/** VERSION_1 | ACCESS_PLATFORM | VIRTIO_NET_F_MAC: what the driver cannot do without. */
const FEATURES = (1n << 32n) | (1n << 33n) | (1n << 5n);

/** Behaviour of a {@linkcode FakeNetDevice}. */
export interface FakeDeviceOptions {
  /** Queues the device has (default 3: one pair and a control queue slot). */
  queues?: number;
  /**
   * queue_notify_off the device answers for a queue once that queue is enabled (a device
   * that changes its mind after set-up); undefined: it keeps answering the queue index.
   */
  notifyOffAfterEnable?: number;
  /** device_status never reads back 0 after a reset from the Nth reset on (1-based). */
  resetHangsFrom?: number;
  /** The device sets DEVICE_NEEDS_RESET as soon as the driver sets DRIVER_OK. */
  needsResetOnDriverOk?: boolean;
  /**
   * Config space changes once the driver enables the function (writes PCI_COMMAND, which
   * the transport does after its walk of the capabilities): "loop" makes the capability
   * list a loop, "moved" has the notify capability name offset NOTIFY_MOVED_TO.
   */
  capsAfterEnable?: "loop" | "moved";
}

/** Where a "moved" notify capability points after the function is enabled. */
export const NOTIFY_MOVED_TO = 0x3800;

/** Config space that rewrites itself when PCI_COMMAND is written (see capsAfterEnable). */
class FakeConfig extends MappedRegionIo {
  constructor(buffer: ArrayBuffer, readonly opts: FakeDeviceOptions) {
    super(buffer);
  }
  override write16(o: number, v: number): void {
    super.write16(o, v);
    if (o !== PCI_COMMAND) return;
    if (this.opts.capsAfterEnable === "loop") super.write8(0x40 + 1, 0x70);
    if (this.opts.capsAfterEnable === "moved") super.write32(0x70 + 8, NOTIFY_MOVED_TO);
  }
}

/** BAR4: common configuration registers emulated, the rest plain memory. */
class FakeBar4 extends MappedRegionIo {
  status = 0;
  #dfselect = 0;
  #queueSelect = 0;
  readonly #enabled: boolean[];
  #resets = 0;
  #stuck = false;

  constructor(readonly dev: FakeNetDevice, readonly opts: FakeDeviceOptions) {
    super(new ArrayBuffer(BAR_SIZE));
    this.#enabled = Array.from({ length: opts.queues ?? 3 }, () => false);
  }

  override read8(o: number): number {
    if (o === COMMON_AT + COMMON_STATUS) return this.#stuck ? 0x0f : this.status;
    if (o === COMMON_AT + COMMON_CFGGENERATION) return 0;
    return super.read8(o);
  }
  override read16(o: number): number {
    const q = this.#queueSelect;
    switch (o - COMMON_AT) {
      case COMMON_NUMQ:
        return this.#enabled.length;
      case COMMON_Q_SIZE:
        return q < this.#enabled.length ? 256 : 0;
      case COMMON_Q_NOFF:
        return this.#enabled[q] && this.opts.notifyOffAfterEnable !== undefined
          ? this.opts.notifyOffAfterEnable
          : q;
    }
    return super.read16(o);
  }
  override read32(o: number): number {
    if (o === COMMON_AT + COMMON_DF) {
      return this.#dfselect > 1
        ? 0
        : Number((FEATURES >> BigInt(32 * this.#dfselect)) & 0xffff_ffffn);
    }
    return super.read32(o);
  }
  override write8(o: number, v: number): void {
    if (o === COMMON_AT + COMMON_STATUS) {
      if (v === 0) {
        this.#resets++;
        this.#stuck = this.opts.resetHangsFrom !== undefined &&
          this.#resets >= this.opts.resetHangsFrom;
        this.#enabled.fill(false);
        this.dev.events.push("reset");
      }
      // DRIVER_OK (4) → DEVICE_NEEDS_RESET (0x40), when asked to fail.
      this.status = this.opts.needsResetOnDriverOk && (v & 4) ? v | 0x40 : v;
      return;
    }
    super.write8(o, v);
  }
  override write16(o: number, v: number): void {
    switch (o - COMMON_AT) {
      case COMMON_Q_SELECT:
        this.#queueSelect = v;
        return;
      case COMMON_Q_ENABLE:
        if (this.#queueSelect < this.#enabled.length) this.#enabled[this.#queueSelect] = v === 1;
        return;
    }
    super.write16(o, v);
  }
  override write32(o: number, v: number): void {
    if (o === COMMON_AT + COMMON_DFSELECT) this.#dfselect = v;
    else if (o !== COMMON_AT + COMMON_GFSELECT && o !== COMMON_AT + COMMON_GF) super.write32(o, v);
  }
}

function writeCap(cfg: DataView, at: number, next: number, type: number, off: number, len: number) {
  cfg.setUint8(at, PCI_CAP_ID_VNDR);
  cfg.setUint8(at + 1, next);
  cfg.setUint8(at + 2, type === 2 ? 0x14 : 0x10);
  cfg.setUint8(at + 3, type);
  cfg.setUint8(at + 4, 4);
  cfg.setUint32(at + 8, off, true);
  cfg.setUint32(at + 12, len, true);
}

/** A virtio-net function (1af4:1041) that logs what the driver does to it. */
export class FakeNetDevice implements PciDevice {
  readonly name: string;
  readonly config: MappedRegionIo;
  readonly bar4: FakeBar4;
  /** "reset", "dmaMap <iova>", "dmaUnmap <iova>", "close", in the order they happened. */
  readonly events: string[] = [];

  constructor(name = "vfio-user:/fake", opts: FakeDeviceOptions = {}) {
    this.name = name;
    const bytes = new Uint8Array(256);
    const cfg = new DataView(bytes.buffer);
    cfg.setUint16(0, 0x1af4, true);
    cfg.setUint16(2, 0x1041, true);
    cfg.setUint16(PCI_STATUS, PCI_STATUS_CAP_LIST, true);
    cfg.setUint16(PCI_COMMAND, 0, true);
    cfg.setUint8(PCI_CAPABILITY_LIST, 0x70);
    writeCap(cfg, 0x70, 0x60, 2, NOTIFY_AT, 0x1000);
    cfg.setUint32(0x70 + 16, MULTIPLIER, true);
    writeCap(cfg, 0x60, 0x50, 4, DEVCFG_AT, 0x1000);
    writeCap(cfg, 0x50, 0x40, 3, ISR_AT, 0x1000);
    writeCap(cfg, 0x40, 0, 1, COMMON_AT, 0x1000);
    this.config = new FakeConfig(bytes.buffer, opts);
    this.bar4 = new FakeBar4(this, opts);
    for (let i = 0; i < 6; i++) this.bar4.write8(DEVCFG_AT + i, [2, 0, 0, 0, 0xfa, 0][i]);
  }

  bar(index: number): RegionIo {
    if (index !== 4) throw new RangeError(`BAR${index} is absent`);
    return this.bar4;
  }
  iovaRanges(): { start: bigint; end: bigint }[] {
    return [{ start: 0n, end: (1n << 39n) - 1n }];
  }
  dmaMap(_segment: DmaSegment, iova: bigint): void {
    this.events.push(`dmaMap ${iova}`);
  }
  dmaUnmap(iova: bigint, _size: number): void {
    this.events.push(`dmaUnmap ${iova}`);
  }
  reset(): void {
    this.events.push("function reset");
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
 * Opens a port on `device` (small pool, no huge pages).
 *
 * @example
 * ```ts ignore
 * const dev = new FakeNetDevice();
 * const port = openFakePort(dev);
 * port.close();
 * dev.events; // ["reset", "dmaMap …", …]
 * ```
 */
export function openFakePort(device: FakeNetDevice, options: PortOptions = {}): VirtioNetPort {
  return VirtioNetPort.open(device.name, {
    hugePages: false,
    poolSize: 512,
    ...options,
    openDevice: () => device,
  });
}
