/**
 * An emulated modern virtio-net-pci function for unit tests: QEMU's config space (virtio
 * capabilities for common, ISR, device-config and notify structures in BAR4) and a BAR4
 * whose common configuration registers behave as virtio 1.x §4.1.4.3 describes (feature
 * select windows, a 16-bit queue_select, status handshake, config generation).
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
import {
  type DmaSegment,
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
import { VIRTIO_CONFIG_S_FEATURES_OK } from "../../src/virtio/status.ts";

/** Where BAR4 holds each structure. */
export const COMMON_AT = 0x0000, ISR_AT = 0x1000, DEVCFG_AT = 0x2000, NOTIFY_AT = 0x3000;
/** BAR4's size. */
export const BAR_SIZE = 0x4000;

export interface QueueRegs {
  size: number;
  msix: number;
  enable: number;
  notifyOff: number;
  desc: number[]; // [lo, hi]
  driver: number[];
  device: number[];
}

/** BAR4 of an emulated virtio-net device. */
export class FakeBar4 implements RegionIo {
  readonly size = BAR_SIZE;
  readonly mapped = true;
  readonly mem = new MappedRegionIo(new ArrayBuffer(BAR_SIZE));
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
  generation = 0;
  /** Device-config reads at offset 0 that bump the generation (a change mid-read). */
  configChanges = 0;
  queueSelect = 0;
  queues: QueueRegs[];
  notifications: { offset: number; value: number }[] = [];
  /** Vectors the device has (a mapping to one beyond reads back as NO_VECTOR). */
  msixTableSize = 4;

  constructor(numQueues: number, maxSize = 256) {
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

  read8(o: number): number {
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
    return this.mem.read8(o);
  }
  read16(o: number): number {
    switch (o - COMMON_AT) {
      case COMMON_NUMQ:
        return this.queues.length;
      case COMMON_Q_SELECT:
        return this.queueSelect;
      case COMMON_Q_SIZE:
        return this.#q().size;
      case COMMON_Q_MSIX:
        return this.#q().msix;
      case COMMON_Q_ENABLE:
        return this.#q().enable;
      case COMMON_Q_NOFF:
        return this.#q().notifyOff;
    }
    return this.mem.read16(o);
  }
  read32(o: number): number {
    if (o === COMMON_AT + COMMON_DF) {
      if (this.dfselect > 1) return 0;
      return Number((this.deviceFeatures >> BigInt(32 * this.dfselect)) & 0xffff_ffffn);
    }
    return this.mem.read32(o);
  }
  write8(o: number, v: number): void {
    if (o === COMMON_AT + COMMON_STATUS) {
      if (v === 0) {
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
      return;
    }
    this.mem.write8(o, v);
  }
  write16(o: number, v: number): void {
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
    this.mem.write16(o, v);
  }
  write32(o: number, v: number): void {
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
    } else this.mem.write32(o, v);
  }
}

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

/** QEMU virtio-net-pci config space: caps common/ISR/device/notify on BAR4. */
export function configSpace(opts: { multiplier?: number; omitCommon?: boolean } = {}): Uint8Array {
  const bytes = new Uint8Array(256);
  const cfg = new DataView(bytes.buffer);
  cfg.setUint16(0, 0x1af4, true);
  cfg.setUint16(2, 0x1041, true);
  cfg.setUint16(PCI_COMMAND, 0x0400, true); // INTx disabled, memory and master off
  cfg.setUint16(PCI_STATUS, PCI_STATUS_CAP_LIST, true);
  cfg.setUint8(PCI_CAPABILITY_LIST, 0x70);
  writeCap(cfg, 0x70, 0x60, 2, NOTIFY_AT, 0x1000);
  cfg.setUint32(0x70 + 16, opts.multiplier ?? 4, true);
  writeCap(cfg, 0x60, 0x50, 4, DEVCFG_AT, 0x1000);
  writeCap(cfg, 0x50, opts.omitCommon ? 0 : 0x40, 3, ISR_AT, 0x1000);
  if (!opts.omitCommon) writeCap(cfg, 0x40, 0, 1, COMMON_AT, 0x1000);
  return bytes;
}

export class FakePci implements PciDevice {
  readonly name = "0000:00:04.0";
  readonly config: MappedRegionIo;
  readonly cfgBytes: Uint8Array;
  readonly bar4: FakeBar4;
  constructor(cfg: Uint8Array, bar4: FakeBar4) {
    this.cfgBytes = cfg;
    this.config = new MappedRegionIo(cfg.buffer as ArrayBuffer);
    this.bar4 = bar4;
  }
  bar(index: number): RegionIo {
    if (index !== 4) throw new RangeError(`BAR${index} is absent`);
    return this.bar4;
  }
  iovaRanges() {
    return [{ start: 0n, end: (1n << 39n) - 1n }];
  }
  /** DMA mappings asked for. */
  dmaMaps = 0;
  dmaMap(_segment: DmaSegment, _iova: bigint): void {
    this.dmaMaps++;
  }
  dmaUnmap(_iova: bigint, _size: number): void {}
  reset(): void {}
  irqCount(_index: number): number {
    return 0;
  }
  setIrqEventfds(_index: number, _start: number, _fds: number[]): void {}
  close(_options?: { restoreDriver?: boolean }): void {}
}

export function device(opts: { multiplier?: number; queues?: number } = {}) {
  const bar = new FakeBar4(opts.queues ?? 3);
  const pci = new FakePci(configSpace(opts), bar);
  return { bar, pci, t: new VirtioPciTransport(pci) };
}

export function assertDriverError(fn: () => unknown, code: string, what: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof DriverError, `expected DriverError, got ${e}`);
    assert.equal(e.code, code);
    assert.match(e.message, what);
    return true;
  });
}

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
