/**
 * The latency histogram and its statistics (src/engine/latency.ts): bucket resolution over
 * 1 µs–10 s, percentiles against the exact ones of known distributions, merging workers,
 * jitter, and the values it refuses or clamps.
 */

import assert from "node:assert/strict";
import {
  bucketRange,
  L_BAD,
  L_COUNT,
  L_HIST,
  L_OVER,
  LATENCY_BUCKETS,
  LATENCY_MAX_NS,
  LATENCY_SLOTS,
  latencyBucket,
  mergeLatency,
  percentileNs,
  recordLatency,
} from "../../src/engine/latency.ts";
import { prng } from "../bed/frames.ts";

/** A deterministic PRNG of numbers in [0, 1) (frames.ts's mulberry32). */
function rng(seed: number): () => number {
  const next = prng(seed);
  return () => next() / 4294967296;
}

/** The exact percentile as the histogram defines it: the ⌈p·n⌉-th smallest. */
function exact(sorted: number[], p: number): number {
  return sorted[Math.max(1, Math.ceil(p * sorted.length)) - 1];
}

Deno.test("latencyBucket(): buckets are contiguous, ordered, and at most 1/64 of their value wide from 1 µs to 10 s", () => {
  let prevEnd = 0;
  for (let i = 0; i < LATENCY_BUCKETS; i++) {
    const [low, width] = bucketRange(i);
    assert.ok(Math.abs(low - prevEnd) < 1e-6, `bucket ${i} starts where ${i - 1} ended`);
    if (low >= 1000) assert.ok(width / low <= 1 / 64 + 1e-12, `bucket ${i} resolution`);
    prevEnd = low + width;
    // A value inside the bucket maps to it.
    assert.equal(latencyBucket(low + width / 2), i);
  }
  assert.ok(prevEnd >= LATENCY_MAX_NS, "the top bucket reaches 10 s");
  assert.equal(latencyBucket(LATENCY_MAX_NS * 100), LATENCY_BUCKETS - 1, "clamped to the top");
  // Monotonic over a sweep of values.
  let last = -1;
  for (let v = 0; v < 2e9; v = v * 1.01 + 1) {
    const b = latencyBucket(v);
    assert.ok(b >= last);
    last = b;
  }
});

for (
  const [name, draw] of [
    ["uniform 5–500 µs", (r: () => number) => 5000 + r() * 495_000],
    ["exponential, mean 40 µs, from 2 µs", (r: () => number) => 2000 - 40_000 * Math.log(1 - r())],
    ["log-uniform 1 µs–1 s", (r: () => number) => 1000 * 10 ** (6 * r())],
  ] as const
) {
  Deno.test(`percentiles of ${name} are within 0.8 % of the exact ones`, () => {
    const r = rng(7), c = new Float64Array(LATENCY_SLOTS), all: number[] = [];
    for (let i = 0; i < 100_000; i++) {
      const v = draw(r);
      all.push(v);
      recordLatency(c, 0, v);
    }
    all.sort((a, b) => a - b);
    const s = mergeLatency([c], 0)!;
    assert.equal(s.count, all.length);
    assert.equal(s.minUs, Math.round(all[0]) / 1000);
    assert.equal(s.maxUs, Math.round(all.at(-1)!) / 1000);
    const mean = all.reduce((a, b) => a + b, 0) / all.length;
    assert.ok(Math.abs(s.meanUs * 1000 - mean) < 1, "the mean is exact (to the ns)");
    for (const [p, got] of [[0.5, s.p50Us], [0.99, s.p99Us], [0.999, s.p999Us]]) {
      const want = exact(all, p) / 1000;
      assert.ok(Math.abs(got - want) / want <= 0.008, `p${p * 100}: ${got} µs vs ${want} µs`);
    }
    assert.ok(s.minUs <= s.p50Us && s.p50Us <= s.p99Us && s.p99Us <= s.p999Us);
    assert.ok(s.p999Us <= s.maxUs);
  });
}

Deno.test("mergeLatency() of two workers equals one worker that saw both streams' values", () => {
  const r = rng(11),
    a = new Float64Array(LATENCY_SLOTS + 5),
    b = new Float64Array(LATENCY_SLOTS + 5);
  const one = new Float64Array(LATENCY_SLOTS);
  for (let i = 0; i < 10_000; i++) {
    const v = 1000 + r() * 99_000;
    recordLatency(i % 3 === 0 ? a : b, 5, v);
    recordLatency(one, 0, v);
  }
  const m = mergeLatency([a, b], 5)!, s = mergeLatency([one], 0)!;
  for (const k of ["count", "minUs", "p50Us", "p99Us", "p999Us", "maxUs"] as const) {
    assert.equal(m[k], s[k], k);
  }
  assert.ok(Math.abs(m.meanUs - s.meanUs) <= 0.001);
  assert.equal(mergeLatency([new Float64Array(LATENCY_SLOTS)], 0), null, "nothing measured");
});

Deno.test("jitter is the mean absolute difference of consecutive latencies (as RFC 3550's, unsmoothed)", () => {
  const c = new Float64Array(LATENCY_SLOTS);
  for (const v of [10_000, 14_000, 12_000, 12_000, 20_000]) recordLatency(c, 0, v);
  // |4| + |−2| + 0 + |8| = 14 µs over 4 pairs.
  assert.equal(mergeLatency([c], 0)!.jitterUs, 3.5);
});

Deno.test("a timestamp in the future is counted apart; one beyond 10 s lands in the top bucket", () => {
  const c = new Float64Array(LATENCY_SLOTS);
  recordLatency(c, 0, 20_000);
  recordLatency(c, 0, -5);
  recordLatency(c, 0, 30e9);
  assert.equal(c[L_BAD], 1);
  assert.equal(c[L_COUNT], 2);
  assert.equal(c[L_OVER], 1);
  assert.equal(c[L_HIST + LATENCY_BUCKETS - 1], 1);
  const s = mergeLatency([c], 0)!;
  assert.equal(s.minUs, 20);
  assert.equal(s.maxUs, 30e6);
  assert.equal(s.badTimestamps, 1);
  assert.equal(s.over, 1);
});

Deno.test("percentileNs() clamps to [min, max] and takes the ⌈p·n⌉-th value", () => {
  const h = new Float64Array(LATENCY_BUCKETS);
  for (const v of [3000, 3000, 3000, 90_000]) h[latencyBucket(v)]++;
  assert.equal(
    percentileNs(h, 4, 0.75, 3000, 90_000),
    3000 + bucketRange(latencyBucket(3000))[1] / 2,
  );
  assert.equal(percentileNs(h, 4, 0.76, 3000, 90_000), 90_000, "clamped to the max");
  assert.ok(Number.isNaN(percentileNs(h, 0, 0.5, 0, 0)));
});
