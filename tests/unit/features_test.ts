/** Feature bits and names (src/virtio/features.ts, src/net/features.ts). */

import assert from "node:assert/strict";
import * as net from "../../src/net/features.ts";
import * as virtio from "../../src/virtio/features.ts";
import {
  bit,
  featureBits,
  featureName,
  featureNames,
  hasFeature,
} from "../../src/virtio/features.ts";

function exported(mod: Record<string, unknown>, prefix: string): [string, number][] {
  return Object.entries(mod)
    .filter(([k, v]) => k.startsWith(prefix) && typeof v === "number")
    .map(([k, v]) => [k, v as number]);
}

Deno.test("bit() and hasFeature() work on all 64 bits", () => {
  assert.equal(bit(0), 1n);
  assert.equal(bit(32), 0x1_0000_0000n);
  assert.equal(bit(63), 0x8000_0000_0000_0000n);
  for (let i = 0; i < 64; i++) {
    assert.equal(hasFeature(bit(i), i), true, `${i}`);
    assert.equal(hasFeature(~bit(i) & 0xffff_ffff_ffff_ffffn, i), false, `${i}`);
  }
  assert.equal(hasFeature(0n, 5), false);
});

Deno.test("featureBits() lists the set bits lowest first", () => {
  assert.deepEqual(featureBits(0n), []);
  assert.deepEqual(featureBits(0b101n), [0, 2]);
  assert.deepEqual(featureBits(bit(63) | bit(32) | bit(5)), [5, 32, 63]);
  assert.deepEqual(featureBits(0xffff_ffff_ffff_ffffn), Array.from({ length: 64 }, (_, i) => i));
});

Deno.test("featureName() names unknown bits FEATURE_<n>", () => {
  assert.equal(featureName(4), "FEATURE_4"); // reserved in virtio-net
  assert.equal(featureName(42), "FEATURE_42");
});

Deno.test("featureNames() gives spec names in bit order", () => {
  assert.deepEqual(featureNames(bit(33) | bit(32) | bit(5)), [
    "VIRTIO_NET_F_MAC",
    "VIRTIO_F_VERSION_1",
    "VIRTIO_F_ACCESS_PLATFORM",
  ]);
});

Deno.test("every exported device-independent bit prints by its own name", () => {
  const bits = exported(virtio, "VIRTIO_F_");
  assert.ok(bits.length >= 12);
  for (const [name, n] of bits) assert.equal(featureName(n), name);
});

Deno.test("every exported virtio-net bit prints by its own name", () => {
  const bits = exported(net, "VIRTIO_NET_F_");
  assert.ok(bits.length >= 30);
  for (const [name, n] of bits) assert.equal(featureName(n), name);
});

Deno.test("virtio-net bits sit in 0–23 and 50–63, clear of the transport's 24–49", () => {
  for (const [name, n] of exported(net, "VIRTIO_NET_F_")) {
    assert.ok((n >= 0 && n <= 23) || (n >= 50 && n <= 63), `${name} = ${n}`);
  }
  for (const [name, n] of exported(virtio, "VIRTIO_F_")) {
    assert.ok(n >= 24 && n <= 49, `${name} = ${n}`);
  }
});

Deno.test("virtio-net bit numbers match virtio 1.x §5.1.3", () => {
  const spec: Record<string, number> = {
    VIRTIO_NET_F_CSUM: 0,
    VIRTIO_NET_F_GUEST_CSUM: 1,
    VIRTIO_NET_F_CTRL_GUEST_OFFLOADS: 2,
    VIRTIO_NET_F_MTU: 3,
    VIRTIO_NET_F_MAC: 5,
    VIRTIO_NET_F_GUEST_TSO4: 7,
    VIRTIO_NET_F_GUEST_TSO6: 8,
    VIRTIO_NET_F_GUEST_ECN: 9,
    VIRTIO_NET_F_GUEST_UFO: 10,
    VIRTIO_NET_F_HOST_TSO4: 11,
    VIRTIO_NET_F_HOST_TSO6: 12,
    VIRTIO_NET_F_HOST_ECN: 13,
    VIRTIO_NET_F_HOST_UFO: 14,
    VIRTIO_NET_F_MRG_RXBUF: 15,
    VIRTIO_NET_F_STATUS: 16,
    VIRTIO_NET_F_CTRL_VQ: 17,
    VIRTIO_NET_F_CTRL_RX: 18,
    VIRTIO_NET_F_CTRL_VLAN: 19,
    VIRTIO_NET_F_CTRL_RX_EXTRA: 20,
    VIRTIO_NET_F_GUEST_ANNOUNCE: 21,
    VIRTIO_NET_F_MQ: 22,
    VIRTIO_NET_F_CTRL_MAC_ADDR: 23,
    VIRTIO_NET_F_DEVICE_STATS: 50,
    VIRTIO_NET_F_VQ_NOTF_COAL: 52,
    VIRTIO_NET_F_NOTF_COAL: 53,
    VIRTIO_NET_F_HASH_REPORT: 57,
    VIRTIO_NET_F_GUEST_HDRLEN: 59,
    VIRTIO_NET_F_RSS: 60,
    VIRTIO_NET_F_RSC_EXT: 61,
    VIRTIO_NET_F_STANDBY: 62,
    VIRTIO_NET_F_SPEED_DUPLEX: 63,
  };
  assert.deepEqual(Object.fromEntries(exported(net, "VIRTIO_NET_F_")), spec);
  const generic: Record<string, number> = {
    VIRTIO_F_ANY_LAYOUT: 27, // legacy (§2.7.4.3 legacy note)
    VIRTIO_F_INDIRECT_DESC: 28,
    VIRTIO_F_EVENT_IDX: 29,
    VIRTIO_F_VERSION_1: 32,
    VIRTIO_F_ACCESS_PLATFORM: 33,
    VIRTIO_F_RING_PACKED: 34,
    VIRTIO_F_IN_ORDER: 35,
    VIRTIO_F_ORDER_PLATFORM: 36,
    VIRTIO_F_SR_IOV: 37,
    VIRTIO_F_NOTIFICATION_DATA: 38,
    VIRTIO_F_NOTIF_CONFIG_DATA: 39,
    VIRTIO_F_RING_RESET: 40,
    VIRTIO_F_ADMIN_VQ: 41,
  };
  assert.deepEqual(Object.fromEntries(exported(virtio, "VIRTIO_F_")), generic);
});

Deno.test("registerFeatureNames() adds names without touching others", () => {
  virtio.registerFeatureNames([[45, "TEST_F_FORTY_FIVE"]]);
  assert.equal(featureName(45), "TEST_F_FORTY_FIVE");
  assert.equal(featureName(32), "VIRTIO_F_VERSION_1");
});
