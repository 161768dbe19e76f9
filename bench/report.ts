/**
 * What `deno task bench` makes of its measurements: ratios against DPDK from runs that
 * neighbour each other, a table for the terminal, Markdown for the README, an SVG chart
 * and the JSON record. Pure functions: bench/report_test.ts checks them.
 *
 * @module
 */

import type { ModeRun } from "./modes.ts";
import type { LoopbackRun } from "./loopback.ts";
import type { Latency } from "./tap_trials.ts";
import type { ScalingRun } from "./scaling.ts";
import { notificationsPer1000, type VfioUserBedResult } from "./vfio_user.ts";
import type { VmBedResult } from "./vm_bed.ts";

/** One `deno bench` result. */
export interface MicroResult {
  /** The benchmark's name. */
  name: string;
  /** Mean time per iteration in ns. */
  avgNs: number;
  /** Work items per iteration (frames, hashes), from the name's "×N" suffix; 1 without. */
  perIteration: number;
}

/** The figures of one frame size and ring format in the native loopback. */
export interface LoopbackSummary {
  frameSize: number;
  /** The virtqueue format of every run in it ("split" when the runs do not say). */
  ring: string;
  /** Our runs' rates (frames/s) in run order. */
  ours: number[];
  /** DPDK's runs' rates (frames/s) in run order. */
  dpdk: number[];
  /** Each of our runs divided by the mean of the DPDK runs just before and after it. */
  ratios: number[];
  /** The median of `ratios`. */
  medianRatio: number;
  /** Median rates. */
  oursMedian: number;
  dpdkMedian: number;
  /** Medians of each run's first second after injection divided by its measured rate. */
  oursFirstSecond: number;
  dpdkFirstSecond: number;
  /** Our memory figures per run (RSS KiB start/end, heap creep, GCs seen). */
  memory: NonNullable<LoopbackRun["memory"]>[];
}

/** Everything one `deno task bench` measured. */
export interface BenchRecord {
  /** ISO date of the run. */
  date: string;
  /** Where it ran. */
  machine: Record<string, string>;
  /** Seconds measured per loopback run, and the frames injected per port. */
  settings: Record<string, number | string>;
  loopback: LoopbackSummary[];
  loopbackRuns: LoopbackRun[];
  micro: MicroResult[];
  /** The VM bed's figures per queue-pair count and front-end (absent when skipped). */
  vm?: VmBedResult[];
  /** The vfio-user bed's figures (absent when skipped). */
  vfioUser?: VfioUserBedResult;
  /** txonly and rxonly front-ends in the native loopback (absent when skipped). */
  modes?: ModeRun[];
  /** Forwarding workers without a device: one, then one per CPU (absent when skipped). */
  scaling?: ScalingRun[];
}

/** The median of `xs` (NaN when empty). */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * Groups loopback runs by frame size and divides each of our runs by the mean of the DPDK
 * runs next to it in run order (before and after; one when it is first or last), so a
 * machine whose speed drifts over minutes still gives a fair ratio.
 *
 * @example
 * ```ts
 * import { summarizeLoopback } from "./report.ts";
 * const run = (kind: "dpdk" | "ours", fps: number) => ({ frameSize: 64, frontEnd: kind, kind,
 *   fps, firstSecondFps: fps, gbps: 0, perPort: [], backEndDropped: 0, seconds: 1 });
 * summarizeLoopback([run("dpdk", 10), run("ours", 9), run("dpdk", 8)])[0].ratios; // [1]
 * ```
 */
export function summarizeLoopback(runs: readonly LoopbackRun[]): LoopbackSummary[] {
  const ringOf = (r: LoopbackRun) => r.ring ?? "split";
  const groups = [...new Set(runs.map((r) => `${r.frameSize} ${ringOf(r)}`))];
  return groups.map((g) => {
    const [size, ring] = [Number(g.split(" ")[0]), g.split(" ")[1]];
    const rs = runs.filter((r) => r.frameSize === size && ringOf(r) === ring);
    const ratios: number[] = [];
    rs.forEach((r, i) => {
      if (r.kind !== "ours") return;
      const near: number[] = [];
      for (let j = i - 1; j >= 0; j--) {
        if (rs[j].kind === "dpdk") {
          near.push(rs[j].fps);
          break;
        }
      }
      for (let j = i + 1; j < rs.length; j++) {
        if (rs[j].kind === "dpdk") {
          near.push(rs[j].fps);
          break;
        }
      }
      if (near.length) ratios.push(r.fps / (near.reduce((a, b) => a + b, 0) / near.length));
    });
    const ours = rs.filter((r) => r.kind === "ours").map((r) => r.fps);
    const dpdk = rs.filter((r) => r.kind === "dpdk").map((r) => r.fps);
    return {
      frameSize: size,
      ring,
      ours,
      dpdk,
      ratios,
      medianRatio: median(ratios),
      oursMedian: median(ours),
      dpdkMedian: median(dpdk),
      oursFirstSecond: median(
        rs.filter((r) => r.kind === "ours").map((r) => r.firstSecondFps / r.fps),
      ),
      dpdkFirstSecond: median(
        rs.filter((r) => r.kind === "dpdk").map((r) => r.firstSecondFps / r.fps),
      ),
      memory: rs.flatMap((r) => r.memory ? [r.memory] : []),
    };
  });
}

const mfps = (x: number) => (x / 1e6).toFixed(2);

/**
 * The loopback and micro-benchmark figures as Markdown tables (also what the terminal
 * shows).
 *
 * @example
 * ```ts ignore
 * console.log(renderMarkdown(record));
 * ```
 */
export function renderMarkdown(r: BenchRecord): string {
  const lines: string[] = [];
  lines.push(
    `Native loopback (DPDK testpmd as vhost-user back-end on one core, the front-end on the other; ` +
      `${r.settings.txFirstBursts} bursts of 32 frames injected per port, ${r.settings.seconds} s per run; ` +
      `ratio = ours / mean of the DPDK runs before and after):`,
    "",
    "| frame | rings | DPDK virtio-user (M frames/s) | ours, l2fwd (M frames/s) | ratio (median) | ratios | first second (DPDK / ours) |",
    "| ----: | :---- | ----------------------------: | -----------------------: | -------------: | :----- | -------------------------: |",
  );
  const pct = (x: number) => `${Math.round(100 * x)} %`;
  for (const s of r.loopback) {
    lines.push(
      `| ${s.frameSize} B | ${s.ring} | ${s.dpdk.map(mfps).join(", ")} | ${
        s.ours.map(mfps).join(", ")
      } | ` +
        `**${s.medianRatio.toFixed(2)}×** | ${s.ratios.map((x) => x.toFixed(2)).join(", ")} | ` +
        `${pct(s.dpdkFirstSecond)} / ${pct(s.oursFirstSecond)} |`,
    );
  }
  lines.push(
    "",
    "First second: the rate in the first second after the frames were injected, as a share of the " +
      "measured rate (median of the runs).",
  );
  const mem = r.loopback.flatMap((s) => s.memory);
  if (mem.length) {
    const gcs = mem.reduce((a, m) => a + m.gcs, 0);
    const creep = Math.max(...mem.map((m) => m.heapCreep));
    const rss = mem.map((m) => m.rssEndKiB - m.rssStartKiB);
    const perPoll = mem.map((m) => m.framesPerPoll.toFixed(1)).join(", ");
    lines.push(
      "",
      `Memory of our l2fwd over the ${mem.length} measured windows: ${gcs} garbage collections seen in the ` +
        `forwarding worker, its heap grew by at most ${creep} bytes outside compile steps, ` +
        `RSS changed by ${Math.min(...rss)}…${Math.max(...rss)} KiB ` +
        `(${Math.round(mem[0].rssStartKiB / 1024)} MiB resident). Frames its worker received per ` +
        `poll of both ports (at most 64: a busy worker; fewer: it waited for the back-end): ${perPoll}.`,
    );
  }
  lines.push(...renderModes(r), ...renderVm(r), ...renderVfioUser(r), ...renderScaling(r));
  if (r.micro.length) {
    lines.push(
      "",
      "Micro-benchmarks (`deno bench bench/micro/`, in-memory rings, no device):",
      "",
      "| benchmark | ns per iteration | ns per item |",
      "| :-------- | ---------------: | ----------: |",
    );
    for (const m of r.micro) {
      lines.push(
        `| ${m.name} | ${m.avgNs.toFixed(1)} | ${(m.avgNs / m.perIteration).toFixed(2)} |`,
      );
    }
  }
  lines.push(
    "",
    `Measured ${r.date.slice(0, 16).replace("T", " ")} UTC on ${
      Object.entries(r.machine).map(([k, v]) => `${k} ${v}`).join(", ")
    }.`,
  );
  return lines.join("\n");
}

const us = (x: number | undefined) => x === undefined ? "–" : x.toFixed(0);
const percentiles = (l: Latency | undefined) =>
  l ? `${us(l.p50Us)} / ${us(l.p99Us)} / ${us(l.p999Us)}` : "–";

/** The txonly/rxonly table: each mode's DPDK and our runs, our median over DPDK's mean. */
function renderModes(r: BenchRecord): string[] {
  if (!r.modes?.length) return [];
  const lines = [
    "",
    "Generating and receiving (the same back-end; a front-end in testpmd's txonly mode, the " +
    "back-end looping its ports in io so that ours gets its frames back and times them, or in " +
    "rxonly mode, the back-end generating; rate = frames the back-end received from, or sent " +
    "to, the front-end; ours is examples/testpmd.ts):",
    "",
    "| mode | frame | DPDK virtio-user (M frames/s) | ours (M frames/s) | ratio | ours' latency p50 / p99 / p99.9 (µs) |",
    "| :--- | ----: | ----------------------------: | ----------------: | ----: | :----------------------------------- |",
  ];
  for (const mode of ["txonly", "rxonly"]) {
    const runs = r.modes.filter((m) => m.mode === mode);
    if (!runs.length) continue;
    const dpdk = runs.filter((m) => m.frontEnd === "dpdk").map((m) => m.rate);
    const ours = runs.filter((m) => m.frontEnd === "ours");
    const mean = dpdk.reduce((a, b) => a + b, 0) / dpdk.length;
    const lat = ours.map((m) =>
      m.latency
        ? `${m.latency.p50Us.toFixed(0)} / ${m.latency.p99Us.toFixed(0)} / ${
          m.latency.p999Us.toFixed(0)
        }`
        : "–"
    );
    lines.push(
      `| ${mode} | ${runs[0].frameSize} B | ${dpdk.map(mfps).join(", ")} | ${
        ours.map((m) => mfps(m.rate)).join(", ")
      } | **${(median(ours.map((m) => m.rate)) / mean).toFixed(2)}×** | ${lat.join("; ")} |`,
    );
  }
  return lines;
}

/** The VM bed's tables, one per queue-pair count, with our ratios to each DPDK mode. */
function renderVm(r: BenchRecord): string[] {
  if (!r.vm?.length) return [];
  const lines = [
    "",
    `VM bed (TCG guest, kernel VFIO, one-way 64-byte UDP from the host, ` +
    `${r.settings.vmTrialSeconds} s trials; zero loss = at most 0.01 % lost, RFC 2544 search; ` +
    `latency host tap to host tap, at half the front-end's own zero-loss rate and at one ` +
    `rate common to all, half the first front-end's; testpmd io drops what a full transmit ` +
    `ring refuses, io retry retries first, l2fwd waits; "forwarded in that trial" below the ` +
    `zero-loss rate: frames queued in the tap and came out within the 2 s wait):`,
  ];
  for (const qp of [...new Set(r.vm.map((v) => v.queuePairs))]) {
    const vs = r.vm.filter((v) => v.queuePairs === qp);
    const common = vs[0].commonLatencyRate;
    lines.push(
      "",
      `| ${qp} queue pair${
        qp > 1 ? "s" : ""
      } | zero-loss rate (frames/s) | forwarded in that trial | peak forwarded (frames/s) | ` +
        `latency p50 / p99 / p99.9 (µs), own rate | same at ${common}/s | trials |`,
      "| :-------- | ------------------------: | ----: | ------------------------: | :----------------------------- | :------ | -----: |",
    );
    for (const v of vs) {
      const own = v.latency[0];
      const at = v.latency.find((l) => l.rate === common);
      lines.push(
        `| ${v.frontEnd} | ${v.zeroLossRate} | ${v.zeroLossForwardedRate} | ${
          Math.round(v.peakRate)
        } | ` +
          `${percentiles(own)}${own ? ` at ${own.rate}/s` : ""} | ${
            percentiles(at)
          } | ${v.trials.length} |`,
      );
    }
    const ours = vs.find((v) => v.frontEnd === "ours (l2fwd)");
    const ratios = vs.filter((v) => v !== ours && v.zeroLossRate > 0 && v.peakRate > 0).map((d) =>
      `against ${d.frontEnd}: zero-loss ${(ours!.zeroLossRate / d.zeroLossRate).toFixed(2)}×, ` +
      `peak ${(ours!.peakRate / d.peakRate).toFixed(2)}×`
    );
    if (ours && ratios.length) {
      lines.push("", `Ours, ${qp} queue pair${qp > 1 ? "s" : ""}, ${ratios.join("; ")}.`);
    }
  }
  return lines;
}

/** The vfio-user bed's line: our figures and notifications per 1,000 frames. */
function renderVfioUser(r: BenchRecord): string[] {
  const v = r.vfioUser;
  if (!v) return [];
  const peak = v.trials.reduce((a, t) => t.forwardedRate > a.forwardedRate ? t : a, v.trials[0]);
  const n = (x: number) => Number.isNaN(x) ? "–" : x.toFixed(1);
  return [
    "",
    `vfio-user bed (our l2fwd on the host, two QEMU vfio-user servers with 1 queue pair on taps, ` +
    `the same trials as the VM bed; DPDK has no vfio-user client to compare with): zero-loss rate ` +
    `${v.zeroLossRate}/s (forwarded ${v.zeroLossForwardedRate}/s in that trial), peak ` +
    `${Math.round(v.peakRate)}/s, latency p50 / p99 / p99.9 ` +
    `${percentiles(v.latency[0])} µs${v.latency[0] ? ` at ${v.latency[0].rate}/s` : ""}; ` +
    `notifications (each a VFIO_USER_REGION_WRITE message) per 1,000 frames forwarded: ` +
    `${n(v.notificationsPer1000)} at the zero-loss rate, ${
      peak ? n(notificationsPer1000(peak)) : "–"
    } ` +
    `at the peak.`,
  ];
}

/** The scaling line: one worker's rate, all CPUs' together and their ratio. */
function renderScaling(r: BenchRecord): string[] {
  const [one, all] = r.scaling ?? [];
  if (!one || !all) return [];
  return [
    "",
    `Scaling without a device (bench/scaling.ts: each worker forwards over its own in-memory ` +
    `loopback, as a queue pair's worker owns its queues and buffers): 1 worker ` +
    `${mfps(one.totalFps)} M frames/s; ${all.workers} at once ${all.fps.map(mfps).join(" + ")} = ` +
    `${mfps(all.totalFps)} M frames/s, **${(all.totalFps / one.totalFps).toFixed(2)}×**.`,
  ];
}

/**
 * A bar chart: per frame size, DPDK's median rate and ours side by side, with the ratio
 * written above our bar.
 *
 * @example
 * ```ts ignore
 * await Deno.writeTextFile("bench.svg", renderSvg(record));
 * ```
 */
export function renderSvg(r: BenchRecord): string {
  const groups = r.loopback;
  const W = 160 * Math.max(1, groups.length) + 80, H = 300, base = 250, top = 40;
  const max = Math.max(1, ...groups.flatMap((g) => [g.dpdkMedian, g.oursMedian]));
  const y = (v: number) => base - (base - top) * (v / max);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<text x="10" y="18" font-size="14">Native loopback, M frames/s (median of runs)</text>`,
    `<line x1="50" y1="${base}" x2="${W - 10}" y2="${base}" stroke="#333"/>`,
  ];
  groups.forEach((g, i) => {
    const x0 = 70 + 160 * i;
    const bar = (x: number, v: number, fill: string) =>
      `<rect x="${x}" y="${y(v).toFixed(1)}" width="50" height="${
        (base - y(v)).toFixed(1)
      }" fill="${fill}"/>` +
      `<text x="${x + 25}" y="${(y(v) - 4).toFixed(1)}" text-anchor="middle">${mfps(v)}</text>`;
    parts.push(bar(x0, g.dpdkMedian, "#8a8a8a"), bar(x0 + 55, g.oursMedian, "#2a7ab8"));
    parts.push(
      `<text x="${x0 + 52}" y="${base + 16}" text-anchor="middle">${g.frameSize} B ${g.ring}: ${
        g.medianRatio.toFixed(2)
      }×</text>`,
    );
  });
  parts.push(
    `<rect x="${W - 150}" y="28" width="10" height="10" fill="#8a8a8a"/><text x="${
      W - 135
    }" y="37">DPDK virtio-user</text>`,
    `<rect x="${W - 150}" y="44" width="10" height="10" fill="#2a7ab8"/><text x="${
      W - 135
    }" y="53">ours (l2fwd)</text>`,
    "</svg>",
  );
  return parts.join("\n") + "\n";
}

/** Start and end markers of the README's measured section. */
export const README_MARKERS = ["<!-- bench:start -->", "<!-- bench:end -->"] as const;

/**
 * `readme` with the text between {@linkcode README_MARKERS} replaced by `body`; throws
 * when the markers are missing.
 *
 * @example
 * ```ts
 * import { replaceReadmeSection } from "./report.ts";
 * replaceReadmeSection("a\n<!-- bench:start -->\nold\n<!-- bench:end -->\nb", "new");
 * // "a\n<!-- bench:start -->\nnew\n<!-- bench:end -->\nb"
 * ```
 */
export function replaceReadmeSection(readme: string, body: string): string {
  const [open, close] = README_MARKERS;
  const i = readme.indexOf(open), j = readme.indexOf(close);
  if (i < 0 || j < i) throw new Error(`README.md has no ${open} … ${close} section`);
  return readme.slice(0, i + open.length) + "\n" + body + "\n" + readme.slice(j);
}
