/**
 * The vhost-user front-end against a scripted back-end (vhost_user_fake_backend.ts, in a
 * Worker): the session start, need_reply acks and refusals, a back-end that closes, stays
 * silent, answers wrongly or speaks unasked, and the transport's view of it all (features
 * offered and passed on, the synthesized configuration, vring set-up, enable and stop).
 */

import assert from "node:assert/strict";
import { DeviceControlQueue } from "../../src/virtio/vhost_user_control.ts";
import { PackedDeviceControlQueue } from "../../src/virtio/vhost_user_control_packed.ts";
import { DmaRegion } from "../../src/dma/memory.ts";
import { DriverError } from "../../src/errors.ts";
import "../../src/net/features.ts"; // names the virtio-net bits in messages
import { splitRingLayout } from "../../src/virtio/ring_math.ts";
import { VhostUserTransport } from "../../src/virtio/vhost_user_transport.ts";
import { VhostUserDevice } from "../../src/vhost_user/vhost_user_device.ts";
import type { BackendScript, Seen } from "./vhost_user_fake_backend.ts";

const bit = (n: number) => 1n << BigInt(n);
// What DPDK 22.11's vhost PMD offers (tso=0): VERSION_1, EVENT_IDX, INDIRECT, ANY_LAYOUT,
// MRG_RXBUF, CTRL_VQ, CTRL_RX, GUEST_ANNOUNCE, MQ, LOG_ALL, PROTOCOL_FEATURES, CSUM, ...
const DPDK_FEATURES = [32, 29, 28, 27, 15, 17, 18, 21, 22, 26, 30, 0, 1, 3, 35]
  .reduce((a, b) => a | bit(b), 0n);
const DPDK_PROTOCOL = [0, 1, 2, 3, 4, 5, 7, 10, 11, 8, 16].reduce((a, b) => a | bit(b), 0n);

async function backend(script: Partial<BackendScript> = {}) {
  const dir = Deno.makeTempDirSync({ prefix: "vhost-user-test" });
  const path = `${dir}/be.sock`;
  const worker = new Worker(new URL("./vhost_user_fake_backend.ts", import.meta.url), {
    type: "module",
  });
  const inbox: Record<string, unknown>[] = [];
  const waiters: (() => void)[] = [];
  worker.onmessage = (e) => {
    inbox.push(e.data);
    waiters.splice(0).forEach((w) => w());
  };
  const next = async (key: string) => {
    for (;;) {
      const i = inbox.findIndex((m) => key in m);
      if (i >= 0) return inbox.splice(i, 1)[0];
      await new Promise<void>((r) => waiters.push(r));
    }
  };
  worker.postMessage({
    path,
    features: String(DPDK_FEATURES),
    protocolFeatures: String(DPDK_PROTOCOL),
    queueNum: "128",
    ...script,
  });
  await next("listening");
  return {
    path,
    async seen(): Promise<Seen[]> {
      worker.postMessage("report");
      return (await next("seen")).seen as Seen[];
    },
    async hangUp() {
      worker.postMessage("stop");
      await next("stopped");
    },
    stop() {
      worker.terminate();
      Deno.removeSync(dir, { recursive: true });
    },
  };
}

const names = (s: Seen[]) => s.map((m) => m.request);
const code = (c: string, m: RegExp) => (e: unknown) =>
  e instanceof DriverError && e.code === c && m.test(e.message);

Deno.test("the session starts with SET_OWNER, GET_FEATURES, protocol features (MQ and REPLY_ACK of those offered), GET_QUEUE_NUM", async () => {
  const be = await backend({ queueNum: "200" });
  try {
    const d = VhostUserDevice.connect(be.path, { timeoutMs: 2000 });
    assert.equal(d.features, DPDK_FEATURES);
    assert.equal(d.protocolFeatures, 0x9n);
    assert.equal(d.queuePairs, 128, "vring indices have 8 bits: at most 128 pairs");
    d.close();
    const seen = await be.seen();
    assert.deepEqual(names(seen), [3, 1, 15, 16, 17]);
    assert.deepEqual(seen.map((m) => m.flags), [1, 1, 1, 1, 1], "no need_reply before REPLY_ACK");
    assert.deepEqual(seen[3].payload, [9, 0, 0, 0, 0, 0, 0, 0]);
  } finally {
    be.stop();
  }
});

Deno.test("with REPLY_ACK, requests without a reply carry need_reply, and a refusal is one sentence naming the request", async () => {
  const be = await backend({ refuse: [2] });
  try {
    const d = VhostUserDevice.connect(be.path, { timeoutMs: 2000 });
    assert.throws(
      () => d.setFeatures(bit(32)),
      code(
        "DEVICE_REFUSED",
        /^The vhost-user back-end at .*be\.sock refused SET_FEATURES \(features 0x140000000\): /,
      ),
    );
    d.close();
    const set = (await be.seen()).find((m) => m.request === 2)!;
    assert.equal(set.flags, 0x9);
  } finally {
    be.stop();
  }
});

Deno.test("an impossible queue count is DEVICE_MISBEHAVED", async () => {
  const be = await backend({ queueNum: "0" });
  try {
    assert.throws(
      () => VhostUserDevice.connect(be.path),
      code("DEVICE_MISBEHAVED", /reports 0 queue pairs/),
    );
  } finally {
    be.stop();
  }
});

Deno.test("a back-end that closes the connection during a request is TRANSPORT, naming the request", async () => {
  const be = await backend({ closeOn: 2 });
  try {
    const d = VhostUserDevice.connect(be.path, { timeoutMs: 2000 });
    assert.throws(
      () => d.setFeatures(bit(32)),
      code(
        "TRANSPORT",
        /closed the connection during SET_FEATURES .*: restart it, then the program\.$/,
      ),
    );
    assert.equal(d.connection.connected, false);
    assert.throws(
      () => d.checkOpen(),
      code("TRANSPORT", /during SET_FEATURES/),
      "the first reason stays",
    );
    d.close();
  } finally {
    be.stop();
  }
});

Deno.test("a reply to another request is a malformed reply", async () => {
  const be = await backend({ misanswer: 1 });
  try {
    assert.throws(
      () => VhostUserDevice.connect(be.path, { timeoutMs: 2000 }),
      code(
        "TRANSPORT",
        /malformed reply to GET_FEATURES \(it answered SET_FEATURES instead of GET_FEATURES\)/,
      ),
    );
  } finally {
    be.stop();
  }
});

Deno.test("a back-end that does not answer in time is TRANSPORT with the timeout", async () => {
  const be = await backend({ silentOn: 1 });
  try {
    assert.throws(
      () => VhostUserDevice.connect(be.path, { timeoutMs: 200 }),
      code("TRANSPORT", /did not answer GET_FEATURES within 200 ms/),
    );
  } finally {
    be.stop();
  }
});

Deno.test("checkOpen notices a back-end that hung up, and one that speaks unasked", async () => {
  const be = await backend();
  try {
    const t = VhostUserTransport.open(be.path, { timeoutMs: 2000 });
    t.checkHealthy();
    await be.hangUp();
    await new Promise((r) => setTimeout(r, 50));
    assert.throws(
      () => t.checkHealthy(),
      code(
        "TRANSPORT",
        /^The vhost-user back-end at .* closed the connection \(it exited or was killed\): restart it, then the program\.$/,
      ),
    );
    assert.equal(t.readConfig((c) => c.read16(6)), 0, "the link is down once the back-end is gone");
    t.close();
    t.close();
  } finally {
    be.stop();
  }
  const chatty = await backend({ chatterAfter: 17 });
  try {
    const d = VhostUserDevice.connect(chatty.path, { timeoutMs: 2000 });
    await new Promise((r) => setTimeout(r, 50));
    assert.throws(() => d.checkOpen(), code("TRANSPORT", /sent a message nobody asked for/));
    d.close();
  } finally {
    chatty.stop();
  }
});

Deno.test("the transport offers the data-path features, its own MAC/STATUS/CTRL_VQ/ACCESS_PLATFORM, MQ only with several pairs; never vhost's or control-queue bits", async () => {
  const be = await backend();
  try {
    const one = VhostUserTransport.open(be.path, { maxQueuePairs: 1, timeoutMs: 2000 });
    const f = one.deviceFeatures();
    for (const b of [32, 29, 28, 27, 15, 0, 1, 35, 5, 16, 17, 33]) {
      assert.ok(f & bit(b), `bit ${b}`);
    }
    for (const b of [30, 26, 18, 21, 22, 3]) assert.equal(f & bit(b), 0n, `bit ${b}`);
    assert.equal(f & bit(34), 0n, "RING_PACKED only when the back-end offers it");
    one.close();
  } finally {
    be.stop();
  }
  const be2 = await backend();
  try {
    const t = VhostUserTransport.open(be2.path, {
      maxQueuePairs: 4,
      mac: new Uint8Array([2, 0, 0, 0, 0, 9]),
      timeoutMs: 2000,
    });
    assert.ok(t.deviceFeatures() & bit(22));
    const cfg = t.readConfig((c) => ({
      mac: [0, 1, 2, 3, 4, 5].map((i) => c.read8(i)),
      status: c.read16(6),
      pairs: c.read16(8),
    }));
    assert.deepEqual(cfg, { mac: [2, 0, 0, 0, 0, 9], status: 1, pairs: 4 });
    assert.throws(
      () => t.setDriverFeatures(bit(32) | bit(18)),
      code("DEVICE_REFUSED", /does not offer VIRTIO_NET_F_CTRL_RX/),
    );
    assert.throws(
      () => t.setDriverFeatures(bit(32) | bit(22)),
      code("DEVICE_REFUSED", /MQ needs CTRL_VQ/),
    );
    t.reset();
    t.setDriverFeatures(bit(32) | bit(33) | bit(5) | bit(16) | bit(17) | bit(22) | bit(29));
    assert.equal(t.controlIndex, 8);
    t.close();
    const set = (await be2.seen()).filter((m) => m.request === 2).at(-1)!;
    const sent = new DataView(new Uint8Array(set.payload).buffer).getBigUint64(0, true);
    assert.equal(
      sent,
      bit(32) | bit(22) | bit(29) | bit(30),
      "front-end bits stay here; PROTOCOL_FEATURES is acked",
    );
  } finally {
    be2.stop();
  }
});

Deno.test("queues: rings must be mapped; a data queue is NUM, BASE, ADDR, KICK, CALL; DRIVER_OK enables pair 0; reset stops every vring", async () => {
  const be = await backend();
  const region = DmaRegion.allocate(1 << 20, { hugePages: false });
  try {
    const t = VhostUserTransport.open(be.path, { maxQueuePairs: 2, timeoutMs: 2000 });
    t.reset();
    t.addStatus(1 | 2);
    t.setDriverFeatures(bit(32) | bit(33) | bit(17) | bit(22));
    const l = splitRingLayout(256);
    const ring = (q: number) => region.iova + q * 16384;
    assert.throws(
      () => t.setupQueue(0, 256, ring(0), ring(0) + l.availOffset, ring(0) + l.usedOffset),
      code("DMA", /descriptor table of receiveq1 .* is not in memory mapped for the port/),
    );
    region.mapFor(t.dma);
    for (const q of [0, 1, 2, 3]) {
      t.setupQueue(q, 256, ring(q), ring(q) + l.availOffset, ring(q) + l.usedOffset);
    }
    const ctrl = t.setupQueue(
      4,
      64,
      ring(4),
      ring(4) + splitRingLayout(64).availOffset,
      ring(4) + splitRingLayout(64).usedOffset,
    );
    assert.ok(ctrl instanceof DeviceControlQueue, "the control queue is served here");
    assert.deepEqual(t.doorbell(1).kind, "eventfd");
    assert.throws(() => t.doorbell(4), code("BAD_ARGUMENT", /no doorbell/));
    t.addStatus(4);
    const route = t.routeQueueInterrupt(0, t.device.callFd(2));
    assert.equal(route.vector, -1);
    route.unroute();
    t.reset();
    assert.equal(t.status, 0);
    assert.deepEqual(t.device.startedVrings, []);
    region.unmapFrom(t.dma);
    t.close();
    const seen = (await be.seen()).slice(6); // after the session start and SET_FEATURES
    const tail = seen.map((m) => m.request);
    assert.equal(tail[0], 5, "SET_MEM_TABLE first");
    assert.deepEqual(tail.slice(1, 6), [8, 10, 9, 12, 13]);
    const enables = seen.filter((m) => m.request === 18).map((m) => [m.payload[0], m.payload[4]]);
    assert.deepEqual(enables, [[0, 1], [1, 1]], "only pair 0 until VQ_PAIRS_SET");
    const calls = seen.filter((m) => m.request === 13).length;
    assert.equal(calls, 4 + 2, "routed and put back");
    const stops = seen.filter((m) => m.request === 11).map((m) => m.payload[0]).sort();
    assert.deepEqual(stops, [0, 1, 2, 3]);
    assert.equal(tail.at(-1), 5, "the unmap re-sent the table");
    assert.ok(
      seen.every((m) => m.flags === 0x9 || m.request === 11),
      "need_reply on all but GET_VRING_BASE",
    );
  } finally {
    region.free();
    be.stop();
  }
});

Deno.test("packed rings: RING_PACKED passed through; 4-byte driver and device areas; SET_VRING_BASE 0x8000; GET_VRING_BASE read as slot and wrap counter", async () => {
  const be = await backend({ features: String(DPDK_FEATURES | bit(34)), vringBase: 0x8003 });
  const region = DmaRegion.allocate(1 << 20, { hugePages: false });
  try {
    const t = VhostUserTransport.open(be.path, { maxQueuePairs: 1, timeoutMs: 2000 });
    assert.ok(t.deviceFeatures() & bit(34), "RING_PACKED offered");
    t.reset();
    t.addStatus(1 | 2);
    t.setDriverFeatures(bit(32) | bit(33) | bit(34) | bit(17));
    assert.equal(t.device.packedRings, true);
    region.mapFor(t.dma);
    const end = region.iova + (1 << 20);
    assert.throws(
      () => t.setupQueue(0, 256, end - 16 * 256 + 16, region.iova, region.iova + 4),
      code("DMA", /descriptor ring of receiveq1 /),
    );
    assert.throws(
      () => t.setupQueue(0, 256, region.iova, end - 2, region.iova + 4096),
      code("DMA", /driver area of receiveq1 /),
    );
    assert.throws(
      () => t.setupQueue(0, 256, region.iova, region.iova + 4096, end - 2),
      code("DMA", /device area of receiveq1 /),
    );
    // The last 8 bytes hold both areas: a split ring's avail and used rings would not fit.
    t.setupQueue(0, 256, region.iova, end - 8, end - 4);
    t.setupQueue(1, 2, region.iova + 8192, region.iova + 8256, region.iova + 8260);
    const ctrl = t.setupQueue(2, 64, region.iova + 16384, end - 64, end - 60);
    assert.ok(ctrl instanceof PackedDeviceControlQueue, "the control queue is served packed");
    assert.throws(
      () =>
        t.device.startVring({
          index: 0,
          size: 8,
          packed: false,
          desc: 0n,
          avail: 0n,
          used: 0n,
          base: { avail: 0, wrap: false },
        }),
      /set up split, but SET_FEATURES acked VIRTIO_F_RING_PACKED/,
    );
    assert.deepEqual(t.device.stopVring(0), { avail: 3, wrap: true });
    assert.equal(t.device.stopVring(0), null, "already stopped");
    assert.throws(
      () => t.device.stopVring(1),
      code("TRANSPORT", /GET_VRING_BASE of packed vring 1 \(2 entries\) with vring 1, base 0x8003/),
    );
    t.reset();
    region.unmapFrom(t.dma);
    t.close();
    const seen = await be.seen();
    const set = seen.filter((m) => m.request === 2).at(-1)!;
    const sent = new DataView(new Uint8Array(set.payload).buffer).getBigUint64(0, true);
    assert.equal(sent, bit(32) | bit(34) | bit(30), "RING_PACKED acked to the back-end");
    const bases = seen.filter((m) => m.request === 10).map((m) => m.payload);
    assert.deepEqual(bases, [[0, 0, 0, 0, 0, 0x80, 0, 0], [1, 0, 0, 0, 0, 0x80, 0, 0]]);
  } finally {
    region.free();
    be.stop();
  }
});

Deno.test("l2fwd against a back-end that refuses the negotiated features: one sentence naming it, exit 1", async () => {
  const be = await backend({ refuse: [2] }); // SET_FEATURES
  try {
    const root = new URL("../..", import.meta.url).pathname;
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        "--allow-ffi",
        `${root}examples/l2fwd.ts`,
        `vhost-user:${be.path}`,
        `vhost-user:${be.path}.other`,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const err = new TextDecoder().decode(out.stderr).trim();
    assert.equal(out.code, 1, err);
    assert.match(
      err,
      /^error: The vhost-user back-end at \S+be\.sock refused SET_FEATURES [^\n]*\.$/,
    );
  } finally {
    be.stop();
  }
});
