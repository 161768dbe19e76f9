/**
 * What `deno task bench` makes of its runs (bench/report.ts): neighbouring DPDK runs as
 * the yardstick of each of ours, medians, the README section, and a chart with every
 * figure in it.
 */

import assert from "node:assert/strict";
import type { LoopbackRun } from "../../bench/loopback.ts";
import {
  type BenchRecord,
  median,
  renderMarkdown,
  renderSvg,
  replaceReadmeSection,
  summarizeLoopback,
} from "../../bench/report.ts";

function run(kind: "dpdk" | "ours", fps: number, frameSize = 64): LoopbackRun {
  return {
    frameSize,
    frontEnd: kind,
    kind,
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
    /\| 64 B \| 10\.00, 10\.00 \| 9\.00 \| \*\*0\.90×\*\* \| 0\.90 \| 100 % \/ 50 % \|/,
  );
  assert.match(md, /\| forward ×1024 \| 40960\.0 \| 40\.00 \|/);
  assert.match(md, /0 garbage collections/);
  assert.match(md, /per poll of both ports .*: 63\.5\./);
  assert.match(md, /cpu test cpu, cores 2/);
  const svg = renderSvg(record);
  assert.match(svg, /^<svg /);
  assert.match(svg, />10\.00</);
  assert.match(svg, />9\.00</);
  assert.match(svg, /64 B: 0\.90×/);
});

Deno.test("the VM bed's table gives each front-end's zero-loss rate, peak and latency, and our ratios", () => {
  const vm = (
    frontEnd: "DPDK testpmd" | "ours (l2fwd)",
    zeroLossRate: number,
    peakRate: number,
  ) => ({
    frontEnd,
    queuePairs: 1 as const,
    zeroLossRate,
    peakRate,
    trials: [],
    latency: {
      rate: zeroLossRate / 2,
      samples: 100,
      p50Us: 80,
      p99Us: 200,
      p999Us: 900,
      maxUs: 1000,
    },
    startMs: 1,
    frontEndStats: null,
  });
  const record: BenchRecord = {
    date: "2026-12-07T03:00:00.000Z",
    machine: {},
    settings: { seconds: 5, warmupSeconds: 3, rounds: 1, txFirstBursts: 8, vmTrialSeconds: 5 },
    loopback: [],
    loopbackRuns: [],
    micro: [],
    vm: [vm("DPDK testpmd", 40000, 52000), vm("ours (l2fwd)", 50000, 65000)],
  };
  const md = renderMarkdown(record);
  assert.match(md, /\| DPDK testpmd \| 40000 \| 52000 \| 80 \/ 200 \/ 900 \| 0 \|/);
  assert.match(md, /\| ours \(l2fwd\) \| 50000 \| 65000 \|/);
  assert.match(md, /zero-loss rate 1\.25×, peak 1\.25×/);
});
