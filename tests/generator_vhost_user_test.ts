/**
 * The engine's generating modes against DPDK's vhost-user back-end (tests/bed/
 * vhost_user_bed.ts): testpmd forwards its two vhost ports to each other in io mode
 * (with retry: lossless), and our engine (tests/bed/gen_run.ts) generates UDP/IPv4 frames
 * on both ports and receives what testpmd loops back, as testpmd's txonly/flowgen with
 * --latencystats. Checked against testpmd's own counters: every frame we sent it
 * received, every frame it sent us we received, its byte counts are our frame size
 * times its frame counts; with ratePps, the rate over the measured interval within 1 % of
 * the asked one; the latency figures present and ordered. Rates and latencies are
 * reported, never asserted as times.
 *
 * Needs root (huge pages) and the DPDK packages of tools/setup.sh.
 * Run: `flock /tmp/vd-bed.lock deno test --allow-all --no-check tests/generator_vhost_user_test.ts`.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { EngineSnapshot } from "../mod.ts";
import { VhostUserBed } from "./bed/vhost_user_bed.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const isRoot = Deno.uid() === 0;

interface GenConfig {
  mode: "txonly" | "flowgen";
  frameSize: number;
  flows?: number;
  ratePps?: number;
  queues?: number;
  warmS: number;
  measureS: number;
}

interface GenResult {
  t1: number;
  t2: number;
  s1: EngineSnapshot;
  s2: EngineSnapshot;
  final: EngineSnapshot;
}

/** RX-bytes and TX-bytes per testpmd port, from `show port stats all`. */
async function testpmdBytes(bed: VhostUserBed): Promise<{ rx: number; tx: number }[]> {
  const text = await bed.command("show port stats all");
  const out: { rx: number; tx: number }[] = [];
  for (const block of text.split(/NIC statistics for port /).slice(1)) {
    const port = Number(/^(\d+)/.exec(block)![1]);
    const num = (label: string) => Number(new RegExp(`${label}:\\s*(\\d+)`).exec(block)![1]);
    out[port] = { rx: num("RX-bytes"), tx: num("TX-bytes") };
  }
  return out;
}

/** Runs gen_run.ts against the bed's two vhost ports with `cfg`; checks and reports. */
async function generate(cfg: GenConfig): Promise<void> {
  await using bed = await VhostUserBed.start({ vhostPorts: 2, queues: cfg.queues ?? 1 });
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      "--allow-ffi",
      `${ROOT}/tests/bed/gen_run.ts`,
      JSON.stringify(cfg),
      `vhost-user:${bed.socket(0)}`,
      `vhost-user:${bed.socket(1)}`,
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let stderr = "";
  const errDone = (async () => {
    const r = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    for (let x = await r.read(); !x.done; x = await r.read()) stderr += x.value;
  })();
  const stdout = new Response(child.stdout).text();
  const deadline = performance.now() + 60000;
  while (!/^open$/m.test(stderr)) {
    const st = await Promise.race([child.status, new Promise((r) => setTimeout(r, 20))]);
    if (st || performance.now() > deadline) {
      try {
        child.kill("SIGKILL");
      } catch { /* exited */ }
      await errDone;
      throw new Error(`gen_run.ts did not open its ports: ${stderr}`);
    }
  }
  await bed.startForwarding(); // both links up, io forwarding with retry
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode("go\n"));
  await w.close();
  const status = await child.status;
  await errDone;
  assert.equal(status.code, 0, stderr);
  const r = JSON.parse((await stdout).trim().split("\n").at(-1)!) as GenResult;
  await bed.stopForwarding();
  const tp = await bed.stats(), bytes = await testpmdBytes(bed);

  const f = r.final, g = f.generator!;
  const sent = (s: EngineSnapshot) => s.ports[0].txPackets + s.ports[1].txPackets;
  const secs = (r.t2 - r.t1) / 1000;
  const rate = (sent(r.s2) - sent(r.s1)) / secs;
  const l = g.latency!;
  console.log(
    `${cfg.mode} ${cfg.frameSize} B${cfg.flows ? `, ${cfg.flows} flows` : ""}${
      cfg.queues ? `, ${cfg.queues} queue pairs` : ""
    }${cfg.ratePps ? `, asked ${cfg.ratePps} frames/s` : ", unlimited"}: ${
      Math.round(rate)
    } frames/s sent over ${secs.toFixed(3)} s (both ports); ` +
      `${g.txFrames} sent, ${g.rxFrames} back; latency µs min ${l.minUs} mean ${l.meanUs} ` +
      `p50 ${l.p50Us} p99 ${l.p99Us} p99.9 ${l.p999Us} max ${l.maxUs} jitter ${l.jitterUs}` +
      ` (${l.count} frames); ring-full waits ${
        f.ports[0].txRingFullWaits + f.ports[1].txRingFullWaits
      }`,
  );

  for (const p of [0, 1]) {
    const ours = f.ports[p], theirs = tp[bed.vhostPort(p)];
    for (const q of ours.queues) assert.ok(q.txPackets > 0, `port ${p} queue pair ${q.queue} sent`);
    // testpmd's io forwarding with retry is lossless: vhost0 ⇄ vhost1.
    assert.equal(
      theirs.fwdTxDropped + theirs.rxMissed + theirs.rxErrors,
      0,
      `${theirs.name} losses`,
    );
    assert.equal(theirs.rxPackets, ours.txPackets, `testpmd received what port ${p} sent`);
    assert.equal(ours.rxPackets, theirs.txPackets, `port ${p} received what testpmd sent it`);
    // Frame sizes: testpmd counts bytes (no virtio-net header, no FCS).
    assert.equal(bytes[bed.vhostPort(p)].rx, cfg.frameSize * theirs.rxPackets, "testpmd RX bytes");
    assert.equal(bytes[bed.vhostPort(p)].tx, cfg.frameSize * theirs.txPackets, "testpmd TX bytes");
    assert.equal(ours.txBytes, cfg.frameSize * ours.txPackets, "our TX bytes");
    assert.equal(ours.dropsTxRingFull + ours.dropsNoBuffer, 0, `port ${p} drops`);
  }
  // Every frame received is one of ours, in order per flow, and timed.
  assert.equal(g.rxFrames, f.ports[0].rxPackets + f.ports[1].rxPackets);
  assert.equal(g.rxOther + g.rxForeign, 0);
  assert.equal(g.seqGaps + g.seqLate, 0, "no frame missing or late in any flow");
  assert.equal(g.txFrames, f.ports[0].txPackets + f.ports[1].txPackets);
  assert.equal(l.count, g.rxFrames, "a latency for every frame back");
  assert.equal(l.badTimestamps, 0);
  assert.ok(l.minUs > 0, "a latency above 0");
  assert.ok(
    l.minUs <= l.p50Us && l.p50Us <= l.p99Us && l.p99Us <= l.p999Us && l.p999Us <= l.maxUs,
    "latency figures ordered",
  );
  assert.ok(l.meanUs >= l.minUs && l.meanUs <= l.maxUs);
  if (cfg.ratePps) {
    const off = Math.abs(rate - cfg.ratePps) / cfg.ratePps;
    assert.ok(off <= 0.01, `rate ${rate.toFixed(0)} frames/s is ${(off * 100).toFixed(2)} % off`);
  }
}

Deno.test({
  name:
    "generator in the vhost-user bed: txonly 64 B on both ports as fast as the rings take; testpmd's counters match ours frame for frame and byte for byte; latency reported",
  ignore: !isRoot,
  fn: () => generate({ mode: "txonly", frameSize: 64, warmS: 1, measureS: 3 }),
});

Deno.test({
  name:
    "generator in the vhost-user bed: txonly 128 B at 50,000 frames/s: the rate over the interval within 1 %",
  ignore: !isRoot,
  fn: () => generate({ mode: "txonly", frameSize: 128, ratePps: 50_000, warmS: 1, measureS: 3 }),
});

Deno.test({
  name:
    "generator in the vhost-user bed: flowgen 256 B, 64 flows, at 20,000 frames/s: every flow in order, rate within 1 %",
  ignore: !isRoot,
  fn: () =>
    generate({
      mode: "flowgen",
      frameSize: 256,
      flows: 64,
      ratePps: 20_000,
      warmS: 1,
      measureS: 3,
    }),
});

Deno.test({
  name:
    "generator in the vhost-user bed: flowgen 2 queue pairs (2 workers), 128 B, 16 flows, at 20,000 frames/s: each worker gets its own frames back in order, rate within 1 %",
  ignore: !isRoot,
  fn: () =>
    generate({
      mode: "flowgen",
      frameSize: 128,
      flows: 16,
      ratePps: 20_000,
      queues: 2,
      warmS: 1,
      measureS: 3,
    }),
});
