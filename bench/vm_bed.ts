/**
 * The VM bed part of `deno task bench`: DPDK's testpmd (io forwarding) and our l2fwd
 * (default options), each with 1 queue pair, forward one-way UDP traffic host → NIC 0 →
 * front-end → NIC 1 → host in the VM bed (tests/bed/vm.ts: TCG guest, real VFIO inside
 * it), one after the other in one boot. For each: the zero-loss rate by an RFC 2544 search
 * (bench/rfc2544.ts), the peak forwarded rate, and latency at half the zero-loss rate.
 *
 * A trial offers `rate × trialSeconds` frames of 64 B on the wire (60 B + FCS, 1,024 UDP
 * flows, each numbered) and counts what the capture on NIC 1 got within 2 s of the send's
 * planned end (RFC 2544's wait; the plan stretched by 25% for a host sender short of CPU).
 * Every frame not captured is lost, wherever. That includes `hostDropped`, the tap's full
 * ring: QEMU takes frames from the tap only while NIC 0's receive ring has buffers, so the
 * ring fills when the front-end falls behind (a physical NIC's rx_missed; a front-end that
 * pushes back, as l2fwd's default `--tx-full wait`, loses only there), or when QEMU itself
 * is short of CPU. The taps' counters say what NIC 0 took and NIC 1 gave, so each loss is
 * placed. Each front-end starts once and runs all its trials; before each trial the taps
 * are let go quiet. Latency: each frame's capture time on NIC 1's tap minus that on NIC 0's
 * bridge port (one host clock).
 *
 * @example
 * ```sh
 * deno run --allow-all bench/vm_bed.ts --trial-seconds 5   # root; prints JSON
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { encodeFileHeader, type PcapRecord, readPcap } from "../src/pcap/pcap.ts";
import { udpFrames } from "../tests/bed/frames.ts";
import { injectionNames } from "../tests/bed/netns.ts";
import { startTestpmd } from "../tests/bed/testpmd.ts";
import { CaptureError, sendFrames, startCapture } from "../tests/bed/traffic.ts";
import { shellQuote, VmBed } from "../tests/bed/vm.ts";
import { summaryOf } from "../tests/l2fwd_checks.ts";
import { nextRate, passed, type SearchOptions, zeroLossRate } from "./rfc2544.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

/**
 * A front-end the VM bed measures.
 *
 * @example
 * ```ts
 * import type { VmFrontEnd } from "./vm_bed.ts";
 * const fe: VmFrontEnd = "ours (l2fwd)";
 * ```
 */
export type VmFrontEnd = "DPDK testpmd" | "ours (l2fwd)";

/**
 * Options of {@linkcode measureVmBed}.
 *
 * @example
 * ```ts
 * import type { VmBedOptions } from "./vm_bed.ts";
 * const quick: VmBedOptions = { trialSeconds: 2, maxTrials: 4, frontEnds: ["ours (l2fwd)"] };
 * ```
 */
export interface VmBedOptions {
  /** Seconds of traffic per trial (default 5). */
  trialSeconds?: number;
  /** Lowest offered rate the search tries, frames/s (default 1,000). */
  minRate?: number;
  /** Highest offered rate, and the first tried, frames/s (default 200,000). */
  maxRate?: number;
  /** Trials per front-end at most, the latency trial not counted (default 10). */
  maxTrials?: number;
  /** Front-ends, in this order (default both, DPDK first). */
  frontEnds?: VmFrontEnd[];
  /** Measure latency at half the zero-loss rate (default true). */
  latency?: boolean;
  /** Called with a line of progress. */
  log?: (line: string) => void;
}

/**
 * One trial of the search. Every frame sent is in one place: `hostDropped + nicIn = sent`;
 * `nicIn − nicOut` were lost in the guest (front-end or QEMU); `nicOut − captured − captureDrops`
 * came after the capture ended (counted lost: more than 2 s late).
 *
 * @example
 * ```ts
 * import type { VmTrial } from "./vm_bed.ts";
 * const inGuest = (t: VmTrial) => t.nicIn - t.nicOut;
 * ```
 */
export interface VmTrial {
  /** Offered rate the search asked for (frames/s). */
  target: number;
  /** Rate the host actually sent at: sent / send time (short of `target` when starved of CPU). */
  offered: number;
  /** Frames the host sent. */
  sent: number;
  /** Of them, dropped by the host before NIC 0 (the tap's full ring: its tx_dropped). */
  hostDropped: number;
  /** Frames NIC 0 took from its tap (the tap's tx_packets). */
  nicIn: number;
  /** Frames NIC 1 gave to its tap (the tap's rx_packets), late ones included. */
  nicOut: number;
  /** Frames captured on NIC 1's tap within 2 s of the send's planned end (+25%, start-up). */
  captured: number;
  /** Frames the capture socket itself dropped (0 normally). */
  captureDrops: number;
  /** (sent − captured) / sent. */
  lossRatio: number;
  /** Captured frames per second, first to last capture timestamp. */
  forwardedRate: number;
  /** Capture span minus send time (ms): the backlog left at the end; < 0 when the capture ended first. */
  tailMs: number;
  /** Frames lost by the second of the trial they were due in (shows start-up losses). */
  lostBySecond: number[];
}

/**
 * Latency from NIC 0's host side to NIC 1's: per frame, its capture time on NIC 1's tap
 * minus its capture time on NIC 0's bridge port (one host clock), matched by number.
 *
 * @example
 * ```ts
 * import type { VmLatency } from "./vm_bed.ts";
 * const tail = (l: VmLatency) => l.p999Us / l.p50Us;
 * ```
 */
export interface VmLatency {
  /** Offered rate (frames/s): half the zero-loss rate. */
  rate: number;
  /** Frames timed (seen on both sides). */
  samples: number;
  /** Median, µs. */
  p50Us: number;
  /** 99th percentile, µs. */
  p99Us: number;
  /** 99.9th percentile, µs. */
  p999Us: number;
  /** Maximum, µs. */
  maxUs: number;
}

/**
 * What one front-end did.
 *
 * @example
 * ```ts
 * import type { VmBedResult } from "./vm_bed.ts";
 * const line = (r: VmBedResult) => `${r.frontEnd}: ${r.zeroLossRate}/s without loss`;
 * ```
 */
export interface VmBedResult {
  /** Which front-end. */
  frontEnd: VmFrontEnd;
  /** Queue pairs per port. */
  queuePairs: 1;
  /** Offered rate of the highest trial that lost at most 0.01% (0: none did). */
  zeroLossRate: number;
  /** Highest forwarded rate of any trial (frames/s). */
  peakRate: number;
  /** In the order run. */
  trials: VmTrial[];
  /** At half the zero-loss rate (absent when not asked for or nothing passed). */
  latency?: VmLatency;
  /** Start of the front-end to forwarding (ms; l2fwd's includes its pre-warming). */
  startMs: number;
  /** The front-end's own counters at its stop (testpmd's forward statistics, l2fwd's summary). */
  frontEndStats: unknown;
}

/** Frame size without FCS (64 B on the wire). */
const FRAME = 60;
/** Payload offsets in a UDP test frame (frames.ts): seed and sequence number, u32 BE. */
const TAG_AT = 46, SEQ_AT = 50, UDP_CSUM_AT = 40;
/** RFC 2544's wait for frames after the send ended. */
const DRAIN_MS = 2000;

/** Frames NIC 0's tap gave to QEMU and NIC 1's tap got from it (`ip -s`, in the namespace). */
async function tapCounts(bed: VmBed): Promise<{ in0: number; out1: number }> {
  const out = await new Deno.Command("ip", {
    args: ["-n", bed.netns, "-j", "-s", "link", "show"],
    stdout: "piped",
  }).output();
  const links: { ifname: string; stats64: { rx: { packets: number }; tx: { packets: number } } }[] =
    JSON.parse(new TextDecoder().decode(out.stdout));
  const tap = (i: number) => links.find((l) => l.ifname === bed.tapName(i))!.stats64;
  return { in0: tap(0).tx.packets, out1: tap(1).rx.packets };
}

/** Waits until neither tap moves frames for 300 ms (a trial's backlog is gone), ≤ 15 s. */
async function quiet(bed: VmBed): Promise<void> {
  let last = await tapCounts(bed);
  for (let still = 0, t = 0; still < 3 && t < 150; t++) {
    await new Promise((r) => setTimeout(r, 100));
    const now = await tapCounts(bed);
    still = now.in0 === last.in0 && now.out1 === last.out1 ? still + 1 : 0;
    last = now;
  }
}

/**
 * Writes a pcap of `n` frames cycling through `pool`, frame i numbered i and tagged `tag`
 * (so a straggler of another trial is told apart); UDP checksum 0 ("none"), as the
 * numbering changes the payload.
 */
async function writeTrialPcap(path: string, pool: Uint8Array[], n: number, tag: number) {
  const rec = 16 + FRAME;
  const b = new Uint8Array(24 + n * rec);
  b.set(encodeFileHeader());
  const v = new DataView(b.buffer);
  for (let i = 0, o = 24; i < n; i++, o += rec) {
    v.setUint32(o + 8, FRAME, true);
    v.setUint32(o + 12, FRAME, true);
    b.set(pool[i % pool.length], o + 16);
    v.setUint16(o + 16 + UDP_CSUM_AT, 0);
    v.setUint32(o + 16 + TAG_AT, tag);
    v.setUint32(o + 16 + SEQ_AT, i);
  }
  await Deno.writeFile(path, b);
}

/** Capture-timestamps (µs) of the frames of trial `tag` in a pcap, by sequence number. */
function timesBySeq(records: PcapRecord[], n: number, tag: number): Float64Array {
  const t = new Float64Array(n).fill(NaN);
  for (const r of records) {
    if (r.data.length < FRAME) continue;
    const v = new DataView(r.data.buffer, r.data.byteOffset, r.data.byteLength);
    const seq = v.getUint32(SEQ_AT);
    if (v.getUint32(TAG_AT) === tag && seq < n) t[seq] = r.timestampUs;
  }
  return t;
}

/** Waits for a capture's end and reads its pcap back (with timestamps), then removes it. */
async function captured(cap: Awaited<ReturnType<typeof startCapture>>) {
  await cap.done().catch((e) => {
    if (!(e instanceof CaptureError)) throw e; // an incomplete capture is a lossy trial
  });
  const records = readPcap(await Deno.readFile(cap.pcapPath));
  await Deno.remove(cap.pcapPath).catch(() => {});
  return { records, socketDrops: (await cap.stats())?.socketDrops ?? 0 };
}

/**
 * One trial at `rate`: sends `rate × seconds` frames into NIC 0, captures NIC 1 (and, with
 * `inbound`, NIC 0's bridge port too, for latency).
 */
async function trial(
  bed: VmBed,
  pool: Uint8Array[],
  rate: number,
  seconds: number,
  tag: number,
  inbound = false,
) {
  await quiet(bed);
  const n = Math.max(1, Math.round(rate * seconds));
  const dir = await Deno.makeTempDir({ prefix: "vdbench-" });
  try {
    await writeTrialPcap(`${dir}/send.pcap`, pool, n, tag);
    const before = await tapCounts(bed);
    // The send starts ~0.3 s + 2 µs a frame after its process does (reading its pcap), and
    // may take longer than planned when QEMU leaves it little CPU: 25% more, then the wait.
    const timeoutMs = 1000 + n * 0.002 + (n / rate) * 1250 + DRAIN_MS;
    const opts = { count: n, timeoutMs, ethertype: 0x0800 };
    const capOut = await startCapture(bed, 1, { ...opts, pcapPath: `${dir}/out.pcap` });
    // NIC 0's bridge port sees the frames on their way in; its MTU of 65535 makes 128 KiB slots.
    const port0 = { netns: bed.netns, tapName: () => injectionNames(bed.tapName(0)).peer };
    const inOpts = { ...opts, pcapPath: `${dir}/in.pcap`, ringBytes: 512 << 20 };
    const capIn = inbound ? await startCapture(port0, 0, inOpts) : null;
    const sent = await sendFrames(bed, 0, `${dir}/send.pcap`, { rate });
    const out = await captured(capOut);
    const inn = capIn ? await captured(capIn) : null;
    await quiet(bed);
    const after = await tapCounts(bed);
    const tOut = timesBySeq(out.records, n, tag);
    const got = tOut.filter((t) => !Number.isNaN(t));
    const lostBySecond = new Array(Math.ceil(seconds)).fill(0);
    const last = lostBySecond.length - 1;
    tOut.forEach((t, i) => Number.isNaN(t) && lostBySecond[Math.min(last, Math.floor(i / rate))]++);
    // From the first capture to the last: includes the backlog drained after the send.
    let first = Infinity, end = -Infinity;
    for (const t of got) [first, end] = [Math.min(first, t), Math.max(end, t)];
    const span = (end - first) / 1e6;
    const result: VmTrial = {
      target: rate,
      offered: Math.round(sent.sent / (sent.elapsedMs / 1000)),
      sent: sent.sent,
      hostDropped: sent.dropped,
      nicIn: after.in0 - before.in0,
      nicOut: after.out1 - before.out1,
      captured: got.length,
      captureDrops: out.socketDrops,
      lossRatio: (sent.sent - got.length) / sent.sent,
      forwardedRate: got.length > 1 && span > 0 ? Math.round((got.length - 1) / span) : 0,
      tailMs: got.length > 1 ? Math.round(span * 1000 - sent.elapsedMs) : 0,
      lostBySecond,
    };
    const tIn = inn ? timesBySeq(inn.records, n, tag) : null;
    const delays = tIn ? [...tOut].map((t, i) => t - tIn[i]).filter((d) => !Number.isNaN(d)) : [];
    return { result, delays };
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Starts a front-end in the guest; resolves once it forwards, to the function that stops it. */
async function startFrontEnd(bed: VmBed, fe: VmFrontEnd): Promise<() => Promise<unknown>> {
  const ports: [string, string] = [bed.nicAddress(0), bed.nicAddress(1)];
  if (fe === "DPDK testpmd") {
    const tp = await startTestpmd(bed, { ports, queues: 1 });
    return async () => (await tp.stop()).stats;
  }
  const cmd = `deno run --quiet --allow-ffi ${shellQuote(`${ROOT}/examples/l2fwd.ts`)} ` +
    `--bind --stats json ${ports.join(" ")}`;
  const p = await bed.spawn(`${cmd} & pid=$!; echo "l2fwd pid $pid" >&2; wait $pid`);
  await p.waitForOutput(/port 1: /, 180000, "stderr");
  const pid = (await p.stderr()).match(/l2fwd pid (\d+)/)![1];
  return async () => {
    await bed.exec(`kill -INT ${pid}`);
    const r = await p.wait(30000);
    if (r.code !== 0) throw new Error(`l2fwd exited ${r.code}: ${r.stderr.slice(-1500)}`);
    const s = summaryOf(r.stdout);
    // Each port's figures without the per-queue copy (one queue pair: the same).
    return { ports: s.ports.map(({ queues: _, ...p }) => p), workers: s.workers };
  };
}

/** Runs the search, the latency trial and the stop for one front-end. */
async function measureOne(
  bed: VmBed,
  pool: Uint8Array[],
  frontEnd: VmFrontEnd,
  o: Required<Omit<VmBedOptions, "frontEnds">>,
  tags: { next: number },
): Promise<VmBedResult> {
  const t0 = performance.now();
  const stop = await startFrontEnd(bed, frontEnd);
  const startMs = Math.round(performance.now() - t0);
  o.log(`${frontEnd}: forwarding after ${startMs} ms`);
  const search: SearchOptions = { minRate: o.minRate, maxRate: o.maxRate, maxTrials: o.maxTrials };
  const trials: VmTrial[] = [];
  const asked = () => trials.map((t) => ({ rate: t.target, lossRatio: t.lossRatio }));
  let latency: VmLatency | undefined;
  try {
    for (let r = nextRate(search, []); r !== null; r = nextRate(search, asked())) {
      const t = (await trial(bed, pool, r, o.trialSeconds, tags.next++)).result;
      trials.push(t);
      o.log(
        `${frontEnd}: ${r}/s → offered ${t.offered}/s, sent ${t.sent}, host dropped ` +
          `${t.hostDropped}, NIC 0 in ${t.nicIn}, NIC 1 out ${t.nicOut}, captured ${t.captured}` +
          ` (loss ${(t.lossRatio * 100).toFixed(3)}%, by second ${t.lostBySecond.join("/")}), ` +
          `forwarded ${t.forwardedRate}/s: ${passed(asked().at(-1)!) ? "pass" : "fail"}`,
      );
    }
    const best = zeroLossRate(search, asked());
    if (o.latency && best > 0) {
      const rate = Math.round(best / 2);
      const { delays } = await trial(bed, pool, rate, o.trialSeconds, tags.next++, true);
      const d = Float64Array.from(delays).sort();
      const at = (q: number) => Math.round(d[Math.max(0, Math.ceil(q * d.length) - 1)]); // nearest rank
      latency = {
        rate,
        samples: d.length,
        p50Us: at(.5),
        p99Us: at(.99),
        p999Us: at(.999),
        maxUs: at(1),
      };
      o.log(`${frontEnd}: latency at ${rate}/s: ${JSON.stringify(latency)}`);
    }
  } catch (e) {
    await stop().catch(() => {}); // it holds the NICs: the next front-end needs them
    throw e;
  }
  const frontEndStats = await stop();
  const best = zeroLossRate(search, asked());
  return {
    frontEnd,
    queuePairs: 1,
    zeroLossRate: trials.find((t) => t.target === best)?.offered ?? 0,
    peakRate: Math.max(0, ...trials.map((t) => t.forwardedRate)),
    trials,
    latency,
    startMs,
    frontEndStats,
  };
}

/**
 * Boots the VM bed (2 NICs, 1 queue pair each) and measures each front-end in turn: its
 * zero-loss rate (RFC 2544 search), peak forwarded rate and latency at half the zero-loss
 * rate. Needs root, the bed's QEMU and DPDK (tools/setup.sh). ~3–4 minutes with defaults.
 *
 * @example
 * ```ts ignore
 * import { measureVmBed } from "./vm_bed.ts";
 * const [dpdk, ours] = await measureVmBed({ trialSeconds: 5, log: console.error });
 * console.log(dpdk.zeroLossRate, ours.zeroLossRate, ours.latency?.p99Us);
 * ```
 */
export async function measureVmBed(opts: VmBedOptions = {}): Promise<VmBedResult[]> {
  const trialSeconds = opts.trialSeconds ?? 5;
  if (!(trialSeconds > 0)) throw new RangeError(`trialSeconds must be > 0 (got ${trialSeconds})`);
  const o = {
    trialSeconds,
    minRate: opts.minRate ?? 1000,
    maxRate: opts.maxRate ?? 200_000,
    maxTrials: opts.maxTrials ?? 10,
    latency: opts.latency ?? true,
    log: opts.log ?? (() => {}),
  };
  const t0 = performance.now();
  // Huge pages for testpmd's pool (--in-memory); l2fwd takes what is left or plain pages.
  const bed = await VmBed.start({ nics: 2, queuePairs: 1, hugepages: 256 });
  try {
    o.log(`VM bed up after ${Math.round(performance.now() - t0)} ms`);
    const mod = await bed.exec("modprobe vfio-pci && modprobe vfio_iommu_type1");
    if (mod.code !== 0) throw new Error(`modprobe vfio-pci in the guest: ${mod.stderr}`);
    const pool = udpFrames({
      seed: 12,
      count: 1024,
      flows: 1024,
      dst: bed.nicMac(0),
      minSize: FRAME,
      maxSize: FRAME,
    });
    const tags = { next: 1 };
    const results: VmBedResult[] = [];
    for (const fe of opts.frontEnds ?? ["DPDK testpmd", "ours (l2fwd)"]) {
      results.push(await measureOne(bed, pool, fe, o, tags));
    }
    o.log(`VM bed done after ${Math.round(performance.now() - t0)} ms`);
    return results;
  } finally {
    await bed.close();
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      "trial-seconds": { type: "string", default: "5" },
      "min-rate": { type: "string", default: "1000" },
      "max-rate": { type: "string", default: "200000" },
      "max-trials": { type: "string", default: "10" },
      "front-ends": { type: "string", default: "dpdk,ours" },
      "no-latency": { type: "boolean", default: false },
    },
  });
  const names: Record<string, VmFrontEnd> = { dpdk: "DPDK testpmd", ours: "ours (l2fwd)" };
  const frontEnds = values["front-ends"].split(",").map((n) => {
    if (!names[n]) throw new Error(`--front-ends: "${n}" is neither dpdk nor ours`);
    return names[n];
  });
  const results = await measureVmBed({
    trialSeconds: Number(values["trial-seconds"]),
    minRate: Number(values["min-rate"]),
    maxRate: Number(values["max-rate"]),
    maxTrials: Number(values["max-trials"]),
    frontEnds,
    latency: !values["no-latency"],
    log: (l) => console.error(`[${new Date().toISOString().slice(11, 19)}] ${l}`),
  });
  console.log(JSON.stringify(results, null, 2));
}
