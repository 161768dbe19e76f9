/**
 * struct virtio_net_config (src/net/config.ts, virtio 1.x §5.1.4): reading each field its
 * feature makes valid, and refusing values the spec does not allow, from the emulated
 * device of fake_virtio_pci.ts; and a port refusing them at open, before any DMA memory.
 */

import assert from "node:assert/strict";
import { pciTransport } from "../../src/open_port.ts";
import { formatMac, netConfigLength, readNetConfig } from "../../src/net/config.ts";
import {
  VIRTIO_NET_F_CTRL_VQ,
  VIRTIO_NET_F_HASH_REPORT,
  VIRTIO_NET_F_MAC,
  VIRTIO_NET_F_MQ,
  VIRTIO_NET_F_MTU,
  VIRTIO_NET_F_RSS,
  VIRTIO_NET_F_STATUS,
} from "../../src/net/features.ts";
import { VirtioNetPort } from "../../src/net/port.ts";
import { bit, VIRTIO_F_ACCESS_PLATFORM, VIRTIO_F_VERSION_1 } from "../../src/virtio/features.ts";
import { VirtioPciTransport } from "../../src/virtio/pci_transport.ts";
import {
  assertDriverError,
  configSpace,
  DEVCFG_AT,
  FakeBar4,
  FakePci,
  netConfigDevice,
} from "./fake_virtio_pci.ts";
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

const RSS = bit(VIRTIO_NET_F_CTRL_VQ) | bit(VIRTIO_NET_F_MQ) | bit(VIRTIO_NET_F_RSS);

Deno.test("netConfigLength() spans the last field the negotiated features make valid", () => {
  assert.equal(netConfigLength(bit(32)), 0);
  assert.equal(netConfigLength(bit(VIRTIO_NET_F_MAC)), 6);
  assert.equal(netConfigLength(bit(VIRTIO_NET_F_MAC) | bit(VIRTIO_NET_F_STATUS)), 8);
  assert.equal(netConfigLength(bit(VIRTIO_NET_F_MQ)), 10);
  assert.equal(netConfigLength(bit(VIRTIO_NET_F_MQ) | bit(VIRTIO_NET_F_MTU)), 12);
  assert.equal(netConfigLength(bit(VIRTIO_NET_F_HASH_REPORT)), 24);
  assert.equal(netConfigLength(RSS), 24);
});

Deno.test("readNetConfig() refuses a device configuration too short for the negotiated features", () => {
  for (const [length, features, need] of [[0, bit(VIRTIO_NET_F_MAC), 6], [12, RSS, 24]] as const) {
    const cfg = configSpace();
    new DataView(cfg.buffer).setUint32(0x60 + 12, length, true); // the device-config cap
    const t = new VirtioPciTransport(new FakePci(cfg, new FakeBar4(3)));
    assertDriverError(
      () => readNetConfig(t, features),
      "DEVICE_MISBEHAVED",
      new RegExp(
        `0000:00:04\\.0's device configuration structure is ${length} bytes, shorter than the ${need} bytes`,
      ),
    );
  }
  const cfg = configSpace();
  new DataView(cfg.buffer).setUint32(0x60 + 12, 24, true);
  const t = new VirtioPciTransport(new FakePci(cfg, new FakeBar4(3)));
  readNetConfig(t, bit(32)); // nothing to read: fine
});

Deno.test("readNetConfig() refuses max_virtqueue_pairs that put the control queue beyond queue_select", () => {
  const { bar, t } = netConfigDevice();
  bar.mem.write16(DEVCFG_AT + 8, 0x8000);
  assertDriverError(
    () => readNetConfig(t, bit(VIRTIO_NET_F_CTRL_VQ) | bit(VIRTIO_NET_F_MQ)),
    "DEVICE_MISBEHAVED",
    /max_virtqueue_pairs = 32768, which puts the control queue at index 65536, beyond the 16-bit queue_select: the device is broken/,
  );
  bar.mem.write16(DEVCFG_AT + 8, 0x7fff);
  assert.equal(readNetConfig(t, RSS).maxVirtqueuePairs, 0x7fff);
});

Deno.test("readNetConfig() refuses max_virtqueue_pairs outside 1…0x8000 and an MTU below 68", () => {
  const { bar, t } = netConfigDevice();
  bar.mem.write16(DEVCFG_AT + 8, 0);
  assertDriverError(
    () => readNetConfig(t, bit(VIRTIO_NET_F_MQ)),
    "DEVICE_MISBEHAVED",
    /max_virtqueue_pairs = 0, outside 1…32768/,
  );
  bar.mem.write16(DEVCFG_AT + 8, 0x8001);
  assertDriverError(
    () => readNetConfig(t, bit(VIRTIO_NET_F_MQ)),
    "DEVICE_MISBEHAVED",
    /max_virtqueue_pairs = 32769/,
  );
  bar.mem.write16(DEVCFG_AT + 10, 67);
  assertDriverError(
    () => readNetConfig(t, bit(VIRTIO_NET_F_MTU)),
    "DEVICE_MISBEHAVED",
    /an MTU of 67, below IPv4's minimum of 68/,
  );
});

Deno.test("readNetConfig() refuses an rss_max_key_size below 40 with RSS or HASH_REPORT", () => {
  const { bar, t } = netConfigDevice();
  bar.mem.write8(DEVCFG_AT + 17, 39);
  for (const features of [RSS, bit(VIRTIO_NET_F_CTRL_VQ) | bit(VIRTIO_NET_F_HASH_REPORT)]) {
    assertDriverError(
      () => readNetConfig(t, features),
      "DEVICE_MISBEHAVED",
      /rss_max_key_size = 39, below the 40 bytes required: the device is broken/,
    );
  }
  assert.equal(readNetConfig(t, bit(VIRTIO_NET_F_MQ)).rssMaxKeySize, 0, "not read without them");
});

Deno.test("readNetConfig() refuses an RSS indirection table length below the spec's 128, and takes any above", () => {
  const { bar, t } = netConfigDevice();
  for (const len of [0, 1, 64, 127]) {
    bar.mem.write16(DEVCFG_AT + 18, len);
    assertDriverError(
      () => readNetConfig(t, RSS),
      "DEVICE_MISBEHAVED",
      new RegExp(`rss_max_indirection_table_length = ${len}, below the 128 entries required`),
    );
  }
  for (const len of [128, 200, 256]) {
    bar.mem.write16(DEVCFG_AT + 18, len);
    assert.equal(readNetConfig(t, RSS).rssMaxIndirectionTableLength, len);
  }
});

/** Opens a port on the emulated device offering `features` (plus VERSION_1, ACCESS_PLATFORM). */
function openOn(d: ReturnType<typeof netConfigDevice>, features: bigint) {
  d.bar.deviceFeatures = features | bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_F_ACCESS_PLATFORM);
  return () => VirtioNetPort.open(pciTransport(d.pci), { hugePages: false }).close();
}

Deno.test("a port refuses a device MTU above 9216 before it takes any DMA memory", () => {
  const d = netConfigDevice();
  d.bar.mem.write16(DEVCFG_AT + 10, 65535);
  assertDriverError(
    openOn(d, bit(VIRTIO_NET_F_MTU)),
    "UNSUPPORTED",
    /reports an MTU of 65535, more than the 9216 bytes .*: give the device an MTU of at most 9216 \(QEMU: host_mtu=9000\)\.$/,
  );
  assert.equal(d.pci.dmaMaps, 0);
  assert.equal(d.bar.status, 0, "the device was reset");
});

Deno.test("a port refuses a control queue index that wraps queue_select onto receiveq1", () => {
  const d = netConfigDevice();
  d.bar.mem.write16(DEVCFG_AT + 8, 0x8000);
  assertDriverError(
    openOn(d, bit(VIRTIO_NET_F_CTRL_VQ) | bit(VIRTIO_NET_F_MQ)),
    "DEVICE_MISBEHAVED",
    /control queue at index 65536/,
  );
  assert.equal(d.pci.dmaMaps, 0);
  assert.equal(d.bar.queues[0].enable, 0, "receiveq1 was not set up (as the control queue)");
});
