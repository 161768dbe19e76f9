/**
 * Rate trials on a bed whose NICs have host-side taps in a network namespace (the VM bed,
 * tests/bed/vm.ts; the vfio-user bed, tests/bed/vfio_user_bed.ts), with a front-end
 * forwarding NIC 0 → NIC 1: the RFC 2544 zero-loss search (bench/rfc2544.ts), the peak
 * forwarded rate and latency trials. The front-end is the caller's business.
 *
 * A trial offers `rate × trialSeconds` frames of 64 B on the wire (60 B + FCS, 1,024 UDP
 * flows, each numbered) and counts what the capture on NIC 1 got within 2 s of the send's
 * planned end (RFC 2544's wait; the plan stretched by 25% for a host sender short of CPU).
 * Every frame not captured is lost, wherever. That includes `hostDropped`, the tap's full
 * ring: QEMU takes frames from the tap only while NIC 0's receive ring has buffers, so the
 * ring fills when the front-end falls behind (a physical NIC's rx_missed; a front-end that
 * pushes back, as l2fwd's default `--tx-full wait`, loses only there), or when QEMU itself
 * is short of CPU. The taps' counters say what NIC 0 took and NIC 1 gave, so each loss is
 * placed. Before each trial the taps are let go quiet. Latency: each frame's capture time
 * on NIC 1's tap minus that on NIC 0's bridge port (one host clock).
 *
 * @example
 * ```ts ignore
 * import { searchRates, trialFrames } from "./tap_trials.ts";
 * const r = await searchRates(bed, trialFrames(bed.nicMac(0)), { trialSeconds: 5, label: "ours" });
 * console.log(r.zeroLossRate, r.peakRate, r.latency[0]?.p99Us);
 * ```
 *
 * @module
 */

import { encodeFileHeader, type PcapRecord, readPcap } from "../src/pcap/pcap.ts";
import { udpFrames } from "../tests/bed/frames.ts";
import { injectionNames } from "../tests/bed/netns.ts";
import { CaptureError, sendFrames, startCapture, type TrafficBed } from "../tests/bed/traffic.ts";
import { nextRate, passed, type SearchOptions, zeroLossRate } from "./rfc2544.ts";

export type { TrafficBed };

/**
 * One trial of the search. Every frame sent is in one place: `hostDropped + nicIn = sent`;
 * `nicIn − nicOut` were lost in the guest (front-end or QEMU); `nicOut − captured − captureDrops`
 * came after the capture ended (counted lost: more than 2 s late).
 *
 * @example
 * ```ts
 * import type { RateTrial } from "./tap_trials.ts";
 * const inGuest = (t: RateTrial) => t.nicIn - t.nicOut;
 * ```
 */
export interface RateTrial {
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
  /** The front-end's counters over the trial (with `counters`: {@linkcode SearchRatesOptions}). */
  counters?: Record<string, number>;
}

/**
 * Latency from NIC 0's host side to NIC 1's: per frame, its capture time on NIC 1's tap
 * minus its capture time on NIC 0's bridge port (one host clock), matched by number.
 *
 * @example
 * ```ts
 * import type { Latency } from "./tap_trials.ts";
 * const tail = (l: Latency) => l.p999Us / l.p50Us;
 * ```
 */
export interface Latency {
  /** Offered rate (frames/s). */
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

/** Frame size without FCS (64 B on the wire). */
const FRAME = 60;
/** Payload offsets in a UDP test frame (frames.ts): seed and sequence number, u32 BE. */
const TAG_AT = 46, SEQ_AT = 50, UDP_CSUM_AT = 40;
/** RFC 2544's wait for frames after the send ended. */
const DRAIN_MS = 2000;

/** Frames NIC 0's tap gave to QEMU and NIC 1's tap got from it (`ip -s`, in the namespace). */
async function tapCounts(bed: TrafficBed): Promise<{ in0: number; out1: number }> {
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
async function quiet(bed: TrafficBed): Promise<void> {
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
  bed: TrafficBed,
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
    const result: RateTrial = {
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

/**
 * The frames trials cycle through: 1,024 UDP flows of 60 bytes to `dst` (NIC 0's MAC).
 *
 * @example
 * ```ts
 * import { trialFrames } from "./tap_trials.ts";
 * trialFrames("52:54:00:12:34:56").length; // 1024
 * ```
 */
export function trialFrames(dst: string): Uint8Array[] {
  return udpFrames({ seed: 12, count: 1024, flows: 1024, dst, minSize: FRAME, maxSize: FRAME });
}

/**
 * Options of {@linkcode searchRates}.
 *
 * @example
 * ```ts
 * import type { SearchRatesOptions } from "./tap_trials.ts";
 * const quick: SearchRatesOptions = { label: "ours", trialSeconds: 2, maxTrials: 4 };
 * ```
 */
export interface SearchRatesOptions {
  /** Names the front-end in the log lines. */
  label: string;
  /** Seconds of traffic per trial. */
  trialSeconds: number;
  /** Lowest offered rate the search tries, frames/s (default 1,000). */
  minRate?: number;
  /** Highest offered rate, and the first tried, frames/s (default 200,000). */
  maxRate?: number;
  /** Search trials at most, latency trials not counted (default 10). */
  maxTrials?: number;
  /** The rates of the latency trials, given the zero-loss rate found (default its half). */
  latencyRates?: (zeroLossRate: number) => number[];
  /** Numbers the trials' frames; share one between searches of a bed (a straggler is told apart). */
  tags?: { next: number };
  /** The front-end's counters, read before and after each trial: a trial keeps the differences. */
  counters?: () => Promise<Record<string, number>>;
  /** Called with a line of progress. */
  log?: (line: string) => void;
}

/**
 * What {@linkcode searchRates} found.
 *
 * @example
 * ```ts
 * import type { RateSearch } from "./tap_trials.ts";
 * const line = (r: RateSearch) => `${r.zeroLossRate}/s without loss, peak ${r.peakRate}/s`;
 * ```
 */
export interface RateSearch {
  /** Offered rate of the highest trial that lost at most 0.01% (0: none did). */
  zeroLossRate: number;
  /**
   * What that trial forwarded per second, first to last capture: below `zeroLossRate` when
   * frames queued at the tap and came out in the 2 s wait (the front-end fell behind).
   */
  zeroLossForwardedRate: number;
  /** Index in `trials` of that trial (-1: none passed). */
  zeroLossTrial: number;
  /** Highest forwarded rate of any trial (frames/s). */
  peakRate: number;
  /** In the order run. */
  trials: RateTrial[];
  /** One per rate `latencyRates` gave (none when nothing passed). */
  latency: Latency[];
}

/**
 * The command-line options of a search (`node:util` parseArgs form), shared by the bed
 * scripts, and what they give.
 *
 * @example
 * ```ts
 * import { parseArgs } from "node:util";
 * import { SEARCH_CLI_OPTIONS, searchOptionsFrom } from "./tap_trials.ts";
 * const { values } = parseArgs({ args: ["--trial-seconds", "2"], options: SEARCH_CLI_OPTIONS });
 * searchOptionsFrom(values).trialSeconds; // 2
 * ```
 */
export const SEARCH_CLI_OPTIONS = {
  "trial-seconds": { type: "string", default: "5" },
  "min-rate": { type: "string", default: "1000" },
  "max-rate": { type: "string", default: "200000" },
  "max-trials": { type: "string", default: "10" },
} as const;

/**
 * The search options {@linkcode SEARCH_CLI_OPTIONS} parsed into.
 *
 * @example
 * ```ts
 * import { searchOptionsFrom } from "./tap_trials.ts";
 * const values = { "trial-seconds": "5", "min-rate": "1000", "max-rate": "9000", "max-trials": "4" };
 * searchOptionsFrom(values).maxRate; // 9000
 * ```
 */
export function searchOptionsFrom(values: Record<keyof typeof SEARCH_CLI_OPTIONS, string>): {
  trialSeconds: number;
  minRate: number;
  maxRate: number;
  maxTrials: number;
} {
  return {
    trialSeconds: Number(values["trial-seconds"]),
    minRate: Number(values["min-rate"]),
    maxRate: Number(values["max-rate"]),
    maxTrials: Number(values["max-trials"]),
  };
}

/** Nearest-rank percentiles of the delays of one latency trial. */
function latencyOf(rate: number, delays: number[]): Latency {
  const d = Float64Array.from(delays).sort();
  const at = (q: number) => Math.round(d[Math.max(0, Math.ceil(q * d.length) - 1)]);
  return { rate, samples: d.length, p50Us: at(.5), p99Us: at(.99), p999Us: at(.999), maxUs: at(1) };
}

/**
 * Runs the RFC 2544 zero-loss search against the front-end forwarding NIC 0 → NIC 1 of
 * `bed`, then the latency trials. The front-end runs throughout (the caller starts and
 * stops it).
 *
 * @example
 * ```ts ignore
 * import { searchRates, trialFrames } from "./tap_trials.ts";
 * const r = await searchRates(bed, trialFrames(bed.nicMac(0)), { label: "ours", trialSeconds: 5 });
 * ```
 */
export async function searchRates(
  bed: TrafficBed,
  pool: Uint8Array[],
  o: SearchRatesOptions,
): Promise<RateSearch> {
  if (!(o.trialSeconds > 0)) {
    throw new RangeError(`trialSeconds must be > 0 (got ${o.trialSeconds})`);
  }
  const log = o.log ?? (() => {});
  const tags = o.tags ?? { next: 1 };
  const search: SearchOptions = {
    minRate: o.minRate ?? 1000,
    maxRate: o.maxRate ?? 200_000,
    maxTrials: o.maxTrials ?? 10,
  };
  const trials: RateTrial[] = [];
  const asked = () => trials.map((t) => ({ rate: t.target, lossRatio: t.lossRatio }));
  for (let r = nextRate(search, []); r !== null; r = nextRate(search, asked())) {
    const before = await o.counters?.();
    const t = (await trial(bed, pool, r, o.trialSeconds, tags.next++)).result;
    const after = await o.counters?.();
    if (before && after) {
      t.counters = Object.fromEntries(Object.keys(after).map((k) => [k, after[k] - before[k]]));
    }
    trials.push(t);
    log(
      `${o.label}: ${r}/s → offered ${t.offered}/s, sent ${t.sent}, host dropped ` +
        `${t.hostDropped}, NIC 0 in ${t.nicIn}, NIC 1 out ${t.nicOut}, captured ${t.captured}` +
        ` (loss ${(t.lossRatio * 100).toFixed(3)}%, by second ${t.lostBySecond.join("/")}), ` +
        `forwarded ${t.forwardedRate}/s: ${passed(asked().at(-1)!) ? "pass" : "fail"}`,
    );
  }
  const best = zeroLossRate(search, asked());
  const latency: Latency[] = [];
  const rates = best > 0 ? (o.latencyRates ?? ((z) => [Math.round(z / 2)]))(best) : [];
  for (const rate of rates) {
    const { delays } = await trial(bed, pool, rate, o.trialSeconds, tags.next++, true);
    latency.push(latencyOf(rate, delays));
    log(`${o.label}: latency at ${rate}/s: ${JSON.stringify(latency.at(-1))}`);
  }
  const at = trials.findIndex((t) => t.target === best);
  return {
    zeroLossRate: trials[at]?.offered ?? 0,
    zeroLossForwardedRate: trials[at]?.forwardedRate ?? 0,
    zeroLossTrial: at,
    peakRate: Math.max(0, ...trials.map((t) => t.forwardedRate)),
    trials,
    latency,
  };
}
