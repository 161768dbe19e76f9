/**
 * The beds' host side without a guest (root, no QEMU, a few seconds): frames injected into a
 * multi-queue tap keep each flow, tagged or not, on one tap queue; frames the guest sends are
 * captured once and go nowhere else; a capture counts the frames its socket dropped.
 * The guest end of the tap is opened by the test itself (tap_queues.ts).
 *
 * Run: `deno test --allow-all tests/bed/inject_test.ts`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { injectionNames, Netns } from "./netns.ts";
import { TapQueues } from "./tap_queues.ts";
import { CaptureError, sendFrames, startCapture, type TrafficBed } from "./traffic.ts";
import { mixedFrame, mixedFrames, parseMixedFrame } from "./mixed_frames.ts";

const NIC_MAC = "52:54:00:12:34:50";

function trafficBed(ns: Netns): TrafficBed {
  return { netns: ns.name, tapName: (i) => ns.taps[i] };
}

Deno.test("tagged flows of 4 sizes sent by sendFrames each land on one queue of a 2-queue tap, tag intact", async () => {
  await using ns = await Netns.create({ tapQueues: [2], steerRxToCpu0: false });
  using q = TapQueues.open(ns.name, ns.taps[0], 2);
  // 64 tagged flows (IPv4 and IPv6 inside), each in 4 sizes; flow f % 6 is 3 or 4.
  const flows = Array.from({ length: 64 }, (_, i) => 6 * (i >> 1) + 3 + (i & 1));
  const frames: Uint8Array[] = [];
  let seq = 0;
  for (const size of [64, 200, 746, 1514]) {
    for (const flow of flows) frames.push(mixedFrame(1, seq++, flow, size, NIC_MAC));
  }
  q.drain();
  const sent = await sendFrames(trafficBed(ns), 0, frames);
  assert.deepEqual([sent.sent, sent.dropped], [frames.length, 0]);
  const perQueue = q.drain();
  const queueOf = new Map<number, Set<number>>();
  const got = new Map<number, Uint8Array[]>();
  perQueue.forEach((list, queue) => {
    for (const f of list) {
      const info = parseMixedFrame(f);
      assert.ok(info && info.vlan !== null, "an intact tagged test frame");
      (queueOf.get(info.flow) ?? queueOf.set(info.flow, new Set()).get(info.flow)!).add(queue);
      (got.get(info.flow) ?? got.set(info.flow, []).get(info.flow)!).push(f);
    }
  });
  const split = [...queueOf].filter(([, s]) => s.size > 1).map(([f]) => f);
  assert.deepEqual(split, [], `flows spread over both queues (via ${sent.via})`);
  for (const flow of flows) {
    assert.deepEqual(got.get(flow), frames.filter((f) => parseMixedFrame(f)!.flow === flow));
  }
});

Deno.test("frames the guest sends are captured once on the tap, tags intact, and never reach the injection veth", async () => {
  await using ns = await Netns.create({ tapQueues: [2], steerRxToCpu0: false });
  using q = TapQueues.open(ns.name, ns.taps[0], 2);
  const bed = trafficBed(ns);
  const veth = ns.injectInterface(ns.taps[0]);
  const before = await ns.stat(veth, "rx_packets");
  const frames = mixedFrames({
    seed: 4,
    count: 120,
    flows: 12,
    dst: "ff:ff:ff:ff:ff:ff",
    src: NIC_MAC,
  });
  const cap = await startCapture(bed, 0, { count: frames.length, timeoutMs: 10000 });
  frames.forEach((f, i) => q.write(i % 2, f));
  assert.deepEqual(await cap.done(), frames);
  assert.deepEqual(await cap.stats(), {
    captured: 120,
    ignored: 0,
    socketDrops: 0,
    unread: 0,
    truncated: 0,
  });
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(await ns.stat(veth, "rx_packets") - before, 0, "nothing came back out of the veth");
  assert.deepEqual(q.drain(), [[], []], "nothing came back into the tap");
});

Deno.test("a capture reports the frames its socket dropped: captured + socketDrops = frames the guest sent", async () => {
  await using ns = await Netns.create({ tapQueues: [1], steerRxToCpu0: false });
  using q = TapQueues.open(ns.name, ns.taps[0], 1);
  const count = 5000;
  const frames = mixedFrames({ seed: 6, count, flows: 60, dst: "ff:ff:ff:ff:ff:ff", src: NIC_MAC });
  // A one-block ring (32 frames), read only after the burst: most frames find no room.
  const cap = await startCapture(trafficBed(ns), 0, {
    count,
    timeoutMs: 3000,
    ringBytes: 1,
    holdMs: 500,
  });
  for (const f of frames) q.write(0, f);
  const got = await cap.done().catch((e) => {
    assert.ok(e instanceof CaptureError, String(e));
    assert.match(e.message, /its socket dropped \d+ for want of room/);
    return e.frames;
  });
  const stats = await cap.stats();
  assert.ok(stats, "the capture printed its counters");
  console.log(
    `${count} sent = ${stats.captured} captured + ${stats.socketDrops} dropped by the capture socket`,
  );
  assert.ok(stats.socketDrops > 0, "the tiny buffer made the socket drop");
  assert.equal(stats.captured, got.length);
  assert.equal(stats.captured + stats.socketDrops + stats.unread + stats.ignored, count);
});

Deno.test("jumbo frames reach a tap whose MTU was raised, through the bridge, and are captured whole", async () => {
  await using ns = await Netns.create({ tapQueues: [1], steerRxToCpu0: false });
  await ns.exec(["ip", "link", "set", ns.taps[0], "mtu", "9000"]);
  using q = TapQueues.open(ns.name, ns.taps[0], 1);
  const frames = [60, 1514, 4000, 9014].map((n, i) => mixedFrame(8, i, 0, n, NIC_MAC));
  const sent = await sendFrames(trafficBed(ns), 0, frames);
  assert.deepEqual([sent.sent, sent.dropped], [4, 0]);
  assert.deepEqual(q.drain(), [frames]);
  const cap = await startCapture(trafficBed(ns), 0, { count: 4, timeoutMs: 10000 });
  for (const f of frames) q.write(0, f);
  assert.deepEqual(await cap.done(), frames);
  assert.equal((await cap.stats())?.truncated, 0);
});

Deno.test("a frame the injection veth refuses is sent again and not counted as dropped", async () => {
  await using ns = await Netns.create({ tapQueues: [1], steerRxToCpu0: false });
  using q = TapQueues.open(ns.name, ns.taps[0], 1);
  const { peer } = injectionNames(ns.taps[0]);
  // The veth drops a frame longer than its peer's MTU with NET_XMIT_DROP (sendto: ENOBUFS)
  // and counts it, as it does when the peer's backlog is full.
  await ns.exec(["ip", "link", "set", peer, "mtu", "1000"]);
  const frame = mixedFrame(9, 0, 0, 1200, NIC_MAC);
  const sending = sendFrames(trafficBed(ns), 0, [frame]);
  const veth = ns.injectInterface(ns.taps[0]);
  for (let t = 0; (await ns.stat(veth, "tx_dropped")) === 0; t += 20) {
    assert.ok(t < 10000, "the veth refused the frame within 10 s");
    await new Promise((r) => setTimeout(r, 20));
  }
  await ns.exec(["ip", "link", "set", peer, "mtu", "65535"]);
  const sent = await sending;
  console.log(`resent ${sent.resent} times, veth counters +${sent.refusals}`);
  assert.ok(sent.resent > 0 && sent.refusals >= sent.resent, JSON.stringify(sent));
  assert.deepEqual([sent.sent, sent.dropped], [1, 0]);
  assert.deepEqual(q.drain(), [[frame]], "the frame reached the guest end of the tap once");
});
