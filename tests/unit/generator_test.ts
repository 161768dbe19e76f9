/**
 * The traffic generator (src/engine/generator.ts, gen_frame.ts) on fake ports: frames
 * byte for byte with a valid IPv4 header checksum, flowgen's flows, the token bucket on a
 * fake clock, a full ring (wait, no more buffers taken), and what comes back: latency,
 * sequence gaps and late frames; the snapshot's merge and the options' sentences. Heap
 * growth over many polls is reported, not asserted (seen: ~600 KB in the first rounds after
 * a full GC, V8 compiling the loop again; ~3 KB per 200,000 frames once settled).
 */

import assert from "node:assert/strict";
import { BufferPool } from "../../src/dma/buffer_pool.ts";
import { DmaRegion } from "../../src/dma/memory.ts";
import {
  counterLayout,
  G_LATENCY,
  G_RX_GEN,
  G_RX_OTHER,
  G_SEQ_GAPS,
  G_SEQ_LATE,
  P_TX_PACKETS,
  P_TX_RING_FULL_WAITS,
  portBase,
} from "../../src/engine/counters.ts";
import type { EngineOptions } from "../../src/engine/engine.ts";
import { checkEngineOptions } from "../../src/engine/engine_options.ts";
import { readSnapshot } from "../../src/engine/snapshot.ts";
import type { DriverError } from "../../src/errors.ts";
import type { RxPort, TxPort } from "../../src/engine/forwarder.ts";
import { ipv4Checksum, parseGenFrame } from "../../src/engine/gen_frame.ts";
import { Generator } from "../../src/engine/generator.ts";
import { mergeLatency, recordLatency } from "../../src/engine/latency.ts";
import { FakeRx } from "./fake_rx_port.ts";

const HDR = 12;
const MACS = [Uint8Array.of(2, 0xaa, 0, 0, 0, 1), Uint8Array.of(2, 0xbb, 0, 0, 0, 2)];

/**
 * A transmit port that keeps what it is given, at most `room` frames at a time; with
 * `done` set, it hands each buffer to it at once (a device that completes at once).
 */
class FakeTx implements TxPort {
  sent: [buf: number, len: number][] = [];
  stoppedTooLong = 0;
  room = Infinity;
  done: ((buf: number) => void) | null = null;
  readonly vq = { inFlight: 0, publishedIdx: 0, deviceUsedIdx: () => 0 };
  txBurst(bufs: Uint32Array, lens: Uint32Array, count: number): number {
    const n = Math.min(count, this.room);
    for (let i = 0; i < n; i++) {
      this.sent.push([bufs[i], lens[i]]);
      this.done?.(bufs[i]);
    }
    this.room -= n;
    return n;
  }
  reclaim(): number {
    return 0;
  }
}

function rig(opts: { frameSize?: number; flows?: number; ratePps?: number; burst?: number } = {}) {
  const region = DmaRegion.allocate(512 * 2048, { hugePages: false });
  const pool = new BufferPool(region, 0, 512, 2048);
  const rx = [new FakeRx(), new FakeRx()], tx = [new FakeTx(), new FakeTx()];
  const layout = counterLayout(2, 0, 0, true);
  const c = new Float64Array(layout.length);
  const clock = new Float64Array([1000]);
  let step = 0;
  const frameSize = opts.frameSize ?? 64, flows = opts.flows ?? 1;
  // Stale bytes where padding goes: the generator must zero them.
  pool.data.fill(0xee);
  const gen = new Generator(rx, tx, pool, c, {
    queue: 3,
    burst: opts.burst ?? 8,
    headerSizes: [HDR, HDR],
    frameSize,
    flows,
    macs: MACS,
    ratePps: opts.ratePps ?? 0,
    clock,
    tick: () => clock[0] += step,
    genBase: layout.genBase,
  });
  const frame = (b: number, len = frameSize) =>
    pool.data.subarray(pool.offset(b) + HDR, pool.offset(b) + HDR + len);
  return {
    region,
    pool,
    rx,
    tx,
    c,
    g: layout.genBase,
    gen,
    clock,
    frame,
    setStep: (ms: number) => step = ms,
  };
}

/** The frame txonly should send out of port `port` (built by hand, not from the template). */
function expected(port: number, size: number, seq: number, txNs: number): Uint8Array {
  const f = new Uint8Array(size), v = new DataView(f.buffer);
  f.set([2, 0, 0, 0, 0, port], 0);
  f.set(MACS[port], 6);
  f.set([0x08, 0x00, 0x45, 0x00], 12);
  v.setUint16(16, size - 14);
  f.set([0, 0, 0x40, 0x00, 64, 17], 18); // id 0, DF, TTL 64, UDP
  f.set([198, 18, 0, 1, 198, 18, 0, 2], 26);
  v.setUint16(24, ipv4Checksum(f, 14));
  f.set([0, 9, 0, 9], 34);
  v.setUint16(38, size - 34);
  v.setUint32(44, 0x56444700 | (3 << 1) | port, true); // magic, queue 3
  v.setUint32(48, seq, true);
  v.setUint32(56, txNs % 2 ** 32, true);
  v.setUint32(60, Math.floor(txNs / 2 ** 32), true);
  return f;
}

/** The RFC 1071 sum over an IPv4 header, checksum included: 0xffff when valid. */
function headerSum(f: Uint8Array): number {
  let s = 0;
  for (let i = 14; i < 34; i += 2) s += (f[i] << 8) | f[i + 1];
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

Deno.test("txonly frames are built byte for byte: headers, valid IPv4 checksum, magic, sequence, timestamp, zero padding", () => {
  for (const size of [64, 65, 128, 1514]) {
    const r = rig({ frameSize: size });
    try {
      r.gen.poll();
      assert.equal(r.tx[0].sent.length, 8);
      assert.equal(r.tx[1].sent.length, 8);
      const txNs = 1000 * 1e6; // the fake clock reads 1000 ms
      for (const port of [0, 1]) {
        r.tx[port].sent.forEach(([b, len], seq) => {
          assert.equal(len, size);
          const f = r.frame(b);
          assert.deepEqual(
            f,
            expected(port, size, seq, txNs),
            `port ${port} frame ${seq}, ${size} B`,
          );
          assert.equal(headerSum(f), 0xffff, "IPv4 header checksum");
          assert.deepEqual(parseGenFrame(f), { queue: 3, port, flow: 0, seq, txNs });
        });
      }
    } finally {
      r.region.free();
    }
  }
});

Deno.test("flowgen varies the IPv4 source and UDP source port over its flows, round robin, each with its own sequence", () => {
  const r = rig({ flows: 5, burst: 8 });
  try {
    r.gen.poll();
    r.gen.poll();
    const got = r.tx[0].sent.map(([b]) => {
      const f = r.frame(b);
      assert.equal(headerSum(f), 0xffff, "IPv4 header checksum");
      return { ...parseGenFrame(f)!, src: f.slice(26, 30).join("."), sport: (f[34] << 8) | f[35] };
    });
    assert.equal(got.length, 16);
    assert.deepEqual(got.map((g) => g.flow), [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0]);
    assert.deepEqual(got.slice(0, 5).map((g) => g.src), [
      "198.18.0.1",
      "198.18.0.2",
      "198.18.0.3",
      "198.18.0.4",
      "198.18.0.5",
    ]);
    assert.equal(new Set(got.slice(0, 5).map((g) => g.sport)).size, 5, "5 source ports");
    assert.deepEqual(got.filter((g) => g.flow === 0).map((g) => g.seq), [0, 1, 2, 3]);
    assert.deepEqual(got.filter((g) => g.flow === 4).map((g) => g.seq), [0, 1, 2]);
  } finally {
    r.region.free();
  }
});

Deno.test("ratePps: the token bucket on the worker's clock sends the asked rate, split over both ports", () => {
  // 4,000 frames/s per worker: 2 per ms per port. 1,000 polls 0.25 ms apart = 250 ms.
  const r = rig({ ratePps: 4000, burst: 32 });
  try {
    for (const t of r.tx) t.done = (b) => r.pool.free(b);
    r.setStep(0.25);
    for (let i = 0; i < 1000; i++) r.gen.poll();
    for (const port of [0, 1]) {
      const n = r.tx[port].sent.length;
      assert.ok(Math.abs(n - 500) <= 1, `port ${port}: ${n} frames in 250 ms at 2,000/s`);
    }
    // A stall of 100 ms: the bucket holds at most 20 ms of the rate (40 frames) or a
    // burst, no more; a poll sends a burst at most.
    r.setStep(100);
    const before = r.tx[0].sent.length;
    r.gen.poll();
    assert.equal(r.tx[0].sent.length - before, 32, "a burst after a stall");
    r.setStep(0);
    for (let i = 0; i < 5; i++) r.gen.poll();
    assert.equal(r.tx[0].sent.length - before, 40, "20 ms of the rate in all, not 200 frames");
  } finally {
    r.region.free();
  }
});

Deno.test("a full transmit ring: frames wait (a burst at most), no more buffers are taken until it has room", () => {
  const r = rig({ burst: 8 });
  try {
    r.tx[0].room = 5;
    r.tx[1].done = (b) => r.pool.free(b);
    r.gen.poll();
    const avail = r.pool.available;
    for (let i = 0; i < 100; i++) r.gen.poll();
    assert.equal(r.tx[0].sent.length, 5);
    // Port 0 tops its 3 waiting frames up to a burst once, then takes nothing; port 1
    // keeps generating (its device completes at once).
    assert.equal(r.pool.available, avail - 5);
    assert.equal(r.tx[1].sent.length, 8 * 101);
    assert.equal(r.c[portBase(0) + P_TX_RING_FULL_WAITS], 101);
    r.tx[0].room = Infinity;
    r.gen.poll();
    // The burst that waited goes out, in order.
    const seqs = r.tx[0].sent.map(([b]) => parseGenFrame(r.frame(b))!.seq);
    assert.deepEqual(seqs, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
  } finally {
    r.region.free();
  }
});

Deno.test("frames back are counted, timed and freed; a missing frame is a gap, an older one late; others are counted apart", () => {
  const r = rig({ burst: 8, flows: 1 });
  try {
    r.gen.poll(); // 8 frames out of each port at 1000 ms
    r.tx[1].room = 0; // nothing more goes out of port 1 (and nothing of port 0 comes back)
    const out = r.tx[0].sent.map(([b, len]) => [b, len]);
    // Back on port 1, 0.05 ms later: frames 0, 1, 3, 2, 5 (4 lost), 6, 7 and one stranger.
    for (const i of [0, 1, 3, 2, 5, 6, 7]) {
      r.rx[1].bufs.push(out[i][0]);
      r.rx[1].lens.push(out[i][1]);
    }
    const stranger = r.pool.alloc();
    r.rx[1].bufs.push(stranger);
    r.rx[1].lens.push(60);
    r.tx[0].room = 0;
    r.clock[0] += 0.05;
    const avail = r.pool.available;
    r.gen.poll();
    r.gen.poll();
    assert.equal(r.c[r.g + G_RX_GEN], 7);
    assert.equal(r.c[r.g + G_RX_OTHER], 1);
    assert.equal(
      r.c[r.g + G_SEQ_GAPS],
      2,
      "3 came before 2 (a gap of 1), then 5 after 3 (4 missing)",
    );
    assert.equal(r.c[r.g + G_SEQ_LATE], 1, "2 came after 3");
    // The 8 received are freed; 8 new frames wait for each of the two full rings.
    assert.equal(r.pool.available, avail + 8 - 16);
    const l = mergeLatency([r.c], r.g + G_LATENCY)!;
    assert.equal(l.count, 7);
    assert.equal(l.minUs, 50);
    assert.equal(l.maxUs, 50);
    assert.equal(l.p50Us, 50);
    assert.equal(l.jitterUs, 0);
  } finally {
    r.region.free();
  }
});

/** Both ports looped: what port p sends arrives on port p ^ 1, through typed arrays only. */
class Loop {
  readonly q = [new Uint32Array(1024), new Uint32Array(1024)];
  readonly ql = [new Uint32Array(1024), new Uint32Array(1024)];
  readonly n = new Uint32Array(2);
  readonly rx: RxPort[] = [0, 1].map((p) => ({
    rxBurst: (bufs: Uint32Array, lens: Uint32Array, max: number) => {
      const k = Math.min(max, this.n[p]);
      for (let i = 0; i < k; i++) {
        bufs[i] = this.q[p][i];
        lens[i] = this.ql[p][i];
      }
      this.q[p].copyWithin(0, k, this.n[p]);
      this.ql[p].copyWithin(0, k, this.n[p]);
      this.n[p] -= k;
      return k;
    },
  }));
  readonly tx: TxPort[] = [0, 1].map((p) => ({
    stoppedTooLong: 0,
    vq: { inFlight: 0, publishedIdx: 0, deviceUsedIdx: () => 0 },
    reclaim: () => 0,
    txBurst: (bufs: Uint32Array, lens: Uint32Array, count: number) => {
      const to = p ^ 1;
      for (let i = 0; i < count; i++) {
        this.q[to][this.n[to]] = bufs[i];
        this.ql[to][this.n[to]++] = lens[i];
      }
      return count;
    },
  }));
}

Deno.test("the generation loop's heap: garbage over 200,000 frames out and back after a full GC, fake ports of typed arrays (reported, not asserted)", async () => {
  // A full GC through node:vm, as worker.ts's heap audit does; then whatever the heap
  // gains over the polls (too little to start a scavenge) is what they allocated.
  const v8 = await import("node:v8"), vm = await import("node:vm");
  v8.setFlagsFromString("--expose-gc");
  const gc = vm.runInNewContext("gc") as () => void;
  const region = DmaRegion.allocate(512 * 2048, { hugePages: false });
  try {
    const pool = new BufferPool(region, 0, 512, 2048);
    const loop = new Loop(), layout = counterLayout(2, 0, 0, true);
    const c = new Float64Array(layout.length), clock = new Float64Array([5]);
    const gen = new Generator(loop.rx, loop.tx, pool, c, {
      queue: 0,
      burst: 32,
      headerSizes: [HDR, HDR],
      frameSize: 64,
      flows: 16,
      macs: MACS,
      ratePps: 0,
      clock,
      tick: () => {
        clock[0] += 0.001;
      },
      genBase: layout.genBase,
    });
    for (let i = 0; i < 100_000; i++) gen.poll(); // warm: V8 optimises the loop
    const rounds: string[] = [];
    for (let r = 0; r < 5; r++) {
      gc();
      const before = Deno.memoryUsage().heapUsed;
      for (let i = 0; i < 3125; i++) gen.poll(); // 64 frames out per poll
      rounds.push(`${Deno.memoryUsage().heapUsed - before} B`);
    }
    console.log(
      `heap gained per 200,000 frames generated (and as many received), 5 rounds: ${
        rounds.join(", ")
      }`,
    );
    assert.equal(c[layout.genBase + G_SEQ_GAPS] + c[layout.genBase + G_SEQ_LATE], 0);
    assert.ok(c[layout.genBase + G_RX_GEN] > 0);
  } finally {
    region.free();
  }
});

Deno.test("the snapshot merges the workers' generator blocks; in io mode it has none", () => {
  const layout = counterLayout(2, 0, 0, true);
  const w = [0, 1].map(() => new Float64Array(layout.length));
  w[0][layout.genBase + G_RX_GEN] = 3;
  w[1][layout.genBase + G_RX_GEN] = 4;
  w[1][layout.genBase + G_SEQ_GAPS] = 2;
  w[0][portBase(0) + P_TX_PACKETS] = 10;
  w[1][portBase(1) + P_TX_PACKETS] = 5;
  recordLatency(w[0], layout.genBase + G_LATENCY, 10_000);
  recordLatency(w[1], layout.genBase + G_LATENCY, 30_000);
  const g = readSnapshot(w, layout, ["a", "b"], []).generator!;
  assert.equal(g.rxFrames, 7);
  assert.equal(g.seqGaps, 2);
  assert.equal(g.txFrames, 15);
  assert.equal(g.latency?.count, 2);
  assert.equal(g.latency?.meanUs, 20);
  const io = counterLayout(2, 0, 0);
  assert.equal(
    "generator" in readSnapshot([new Float64Array(io.length)], io, ["a", "b"], []),
    false,
  );
});

Deno.test("bad generating options: one sentence each, naming the option and the fix", () => {
  const bad: EngineOptions[] = [
    { mode: "rxtx" as "io" },
    { generator: { frameSize: 64 } },
    { mode: "txonly", generator: { frameSize: 63 } },
    { mode: "txonly", generator: { flows: 4 } },
    { mode: "flowgen", generator: { flows: 0 } },
    { mode: "flowgen", generator: { ratePps: -1 } },
    { mode: "flowgen", generator: { ratePps: Infinity } },
    { mode: "txonly", script: { path: "x.ts" } },
    { mode: "txonly", capture: { path: "x.pcap", port: 0 } },
  ];
  for (const o of bad) {
    assert.throws(() => checkEngineOptions(o), (e: DriverError) => {
      assert.equal(e.code, "BAD_ARGUMENT");
      assert.match(e.message, /^[^\n]+\.$/, "one sentence");
      return true;
    });
  }
  checkEngineOptions({
    mode: "flowgen",
    generator: { frameSize: 1514, flows: 1024, ratePps: 1e6 },
  });
  checkEngineOptions({ mode: "io" });
});
