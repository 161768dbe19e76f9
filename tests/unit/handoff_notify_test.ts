/**
 * Workers' doorbells (src/engine/handoff.ts): a forwarding worker notifies the register
 * the transport checked when it set the queue up, never one recomputed from what the
 * device answers later.
 */

import assert from "node:assert/strict";
import { addressOfBuffer, describeRing, notifySpec } from "../../src/engine/handoff.ts";
import { MULTIPLIER, NOTIFY_AT, openFakePort, portDevice } from "./fake_virtio_pci.ts";

Deno.test("a worker's doorbell stays the one checked at set-up when queue_notify_off later says 0xffff", () => {
  const dev = portDevice("vfio-user:/fake-noff");
  dev.bar4.notifyOffAfterEnable = 0xffff;
  const port = openFakePort(dev);
  try {
    const bar = addressOfBuffer(dev.bar4.buffer);
    for (const [q, vq] of [[0, port.rx(0).vq], [1, port.tx(0).vq]] as const) {
      // The fake device's queue_notify_off was q at set-up, × notify_off_multiplier.
      const want = {
        kind: "store16",
        address: bar + BigInt(NOTIFY_AT + q * MULTIPLIER),
        value: q,
        what: `BAR4 of ${port.name}`,
      };
      assert.deepEqual(describeRing(port, vq).notify, want, `${vq.name} (describeRing)`);
      assert.deepEqual(notifySpec(port, q), want, `${vq.name} (notifySpec)`);
    }
  } finally {
    port.close();
  }
});

Deno.test("notifySpec refuses a queue that is not one of the port's data queues", () => {
  const port = openFakePort(portDevice("vfio-user:/fake-q"));
  try {
    assert.throws(() => notifySpec(port, 2), /has no data queue 2: use 0 to 1/);
  } finally {
    port.close();
  }
});

Deno.test("a worker's doorbell stays in the notify structure checked at open when the capability later names another offset", () => {
  const dev = portDevice("vfio-user:/fake-moved");
  dev.config.capsAfterEnable = "moved";
  const port = openFakePort(dev);
  try {
    const bar = addressOfBuffer(dev.bar4.buffer);
    for (const [q, vq] of [[0, port.rx(0).vq], [1, port.tx(0).vq]] as const) {
      const want = {
        kind: "store16",
        address: bar + BigInt(NOTIFY_AT + q * MULTIPLIER),
        value: q,
        what: `BAR4 of ${port.name}`,
      };
      assert.deepEqual(describeRing(port, vq).notify, want, vq.name);
    }
  } finally {
    port.close();
  }
});
