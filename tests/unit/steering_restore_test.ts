/**
 * Steering.set when the device refuses a rule: the rule in force before is sent again,
 * whatever it was (the device, QEMU at least, dropped its RSS state on the refused command).
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  ControlCommandError,
  type ControlQueue,
  VIRTIO_NET_CTRL_MQ,
  VIRTIO_NET_CTRL_MQ_RSS_CONFIG,
  VIRTIO_NET_ERR,
} from "../../src/net/control_queue.ts";
import type { NetConfig } from "../../src/net/config.ts";
import type { RxQueue } from "../../src/net/rx_queue.ts";
import { Steering } from "../../src/net/steering.ts";
import type { TxQueue } from "../../src/net/tx_queue.ts";
import { decodeRssConfig } from "../../src/steering/rss_config.ts";

const CTRL_VQ = 17, MQ = 22, RSS = 60;
const features = (1n << BigInt(CTRL_VQ)) | (1n << BigInt(MQ)) | (1n << BigInt(RSS));
const config: NetConfig = {
  mac: new Uint8Array(6),
  linkUp: true,
  announce: false,
  maxVirtqueuePairs: 4,
  mtu: 1500,
  rssMaxKeySize: 40,
  rssMaxIndirectionTableLength: 128,
  supportedHashTypes: 0x3f,
};

/** A control queue that records every command and refuses the ones `refuse` picks. */
function fakeControl(refuse: (n: number) => boolean) {
  const sent: { cmd: number; data: Uint8Array }[] = [];
  const control = {
    command(cls: number, cmd: number, data: Uint8Array) {
      assert.equal(cls, VIRTIO_NET_CTRL_MQ);
      sent.push({ cmd, data: data.slice() });
      if (refuse(sent.length)) throw new ControlCommandError("fake", cls, cmd, VIRTIO_NET_ERR);
    },
  } as unknown as ControlQueue;
  return { control, sent };
}

/** Receive and transmit queues with nothing on them: the gate has nothing to hold. */
function idleQueues(pairs: number): { rx: RxQueue[]; tx: TxQueue[] } {
  const rx = Array.from({ length: pairs }, (_, q) => ({
    pendingEpochs: 0,
    refill() {},
    beginEpoch() {},
    vq: { name: `receiveq${q + 1}`, kick() {}, deviceUsedIdx: () => 0 },
  })) as unknown as RxQueue[];
  const tx = Array.from({ length: pairs }, (_, q) => ({
    reclaim() {},
    vq: { name: `transmitq${q + 1}`, inFlight: 0 },
  })) as unknown as TxQueue[];
  return { rx, tx };
}

Deno.test("a refused rule after 'single' on an RSS device sends the one-entry table again", () => {
  // Command 1 ("single") is taken, command 2 (RSS over 4 pairs) refused, 3 is the restore.
  const { control, sent } = fakeControl((n) => n === 2);
  const { rx, tx } = idleQueues(4);
  const steering = new Steering("fake", features, config, control, rx, tx);
  steering.set({ mode: "single" });
  assert.throws(() => steering.set({ mode: "rss", pairs: 4 }), ControlCommandError);
  assert.equal(sent.length, 3, "the rule in force before was sent again");
  assert.deepEqual(sent.map((c) => c.cmd), Array(3).fill(VIRTIO_NET_CTRL_MQ_RSS_CONFIG));
  const restored = decodeRssConfig(sent[2].data);
  assert.deepEqual(restored.indirectionTable, [0]);
  assert.equal(restored.maxTxVq, 4, "max_tx_vq stays at the port's pairs");
  assert.deepEqual(steering.current, { mode: "single" });
});
