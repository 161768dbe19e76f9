/** PCI identity checks (src/pci/sysfs.ts); read-only uses of sysfs. */

import assert from "node:assert/strict";
import { DriverError } from "../../src/errors.ts";
import {
  isVirtioNet,
  notVirtioNetMessage,
  SysfsPciFunction,
  VIRTIO_NET_MODERN_DEVICE_ID,
  VIRTIO_NET_TRANSITIONAL_DEVICE_ID,
  VIRTIO_PCI_VENDOR_ID,
} from "../../src/pci/sysfs.ts";

const id = (vendor: number, device: number, subsystemDevice: number) => ({
  vendor,
  device,
  subsystemDevice,
  classCode: 0x020000,
});

Deno.test("virtio PCI ids are those of virtio 1.x §4.1.2", () => {
  assert.equal(VIRTIO_PCI_VENDOR_ID, 0x1af4);
  assert.equal(VIRTIO_NET_MODERN_DEVICE_ID, 0x1040 + 1);
  assert.equal(VIRTIO_NET_TRANSITIONAL_DEVICE_ID, 0x1000);
});

Deno.test("isVirtioNet() accepts modern virtio-net whatever its subsystem id", () => {
  assert.equal(isVirtioNet(id(0x1af4, 0x1041, 0x1100)), true);
  assert.equal(isVirtioNet(id(0x1af4, 0x1041, 0)), true);
});

Deno.test("isVirtioNet() accepts transitional 0x1000 only with subsystem device 1 (network)", () => {
  assert.equal(isVirtioNet(id(0x1af4, 0x1000, 1)), true);
  assert.equal(isVirtioNet(id(0x1af4, 0x1000, 2)), false); // block
  assert.equal(isVirtioNet(id(0x1af4, 0x1000, 0x1100)), false);
});

Deno.test("isVirtioNet() rejects other virtio devices and other vendors", () => {
  assert.equal(isVirtioNet(id(0x1af4, 0x1042, 0x1100)), false); // virtio-blk
  assert.equal(isVirtioNet(id(0x1af4, 0x1001, 1)), false); // transitional block
  assert.equal(isVirtioNet(id(0x8086, 0x1041, 1)), false);
  assert.equal(isVirtioNet(id(0x8086, 0x10d3, 0)), false); // e1000e
});

Deno.test("notVirtioNetMessage() names the function, its ids and the ids it wants", () => {
  const m = notVirtioNetMessage("0000:00:02.0", id(0x8086, 0x29c0, 0));
  assert.match(m, /^0000:00:02\.0 is not a virtio-net device \(vendor 8086, device 29c0\)/);
  assert.match(m, /vendor 1af4, device 1041 or 1000/);
});

Deno.test("SysfsPciFunction rejects an address sysfs does not have with NO_DEVICE", () => {
  assert.throws(() => new SysfsPciFunction("ffff:ff:1f.7"), (e: unknown) => {
    assert.ok(e instanceof DriverError);
    assert.equal(e.code, "NO_DEVICE");
    assert.match(e.message, /ffff:ff:1f\.7/);
    assert.match(e.message, /lspci -D/);
    return true;
  });
});

function firstPciFunction(): string | null {
  try {
    for (const e of Deno.readDirSync("/sys/bus/pci/devices")) return e.name;
  } catch {
    // no sysfs PCI here
  }
  return null;
}

const SOME_FUNCTION = firstPciFunction();

Deno.test({
  name: SOME_FUNCTION
    ? "SysfsPciFunction reads identity and driver of a present function like sysfs shows them"
    : "SysfsPciFunction reads identity and driver [SKIPPED: no /sys/bus/pci/devices entries]",
  ignore: SOME_FUNCTION === null,
  fn() {
    const addr = SOME_FUNCTION!;
    const fn = new SysfsPciFunction(addr);
    assert.equal(fn.path, `/sys/bus/pci/devices/${addr}`);
    const hex = (attr: string) => parseInt(Deno.readTextFileSync(`${fn.path}/${attr}`).trim(), 16);
    assert.deepEqual(fn.identity(), {
      vendor: hex("vendor"),
      device: hex("device"),
      subsystemDevice: hex("subsystem_device"),
      classCode: hex("class"),
    });
    let driver: string | null = null;
    try {
      driver = Deno.readLinkSync(`${fn.path}/driver`).split("/").pop()!;
    } catch {
      driver = null;
    }
    assert.equal(fn.driver(), driver);
    const members = fn.groupMembers();
    assert.ok(members.includes(addr), "a function is a member of its own group");
  },
});
