/**
 * Latency statistics, as DPDK's latencystats library keeps them: per worker the count,
 * sum, minimum, maximum and jitter of the latencies it measured, and a fixed log-linear
 * histogram (HDR style) from which the main thread reads percentiles after merging the
 * workers.
 *
 * The histogram counts latencies in units of {@linkcode LATENCY_UNIT_NS} (1/64 µs):
 * linearly below 2 µs, then in 64 sub-buckets per power of two, so a bucket is at most
 * 1/64 (1.6 %) of its lower bound wide from 1 µs to {@linkcode LATENCY_MAX_NS} (10 s);
 * a percentile read as a bucket's middle is within 0.8 %. Longer latencies count in the
 * top bucket (and in `over`).
 *
 * Jitter is the mean absolute difference of consecutive latencies, as RFC 3550's
 * interarrival jitter without its 1/16 smoothing (DPDK's latencystats smooths it so);
 * a mean merges over workers exactly, a smoothed value does not.
 *
 * A block of {@linkcode LATENCY_SLOTS} Float64Array slots holds it all, so it lives in the
 * worker's shared counters (counters.ts) and {@linkcode recordLatency} allocates nothing.
 *
 * @module
 */

/** Latencies measured. */
export const L_COUNT = 0;
/** Their sum (ns). */
export const L_SUM = 1;
/** The smallest (ns; valid once L_COUNT > 0). */
export const L_MIN = 2;
/** The largest (ns). */
export const L_MAX = 3;
/** Sum of |latency - previous latency| (ns). */
export const L_JITTER_SUM = 4;
/** Pairs of consecutive latencies in L_JITTER_SUM. */
export const L_JITTER_PAIRS = 5;
/** The last latency (ns), for the next pair. */
export const L_PREV = 6;
/** Timestamps in the future (a negative latency): not counted. */
export const L_BAD = 7;
/** Latencies beyond {@linkcode LATENCY_MAX_NS} (counted in the top bucket too). */
export const L_OVER = 8;
/** The latency {@linkcode recordSample} records (ns), written by its caller. */
export const L_SAMPLE = 9;
/** First histogram bucket. */
export const L_HIST = 16;

/** Sub-buckets per power of two (log2: {@linkcode SUB_BITS}). */
const SUB = 64;
const SUB_BITS = 6;
/** Nanoseconds per histogram unit: 1 µs is {@linkcode SUB} units. */
export const LATENCY_UNIT_NS = 1000 / SUB;
/** The top of the histogram's range (10 s). */
export const LATENCY_MAX_NS = 10e9;
/** The top unit (10 s), below 2^31 so that `>>> 0` keeps it whole. */
const X_TOP = Math.floor(LATENCY_MAX_NS / LATENCY_UNIT_NS);

/**
 * The bucket of a latency of `ns` nanoseconds (0 or more): units below 2·64 each have a
 * bucket, above that 64 per power of two. Allocates nothing.
 *
 * @example
 * ```ts
 * import { latencyBucket } from "./latency.ts";
 * latencyBucket(0); // 0
 * latencyBucket(1000); // 64 (1 µs)
 * latencyBucket(4000) === latencyBucket(4060); // true: 4000–4062.5 ns is one bucket
 * ```
 */
export function latencyBucket(ns: number): number {
  const u = ns / LATENCY_UNIT_NS;
  const x = (u < X_TOP ? u : X_TOP) >>> 0;
  if (x < 2 * SUB) return x;
  const shift = 31 - Math.clz32(x) - SUB_BITS;
  return (shift << SUB_BITS) + (x >>> shift);
}

/** Buckets in the histogram (the top one holds {@linkcode LATENCY_MAX_NS}). */
export const LATENCY_BUCKETS: number = latencyBucket(LATENCY_MAX_NS) + 1;

/** Slots of a latency block. */
export const LATENCY_SLOTS: number = L_HIST + LATENCY_BUCKETS;

/**
 * The lowest latency (ns) bucket `i` holds, and its width (ns): `[low, low + width)`.
 *
 * @example
 * ```ts
 * import { bucketRange, latencyBucket } from "./latency.ts";
 * const [low, width] = bucketRange(latencyBucket(5000)); // [4999.9…, 78.1…]
 * low <= 5000 && 5000 < low + width; // true
 * ```
 */
export function bucketRange(i: number): [low: number, width: number] {
  if (i < 2 * SUB) return [i * LATENCY_UNIT_NS, LATENCY_UNIT_NS];
  const shift = (i >>> SUB_BITS) - 1;
  const x = ((i & (SUB - 1)) | SUB) * 2 ** shift;
  return [x * LATENCY_UNIT_NS, 2 ** shift * LATENCY_UNIT_NS];
}

/**
 * Records one latency of `ns` nanoseconds into the block at `c[o…]` (through
 * {@linkcode recordSample}).
 *
 * @example
 * ```ts
 * import { L_COUNT, LATENCY_SLOTS, recordLatency } from "./latency.ts";
 * const c = new Float64Array(LATENCY_SLOTS);
 * recordLatency(c, 0, 12_000);
 * c[L_COUNT]; // 1
 * ```
 */
export function recordLatency(c: Float64Array, o: number, ns: number): void {
  c[o + L_SAMPLE] = ns;
  recordSample(c, o);
}

/**
 * Records the latency in `c[o + L_SAMPLE]` (ns) into the block at `c[o…]`. The value
 * comes through the array, not as an argument: V8 boxes a double passed to a call it
 * does not inline (forwarder.ts), and this runs per frame. Allocates nothing, and every
 * statement runs for every latency (no branch first taken late, see worker.ts).
 *
 * @example
 * ```ts
 * import { L_MAX, L_SAMPLE, LATENCY_SLOTS, recordSample } from "./latency.ts";
 * const c = new Float64Array(LATENCY_SLOTS);
 * c[L_SAMPLE] = 7_500;
 * recordSample(c, 0);
 * c[L_MAX]; // 7500
 * ```
 */
export function recordSample(c: Float64Array, o: number): void {
  const ns = c[o + L_SAMPLE];
  const bad = ns < 0 ? 1 : 0, ok = 1 - bad;
  const v = ns * ok; // a bad one is recorded nowhere but in L_BAD
  const n = c[o + L_COUNT], min = c[o + L_MIN], max = c[o + L_MAX];
  const first = n === 0 ? 1 : 0, prev = c[o + L_PREV], d = v - prev;
  c[o + L_BAD] += bad;
  c[o + L_COUNT] = n + ok;
  c[o + L_SUM] += v;
  const lower = first === 1 || v < min ? v : min;
  c[o + L_MIN] = ok === 1 ? lower : min;
  c[o + L_MAX] = v > max ? v : max;
  const pair = ok * (1 - first);
  c[o + L_JITTER_SUM] += pair * (d < 0 ? -d : d);
  c[o + L_JITTER_PAIRS] += pair;
  c[o + L_PREV] = ok === 1 ? v : prev;
  c[o + L_OVER] += ok * (v > LATENCY_MAX_NS ? 1 : 0);
  // latencyBucket(v), written out: its argument would be a double.
  const u = v / LATENCY_UNIT_NS;
  const x = (u < X_TOP ? u : X_TOP) >>> 0;
  const shift = x < 2 * SUB ? 0 : 31 - Math.clz32(x) - SUB_BITS;
  c[o + L_HIST + (shift << SUB_BITS) + (x >>> shift)] += ok;
}

/** What the main thread reports of the merged latency blocks (µs, 3 decimals). */
export interface LatencySummary {
  /** Latencies measured. */
  count: number;
  /** The smallest. */
  minUs: number;
  /** The mean. */
  meanUs: number;
  /** The median (a bucket's middle: within 0.8 %, and between min and max). */
  p50Us: number;
  /** The 99th percentile. */
  p99Us: number;
  /** The 99.9th percentile. */
  p999Us: number;
  /** The largest. */
  maxUs: number;
  /** Mean absolute difference of consecutive latencies (each worker's sequence). */
  jitterUs: number;
  /** Latencies beyond 10 s (in the top bucket). */
  over: number;
  /** Frames whose timestamp lay in the future: not counted. */
  badTimestamps: number;
}

/**
 * The value of percentile `p` (0–1) of the histogram `hist` (one count per bucket) of
 * `count` latencies: the middle of the first bucket at which at least ⌈p·count⌉
 * latencies are counted (ns), clamped to [min, max]; NaN for no latencies.
 *
 * @example
 * ```ts
 * import { latencyBucket, LATENCY_BUCKETS, percentileNs } from "./latency.ts";
 * const h = new Float64Array(LATENCY_BUCKETS);
 * for (const v of [1000, 2000, 3000, 4000]) h[latencyBucket(v)]++;
 * percentileNs(h, 4, 0.5, 1000, 4000); // ≈ 2000 (within 0.8 %)
 * ```
 */
export function percentileNs(
  hist: ArrayLike<number>,
  count: number,
  p: number,
  min: number,
  max: number,
): number {
  if (count <= 0) return NaN;
  const rank = Math.max(1, Math.ceil(p * count));
  let seen = 0;
  for (let i = 0; i < hist.length; i++) {
    seen += hist[i];
    if (seen >= rank) {
      const [low, width] = bucketRange(i);
      return Math.min(max, Math.max(min, low + width / 2));
    }
  }
  return max;
}

const us = (ns: number) => Math.round(ns) / 1000;

/**
 * Merges the latency blocks at `c[base…]` of each of `blocks` (one per worker) into one
 * summary; null when none measured anything.
 *
 * @example
 * ```ts
 * import { LATENCY_SLOTS, mergeLatency, recordLatency } from "./latency.ts";
 * const a = new Float64Array(LATENCY_SLOTS), b = new Float64Array(LATENCY_SLOTS);
 * recordLatency(a, 0, 10_000);
 * recordLatency(b, 0, 30_000);
 * mergeLatency([a, b], 0)?.meanUs; // 20
 * ```
 */
export function mergeLatency(
  blocks: readonly Float64Array[],
  base: number,
): LatencySummary | null {
  const hist = new Float64Array(LATENCY_BUCKETS);
  let count = 0, sum = 0, min = Infinity, max = 0, jSum = 0, jPairs = 0, over = 0, bad = 0;
  for (const c of blocks) {
    const n = c[base + L_COUNT];
    bad += c[base + L_BAD];
    if (n === 0) continue;
    count += n;
    sum += c[base + L_SUM];
    min = Math.min(min, c[base + L_MIN]);
    max = Math.max(max, c[base + L_MAX]);
    jSum += c[base + L_JITTER_SUM];
    jPairs += c[base + L_JITTER_PAIRS];
    over += c[base + L_OVER];
    for (let i = 0; i < LATENCY_BUCKETS; i++) hist[i] += c[base + L_HIST + i];
  }
  if (count === 0) return null;
  const pct = (p: number) => us(percentileNs(hist, count, p, min, max));
  return {
    count,
    minUs: us(min),
    meanUs: us(sum / count),
    p50Us: pct(0.5),
    p99Us: pct(0.99),
    p999Us: pct(0.999),
    maxUs: us(max),
    jitterUs: us(jPairs > 0 ? jSum / jPairs : 0),
    over,
    badTimestamps: bad,
  };
}
