/**
 * RxFilter's MAC filter table and VLAN commands (src/net/rx_filter.ts, §5.1.6.5.2–3): the
 * bytes each sends through the control queue, and what it refuses before sending.
 */

import assert from "node:assert/strict";
import { DriverError } from "../../src/errors.ts";
import {
  type ControlQueue,
  VIRTIO_NET_CTRL_MAC,
  VIRTIO_NET_CTRL_MAC_TABLE_SET,
  VIRTIO_NET_CTRL_VLAN,
  VIRTIO_NET_CTRL_VLAN_ADD,
  VIRTIO_NET_CTRL_VLAN_DEL,
} from "../../src/net/control_queue.ts";
import {
  VIRTIO_NET_F_CTRL_RX,
  VIRTIO_NET_F_CTRL_VLAN,
  VIRTIO_NET_F_CTRL_VQ,
} from "../../src/net/features.ts";
import { RxFilter } from "../../src/net/rx_filter.ts";
import { bit } from "../../src/virtio/features.ts";

/** A control queue that records the commands it is given. */
function recorder() {
  const sent: [number, number, number[]][] = [];
  const control = {
    command(cls: number, cmd: number, data: Uint8Array) {
      sent.push([cls, cmd, [...data]]);
    },
  } as unknown as ControlQueue;
  return { sent, control };
}

const ALL = bit(VIRTIO_NET_F_CTRL_VQ) | bit(VIRTIO_NET_F_CTRL_RX) | bit(VIRTIO_NET_F_CTRL_VLAN);
const mac = (...b: number[]) => Uint8Array.from(b);

Deno.test("setMacTable() sends both tables as le32 counts and 6-byte addresses", () => {
  const { sent, control } = recorder();
  const f = new RxFilter("p", ALL, control);
  f.setMacTable([mac(2, 0, 0, 0, 0, 0x77), mac(2, 0, 0, 0, 0, 0x78)], [
    mac(1, 0, 0x5e, 0, 0, 0xfb),
  ]);
  assert.deepEqual(sent, [[VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, [
    2,
    0,
    0,
    0,
    2,
    0,
    0,
    0,
    0,
    0x77,
    2,
    0,
    0,
    0,
    0,
    0x78,
    1,
    0,
    0,
    0,
    1,
    0,
    0x5e,
    0,
    0,
    0xfb,
  ]]]);
  f.setMacTable([], []);
  assert.deepEqual(sent[1][2], [0, 0, 0, 0, 0, 0, 0, 0], "empty tables clear them");
});

Deno.test("setMacTable() refuses a multicast address among the unicast ones, a short one, and the other way round", () => {
  const { sent, control } = recorder();
  const f = new RxFilter("p", ALL, control);
  for (
    const [u, m] of [[[mac(1, 0, 0x5e, 0, 0, 1)], []], [[mac(2, 0, 0)], []], [[], [
      mac(2, 0, 0, 0, 0, 1),
    ]]]
  ) {
    assert.throws(
      () => f.setMacTable(u, m),
      (e) => e instanceof DriverError && e.code === "BAD_ARGUMENT",
    );
  }
  assert.equal(sent.length, 0, "nothing sent");
});

Deno.test("addVlan()/removeVlan() send the VLAN id as le16 and refuse ids outside 0-4095", () => {
  const { sent, control } = recorder();
  const f = new RxFilter("p", ALL, control);
  f.addVlan(10);
  f.removeVlan(4095);
  assert.deepEqual(sent, [
    [VIRTIO_NET_CTRL_VLAN, VIRTIO_NET_CTRL_VLAN_ADD, [10, 0]],
    [VIRTIO_NET_CTRL_VLAN, VIRTIO_NET_CTRL_VLAN_DEL, [0xff, 0x0f]],
  ]);
  for (const vid of [-1, 4096, 1.5]) {
    assert.throws(
      () => f.addVlan(vid),
      (e) => e instanceof DriverError && e.code === "BAD_ARGUMENT",
    );
  }
});

Deno.test("without VIRTIO_NET_F_CTRL_VLAN VLAN filtering is UNSUPPORTED, and nothing is sent", () => {
  const { sent, control } = recorder();
  const f = new RxFilter("p", bit(VIRTIO_NET_F_CTRL_VQ) | bit(VIRTIO_NET_F_CTRL_RX), control);
  assert.throws(
    () => f.addVlan(10),
    (e) =>
      e instanceof DriverError && e.code === "UNSUPPORTED" &&
      /VIRTIO_NET_F_CTRL_VLAN/.test(e.message),
  );
  assert.equal(sent.length, 0);
});
