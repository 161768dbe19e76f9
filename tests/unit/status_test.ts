/** Device status bits (src/virtio/status.ts) against virtio 1.x §2.1. */

import assert from "node:assert/strict";
import {
  statusString,
  VIRTIO_CONFIG_S_ACKNOWLEDGE,
  VIRTIO_CONFIG_S_DRIVER,
  VIRTIO_CONFIG_S_DRIVER_OK,
  VIRTIO_CONFIG_S_FAILED,
  VIRTIO_CONFIG_S_FEATURES_OK,
  VIRTIO_CONFIG_S_NEEDS_RESET,
} from "../../src/virtio/status.ts";

Deno.test("status bits have the values of virtio 1.x §2.1", () => {
  assert.equal(VIRTIO_CONFIG_S_ACKNOWLEDGE, 1);
  assert.equal(VIRTIO_CONFIG_S_DRIVER, 2);
  assert.equal(VIRTIO_CONFIG_S_DRIVER_OK, 4);
  assert.equal(VIRTIO_CONFIG_S_FEATURES_OK, 8);
  assert.equal(VIRTIO_CONFIG_S_NEEDS_RESET, 64);
  assert.equal(VIRTIO_CONFIG_S_FAILED, 128);
});

Deno.test("statusString() says RESET for 0", () => {
  assert.equal(statusString(0), "RESET");
});

Deno.test("statusString() names each set bit in bit order", () => {
  assert.equal(statusString(VIRTIO_CONFIG_S_ACKNOWLEDGE), "ACKNOWLEDGE");
  assert.equal(statusString(0x0b), "ACKNOWLEDGE|DRIVER|FEATURES_OK");
  assert.equal(statusString(0x0f), "ACKNOWLEDGE|DRIVER|DRIVER_OK|FEATURES_OK");
  assert.equal(statusString(0x40), "DEVICE_NEEDS_RESET");
  assert.equal(statusString(0x8b), "ACKNOWLEDGE|DRIVER|FEATURES_OK|FAILED");
});

Deno.test("statusString() shows undefined bits in hex after the named ones", () => {
  assert.equal(statusString(0x10), "0x10");
  assert.equal(statusString(0x20 | 0x01), "ACKNOWLEDGE|0x20");
  assert.equal(
    statusString(0xff),
    "ACKNOWLEDGE|DRIVER|DRIVER_OK|FEATURES_OK|DEVICE_NEEDS_RESET|FAILED|0x30",
  );
});
