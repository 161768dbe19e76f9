/**
 * The forwarder's side of offloads (docs/offloads.md): a script's per-frame request is
 * written into the frame's header for its output port, a request the port cannot honour
 * drops the frame with its reason, a frame received partial goes out partial without a
 * script, and a frame that spans buffers reaches the script by its first buffer.
 */

import assert from "node:assert/strict";
import { BufferPool, NO_BUFFER } from "../../src/dma/buffer_pool.ts";
import { DmaRegion } from "../../src/dma/memory.ts";
import {
  P_DROP_SCRIPT,
  P_DROP_TX_OFFLOAD,
  portBase,
  WORKER_SLOTS,
} from "../../src/engine/counters.ts";
import { Forwarder, type TxPort } from "../../src/engine/forwarder.ts";
import type { Burst } from "../../src/engine/script_api.ts";
import { PORT_SLOTS } from "../../src/net/queue_counters.ts";
import {
  CSUM_PARTIAL,
  FrameOffloads,
  OFFLOAD_TSO4,
  OFFLOAD_TX_CSUM,
} from "../../src/net/offloads.ts";
import { FakeRx } from "./fake_rx_port.ts";

const HDR = 12;

/** A transmit port that keeps what it is given. */
class FakeTx implements TxPort {
  sent: [buf: number, len: number][] = [];
  stoppedTooLong = 0;
  /** Frames longer than this stop txBurst as too long for the ring (as TxQueue does). */
  longest = Infinity;
  readonly vq = { inFlight: 0, publishedIdx: 0, deviceUsedIdx: () => 0 };
  txBurst(bufs: Uint32Array, lens: Uint32Array, count: number): number {
    this.stoppedTooLong = 0;
    for (let i = 0; i < count; i++) {
      if (lens[i] > this.longest) {
        this.stoppedTooLong = 1;
        return i;
      }
      this.sent.push([bufs[i], lens[i]]);
    }
    return count;
  }
  reclaim(): number {
    return 0;
  }
}

function rig(
  handle: ((b: Burst) => void) | null,
  offloads: number[],
  rxOffloads: number[],
) {
  const region = DmaRegion.allocate(64 * 2048, { hugePages: false });
  const pool = new BufferPool(region, 0, 64, 2048);
  const rx = [new FakeRx(), new FakeRx()], tx = [new FakeTx(), new FakeTx()];
  const c = new Float64Array(WORKER_SLOTS + 2 * PORT_SLOTS);
  const frames = new FrameOffloads(8);
  const clock = new Float64Array(1);
  const fwd = new Forwarder(rx, tx, pool, c, {
    queue: 0,
    burst: 8,
    drainMs: 0,
    headerSizes: [HDR, HDR],
    macRewrite: false,
    macs: [new Uint8Array(6), new Uint8Array(6)],
    script: handle
      ? {
        module: { handleBurst: handle },
        counters: new Float64Array(0),
        table: new Float64Array(0),
      }
      : null,
    clock,
    capture: null,
    offloads,
    rxOffloads,
    frames,
  });
  const frame = (len: number): number => {
    const b = pool.alloc();
    pool.data.fill(0xaa, pool.offset(b), pool.offset(b) + 2048);
    rx[0].bufs.push(b);
    rx[0].lens.push(len);
    return b;
  };
  return { region, pool, rx, tx, c, frames, fwd, frame };
}

function tso(b: Burst, i: number, size: number): void {
  b.csum[i] = CSUM_PARTIAL;
  b.csumStart[i] = 34;
  b.csumOffset[i] = 16;
  b.gsoType[i] = 1;
  b.gsoSize[i] = size;
  b.hdrLen[i] = 54;
}

Deno.test("forwarder: a script's TSO request is written into the frame's header for its output port", () => {
  const r = rig((b) => tso(b, 0, 1000), [0, OFFLOAD_TX_CSUM | OFFLOAD_TSO4], [0, 0]);
  try {
    const b = r.frame(1500);
    r.fwd.poll();
    assert.deepEqual(r.tx[1].sent, [[b, 1500]]);
    const v = new DataView(r.pool.data.buffer, r.pool.offset(b), HDR);
    assert.deepEqual(
      [v.getUint8(0), v.getUint8(1), v.getUint16(2, true), v.getUint16(4, true)],
      [1, 1, 54, 1000],
    );
    assert.deepEqual([v.getUint16(6, true), v.getUint16(8, true), v.getUint16(10, true)], [
      34,
      16,
      0,
    ]);
    assert.equal(r.pool.txHeader[b], 1, "marked: txBurst sends it as is");
  } finally {
    r.region.free();
  }
});

Deno.test("forwarder: a request the output port did not negotiate drops the frame, counted there", () => {
  const r = rig((b) => tso(b, 0, 1000), [0, OFFLOAD_TX_CSUM], [0, 0]);
  try {
    r.frame(1500);
    const before = r.pool.available;
    r.fwd.poll();
    assert.deepEqual(r.tx[1].sent, []);
    assert.equal(r.c[portBase(1) + P_DROP_TX_OFFLOAD], 1);
    assert.equal(r.pool.available, before + 1, "its buffer went back");
  } finally {
    r.region.free();
  }
});

Deno.test("forwarder: without a script a frame received partial goes out partial", () => {
  const r = rig(null, [OFFLOAD_TX_CSUM, OFFLOAD_TX_CSUM], [1, 1]);
  try {
    const b = r.frame(100);
    // What a receive queue with receive offloads would have validated into the arrays.
    r.frames.csum[0] = CSUM_PARTIAL;
    r.frames.csumStart[0] = 34;
    r.frames.csumOffset[0] = 6;
    r.frames.gsoType[0] = 0;
    r.fwd.poll();
    assert.deepEqual(r.tx[1].sent, [[b, 100]]);
    assert.equal(r.pool.data[r.pool.offset(b)], 1, "NEEDS_CSUM");
    assert.equal(r.pool.txHeader[b], 1);
  } finally {
    r.region.free();
  }
});

Deno.test("forwarder: a frame that spans buffers reaches the script by its first buffer; lengthened, it is dropped", () => {
  const seen: number[] = [];
  const r = rig(
    (b) => {
      for (let i = 0; i < b.count; i++) seen.push(b.lens[i], b.csum[i]);
      b.lens[1] += 1;
    },
    [0, 0],
    [0, 0],
  );
  try {
    const big = 3000;
    const a = r.frame(big), tail = r.pool.alloc();
    r.pool.next[a] = tail;
    r.frame(big);
    r.pool.next[r.rx[0].bufs[1]] = r.pool.alloc();
    r.fwd.poll();
    assert.deepEqual(seen, [big, 0, big, 0], "whole lengths, no checksum state");
    assert.deepEqual(r.tx[1].sent, [[a, big]]);
    assert.equal(r.c[portBase(0) + P_DROP_SCRIPT], 1);
    assert.notEqual(r.pool.next[a], NO_BUFFER);
  } finally {
    r.region.free();
  }
});

Deno.test("forwarder: a frame no transmit ring can take is freed, and the frames after it go out", () => {
  const r = rig(null, [0, 0], [0, 0]);
  try {
    r.tx[1].longest = 1500;
    const a = r.frame(100), long = r.frame(1600), c = r.frame(200);
    const before = r.pool.available;
    r.fwd.poll();
    r.fwd.drain(0);
    // Kept, the long frame would head the pending list for good and c would never go.
    assert.deepEqual(r.tx[1].sent, [[a, 100], [c, 200]], "the direction goes on");
    assert.equal(r.pool.available, before + 1, "the long frame's buffer is back in the pool");
    assert.ok(!r.tx[1].sent.some(([b]) => b === long));
  } finally {
    r.region.free();
  }
});
