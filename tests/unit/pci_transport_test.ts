/**
 * The modern virtio-pci transport (src/virtio/pci_transport.ts) and the virtio-net config
 * reader (src/net/config.ts) against an emulated device: QEMU's virtio-net-pci config
 * space and a BAR4 whose common configuration registers behave as §4.1.4.3 describes
 * (feature select windows, queue select, status handshake, config generation).
 */

import assert from "node:assert/strict";
import { DriverError } from "../../src/errors.ts";
import { formatMac, readNetConfig } from "../../src/net/config.ts";
import {
  VIRTIO_NET_F_MAC,
  VIRTIO_NET_F_MQ,
  VIRTIO_NET_F_MTU,
  VIRTIO_NET_F_RSS,
  VIRTIO_NET_F_STATUS,
} from "../../src/net/features.ts";
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
import { bit } from "../../src/virtio/features.ts";
import {
  COMMON_CFGGENERATION,
  COMMON_DF,
  COMMON_DFSELECT,
  COMMON_GF,
  COMMON_GFSELECT,
  COMMON_MSIX,
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
  VIRTIO_MSI_NO_VECTOR,
  VirtioPciTransport,
} from "../../src/virtio/pci_transport.ts";
import {
  VIRTIO_CONFIG_S_ACKNOWLEDGE,
  VIRTIO_CONFIG_S_DRIVER,
  VIRTIO_CONFIG_S_FAILED,
  VIRTIO_CONFIG_S_FEATURES_OK,
  VIRTIO_CONFIG_S_NEEDS_RESET,
} from "../../src/virtio/status.ts";

const COMMON_AT = 0x0000, ISR_AT = 0x1000, DEVCFG_AT = 0x2000, NOTIFY_AT = 0x3000;
const BAR_SIZE = 0x4000;

Deno.test("common configuration offsets are those of struct virtio_pci_common_cfg (§4.1.4.3)", () => {
  assert.deepEqual(
    [
      COMMON_DFSELECT,
      COMMON_DF,
      COMMON_GFSELECT,
      COMMON_GF,
      COMMON_MSIX,
      COMMON_NUMQ,
      COMMON_STATUS,
      COMMON_CFGGENERATION,
      COMMON_Q_SELECT,
      COMMON_Q_SIZE,
      COMMON_Q_MSIX,
      COMMON_Q_ENABLE,
      COMMON_Q_NOFF,
      COMMON_Q_DESCLO,
      COMMON_Q_AVAILLO,
      COMMON_Q_USEDLO,
    ],
    [0, 4, 8, 12, 16, 18, 20, 21, 22, 24, 26, 28, 30, 32, 40, 48],
  );
  assert.equal(VIRTIO_MSI_NO_VECTOR, 0xffff);
});

interface QueueRegs {
  size: number;
  msix: number;
  enable: number;
  notifyOff: number;
  desc: number[]; // [lo, hi]
  driver: number[];
  device: number[];
}

/** BAR4 of an emulated virtio-net device. */
class FakeBar4 implements RegionIo {
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
        this.queueSelect = v;
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

function writeCap(cfg: DataView, at: number, next: number, type: number, off: number, len: number) {
  cfg.setUint8(at, PCI_CAP_ID_VNDR);
  cfg.setUint8(at + 1, next);
  cfg.setUint8(at + 2, type === 2 ? 0x14 : 0x10);
  cfg.setUint8(at + 3, type);
  cfg.setUint8(at + 4, 4);
  cfg.setUint32(at + 8, off, true);
  cfg.setUint32(at + 12, len, true);
}

/** QEMU virtio-net-pci config space: caps common/ISR/device/notify on BAR4. */
function configSpace(opts: { multiplier?: number; omitCommon?: boolean } = {}): Uint8Array {
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

class FakePci implements PciDevice {
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
  dmaMap(_segment: DmaSegment, _iova: bigint): void {}
  dmaUnmap(_iova: bigint, _size: number): void {}
  reset(): void {}
  irqCount(_index: number): number {
    return 0;
  }
  setIrqEventfds(_index: number, _start: number, _fds: number[]): void {}
  close(_options?: { restoreDriver?: boolean }): void {}
}

function device(opts: { multiplier?: number; queues?: number } = {}) {
  const bar = new FakeBar4(opts.queues ?? 3);
  const pci = new FakePci(configSpace(opts), bar);
  return { bar, pci, t: new VirtioPciTransport(pci) };
}

function assertDriverError(fn: () => unknown, code: string, what: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof DriverError, `expected DriverError, got ${e}`);
    assert.equal(e.code, code);
    assert.match(e.message, what);
    return true;
  });
}

Deno.test("the transport enables memory decoding and bus mastering, keeping other command bits", () => {
  const { pci } = device();
  assert.equal(pci.config.read16(PCI_COMMAND), 0x0400 | 0x2 | 0x4);
});

Deno.test("the transport's windows land on the structures the capabilities name", () => {
  const { bar, t } = device();
  bar.mem.write8(ISR_AT, 0x3);
  bar.mem.write8(DEVCFG_AT + 5, 0x56);
  assert.equal(t.isr.read8(0), 3);
  assert.equal(t.deviceConfig.read8(5), 0x56);
  assert.equal(t.common.size, 0x1000);
  assert.equal(t.deviceConfig.size, 0x1000);
});

Deno.test("a device without a common configuration capability is NOT_VIRTIO_NET", () => {
  const pci = new FakePci(configSpace({ omitCommon: true }), new FakeBar4(2));
  assertDriverError(
    () => new VirtioPciTransport(pci),
    "NOT_VIRTIO_NET",
    /0000:00:04\.0 has no virtio common configuration capability.*disable-legacy=on/,
  );
});

Deno.test("a virtio structure outside its BAR or too short is DEVICE_MISBEHAVED", () => {
  const past = configSpace();
  new DataView(past.buffer).setUint32(0x40 + 8, BAR_SIZE - 16, true); // common cfg at the end
  assertDriverError(
    () => new VirtioPciTransport(new FakePci(past, new FakeBar4(2))),
    "DEVICE_MISBEHAVED",
    /common configuration structure \(BAR4 \+0x3ff0, 4096 bytes\) does not fit its BAR of 16384/,
  );
  const short = configSpace();
  new DataView(short.buffer).setUint32(0x40 + 12, 0x20, true); // 32 bytes < 56
  assertDriverError(
    () => new VirtioPciTransport(new FakePci(short, new FakeBar4(2))),
    "DEVICE_MISBEHAVED",
    /common configuration/,
  );
});

Deno.test("reset() writes 0 and waits until device_status reads 0", () => {
  const { bar, t } = device();
  t.addStatus(VIRTIO_CONFIG_S_ACKNOWLEDGE);
  t.addStatus(VIRTIO_CONFIG_S_DRIVER);
  assert.equal(t.status, 3, "addStatus() only adds bits");
  bar.resetLag = 5;
  t.reset();
  assert.equal(t.status, 0);
});

Deno.test("reset() gives up with DEVICE_MISBEHAVED when status never reads 0", () => {
  const { bar, t } = device();
  t.addStatus(VIRTIO_CONFIG_S_ACKNOWLEDGE);
  bar.resetLag = -1;
  const t0 = Date.now();
  assertDriverError(
    () => t.reset(20),
    "DEVICE_MISBEHAVED",
    /did not complete its reset within 20 ms/,
  );
  assert.ok(Date.now() - t0 < 2000);
});

Deno.test("deviceFeatures() reads both 32-bit halves through device_feature_select", () => {
  const { bar, t } = device();
  bar.deviceFeatures = bit(63) | bit(33) | bit(32) | bit(VIRTIO_NET_F_MAC) | bit(0);
  assert.equal(t.deviceFeatures(), bar.deviceFeatures);
});

Deno.test("setDriverFeatures() writes both halves and sets FEATURES_OK", () => {
  const { bar, t } = device();
  const want = bit(32) | bit(33) | bit(VIRTIO_NET_F_MAC) | bit(VIRTIO_NET_F_STATUS);
  t.addStatus(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
  t.setDriverFeatures(want);
  assert.equal(bar.driverFeatures, want);
  assert.equal(t.status, 0x0b);
});

Deno.test("setDriverFeatures() reports DEVICE_REFUSED and sets FAILED when FEATURES_OK does not stick", () => {
  const { bar, t } = device();
  bar.accept = (f) => (f & bit(33)) !== 0n; // the device insists on ACCESS_PLATFORM
  t.addStatus(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
  assertDriverError(
    () => t.setDriverFeatures(bit(32) | bit(VIRTIO_NET_F_MAC)),
    "DEVICE_REFUSED",
    /refused the feature set VIRTIO_NET_F_MAC, VIRTIO_F_VERSION_1 \(FEATURES_OK did not stick\)/,
  );
  assert.ok(t.status & VIRTIO_CONFIG_S_FAILED);
  assert.equal(t.status & VIRTIO_CONFIG_S_FEATURES_OK, 0);
});

Deno.test("numQueues() and queueMaxSize() read the device's queue registers", () => {
  const { bar, t } = device({ queues: 3 });
  bar.queues[1].size = 1024;
  assert.equal(t.numQueues(), 3);
  assert.equal(t.queueMaxSize(0), 256);
  assert.equal(t.queueMaxSize(1), 1024);
  assert.equal(t.queueMaxSize(7), 0, "a queue that does not exist has size 0");
});

Deno.test("setupQueue() registers size, no MSI-X vector, the three IOVAs and enables the queue", () => {
  const { bar, t } = device();
  const notify = t.setupQueue(1, 128, 0x1_0000_0000, 0x1_0000_0800, 0x2_0000_1000);
  const q = bar.queues[1];
  assert.equal(q.size, 128);
  assert.equal(q.msix, VIRTIO_MSI_NO_VECTOR);
  assert.deepEqual(q.desc, [0x0000_0000, 1]);
  assert.deepEqual(q.driver, [0x0000_0800, 1]);
  assert.deepEqual(q.device, [0x0000_1000, 2]);
  assert.equal(q.enable, 1);
  assert.equal(bar.queues[0].enable, 0, "other queues untouched");
  notify.notify();
  // queue_notify_off 1 × notify_off_multiplier 4 from the notify structure's start.
  assert.deepEqual(bar.notifications, [{ offset: 4, value: 1 }]);
});

Deno.test("setupQueue() honours a page-per-queue notify multiplier", () => {
  const { bar, t } = device({ multiplier: 0x400 });
  bar.queues[2].notifyOff = 3;
  t.setupQueue(2, 64, 0x1_0000_0000, 0x1_0000_0400, 0x1_0000_0800).notify();
  assert.deepEqual(bar.notifications, [{ offset: 0xc00, value: 2 }]);
});

Deno.test("setupQueue() rejects a notification address outside the notify structure", () => {
  const { bar, t } = device();
  bar.queues[0].notifyOff = 0x400; // 0x400 × 4 = 0x1000: just past the 4 KiB structure
  assertDriverError(
    () => t.setupQueue(0, 64, 0x1_0000_0000, 0x1_0000_0400, 0x1_0000_0800),
    "DEVICE_MISBEHAVED",
    /queue 0's notification address outside its notify structure/,
  );
});

Deno.test("checkHealthy() throws on DEVICE_NEEDS_RESET or FAILED and passes otherwise", () => {
  const { bar, t } = device();
  bar.status = 0x0f;
  t.checkHealthy();
  bar.status = 0x0f | VIRTIO_CONFIG_S_NEEDS_RESET;
  assertDriverError(() => t.checkHealthy(), "DEVICE_MISBEHAVED", /reports DEVICE_NEEDS_RESET/);
  bar.status = 0x0b | VIRTIO_CONFIG_S_FAILED;
  assertDriverError(() => t.checkHealthy(), "DEVICE_MISBEHAVED", /reports FAILED/);
});

Deno.test("readConfig() repeats the read until config_generation is stable", () => {
  const { bar, t } = device();
  bar.configChanges = 2;
  let reads = 0;
  const v = t.readConfig((c) => {
    reads++;
    return c.read8(0);
  });
  assert.equal(v, 0);
  assert.equal(reads, 3);
});

Deno.test("readConfig() gives up with DEVICE_MISBEHAVED when the generation never settles", () => {
  const { bar, t } = device();
  bar.configChanges = Infinity;
  assertDriverError(() => t.readConfig((c) => c.read8(0)), "DEVICE_MISBEHAVED", /never settled/);
});

// ---------------------------------------------------------------------------------------
// struct virtio_net_config (§5.1.4)
// ---------------------------------------------------------------------------------------

function netConfigDevice() {
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

Deno.test("readNetConfig() reads each field its feature makes valid", () => {
  const { t } = netConfigDevice();
  const features = bit(VIRTIO_NET_F_MAC) | bit(VIRTIO_NET_F_STATUS) | bit(VIRTIO_NET_F_MQ) |
    bit(VIRTIO_NET_F_MTU) | bit(VIRTIO_NET_F_RSS);
  const cfg = readNetConfig(t, features);
  assert.equal(formatMac(cfg.mac), "52:54:00:12:34:56");
  assert.equal(cfg.linkUp, false);
  assert.equal(cfg.announce, false);
  assert.equal(cfg.maxVirtqueuePairs, 4);
  assert.equal(cfg.mtu, 9000);
  assert.equal(cfg.rssMaxKeySize, 40);
  assert.equal(cfg.rssMaxIndirectionTableLength, 128);
  assert.equal(cfg.supportedHashTypes, 0x1ff);
});

Deno.test("readNetConfig() uses the spec's defaults for fields whose feature is absent", () => {
  const { t } = netConfigDevice();
  assert.deepEqual(readNetConfig(t, bit(32)), {
    mac: new Uint8Array(6),
    linkUp: true,
    announce: false,
    maxVirtqueuePairs: 1,
    mtu: 1500,
    rssMaxKeySize: 0,
    rssMaxIndirectionTableLength: 0,
    supportedHashTypes: 0,
  });
});

Deno.test("readNetConfig() decodes LINK_UP and ANNOUNCE from status", () => {
  const { bar, t } = netConfigDevice();
  bar.mem.write16(DEVCFG_AT + 6, 3);
  const cfg = readNetConfig(t, bit(VIRTIO_NET_F_STATUS));
  assert.equal(cfg.linkUp, true);
  assert.equal(cfg.announce, true);
});

Deno.test("readNetConfig() rereads when the configuration changes under it", () => {
  const { bar, t } = netConfigDevice();
  bar.configChanges = 1;
  const cfg = readNetConfig(t, bit(VIRTIO_NET_F_MAC));
  assert.equal(formatMac(cfg.mac), "52:54:00:12:34:56");
  assert.equal(bar.configChanges, 0);
});

Deno.test("formatMac() writes six lower-case, zero-padded hex bytes", () => {
  assert.equal(formatMac(new Uint8Array([0, 1, 0xa, 0xff, 0x10, 0xab])), "00:01:0a:ff:10:ab");
});

Deno.test("setQueueVector() selects the queue, writes queue_msix_vector and returns the read-back", () => {
  const { bar, t } = device();
  assert.equal(t.setQueueVector(2, 3), 3);
  assert.equal(bar.queues[2].msix, 3);
  assert.equal(t.queueVector(2), 3);
  assert.equal(t.queueVector(0), 0);
  assert.equal(t.setQueueVector(2, VIRTIO_MSI_NO_VECTOR), VIRTIO_MSI_NO_VECTOR);
  assert.equal(bar.queues[2].msix, VIRTIO_MSI_NO_VECTOR);
});

Deno.test("setQueueVector() returns NO_VECTOR when the device refuses the vector (§4.1.5.1.2)", () => {
  const { bar, t } = device();
  bar.msixTableSize = 2;
  assert.equal(t.setQueueVector(0, 1), 1);
  assert.equal(t.setQueueVector(1, 2), VIRTIO_MSI_NO_VECTOR);
  assert.equal(bar.queues[1].msix, VIRTIO_MSI_NO_VECTOR);
});

Deno.test("setConfigVector() writes config_msix_vector and reads it back", () => {
  const { bar, t } = device();
  assert.equal(t.setConfigVector(0), 0);
  assert.equal(bar.mem.read16(COMMON_AT + COMMON_MSIX), 0);
  assert.equal(t.setConfigVector(VIRTIO_MSI_NO_VECTOR), VIRTIO_MSI_NO_VECTOR);
});
