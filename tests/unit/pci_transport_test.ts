/**
 * The modern virtio-pci transport (src/virtio/pci_transport.ts) against the emulated
 * virtio-net-pci function of fake_virtio_pci.ts.
 */

import assert from "node:assert/strict";
import { PCI_COMMAND } from "../../src/pci/capabilities.ts";
import { bit } from "../../src/virtio/features.ts";
import { VIRTIO_NET_F_MAC, VIRTIO_NET_F_STATUS } from "../../src/net/features.ts";
import {
  COMMON_CFGGENERATION,
  COMMON_DF,
  COMMON_DFSELECT,
  COMMON_GF,
  COMMON_GFSELECT,
  COMMON_MSIX,
  COMMON_NUMQ,
  COMMON_Q_AVAILLO,
  COMMON_Q_DESCLO,
  COMMON_Q_ENABLE,
  COMMON_Q_MSIX,
  COMMON_Q_NOFF,
  COMMON_Q_SELECT,
  COMMON_Q_SIZE,
  COMMON_Q_USEDLO,
  COMMON_STATUS,
  VIRTIO_MSI_NO_VECTOR,
  VirtioPciTransport,
} from "../../src/virtio/pci_transport.ts";
import {
  VIRTIO_CONFIG_S_ACKNOWLEDGE,
  VIRTIO_CONFIG_S_DRIVER,
  VIRTIO_CONFIG_S_FAILED,
  VIRTIO_CONFIG_S_FEATURES_OK,
  VIRTIO_CONFIG_S_NEEDS_RESET,
} from "../../src/virtio/status.ts";
import {
  assertDriverError,
  BAR_SIZE,
  COMMON_AT,
  configSpace,
  DEVCFG_AT,
  device,
  FakeBar4,
  FakePci,
  ISR_AT,
  NOTIFY_AT,
} from "./fake_virtio_pci.ts";

Deno.test("common configuration offsets are those of struct virtio_pci_common_cfg (§4.1.4.3)", () => {
  assert.deepEqual(
    [
      COMMON_DFSELECT,
      COMMON_DF,
      COMMON_GFSELECT,
      COMMON_GF,
      COMMON_MSIX,
      COMMON_NUMQ,
      COMMON_STATUS,
      COMMON_CFGGENERATION,
      COMMON_Q_SELECT,
      COMMON_Q_SIZE,
      COMMON_Q_MSIX,
      COMMON_Q_ENABLE,
      COMMON_Q_NOFF,
      COMMON_Q_DESCLO,
      COMMON_Q_AVAILLO,
      COMMON_Q_USEDLO,
    ],
    [0, 4, 8, 12, 16, 18, 20, 21, 22, 24, 26, 28, 30, 32, 40, 48],
  );
  assert.equal(VIRTIO_MSI_NO_VECTOR, 0xffff);
});

Deno.test("the transport enables memory decoding and bus mastering, keeping other command bits", () => {
  const { pci } = device();
  assert.equal(pci.config.read16(PCI_COMMAND), 0x0400 | 0x2 | 0x4);
});

Deno.test("the transport's windows land on the structures the capabilities name", () => {
  const { bar, t } = device();
  bar.mem.write8(ISR_AT, 0x3);
  bar.mem.write8(DEVCFG_AT + 5, 0x56);
  assert.equal(t.isr.read8(0), 3);
  assert.equal(t.deviceConfig.read8(5), 0x56);
  assert.equal(t.common.size, 0x1000);
  assert.equal(t.deviceConfig.size, 0x1000);
});

Deno.test("a device without a common configuration capability is NOT_VIRTIO_NET", () => {
  const pci = new FakePci(configSpace({ omitCommon: true }), new FakeBar4(2));
  assertDriverError(
    () => new VirtioPciTransport(pci),
    "NOT_VIRTIO_NET",
    /0000:00:04\.0 has no virtio common configuration capability.*disable-legacy=on/,
  );
});

Deno.test("a virtio structure outside its BAR or too short is DEVICE_MISBEHAVED", () => {
  const past = configSpace();
  new DataView(past.buffer).setUint32(0x40 + 8, BAR_SIZE - 16, true); // common cfg at the end
  assertDriverError(
    () => new VirtioPciTransport(new FakePci(past, new FakeBar4(2))),
    "DEVICE_MISBEHAVED",
    /common configuration structure \(BAR4 \+0x3ff0, 4096 bytes\) does not fit its BAR of 16384/,
  );
  const short = configSpace();
  new DataView(short.buffer).setUint32(0x40 + 12, 0x20, true); // 32 bytes < 56
  assertDriverError(
    () => new VirtioPciTransport(new FakePci(short, new FakeBar4(2))),
    "DEVICE_MISBEHAVED",
    /common configuration/,
  );
});

Deno.test("reset() writes 0 and waits until device_status reads 0", () => {
  const { bar, t } = device();
  t.addStatus(VIRTIO_CONFIG_S_ACKNOWLEDGE);
  t.addStatus(VIRTIO_CONFIG_S_DRIVER);
  assert.equal(t.status, 3, "addStatus() only adds bits");
  bar.resetLag = 5;
  t.reset();
  assert.equal(t.status, 0);
});

Deno.test("reset() gives up with DEVICE_MISBEHAVED when status never reads 0", () => {
  const { bar, t } = device();
  t.addStatus(VIRTIO_CONFIG_S_ACKNOWLEDGE);
  bar.resetLag = -1;
  const t0 = Date.now();
  assertDriverError(
    () => t.reset(20),
    "DEVICE_MISBEHAVED",
    /did not complete its reset within 20 ms/,
  );
  assert.ok(Date.now() - t0 < 2000);
});

Deno.test("deviceFeatures() reads both 32-bit halves through device_feature_select", () => {
  const { bar, t } = device();
  bar.deviceFeatures = bit(63) | bit(33) | bit(32) | bit(VIRTIO_NET_F_MAC) | bit(0);
  assert.equal(t.deviceFeatures(), bar.deviceFeatures);
});

Deno.test("setDriverFeatures() writes both halves and sets FEATURES_OK", () => {
  const { bar, t } = device();
  const want = bit(32) | bit(33) | bit(VIRTIO_NET_F_MAC) | bit(VIRTIO_NET_F_STATUS);
  t.addStatus(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
  t.setDriverFeatures(want);
  assert.equal(bar.driverFeatures, want);
  assert.equal(t.status, 0x0b);
});

Deno.test("setDriverFeatures() reports DEVICE_REFUSED and sets FAILED when FEATURES_OK does not stick", () => {
  const { bar, t } = device();
  bar.accept = (f) => (f & bit(33)) !== 0n; // the device insists on ACCESS_PLATFORM
  t.addStatus(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
  assertDriverError(
    () => t.setDriverFeatures(bit(32) | bit(VIRTIO_NET_F_MAC)),
    "DEVICE_REFUSED",
    /refused the feature set VIRTIO_NET_F_MAC, VIRTIO_F_VERSION_1 \(FEATURES_OK did not stick\)/,
  );
  assert.ok(t.status & VIRTIO_CONFIG_S_FAILED);
  assert.equal(t.status & VIRTIO_CONFIG_S_FEATURES_OK, 0);
});

Deno.test("numQueues() and queueMaxSize() read the device's queue registers", () => {
  const { bar, t } = device({ queues: 3 });
  bar.queues[1].size = 1024;
  assert.equal(t.numQueues(), 3);
  assert.equal(t.queueMaxSize(0), 256);
  assert.equal(t.queueMaxSize(1), 1024);
  assert.equal(t.queueMaxSize(7), 0, "a queue that does not exist has size 0");
});

Deno.test("setupQueue() registers size, no MSI-X vector, the three IOVAs and enables the queue", () => {
  const { bar, t } = device();
  const notify = t.setupQueue(1, 128, 0x1_0000_0000, 0x1_0000_0800, 0x2_0000_1000);
  const q = bar.queues[1];
  assert.equal(q.size, 128);
  assert.equal(q.msix, VIRTIO_MSI_NO_VECTOR);
  assert.deepEqual(q.desc, [0x0000_0000, 1]);
  assert.deepEqual(q.driver, [0x0000_0800, 1]);
  assert.deepEqual(q.device, [0x0000_1000, 2]);
  assert.equal(q.enable, 1);
  assert.equal(bar.queues[0].enable, 0, "other queues untouched");
  notify.notify();
  // queue_notify_off 1 × notify_off_multiplier 4 from the notify structure's start.
  assert.deepEqual(bar.notifications, [{ offset: 4, value: 1 }]);
});

Deno.test("setupQueue() honours a page-per-queue notify multiplier", () => {
  const { bar, t } = device({ multiplier: 0x400 });
  bar.queues[2].notifyOff = 3;
  t.setupQueue(2, 64, 0x1_0000_0000, 0x1_0000_0400, 0x1_0000_0800).notify();
  assert.deepEqual(bar.notifications, [{ offset: 0xc00, value: 2 }]);
});

Deno.test("setupQueue() rejects a notification address outside the notify structure", () => {
  const { bar, t } = device();
  bar.queues[0].notifyOff = 0x400; // 0x400 × 4 = 0x1000: just past the 4 KiB structure
  assertDriverError(
    () => t.setupQueue(0, 64, 0x1_0000_0000, 0x1_0000_0400, 0x1_0000_0800),
    "DEVICE_MISBEHAVED",
    /queue 0's notification address outside its notify structure/,
  );
});

Deno.test("checkHealthy() throws on DEVICE_NEEDS_RESET, FAILED or a reset under the driver, and passes otherwise", () => {
  const { bar, t } = device();
  bar.status = 0x0f;
  t.checkHealthy();
  bar.status = 0x0f | VIRTIO_CONFIG_S_NEEDS_RESET;
  assertDriverError(() => t.checkHealthy(), "DEVICE_MISBEHAVED", /reports DEVICE_NEEDS_RESET/);
  bar.status = 0x0b | VIRTIO_CONFIG_S_FAILED;
  assertDriverError(() => t.checkHealthy(), "DEVICE_MISBEHAVED", /reports FAILED/);
  bar.status = 0; // reset by someone else
  assertDriverError(() => t.checkHealthy(), "DEVICE_MISBEHAVED", /reset under the driver/);
});

Deno.test("readConfig() repeats the read until config_generation is stable", () => {
  const { bar, t } = device();
  bar.configChanges = 2;
  let reads = 0;
  const v = t.readConfig((c) => {
    reads++;
    return c.read8(0);
  });
  assert.equal(v, 0);
  assert.equal(reads, 3);
});

Deno.test("readConfig() gives up with DEVICE_MISBEHAVED when the generation never settles", () => {
  const { bar, t } = device();
  bar.configChanges = Infinity;
  assertDriverError(() => t.readConfig((c) => c.read8(0)), "DEVICE_MISBEHAVED", /never settled/);
});

Deno.test("setQueueVector() selects the queue, writes queue_msix_vector and returns the read-back", () => {
  const { bar, t } = device();
  assert.equal(t.setQueueVector(2, 3), 3);
  assert.equal(bar.queues[2].msix, 3);
  assert.equal(t.queueVector(2), 3);
  assert.equal(t.queueVector(0), 0);
  assert.equal(t.setQueueVector(2, VIRTIO_MSI_NO_VECTOR), VIRTIO_MSI_NO_VECTOR);
  assert.equal(bar.queues[2].msix, VIRTIO_MSI_NO_VECTOR);
});

Deno.test("setQueueVector() returns NO_VECTOR when the device refuses the vector (§4.1.5.1.2)", () => {
  const { bar, t } = device();
  bar.msixTableSize = 2;
  assert.equal(t.setQueueVector(0, 1), 1);
  assert.equal(t.setQueueVector(1, 2), VIRTIO_MSI_NO_VECTOR);
  assert.equal(bar.queues[1].msix, VIRTIO_MSI_NO_VECTOR);
});

Deno.test("setConfigVector() writes config_msix_vector and reads it back", () => {
  const { bar, t } = device();
  assert.equal(t.setConfigVector(0), 0);
  assert.equal(bar.mem.read16(COMMON_AT + COMMON_MSIX), 0);
  assert.equal(t.setConfigVector(VIRTIO_MSI_NO_VECTOR), VIRTIO_MSI_NO_VECTOR);
});

Deno.test("a virtio structure at an offset its alignment forbids is DEVICE_MISBEHAVED (§4.1.4)", () => {
  // [capability, offset, required alignment]: common 0x40, ISR 0x50, device 0x60, notify 0x70.
  for (
    const [cap, offset, what] of [
      [0x40, COMMON_AT + 2, /common configuration structure at BAR4 \+0x2 is not 4-byte aligned/],
      [0x60, DEVCFG_AT + 2, /device configuration structure at BAR4 \+0x2002 is not 4-byte/],
      [0x70, NOTIFY_AT + 1, /notification structure at BAR4 \+0x3001 is not 2-byte aligned/],
    ] as const
  ) {
    const cfg = configSpace();
    new DataView(cfg.buffer).setUint32(cap + 8, offset, true);
    assertDriverError(
      () => new VirtioPciTransport(new FakePci(cfg, new FakeBar4(2))),
      "DEVICE_MISBEHAVED",
      new RegExp(`^0000:00:04\\.0's virtio ${what.source}.*: the device is broken\\.$`),
    );
  }
  const isr = configSpace();
  new DataView(isr.buffer).setUint32(0x50 + 8, ISR_AT + 1, true); // ISR: any offset
  const bar = new FakeBar4(2);
  bar.mem.write8(ISR_AT + 1, 3);
  assert.equal(new VirtioPciTransport(new FakePci(isr, bar)).isr.read8(0), 3);
});

Deno.test("a notify_off_multiplier that is neither 0 nor an even power of two is DEVICE_MISBEHAVED", () => {
  for (const multiplier of [1, 3, 6, 0x1001]) {
    assertDriverError(
      () => device({ multiplier }),
      "DEVICE_MISBEHAVED",
      new RegExp(`notify_off_multiplier ${multiplier} is neither 0 nor an even power of two`),
    );
  }
  for (const multiplier of [0, 2, 4, 0x1000]) device({ multiplier });
});

Deno.test("a malformed PCI capability list is a DriverError naming the device", () => {
  const cfg = configSpace();
  cfg[0x41] = 0x70; // common cfg -> notify, which leads back round: a loop
  assertDriverError(
    () => new VirtioPciTransport(new FakePci(cfg, new FakeBar4(2))),
    "DEVICE_MISBEHAVED",
    /^0000:00:04\.0's PCI capability list is malformed at offset 0x70: the device is broken\.$/,
  );
});
