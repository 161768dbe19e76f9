/**
 * The legacy virtio-pci transport (§4.1.4.8) against an emulated legacy register block in
 * an I/O BAR0 (reached, as under kernel VFIO, by register accesses, not a mapping): the
 * register layout, 32-bit feature negotiation without FEATURES_OK, the legacy ring
 * layout and its page frame number, the fixed queue size, notifications, the device
 * configuration at 20 (24 with MSI-X), and the composition root's detection.
 *
 * @module
 */

import assert from "node:assert/strict";
import { DriverError } from "../../src/errors.ts";
import type { Doorbell } from "../../src/dma/doorbell.ts";
import {
  type DmaSegment,
  MappedRegionIo,
  type PciDevice,
  type RegionIo,
} from "../../src/pci/pci_device.ts";
import {
  LEGACY_CONFIG,
  LEGACY_GUEST_FEATURES,
  LEGACY_HOST_FEATURES,
  LEGACY_QUEUE_NOTIFY,
  LEGACY_QUEUE_NUM,
  LEGACY_QUEUE_PFN,
  LEGACY_QUEUE_SEL,
  LEGACY_STATUS,
  LegacyPciTransport,
} from "../../src/virtio/legacy_pci_transport.ts";
import { splitRingLayout } from "../../src/virtio/ring_math.ts";
import { pciTransport } from "../../src/open_port.ts";
import { selectFeatures } from "../../src/net/negotiate.ts";
import { VirtioPciTransport } from "../../src/virtio/pci_transport.ts";
import { configSpace } from "./fake_virtio_pci.ts";

const ANY_LAYOUT = 1n << 27n, MRG_RXBUF = 1n << 15n, MAC = 1n << 5n, EVENT_IDX = 1n << 29n;
const STATUS_F = 1n << 16n;

/** A legacy register block with QEMU's behaviour (hw/virtio/virtio-pci.c, legacy ops). */
class FakeLegacyBar implements RegionIo {
  readonly size = 64;
  readonly mapped = false;
  hostFeatures = Number(ANY_LAYOUT | MRG_RXBUF | MAC | EVENT_IDX | STATUS_F);
  guestFeatures = 0;
  status = 0;
  sel = 0;
  readonly num = [256, 256, 64];
  readonly pfn = [0, 0, 0];
  readonly notified: number[] = [];
  readonly config = new Uint8Array([2, 0, 0, 0, 0, 7, 1, 0]); // mac, status LINK_UP
  accesses = 0;

  read8(o: number): number {
    this.accesses++;
    if (o === LEGACY_STATUS) return this.status;
    if (o >= LEGACY_CONFIG) return this.config[o - LEGACY_CONFIG] ?? 0;
    throw new Error(`8-bit read at ${o}`);
  }
  read16(o: number): number {
    this.accesses++;
    if (o === LEGACY_QUEUE_NUM) return this.num[this.sel] ?? 0;
    if (o === LEGACY_QUEUE_SEL) return this.sel;
    if (o >= LEGACY_CONFIG) return this.read8(o) | (this.read8(o + 1) << 8);
    throw new Error(`16-bit read at ${o}`);
  }
  read32(o: number): number {
    this.accesses++;
    if (o === LEGACY_HOST_FEATURES) return this.hostFeatures;
    if (o === LEGACY_GUEST_FEATURES) return this.guestFeatures;
    if (o === LEGACY_QUEUE_PFN) return this.pfn[this.sel] ?? 0;
    throw new Error(`32-bit read at ${o}`);
  }
  write8(o: number, v: number): void {
    if (o !== LEGACY_STATUS) throw new Error(`8-bit write at ${o}`);
    this.status = v;
    if (v === 0) this.pfn.fill(0);
  }
  write16(o: number, v: number): void {
    if (o === LEGACY_QUEUE_SEL) this.sel = v;
    else if (o === LEGACY_QUEUE_NOTIFY) this.notified.push(v);
    else throw new Error(`16-bit write at ${o}`);
  }
  write32(o: number, v: number): void {
    if (o === LEGACY_GUEST_FEATURES) this.guestFeatures = v;
    else if (o === LEGACY_QUEUE_PFN) {
      if (this.sel < this.pfn.length) this.pfn[this.sel] = v;
    } else throw new Error(`32-bit write at ${o}`);
  }
}

/** A legacy-only virtio-net function: device 0x1000, subsystem 1, I/O BAR0, no virtio caps. */
class FakeLegacyPci implements PciDevice {
  readonly name = "0000:00:05.0";
  readonly config: MappedRegionIo;
  readonly bar0 = new FakeLegacyBar();
  readonly events: string[] = [];

  constructor(ioBar = true) {
    const cfg = configSpace({ omitCommon: true });
    cfg.fill(0, 0x40); // no capabilities at all
    cfg[0x06] = 0;
    cfg[0x34] = 0;
    new DataView(cfg.buffer).setUint16(0x02, 0x1000, true);
    new DataView(cfg.buffer).setUint16(0x2e, 1, true); // subsystem 1: a network card
    new DataView(cfg.buffer).setUint32(0x10, ioBar ? 0xc041 : 0xfe000000, true);
    this.config = new MappedRegionIo(cfg.buffer as ArrayBuffer);
  }
  bar(index: number): RegionIo {
    if (index !== 0) throw new DriverError("DEVICE_MISBEHAVED", `no BAR${index}.`);
    return this.bar0;
  }
  iovaRanges() {
    return [{ start: 0n, end: (1n << 39n) - 1n }];
  }
  dmaMap(_s: DmaSegment, iova: bigint): void {
    this.events.push(`dmaMap ${iova}`);
  }
  dmaUnmap(iova: bigint): void {
    this.events.push(`dmaUnmap ${iova}`);
  }
  doorbell16(bar: number, offset: number, value: number): Doorbell {
    return { kind: "pwrite16", fd: 99, offset: BigInt(bar * 0x1000 + offset), value, what: "BAR0" };
  }
  reset(): void {}
  irqCount(): number {
    return 0;
  }
  setIrqEventfds(): void {}
  close(): void {
    this.events.push("close");
  }
}

Deno.test("legacy transport: status, 32-bit features without FEATURES_OK, fixed queue sizes", () => {
  const pci = new FakeLegacyPci();
  const t = new LegacyPciTransport(pci);
  assert.equal(t.legacy, true);
  // I/O decoding and bus mastering on (PCI_COMMAND bits 0 and 2).
  assert.equal(pci.config.read16(0x04) & 0x5, 0x5);
  pci.bar0.status = 0x7;
  t.reset();
  assert.equal(pci.bar0.status, 0);
  t.addStatus(1);
  t.addStatus(2);
  assert.equal(t.status, 3);
  assert.equal(t.deviceFeatures(), BigInt(pci.bar0.hostFeatures));
  t.setDriverFeatures(ANY_LAYOUT | MAC);
  assert.equal(pci.bar0.guestFeatures, Number(ANY_LAYOUT | MAC));
  assert.equal(t.status & 8, 0, "no FEATURES_OK on a legacy device");
  assert.throws(
    () => t.setDriverFeatures(1n << 32n),
    (e: DriverError) => e.code === "DEVICE_REFUSED",
  );
  assert.equal(t.queueMaxSize(0), 256);
  assert.equal(t.queueMaxSize(2), 64);
  assert.equal(t.queueMaxSize(7), 0);
});

Deno.test("legacy transport: one 4096-aligned ring by page frame number, used ring at 4096", () => {
  const pci = new FakeLegacyPci();
  const t = new LegacyPciTransport(pci);
  t.reset();
  const l = splitRingLayout(256, true);
  assert.deepEqual([l.availOffset, l.usedOffset], [4096, 8192]);
  assert.equal(splitRingLayout(64, true).usedOffset, 4096); // 1024 + 6 + 128, aligned up
  const base = 0x1_2340_0000;
  const n = t.setupQueue(0, 256, base, base + l.availOffset, base + l.usedOffset);
  assert.equal(pci.bar0.pfn[0], base / 4096);
  n.notify();
  assert.deepEqual(pci.bar0.notified, [0]);
  assert.deepEqual(t.doorbell(0), {
    kind: "pwrite16",
    fd: 99,
    offset: BigInt(LEGACY_QUEUE_NOTIFY),
    value: 0,
    what: "BAR0",
  });
  assert.throws(() => t.doorbell(1), RangeError);
  // The device fixes the size; the avail/used rings must sit where it computes them.
  assert.throws(() => t.setupQueue(1, 128, base, base + 2048, base + 4096), /fixed by the device/);
  assert.throws(
    () => t.setupQueue(1, 256, base, base + 4096, base + 4672),
    /not one 4096-aligned legacy ring/,
  );
  assert.throws(
    () => t.setupQueue(1, 256, base + 64, base + 64 + 4096, base + 64 + 8192),
    /not one 4096-aligned legacy ring/,
  );
  assert.equal(pci.bar0.pfn[1], 0, "a refused queue stays disabled");
  // A reset forgets the queues: no doorbell until set up again.
  t.reset();
  assert.throws(() => t.doorbell(0), RangeError);
});

Deno.test("legacy transport: device configuration at 20, read until two reads agree", () => {
  const pci = new FakeLegacyPci();
  const t = new LegacyPciTransport(pci);
  const mac = t.readConfig((c) => Array.from({ length: 6 }, (_, i) => c.read8(i)));
  assert.deepEqual(mac, [2, 0, 0, 0, 0, 7]);
  assert.equal(t.readConfig((c) => c.read16(6)), 1);
  let flips = 0;
  assert.throws(
    () => t.readConfig(() => flips++),
    (e: DriverError) =>
      e.code === "DEVICE_MISBEHAVED" && /never read the same twice/.test(e.message),
  );
});

Deno.test("composition root: no virtio 1.x capabilities but an I/O BAR0 → legacy; neither → one sentence", () => {
  const t = pciTransport(new FakeLegacyPci());
  assert.ok(t instanceof LegacyPciTransport);
  assert.ok(!(t instanceof VirtioPciTransport));
  const none = new FakeLegacyPci(false);
  assert.throws(
    () => pciTransport(none),
    (e: DriverError) =>
      e.code === "NOT_VIRTIO_NET" &&
      /neither virtio 1\.x capabilities nor a legacy I\/O BAR0/.test(e.message),
  );
  assert.deepEqual(none.events, ["close"]);
});

Deno.test("negotiation: a legacy device needs ANY_LAYOUT and MRG_RXBUF, not VERSION_1 or ACCESS_PLATFORM", () => {
  const offered = ANY_LAYOUT | MRG_RXBUF | MAC | EVENT_IDX | STATUS_F | (1n << 22n);
  // MQ (22) without CTRL_VQ is dropped, as for modern devices.
  assert.equal(
    selectFeatures("p", offered, {}, { legacy: true }),
    ANY_LAYOUT | MRG_RXBUF | MAC | EVENT_IDX | STATUS_F,
  );
  assert.throws(
    () => selectFeatures("p", MRG_RXBUF | MAC, {}, { legacy: true }),
    (e: DriverError) =>
      e.code === "MISSING_FEATURE" && /VIRTIO_F_ANY_LAYOUT.*legacy device/.test(e.message),
  );
  assert.throws(
    () => selectFeatures("p", ANY_LAYOUT | MAC, {}, { legacy: true }),
    /VIRTIO_NET_F_MRG_RXBUF/,
  );
  // The modern requirements are unchanged.
  assert.throws(() => selectFeatures("p", offered), /VIRTIO_F_VERSION_1/);
});
