/**
 * What `deno task bench` makes of its runs (bench/report.ts): neighbouring DPDK runs as
 * the yardstick of each of ours, medians, the README section, and a chart with every
 * figure in it.
 */

import assert from "node:assert/strict";
import type { LoopbackRun } from "../../bench/loopback.ts";
import { notificationsPer1000 } from "../../bench/vfio_user.ts";
import type { VmBedResult, VmFrontEnd } from "../../bench/vm_bed.ts";
import {
  type BenchRecord,
  median,
  renderMarkdown,
  renderSvg,
  replaceReadmeSection,
  summarizeLoopback,
} from "../../bench/report.ts";

function run(
  kind: "dpdk" | "ours",
  fps: number,
  frameSize = 64,
  ring: "split" | "packed" = "split",
): LoopbackRun {
  return {
    frameSize,
    frontEnd: kind,
    kind,
    ring,
    fps,
    firstSecondFps: fps * (kind === "ours" ? 0.5 : 1),
    gbps: fps * frameSize * 8 / 1e9,
    perPort: [fps / 2, fps / 2],
    backEndDropped: 0,
    seconds: 5,
    memory: kind === "ours"
      ? {
        rssStartKiB: 80000,
        rssEndKiB: 80004,
        heapStart: 1,
        heapEnd: 1,
        heapCreep: 0,
        gcs: 0,
        framesPerPoll: 63.5,
      }
      : undefined,
  };
}

/** A record of nothing measured, for the tests of one part of the report. */
const noRuns: BenchRecord = {
  date: "2026-12-07T03:00:00.000Z",
  machine: {},
  settings: { seconds: 5, warmupSeconds: 3, rounds: 1, txFirstBursts: 8, vmTrialSeconds: 5 },
  loopback: [],
  loopbackRuns: [],
  micro: [],
};

Deno.test("each of our runs is divided by the mean of the DPDK runs on either side of it", () => {
  const [s] = summarizeLoopback([
    run("dpdk", 10e6),
    run("ours", 9e6),
    run("dpdk", 8e6),
    run("ours", 4e6),
    run("dpdk", 4e6),
  ]);
  assert.deepEqual(s.ratios, [1, 4 / 6]);
  assert.equal(s.medianRatio, (1 + 4 / 6) / 2);
  assert.deepEqual(s.dpdk, [10e6, 8e6, 4e6]);
  assert.equal(s.dpdkMedian, 8e6);
  assert.equal(s.oursMedian, 6.5e6);
  assert.equal(s.memory.length, 2);
});

Deno.test("a run at the edge has one DPDK neighbour, and frame sizes are kept apart", () => {
  const out = summarizeLoopback([
    run("ours", 5e6),
    run("dpdk", 10e6),
    run("dpdk", 2e6, 1518),
    run("ours", 1e6, 1518),
  ]);
  assert.deepEqual(out.map((s) => [s.frameSize, s.ratios]), [[64, [0.5]], [1518, [0.5]]]);
  assert.deepEqual(summarizeLoopback([run("ours", 5e6)])[0].ratios, []);
  assert.ok(Number.isNaN(median([])));
});

Deno.test("split and packed runs are compared each with DPDK's runs of the same format", () => {
  const out = summarizeLoopback([
    run("dpdk", 10e6),
    run("ours", 10e6),
    run("dpdk", 10e6),
    run("dpdk", 20e6, 64, "packed"),
    run("ours", 10e6, 64, "packed"),
    run("dpdk", 20e6, 64, "packed"),
  ]);
  assert.deepEqual(out.map((s) => [s.frameSize, s.ring, s.ratios]), [
    [64, "split", [1]],
    [64, "packed", [0.5]],
  ]);
  const md = renderMarkdown({ ...noRuns, loopback: out });
  assert.match(md, /\| 64 B \| packed \| 20\.00, 20\.00 \| 10\.00 \| \*\*0\.50×\*\*/);
});

Deno.test("the README section between the markers is replaced, and missing markers are an error", () => {
  const readme = "top\n<!-- bench:start -->\nold figures\n<!-- bench:end -->\nbottom\n";
  assert.equal(
    replaceReadmeSection(readme, "new"),
    "top\n<!-- bench:start -->\nnew\n<!-- bench:end -->\nbottom\n",
  );
  assert.throws(() => replaceReadmeSection("no markers", "x"), /bench:start/);
});

Deno.test("the Markdown and the chart carry every rate and ratio", () => {
  const runs = [run("dpdk", 10e6), run("ours", 9e6), run("dpdk", 10e6)];
  const record: BenchRecord = {
    date: "2026-12-07T03:00:00.000Z",
    machine: { cpu: "test cpu", cores: "2" },
    settings: { seconds: 5, warmupSeconds: 3, rounds: 1, txFirstBursts: 8 },
    loopback: summarizeLoopback(runs),
    loopbackRuns: runs,
    micro: [{ name: "forward ×1024", avgNs: 40960, perIteration: 1024 }],
  };
  const md = renderMarkdown(record);
  assert.match(
    md,
    /\| 64 B \| split \| 10\.00, 10\.00 \| 9\.00 \| \*\*0\.90×\*\* \| 0\.90 \| 100 % \/ 50 % \|/,
  );
  assert.match(md, /\| forward ×1024 \| 40960\.0 \| 40\.00 \|/);
  assert.match(md, /0 garbage collections/);
  assert.match(md, /per poll of both ports .*: 63\.5\./);
  assert.match(md, /cpu test cpu, cores 2/);
  const svg = renderSvg(record);
  assert.match(svg, /^<svg /);
  assert.match(svg, />10\.00</);
  assert.match(svg, />9\.00</);
  assert.match(svg, /64 B split: 0\.90×/);
});

Deno.test("the VM bed's tables give each front-end's zero-loss rate, peak and latency, and our ratios per queue-pair count", () => {
  const lat = (rate: number, p50Us: number) => ({
    rate,
    samples: 100,
    p50Us,
    p99Us: 200,
    p999Us: 900,
    maxUs: 1000,
  });
  const vm = (
    frontEnd: VmFrontEnd,
    queuePairs: number,
    zeroLossRate: number,
    peakRate: number,
    common: number,
  ): VmBedResult => ({
    frontEnd,
    queuePairs,
    commonLatencyRate: common,
    zeroLossRate,
    zeroLossForwardedRate: zeroLossRate - 100,
    zeroLossTrial: -1,
    peakRate,
    trials: [],
    latency: zeroLossRate / 2 === common
      ? [lat(common, 80)]
      : [lat(zeroLossRate / 2, 80), lat(common, 70)],
    startMs: 1,
    frontEndStats: null,
  });
  const record: BenchRecord = {
    ...noRuns,
    vm: [
      vm("DPDK testpmd (io)", 1, 40000, 52000, 20000),
      vm("DPDK testpmd (io retry)", 1, 45000, 52000, 20000),
      vm("ours (l2fwd)", 1, 50000, 65000, 20000),
      vm("DPDK testpmd (io retry)", 2, 30000, 40000, 15000),
      vm("ours (l2fwd)", 2, 60000, 60000, 15000),
    ],
  };
  const md = renderMarkdown(record);
  assert.match(md, /\| 1 queue pair \| .* \| same at 20000\/s \|/);
  assert.match(
    md,
    /\| DPDK testpmd \(io\) \| 40000 \| 39900 \| 52000 \| 80 \/ 200 \/ 900 at 20000\/s \| 80 \/ 200 \/ 900 \| 0 \|/,
  );
  assert.match(
    md,
    /\| ours \(l2fwd\) \| 50000 \| 49900 \| 65000 \| 80 \/ 200 \/ 900 at 25000\/s \| 70 \/ 200 \/ 900 \|/,
  );
  assert.match(
    md,
    /Ours, 1 queue pair, against DPDK testpmd \(io\): zero-loss 1\.25×, peak 1\.25×; against DPDK testpmd \(io retry\): zero-loss 1\.11×/,
  );
  assert.match(md, /\| 2 queue pairs \| .* same at 15000\/s/);
  assert.match(
    md,
    /Ours, 2 queue pairs, against DPDK testpmd \(io retry\): zero-loss 2\.00×, peak 1\.50×\./,
  );
});

Deno.test("the vfio-user bed's line gives our rates and notifications per 1,000 frames at the zero-loss rate and the peak", () => {
  const trial = (target: number, forwardedRate: number, kicks: number) => ({
    target,
    offered: target,
    sent: target * 5,
    hostDropped: 0,
    nicIn: target * 5,
    nicOut: target * 5,
    captured: target * 5,
    captureDrops: 0,
    lossRatio: 0,
    forwardedRate,
    tailMs: 0,
    lostBySecond: [0],
    counters: {
      rxPackets: 10000,
      txPackets: 10000,
      rxKicks: kicks,
      txKicks: kicks,
      kicksSuppressed: 0,
    },
  });
  const record: BenchRecord = {
    ...noRuns,
    vfioUser: {
      frontEnd: "ours (l2fwd)",
      queuePairs: 1,
      zeroLossRate: 30000,
      zeroLossForwardedRate: 30000,
      zeroLossTrial: 1,
      peakRate: 80000,
      trials: [trial(200000, 80000, 50), trial(30000, 30000, 400)],
      latency: [{ rate: 15000, samples: 10, p50Us: 50, p99Us: 90, p999Us: 99, maxUs: 120 }],
      notificationsPer1000: 80,
      startMs: 1,
      frontEndStats: null,
    },
  };
  const md = renderMarkdown(record);
  assert.match(
    md,
    /zero-loss rate 30000\/s \(forwarded 30000\/s in that trial\), peak 80000\/s, latency p50 \/ p99 \/ p99\.9 50 \/ 90 \/ 99 µs at 15000\/s/,
  );
  assert.match(md, /per 1,000 frames forwarded: 80\.0 at the zero-loss rate, 10\.0 at the peak\./);
  assert.equal(notificationsPer1000({}), NaN);
});

Deno.test("the scaling line gives one worker's rate, all workers' and their ratio", () => {
  const record: BenchRecord = {
    date: "2026-12-07T03:00:00.000Z",
    machine: {},
    settings: {},
    loopback: [],
    loopbackRuns: [],
    micro: [],
    scaling: [
      { workers: 1, fps: [24e6], totalFps: 24e6 },
      { workers: 2, fps: [23e6, 22e6], totalFps: 45e6 },
    ],
  };
  assert.match(
    renderMarkdown(record),
    /1 worker 24\.00 M frames\/s; 2 at once 23\.00 \+ 22\.00 = 45\.00 M frames\/s, \*\*1\.88×\*\*/,
  );
});
