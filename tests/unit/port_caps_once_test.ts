/**
 * A port takes the virtio capabilities from the transport's one walk of config space
 * (src/net/port.ts, src/virtio/pci_transport.ts): what the device answers in a later read
 * neither breaks opening nor moves the notification structure. Against the fake
 * virtio-net function of fake_virtio_pci.ts.
 */

import assert from "node:assert/strict";
import type { VirtioPciTransport } from "../../src/virtio/pci_transport.ts";
import { NOTIFY_AT, openFakePort, portDevice } from "./fake_virtio_pci.ts";

Deno.test("a port opens when the capability list turns into a loop after the transport read it", () => {
  const dev = portDevice("vfio-user:/fake-loop");
  dev.config.capsAfterEnable = "loop";
  const port = openFakePort(dev);
  try {
    assert.equal((port.transport as VirtioPciTransport).notifyLocation.offset, NOTIFY_AT);
  } finally {
    port.close();
  }
});

Deno.test("a port's notify structure is the one the transport checked when the capability later moves", () => {
  const dev = portDevice("vfio-user:/fake-moved");
  dev.config.capsAfterEnable = "moved";
  const port = openFakePort(dev);
  try {
    assert.deepEqual({ ...(port.transport as VirtioPciTransport).notifyLocation }, {
      bar: 4,
      offset: NOTIFY_AT,
      length: 0x1000,
      multiplier: 4,
    });
  } finally {
    port.close();
  }
});
