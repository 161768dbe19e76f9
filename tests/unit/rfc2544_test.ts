/**
 * The RFC 2544 throughput search of bench/rfc2544.ts, against simulated devices: where it
 * starts, how it bisects, when it stops, what it reports.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  nextRate,
  passed,
  type SearchOptions,
  searchState,
  type Trial,
  zeroLossRate,
} from "../../bench/rfc2544.ts";

const OPTS: SearchOptions = { minRate: 1000, maxRate: 200_000, maxTrials: 20 };

/** Runs a whole search against a device that loses `loss(rate)` of what it is offered. */
function search(opts: SearchOptions, loss: (rate: number) => number): Trial[] {
  const trials: Trial[] = [];
  for (let r = nextRate(opts, trials); r !== null; r = nextRate(opts, trials)) {
    assert.ok(!trials.some((t) => t.rate === r), `rate ${r} tried twice`);
    trials.push({ rate: r, lossRatio: loss(r) });
  }
  return trials;
}

/** A device that forwards `capacity` frames/s and loses the excess. */
const device = (capacity: number) => (rate: number) => Math.max(0, 1 - capacity / rate);

Deno.test("the first trial is at the upper bound", () => {
  assert.equal(nextRate(OPTS, []), 200_000);
});

Deno.test("a device that passes the upper bound ends the search after one trial", () => {
  const trials = search(OPTS, () => 0);
  assert.deepEqual(trials.map((t) => t.rate), [200_000]);
  assert.equal(zeroLossRate(OPTS, trials), 200_000);
});

Deno.test("after a failure the next rate is the geometric middle of the interval", () => {
  assert.equal(nextRate(OPTS, [{ rate: 200_000, lossRatio: 0.5 }]), 14142);
  const trials = [{ rate: 200_000, lossRatio: 0.5 }, { rate: 14142, lossRatio: 0 }];
  assert.equal(nextRate(OPTS, trials), Math.round(Math.sqrt(14142 * 200_000)));
});

Deno.test("the zero-loss rate found is within the tolerance below the device's capacity", () => {
  for (const capacity of [1500, 13_000, 30_000, 42_000, 150_000]) {
    const trials = search(OPTS, device(capacity));
    const found = zeroLossRate(OPTS, trials);
    assert.ok(found <= capacity, `${found} > capacity ${capacity}`);
    assert.ok(found >= capacity / 1.05, `${found} more than 5% below capacity ${capacity}`);
  }
});

Deno.test("the default bounds converge in at most 9 trials", () => {
  for (const capacity of [1100, 5000, 20_000, 90_000, 199_000]) {
    const n = search({ ...OPTS, maxTrials: 100 }, device(capacity)).length;
    assert.ok(n <= 9, `capacity ${capacity}: ${n} trials`);
  }
});

Deno.test("the search stops when the interval is within the tolerance", () => {
  const trials = [
    { rate: 200_000, lossRatio: 0.9 },
    { rate: 20_000, lossRatio: 0 },
    { rate: 20_900, lossRatio: 0.01 },
  ];
  assert.equal(nextRate(OPTS, trials), null);
  assert.equal(nextRate({ ...OPTS, tolerance: 0.01 }, trials), 20445);
});

Deno.test("the search stops after maxTrials and reports the best pass so far", () => {
  const opts = { ...OPTS, maxTrials: 3 };
  const trials = search(opts, device(30_000));
  assert.equal(trials.length, 3);
  assert.equal(zeroLossRate(opts, trials), 14142);
});

Deno.test("losses up to 0.01% pass, more fail", () => {
  assert.ok(passed({ rate: 1, lossRatio: 0 }));
  assert.ok(passed({ rate: 1, lossRatio: 0.0001 }));
  assert.ok(!passed({ rate: 1, lossRatio: 0.00011 }));
  assert.ok(passed({ rate: 1, lossRatio: 0.001 }, 0.01));
});

Deno.test("a device that fails every rate is tried at the lower bound, then reports 0", () => {
  const trials = search(OPTS, () => 0.5);
  assert.equal(trials.at(-1)!.rate, 1000);
  assert.equal(zeroLossRate(OPTS, trials), 0);
  assert.deepEqual(searchState(OPTS, trials), { pass: null, fail: 1000, next: null });
});

Deno.test("a failure below a pass (noise) wins: the pass above it does not count", () => {
  const trials = [
    { rate: 200_000, lossRatio: 0.9 },
    { rate: 14142, lossRatio: 0.001 },
    { rate: 53183, lossRatio: 0 },
  ];
  const s = searchState(OPTS, trials);
  assert.equal(s.fail, 14142);
  assert.equal(s.pass, null);
  assert.equal(s.next, Math.round(Math.sqrt(1000 * 14142)));
});

Deno.test("equal bounds give a single trial", () => {
  const opts = { minRate: 5000, maxRate: 5000, maxTrials: 10 };
  assert.deepEqual(search(opts, () => 0).map((t) => t.rate), [5000]);
  assert.deepEqual(search(opts, () => 1).map((t) => t.rate), [5000]);
});

Deno.test("bad options are refused", () => {
  assert.throws(() => nextRate({ minRate: 0, maxRate: 10, maxTrials: 1 }, []), RangeError);
  assert.throws(() => nextRate({ minRate: 10, maxRate: 5, maxTrials: 1 }, []), RangeError);
  assert.throws(() => nextRate({ minRate: 1, maxRate: 5, maxTrials: 0 }, []), RangeError);
  assert.throws(() => nextRate({ ...OPTS, tolerance: 0 }, []), RangeError);
  assert.throws(() => nextRate({ ...OPTS, lossLimit: 1 }, []), RangeError);
});
