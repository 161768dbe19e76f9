/**
 * Closing a port, and a failed open, release in the order virtio asks (§4.1.4.3.2): the
 * device is reset, and the reset confirmed (device_status reads back 0), before its DMA
 * memory is unmapped and freed; the device itself goes last. Against the fake virtio-net
 * function of fake_virtio_pci.ts, which logs what the driver did.
 */

import assert from "node:assert/strict";
import { createSharedPool } from "../../src/dma/buffer_pool.ts";
import { DriverError } from "../../src/errors.ts";
import { openFakePort, portDevice } from "./fake_virtio_pci.ts";

/** Checks `events`: resets, then `unmaps` DMA unmappings, then the close. */
function assertResetUnmapClose(events: string[], unmaps: number): void {
  const kinds = events.map((e) => e.split(" ")[0]);
  assert.deepEqual(
    kinds,
    ["reset", ...Array(unmaps).fill("dmaUnmap"), "close"],
    `release steps: ${events.join(", ")}`,
  );
}

Deno.test("closing a port resets the device before it unmaps the port's DMA memory", () => {
  const dev = portDevice("vfio-user:/fake-close");
  const port = openFakePort(dev);
  dev.events.length = 0;
  port.close();
  assertResetUnmapClose(dev.events, 1);
});

Deno.test("closing a port on a shared pool resets the device before it unmaps the pool", () => {
  const pool = createSharedPool(512, 2048, { hugePages: false });
  try {
    const dev = portDevice("vfio-user:/fake-shared");
    const port = openFakePort(dev, { pool });
    dev.events.length = 0;
    port.close();
    assertResetUnmapClose(dev.events, 2); // the port's rings and the shared pool
  } finally {
    pool.region.free();
  }
});

Deno.test("a failed open resets the device before it unmaps the DMA memory it had mapped", () => {
  const dev = portDevice("vfio-user:/fake-fail");
  dev.bar4.needsResetOnDriverOk = true;
  assert.throws(() => openFakePort(dev), /DEVICE_NEEDS_RESET/);
  const from = dev.events.findLastIndex((e) => e.startsWith("dmaMap")) + 1;
  assert.ok(from > 0, "the open failed after mapping DMA memory");
  assertResetUnmapClose(dev.events.slice(from), 1);
});

Deno.test("a device that does not confirm its reset keeps its DMA memory mapped", () => {
  const dev = portDevice("vfio-user:/fake-hang");
  const port = openFakePort(dev);
  dev.bar4.resetLag = -1; // from now on device_status never reads back 0 after a reset
  dev.events.length = 0;
  assert.throws(() => port.close(), (e: unknown) => {
    assert.ok(e instanceof DriverError);
    assert.match(e.message, /did not confirm its reset, so its DMA memory stays mapped/);
    return true;
  });
  assert.deepEqual(dev.events, ["reset", "close"]);
});
