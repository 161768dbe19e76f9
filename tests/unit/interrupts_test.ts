/**
 * The pieces of interrupt mode that need no device: the eventfd wrapper
 * (ffi/eventfd.ts) against the real eventfd(2), and the MSI-X capability reader
 * (src/pci/msix.ts) against config space as QEMU's virtio-net-pci lays it out.
 */

import assert from "node:assert/strict";
import { Eventfd } from "../../ffi/eventfd.ts";
import { MappedRegionIo } from "../../src/pci/pci_device.ts";
import {
  findMsix,
  msixControlOffset,
  msixVectorControlOffset,
  PCI_MSIX_ENTRY_CTRL_MASKBIT,
  PCI_MSIX_ENTRY_SIZE,
  PCI_MSIX_ENTRY_VECTOR_CTRL,
  PCI_MSIX_FLAGS_ENABLE,
  PCI_MSIX_FLAGS_MASKALL,
  PCI_MSIX_FLAGS_QSIZE,
} from "../../src/pci/msix.ts";

Deno.test("Eventfd: a signal is counted once; wait() takes the count and resets it", () => {
  const e = Eventfd.create();
  try {
    assert.ok(e.fd >= 0);
    assert.equal(e.take(), 0, "nothing yet (non-blocking read: EAGAIN)");
    e.signal();
    e.signal();
    e.signal();
    assert.equal(e.wait(1000), 3, "eventfd adds the signals up");
    assert.equal(e.take(), 0, "read reset the counter");
  } finally {
    e.close();
  }
});

Deno.test("Eventfd: wait() times out after about the time asked and returns 0", () => {
  const e = Eventfd.create();
  try {
    const t0 = performance.now();
    assert.equal(e.wait(50), 0);
    const waited = performance.now() - t0;
    assert.ok(waited >= 49 && waited < 1000, `waited ${waited} ms`);
    assert.equal(e.wait(0), 0, "a zero timeout only looks");
  } finally {
    e.close();
  }
});

Deno.test("Eventfd: waitAsync() wakes up when another party signals, with the event loop running", async () => {
  const e = Eventfd.create();
  try {
    setTimeout(() => e.signal(), 30);
    const t0 = performance.now();
    const n = await e.waitAsync(5000);
    assert.equal(n, 1);
    assert.ok(performance.now() - t0 < 4000);
    assert.equal(await e.waitAsync(20), 0);
  } finally {
    e.close();
  }
});

Deno.test("Eventfd: close() is idempotent and a closed eventfd refuses to wait", () => {
  const e = Eventfd.create();
  e.close();
  e.close();
  assert.equal(e.fd, -1);
  assert.throws(() => e.wait(0), /closed eventfd/);
});

/** Config space with the capability list of QEMU's virtio-net-pci (vectors=`n`). */
function qemuConfig(n: number, control = 0): MappedRegionIo {
  const cfg = new Uint8Array(256);
  const v = new DataView(cfg.buffer);
  v.setUint16(0x06, 0x10, true); // capability list present
  cfg[0x34] = 0x98;
  cfg[0x98] = 0x11; // MSI-X
  cfg[0x99] = 0x84; // next: a vendor capability
  v.setUint16(0x9a, control | (n - 1), true);
  v.setUint32(0x9c, 0x0000 | 1, true); // table: BAR1 + 0
  v.setUint32(0xa0, 0x0800 | 1, true); // PBA: BAR1 + 0x800
  cfg[0x84] = 0x09;
  cfg[0x85] = 0;
  return new MappedRegionIo(cfg.buffer);
}

Deno.test("findMsix() reads table size, table and PBA location from the MSI-X capability", () => {
  const cap = findMsix(qemuConfig(6));
  assert.deepEqual(cap, {
    offset: 0x98,
    tableSize: 6,
    tableBar: 1,
    tableOffset: 0,
    pbaBar: 1,
    pbaOffset: 0x800,
  });
  assert.equal(msixControlOffset(cap!), 0x9a);
  assert.equal(msixVectorControlOffset(cap!, 0), 12);
  assert.equal(msixVectorControlOffset(cap!, 5), 5 * 16 + 12);
  // The enable and function-mask bits do not change the table size read.
  assert.equal(
    findMsix(qemuConfig(2048, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL))!.tableSize,
    2048,
  );
});

Deno.test("findMsix() is null for a function without MSI-X", () => {
  const cfg = new Uint8Array(256);
  assert.equal(findMsix(new MappedRegionIo(cfg.buffer)), null);
});

Deno.test("MSI-X register constants follow PCI 3.0 §6.8.2", () => {
  assert.equal(PCI_MSIX_FLAGS_ENABLE, 1 << 15);
  assert.equal(PCI_MSIX_FLAGS_MASKALL, 1 << 14);
  assert.equal(PCI_MSIX_FLAGS_QSIZE, 0x7ff);
  assert.equal(PCI_MSIX_ENTRY_SIZE, 16);
  assert.equal(PCI_MSIX_ENTRY_VECTOR_CTRL, 12);
  assert.equal(PCI_MSIX_ENTRY_CTRL_MASKBIT, 1);
});
