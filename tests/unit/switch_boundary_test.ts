/**
 * switchBoundaries() over a real split ring in plain memory, the test playing the device:
 * the first frame only the new RSS rule puts on a queue is where the new rule begins.
 */

import assert from "node:assert/strict";
import type { PacketBuffers } from "../../src/dma/packet_buffers.ts";
import { switchBoundaries } from "../../src/net/switch_boundary.ts";
import {
  predictRss,
  type RssSteeringParams,
  VIRTIO_NET_RSS_HASH_TYPES_ALL,
} from "../../src/steering/hash_types.ts";
import { microsoftRssKey } from "../../src/steering/toeplitz.ts";
import { splitRingLayout } from "../../src/virtio/ring_math.ts";
import { SplitQueue } from "../../src/virtio/split_queue.ts";
import { udpFrame } from "../bed/frames.ts";

const SIZE = 16, BUF = 2048, HDR = 12, IOVA = 0x2_0000_0000;

const rule = (table: number[]): RssSteeringParams => ({
  key: microsoftRssKey(),
  hashTypes: VIRTIO_NET_RSS_HASH_TYPES_ALL,
  indirectionTable: table,
  unclassifiedQueue: 0,
  maxTxVq: 2,
});
const OLD = rule([0, 1, 0, 1]);
const NEW = rule([1, 0, 1, 0]);

/** Frames of flows the two rules put on different queues: old → `from`, new → 1 - from. */
function movingFrames(from: number, count: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let flow = 0; out.length < count; flow++) {
    const f = udpFrame(1, flow, flow, 100, "02:00:00:00:00:01", "02:00:00:00:00:02");
    if (predictRss(f, 0, f.length, OLD).queue === from) out.push(f);
  }
  return out;
}

function ringWith(q: number, frames: Uint8Array[]) {
  const layout = splitRingLayout(SIZE);
  const ring = new ArrayBuffer(layout.totalBytes);
  const vq = new SplitQueue(ring, 0, {
    index: 2 * q,
    size: SIZE,
    eventIdx: true,
    notify: { notify() {} },
    name: `receiveq${q + 1} of test`,
  });
  const data = new Uint8Array(SIZE * BUF);
  const iovaLo = new Uint32Array(SIZE), iovaHi = new Uint32Array(SIZE);
  for (let b = 0; b < SIZE; b++) {
    iovaLo[b] = (IOVA + b * BUF) % 0x1_0000_0000;
    iovaHi[b] = Math.floor((IOVA + b * BUF) / 0x1_0000_0000);
  }
  let next = 0;
  const pool: PacketBuffers = {
    bufferSize: BUF,
    data,
    words: new Uint32Array(data.buffer),
    iovaLo,
    iovaHi,
    next: new Uint32Array(SIZE).fill(0xffff_ffff),
    txHeader: new Uint8Array(SIZE),
    offset: (b) => b * BUF,
    alloc: () => next < SIZE ? next++ : 0xffff_ffff,
    free: () => {},
  };
  for (let b = 0; b < SIZE; b++) vq.add(b, iovaLo[b], iovaHi[b], BUF, true);
  vq.publish();
  // The device: descriptor i gets frame i, used in order (ids 0, 1, …), written into the
  // buffer the descriptor table says descriptor i has.
  const view = new DataView(ring);
  frames.forEach((f, i) => {
    const addr = Number(view.getBigUint64(layout.descOffset + 16 * i, true));
    data.set(f, (addr - IOVA) + HDR);
    const at = layout.usedOffset + 4 + 8 * i;
    view.setUint32(at, i, true);
    view.setUint32(at + 4, HDR + f.length, true);
  });
  view.setUint16(layout.usedOffset + 2, frames.length, true);
  return { vq, pool, headerSize: HDR };
}

Deno.test("switchBoundaries() puts the boundary at the first frame only the new rule steers there", () => {
  // Queue 0 got two frames of flows the old rule steered to it, then three the new one did.
  const oldOnes = movingFrames(0, 2), newOnes = movingFrames(1, 3);
  const q0 = ringWith(0, [...oldOnes, ...newOnes]);
  // Queue 1 got only frames the old rule steered to it.
  const q1 = ringWith(1, movingFrames(1, 4));
  assert.deepEqual(switchBoundaries([q0, q1], [0, 0], [5, 4], OLD, NEW), [2, 4]);
  // Bracketed from later on: the search starts where `before` says.
  assert.deepEqual(switchBoundaries([q0, q1], [3, 1], [5, 4], OLD, NEW), [3, 4]);
});

Deno.test("switchBoundaries() may put frames of flows that did not move on either side", () => {
  const same = rule([0, 1, 0, 1]);
  const q0 = ringWith(0, movingFrames(0, 3));
  // The new rule puts every frame here, so each may be new: the boundary is `before`.
  assert.deepEqual(switchBoundaries([q0], [0], [3], OLD, same), [0]);
});

Deno.test("switchBoundaries() with one side not RSS uses the side that is", () => {
  // From RSS to automatic steering: two frames the old rule put on queue 0, then one it
  // did not (so the device placed it by the new rule).
  const q0 = ringWith(0, [...movingFrames(0, 2), ...movingFrames(1, 1)]);
  assert.deepEqual(switchBoundaries([q0], [0], [3], OLD, null), [2]);
  // From automatic steering to RSS: a frame the new rule does not put here is old (the
  // queues are named by their place in the list: q1 is queue 1).
  const q1 = ringWith(1, [...movingFrames(1, 1), ...movingFrames(0, 2)]);
  assert.deepEqual(switchBoundaries([q0, q1], [0, 0], [3, 3], null, NEW), [2, 1]);
  // Neither rule RSS: the used index after the ack.
  assert.deepEqual(switchBoundaries([q0, q1], [0, 0], [3, 3], null, null), [3, 3]);
});
