/**
 * The PCI capability list (src/pci/capabilities.ts) and virtio's vendor capabilities
 * (findVirtioCaps in src/virtio/pci_transport.ts) over a synthetic 256-byte config space
 * laid out like QEMU's virtio-net-pci (disable-legacy=on), as `lspci -vv` shows it:
 *
 *   Capabilities: [98] MSI-X: Enable- Count=3 Masked-
 *   Capabilities: [84] Vendor Specific Information: VirtIO: <unknown>   (PCI_CFG)
 *   Capabilities: [70] Vendor Specific Information: VirtIO: Notify BAR=4 offset=00003000 size=00001000 multiplier=00000004
 *   Capabilities: [60] Vendor Specific Information: VirtIO: DeviceCfg BAR=4 offset=00002000 size=00001000
 *   Capabilities: [50] Vendor Specific Information: VirtIO: ISR BAR=4 offset=00001000 size=00001000
 *   Capabilities: [40] Vendor Specific Information: VirtIO: CommonCfg BAR=4 offset=00000000 size=00001000
 */

import assert from "node:assert/strict";
import {
  listCapabilities,
  PCI_CAP_ID_MSIX,
  PCI_CAP_ID_VNDR,
  PCI_CAPABILITY_LIST,
  PCI_STATUS,
  PCI_STATUS_CAP_LIST,
} from "../../src/pci/capabilities.ts";
import { MappedRegionIo } from "../../src/pci/pci_device.ts";
import {
  findVirtioCaps,
  VIRTIO_PCI_CAP_COMMON_CFG,
  VIRTIO_PCI_CAP_DEVICE_CFG,
  VIRTIO_PCI_CAP_ISR_CFG,
  VIRTIO_PCI_CAP_NOTIFY_CFG,
  VIRTIO_PCI_CAP_PCI_CFG,
} from "../../src/virtio/pci_transport.ts";

interface VirtioCap {
  at: number;
  next: number;
  type: number;
  bar: number;
  offset: number;
  length: number;
  multiplier?: number;
}

/** Writes struct virtio_pci_cap (§4.1.4) and, for notify, notify_off_multiplier. */
function writeVirtioCap(cfg: DataView, c: VirtioCap): void {
  cfg.setUint8(c.at, PCI_CAP_ID_VNDR);
  cfg.setUint8(c.at + 1, c.next);
  cfg.setUint8(c.at + 2, c.type === VIRTIO_PCI_CAP_NOTIFY_CFG || c.type === 5 ? 0x14 : 0x10);
  cfg.setUint8(c.at + 3, c.type);
  cfg.setUint8(c.at + 4, c.bar);
  cfg.setUint8(c.at + 5, 0); // id
  cfg.setUint32(c.at + 8, c.offset, true);
  cfg.setUint32(c.at + 12, c.length, true);
  if (c.multiplier !== undefined) cfg.setUint32(c.at + 16, c.multiplier, true);
}

/** QEMU's virtio-net-pci config space. */
function qemuVirtioNetConfig(): { bytes: Uint8Array; view: DataView } {
  const bytes = new Uint8Array(256);
  const cfg = new DataView(bytes.buffer);
  cfg.setUint16(0x00, 0x1af4, true); // vendor
  cfg.setUint16(0x02, 0x1041, true); // device: modern virtio-net
  cfg.setUint16(PCI_STATUS, PCI_STATUS_CAP_LIST, true);
  cfg.setUint8(0x08, 1); // revision
  cfg.setUint8(0x0b, 0x02); // class: network
  cfg.setUint32(0x20, 0xfe00000c, true); // BAR4: 64-bit prefetchable memory
  cfg.setUint16(0x2c, 0x1af4, true);
  cfg.setUint16(0x2e, 0x1100, true);
  cfg.setUint8(PCI_CAPABILITY_LIST, 0x98);
  // MSI-X: table size 3 (encoded n-1), table and PBA in BAR1.
  cfg.setUint8(0x98, PCI_CAP_ID_MSIX);
  cfg.setUint8(0x99, 0x84);
  cfg.setUint16(0x9a, 2, true);
  cfg.setUint32(0x9c, 0x0000_0001, true);
  cfg.setUint32(0xa0, 0x0000_0801, true);
  const caps: VirtioCap[] = [
    { at: 0x84, next: 0x70, type: VIRTIO_PCI_CAP_PCI_CFG, bar: 0, offset: 0, length: 0 },
    {
      at: 0x70,
      next: 0x60,
      type: VIRTIO_PCI_CAP_NOTIFY_CFG,
      bar: 4,
      offset: 0x3000,
      length: 0x1000,
      multiplier: 4,
    },
    {
      at: 0x60,
      next: 0x50,
      type: VIRTIO_PCI_CAP_DEVICE_CFG,
      bar: 4,
      offset: 0x2000,
      length: 0x1000,
    },
    { at: 0x50, next: 0x40, type: VIRTIO_PCI_CAP_ISR_CFG, bar: 4, offset: 0x1000, length: 0x1000 },
    { at: 0x40, next: 0x00, type: VIRTIO_PCI_CAP_COMMON_CFG, bar: 4, offset: 0, length: 0x1000 },
  ];
  for (const c of caps) writeVirtioCap(cfg, c);
  return { bytes, view: cfg };
}

const io = (bytes: Uint8Array) => new MappedRegionIo(bytes.buffer as ArrayBuffer);

Deno.test("capability constants have their PCI spec values", () => {
  assert.equal(PCI_STATUS, 0x06);
  assert.equal(PCI_STATUS_CAP_LIST, 0x10);
  assert.equal(PCI_CAPABILITY_LIST, 0x34);
  assert.equal(PCI_CAP_ID_VNDR, 0x09);
  assert.equal(PCI_CAP_ID_MSIX, 0x11);
});

Deno.test("listCapabilities() walks QEMU's virtio-net-pci list in order", () => {
  const { bytes } = qemuVirtioNetConfig();
  assert.deepEqual(listCapabilities(io(bytes)), [
    { id: PCI_CAP_ID_MSIX, offset: 0x98 },
    { id: PCI_CAP_ID_VNDR, offset: 0x84 },
    { id: PCI_CAP_ID_VNDR, offset: 0x70 },
    { id: PCI_CAP_ID_VNDR, offset: 0x60 },
    { id: PCI_CAP_ID_VNDR, offset: 0x50 },
    { id: PCI_CAP_ID_VNDR, offset: 0x40 },
  ]);
});

Deno.test("listCapabilities() returns nothing when the status register has no capability list", () => {
  const { bytes, view } = qemuVirtioNetConfig();
  view.setUint16(PCI_STATUS, 0, true);
  assert.deepEqual(listCapabilities(io(bytes)), []);
  assert.equal(findVirtioCaps(io(bytes)).size, 0);
});

Deno.test("listCapabilities() masks the two reserved low bits of every pointer", () => {
  const { bytes, view } = qemuVirtioNetConfig();
  view.setUint8(PCI_CAPABILITY_LIST, 0x9b);
  view.setUint8(0x99, 0x86); // next of MSI-X: 0x84 with reserved bits set
  assert.deepEqual(
    listCapabilities(io(bytes)).map((c) => c.offset),
    [0x98, 0x84, 0x70, 0x60, 0x50, 0x40],
  );
});

Deno.test("listCapabilities() rejects a looping list", () => {
  const { bytes, view } = qemuVirtioNetConfig();
  view.setUint8(0x41, 0x70); // common cfg -> notify, which leads back to common cfg
  assert.throws(() => listCapabilities(io(bytes)), /malformed at offset 0x70/);
  view.setUint8(0x41, 0x40); // a capability pointing at itself
  assert.throws(() => listCapabilities(io(bytes)), RangeError);
  assert.throws(() => findVirtioCaps(io(bytes)), RangeError);
});

Deno.test("listCapabilities() rejects a pointer into the standard header", () => {
  const { bytes, view } = qemuVirtioNetConfig();
  view.setUint8(0x41, 0x20);
  assert.throws(() => listCapabilities(io(bytes)), /malformed at offset 0x20/);
  view.setUint8(0x41, 0);
  view.setUint8(PCI_CAPABILITY_LIST, 0x3c);
  assert.throws(() => listCapabilities(io(bytes)), RangeError);
});

Deno.test("findVirtioCaps() locates the five virtio structures of QEMU's virtio-net-pci", () => {
  const { bytes } = qemuVirtioNetConfig();
  const caps = findVirtioCaps(io(bytes));
  assert.deepEqual([...caps.keys()].sort(), [1, 2, 3, 4, 5]);
  assert.deepEqual(caps.get(VIRTIO_PCI_CAP_COMMON_CFG), {
    type: 1,
    bar: 4,
    offset: 0,
    length: 0x1000,
  });
  assert.deepEqual(caps.get(VIRTIO_PCI_CAP_ISR_CFG), {
    type: 3,
    bar: 4,
    offset: 0x1000,
    length: 0x1000,
  });
  assert.deepEqual(caps.get(VIRTIO_PCI_CAP_DEVICE_CFG), {
    type: 4,
    bar: 4,
    offset: 0x2000,
    length: 0x1000,
  });
  assert.deepEqual(caps.get(VIRTIO_PCI_CAP_NOTIFY_CFG), {
    type: 2,
    bar: 4,
    offset: 0x3000,
    length: 0x1000,
    notifyOffMultiplier: 4,
  });
  assert.deepEqual(caps.get(VIRTIO_PCI_CAP_PCI_CFG), { type: 5, bar: 0, offset: 0, length: 0 });
});

Deno.test("findVirtioCaps() reads the notify multiplier only for the notify structure", () => {
  const { bytes, view } = qemuVirtioNetConfig();
  view.setUint32(0x70 + 16, 0x1000, true); // page-per-vq=on
  view.setUint32(0x40 + 16, 0xdead, true); // garbage after the common cap: not a field
  const caps = findVirtioCaps(io(bytes));
  assert.equal(caps.get(VIRTIO_PCI_CAP_NOTIFY_CFG)?.notifyOffMultiplier, 0x1000);
  assert.equal(caps.get(VIRTIO_PCI_CAP_COMMON_CFG)?.notifyOffMultiplier, undefined);
});

Deno.test("findVirtioCaps() keeps the first capability of each type (§4.1.4.1)", () => {
  const { bytes, view } = qemuVirtioNetConfig();
  // A second common cfg at 0xb0, placed first in the list: list order decides, not offset.
  writeVirtioCap(view, {
    at: 0xb0,
    next: 0x98,
    type: VIRTIO_PCI_CAP_COMMON_CFG,
    bar: 2,
    offset: 0x800,
    length: 0x100,
  });
  view.setUint8(PCI_CAPABILITY_LIST, 0xb0);
  const common = findVirtioCaps(io(bytes)).get(VIRTIO_PCI_CAP_COMMON_CFG);
  assert.deepEqual(common, { type: 1, bar: 2, offset: 0x800, length: 0x100 });
});

Deno.test("findVirtioCaps() skips capabilities naming a reserved BAR and uses the next", () => {
  const { bytes, view } = qemuVirtioNetConfig();
  writeVirtioCap(view, {
    at: 0xb0,
    next: 0x98,
    type: VIRTIO_PCI_CAP_COMMON_CFG,
    bar: 6, // reserved (§4.1.4: values 0x6–0x7 are reserved)
    offset: 0x800,
    length: 0x100,
  });
  view.setUint8(PCI_CAPABILITY_LIST, 0xb0);
  const common = findVirtioCaps(io(bytes)).get(VIRTIO_PCI_CAP_COMMON_CFG);
  assert.deepEqual(common, { type: 1, bar: 4, offset: 0, length: 0x1000 });
});

Deno.test("findVirtioCaps() ignores non-vendor capabilities and unknown cfg_types", () => {
  const { bytes, view } = qemuVirtioNetConfig();
  // Shared memory (8) and vendor data (9) cfg types, and type 0, ahead of the list.
  writeVirtioCap(view, { at: 0xd0, next: 0xc0, type: 8, bar: 2, offset: 0, length: 0x10 });
  writeVirtioCap(view, { at: 0xc0, next: 0xb0, type: 9, bar: 2, offset: 0, length: 0x10 });
  writeVirtioCap(view, { at: 0xb0, next: 0x98, type: 0, bar: 2, offset: 0, length: 0x10 });
  view.setUint8(PCI_CAPABILITY_LIST, 0xd0);
  const caps = findVirtioCaps(io(bytes));
  assert.deepEqual([...caps.keys()].sort(), [1, 2, 3, 4, 5]);
  // An MSI-X capability whose byte 3 happens to read 1 is not a virtio capability.
  const only = new Uint8Array(256);
  const v = new DataView(only.buffer);
  v.setUint16(PCI_STATUS, PCI_STATUS_CAP_LIST, true);
  v.setUint8(PCI_CAPABILITY_LIST, 0x40);
  v.setUint8(0x40, PCI_CAP_ID_MSIX);
  v.setUint8(0x43, 1);
  assert.equal(findVirtioCaps(io(only)).size, 0);
});

Deno.test("findVirtioCaps() never returns fields read from beyond the end of config space", () => {
  // A vendor capability at 0xf8 of a 256-byte config space: its offset (at +8), length
  // (at +12) and notify multiplier (at +16) lie past the end. Config space is device input:
  // such a capability must be ignored or rejected, never decoded into undefined fields,
  // which the transport's range checks then let through (undefined + n > size is false).
  for (
    const [type, earlier] of [[VIRTIO_PCI_CAP_NOTIFY_CFG, 0x70], [VIRTIO_PCI_CAP_PCI_CFG, 0x84]]
  ) {
    const { bytes, view } = qemuVirtioNetConfig();
    view.setUint8(earlier + 3, 0); // the regular capability of this type: cfg_type 0, ignored
    view.setUint8(0x41, 0xf8); // common cfg -> 0xf8, the last capability
    view.setUint8(0xf8, PCI_CAP_ID_VNDR);
    view.setUint8(0xf9, 0);
    view.setUint8(0xfa, 0x10);
    view.setUint8(0xfb, type);
    view.setUint8(0xfc, 4); // BAR4
    let caps;
    try {
      caps = findVirtioCaps(io(bytes));
    } catch (e) {
      assert.ok(e instanceof RangeError, `only a RangeError is acceptable, got ${e}`);
      continue;
    }
    for (const [t, loc] of caps) {
      assert.ok(Number.isInteger(loc.offset), `type ${t}: offset ${loc.offset}`);
      assert.ok(Number.isInteger(loc.length), `type ${t}: length ${loc.length}`);
      if (loc.notifyOffMultiplier !== undefined) {
        assert.ok(Number.isInteger(loc.notifyOffMultiplier), `type ${t}: multiplier`);
      }
    }
  }
});
