/**
 * Guest side of the steering tests (`--allow-ffi` only).
 *
 *     deno run --allow-ffi tests/guest/steering.ts auto-share --port P --pairs 4 --flows 64 --per-flow 4
 *     deno run --allow-ffi tests/guest/steering.ts switch --port P --pairs 4 --seconds 6 [--rss] [--rx-queue-size 1024]
 *
 * auto-share: automatic steering over N pairs. Once a frame of EtherType 0x88b5 arrives
 * (the host's go), transmits `per-flow` UDP frames of each flow
 * f on transmitq (f mod N), prints `{"event":"sent"}`, then receives the host's replies on
 * every queue and reports the share that arrived on the pair their flow was sent on.
 *
 * switch: receives UDP test frames (per-flow sequence numbers) on every queue while
 * switching the steering every 100 ms: pairs 1 → N → 2 → 1 → … by automatic steering
 * (VQ_PAIRS_SET); with --rss the same pair counts by RSS tables ("single" and "rss" over k
 * pairs, a new table each time: no VQ_PAIRS_SET); with --rss-only, RSS over N pairs with a
 * new indirection table each time. Reports frames received, per-flow reorderings (a
 * sequence number lower than one already delivered for that flow), those of them within
 * one queue (`sameQueueReorders`: a flow going backwards on the ring it was delivered on),
 * and the switches.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { guestMain, runMode } from "./guest_main.ts";
import { formatMac, openPort, type SteeringRule, type VirtioNetPort } from "../../mod.ts";
import { UDP_TEST_MAGIC, udpFrame } from "../bed/frames.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  options: {
    port: { type: "string" },
    pairs: { type: "string", default: "4" },
    flows: { type: "string", default: "64" },
    "per-flow": { type: "string", default: "4" },
    seconds: { type: "string", default: "6" },
    "timeout-ms": { type: "string", default: "60000" },
    rss: { type: "boolean", default: false },
    "rss-only": { type: "boolean", default: false },
    "rx-queue-size": { type: "string" },
  },
  allowPositionals: true,
});

const PAY = 14 + 20 + 8; // Ethernet + IPv4 + UDP: the test payload starts here

function autoShare(port: VirtioNetPort, pairs: number): number {
  const flows = Number(values.flows), perFlow = Number(values["per-flow"]);
  const pool = port.pool, data = pool.data;
  const bufs = new Uint32Array(32), lens = new Uint32Array(32);
  const mac = formatMac(port.config.mac);
  // Wait for the host's go (one frame of EtherType 0x88b5: its capture is ready) before
  // transmitting anything.
  const until = Date.now() + 60000;
  let go = false;
  while (!go && Date.now() < until) {
    for (let q = 0; q < pairs && !go; q++) {
      const n = port.rx(q).rxBurst(bufs, lens, 32);
      for (let i = 0; i < n; i++) {
        const off = port.frameOffset(bufs[i]);
        if (data[off + 12] === 0x88 && data[off + 13] === 0xb5) go = true;
        pool.free(bufs[i]);
      }
    }
  }
  let seq = 0;
  for (let r = 0; r < perFlow; r++) {
    for (let f = 0; f < flows; f++) {
      const frame = udpFrame(7, seq++, f, 128, "02:00:00:00:00:02", mac);
      const b = pool.alloc();
      data.set(frame, port.frameOffset(b));
      bufs[0] = b;
      lens[0] = frame.length;
      const tx = port.tx(f % pairs);
      while (tx.txBurst(bufs, lens, 1) === 0) tx.reclaim();
    }
  }
  for (let q = 0; q < pairs; q++) {
    while (port.tx(q).vq.inFlight > 0) port.tx(q).reclaim();
  }
  console.log(JSON.stringify({ event: "sent", frames: seq }));
  const expected = flows * perFlow;
  const perQueue = new Array(pairs).fill(0);
  let matched = 0, got = 0, other = 0;
  const deadline = Date.now() + Number(values["timeout-ms"]);
  while (got < expected && Date.now() < deadline) {
    for (let q = 0; q < pairs; q++) {
      const n = port.rx(q).rxBurst(bufs, lens, 32);
      for (let i = 0; i < n; i++) {
        const off = port.frameOffset(bufs[i]);
        const v = new DataView(data.buffer, off, lens[i]);
        if (lens[i] >= PAY + 16 && v.getUint32(PAY) === UDP_TEST_MAGIC) {
          const flow = v.getUint32(PAY + 12);
          got++;
          perQueue[q]++;
          if (flow % pairs === q) matched++;
        } else other++;
        pool.free(bufs[i]);
      }
    }
  }
  console.log(JSON.stringify({
    event: "done",
    expected,
    received: got,
    matched,
    share: got ? matched / got : 0,
    perQueue,
    other,
  }));
  return got === expected ? 0 : 3;
}

/** A different indirection table for each switch: rotate the queues by `turn`. */
function table(length: number, pairs: number, turn: number): number[] {
  return Array.from({ length }, (_, i) => (i + turn) % pairs);
}

function switching(port: VirtioNetPort, pairs: number): number {
  const pool = port.pool, data = pool.data;
  const bufs = new Uint32Array(32), lens = new Uint32Array(32);
  const last = new Float64Array(65536).fill(-1);
  // Where and when (queue, switches made) each flow's last frame was delivered: a reordering
  // is reported with both, to tell a device-side delay from a gate that opened too early.
  const lastQ = new Int8Array(65536), lastSw = new Int32Array(65536);
  // Last sequence number per flow and queue: order within one ring.
  const lastOnQueue = new Float64Array(65536 * port.queuePairs).fill(-1);
  const perQueue = new Array(port.queuePairs).fill(0);
  const rules: SteeringRule[] = [];
  const cycle = [1, pairs, 2, 1];
  console.log(JSON.stringify({ event: "ready", capabilities: port.steering.capabilities }));
  let received = 0, reorders = 0, sameQueueReorders = 0, other = 0, turn = 0;
  const end = performance.now() + Number(values.seconds) * 1000;
  let nextSwitch = performance.now() + 100;
  const sample: string[] = [];
  while (performance.now() < end) {
    for (let q = 0; q < port.queuePairs; q++) {
      const n = port.rx(q).rxBurst(bufs, lens, 32);
      for (let i = 0; i < n; i++) {
        const off = port.frameOffset(bufs[i]);
        const v = new DataView(data.buffer, off, lens[i]);
        if (lens[i] >= PAY + 16 && v.getUint32(PAY) === UDP_TEST_MAGIC) {
          const seq = v.getUint32(PAY + 8), flow = v.getUint32(PAY + 12) & 0xffff;
          const fq = flow * port.queuePairs + q;
          if (seq <= lastOnQueue[fq]) sameQueueReorders++;
          else lastOnQueue[fq] = seq;
          if (seq <= last[flow]) {
            reorders++;
            if (sample.length < 5) {
              sample.push(
                `flow ${flow}: ${seq} on q${q} at switch ${port.steering.switches} after ` +
                  `${last[flow]} on q${lastQ[flow]} at switch ${lastSw[flow]}`,
              );
            }
          } else {
            last[flow] = seq;
            lastQ[flow] = q;
            lastSw[flow] = port.steering.switches;
          }
          received++;
          perQueue[q]++;
        } else other++;
        pool.free(bufs[i]);
      }
    }
    const now = performance.now();
    if (now >= nextSwitch) {
      nextSwitch = now + 100;
      turn++;
      const k = cycle[turn % cycle.length];
      const caps = port.steering.capabilities;
      let rule: SteeringRule = k === 1 ? { mode: "single" } : { mode: "auto", pairs: k };
      if (values["rss-only"] || (values.rss && k > 1)) {
        const over = values["rss-only"] ? pairs : k;
        rule = {
          mode: "rss",
          pairs: over,
          hashTypes: caps.supportedHashTypes,
          indirectionTable: table(Math.min(128, caps.rssMaxIndirectionTableLength), over, turn),
        };
      }
      port.steering.set(rule);
      rules.push(port.steering.current);
    }
  }
  console.log(JSON.stringify({
    event: "done",
    ring: port.ringFormat,
    received,
    reorders,
    sameQueueReorders,
    reorderSample: sample,
    other,
    perQueue,
    switches: port.steering.switches,
    lastRules: rules.slice(-3).map((r) => r.mode),
    drops: Array.from({ length: port.queuePairs }, (_, q) => ({
      runt: port.rx(q).dropsRunt,
      refillFailures: port.rx(q).refillFailures,
    })),
  }));
  return sameQueueReorders === 0 ? 0 : 3;
}

guestMain(() => {
  if (!values.port) throw new Error("--port is required");
  const pairs = Number(values.pairs);
  const rxQueueSize = values["rx-queue-size"] ? Number(values["rx-queue-size"]) : undefined;
  const port = openPort(values.port, { bind: true, queuePairs: pairs, rxQueueSize });
  console.log(JSON.stringify({
    event: "ready",
    negotiated: port.negotiatedFeatureNames(),
    steering: port.steering.current,
  }));
  return runMode(port, positionals[0], {
    "auto-share": (p) => autoShare(p, pairs),
    switch: (p) => switching(p, pairs),
  });
});
