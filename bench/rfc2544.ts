/**
 * The RFC 2544 throughput search (section 26.1), without any traffic: given the trials run so
 * far, which offered rate to try next, when to stop, and the zero-loss rate found. The
 * caller runs the trials (bench/tap_trials.ts, in the VM and vfio-user beds).
 *
 * The first trial is at the upper bound. After that each trial bisects the interval between
 * the highest rate that passed and the lowest that failed, on a logarithmic scale: the
 * bounds span 200× by default, and halving the ratio rather than the difference reaches a 5%
 * interval in ~7 trials instead of ~9, and treats a rate near the lower bound as finely as
 * one near the upper. A trial passes when it lost at most `lossLimit` of its frames.
 *
 * @example
 * ```ts
 * import { nextRate, type Trial, zeroLossRate } from "./rfc2544.ts";
 * const opts = { minRate: 1000, maxRate: 200_000, maxTrials: 12 };
 * const trials: Trial[] = [];
 * for (let rate = nextRate(opts, trials); rate !== null; rate = nextRate(opts, trials)) {
 *   trials.push({ rate, lossRatio: rate > 30_000 ? 0.2 : 0 }); // a device that forwards 30,000/s
 * }
 * zeroLossRate(opts, trials); // within 5% below 30,000
 * ```
 *
 * @module
 */

/**
 * Bounds and stopping rules of a search.
 *
 * @example
 * ```ts
 * import type { SearchOptions } from "./rfc2544.ts";
 * const opts: SearchOptions = { minRate: 1000, maxRate: 200_000, maxTrials: 10, tolerance: 0.05 };
 * ```
 */
export interface SearchOptions {
  /** Lowest offered rate tried (frames/s). */
  minRate: number;
  /** Highest offered rate tried, and the first one (frames/s). */
  maxRate: number;
  /** Stop after this many trials, whatever the interval. */
  maxTrials: number;
  /** Stop once the lowest failing rate is within this fraction above the highest passing one (0.05). */
  tolerance?: number;
  /** Highest fraction of frames a trial may lose and pass (0.0001: 0.01%). */
  lossLimit?: number;
}

/**
 * One trial run: the rate it was asked to offer and the fraction of its frames lost.
 *
 * @example
 * ```ts
 * import type { Trial } from "./rfc2544.ts";
 * const t: Trial = { rate: 20_000, lossRatio: 29 / 100_000 }; // 29 of 100,000 frames lost
 * ```
 */
export interface Trial {
  /** Offered rate the search asked for (frames/s). */
  rate: number;
  /** Frames lost / frames offered, 0…1. */
  lossRatio: number;
}

/**
 * Where a search stands (see {@linkcode searchState}).
 *
 * @example
 * ```ts
 * import type { SearchState } from "./rfc2544.ts";
 * const done = (s: SearchState) => s.next === null;
 * ```
 */
export interface SearchState {
  /** Highest passing rate below {@linkcode SearchState.fail}, or null when none passed. */
  pass: number | null;
  /** Lowest failing rate, or null when none failed. */
  fail: number | null;
  /** The rate to try next, or null when the search is over. */
  next: number | null;
}

const DEFAULT_TOLERANCE = 0.05;
const DEFAULT_LOSS_LIMIT = 0.0001;

/**
 * Whether a trial passed: it lost at most `lossLimit` of its frames.
 *
 * @example
 * ```ts
 * import { passed } from "./rfc2544.ts";
 * passed({ rate: 1000, lossRatio: 0.00005 }); // true
 * passed({ rate: 1000, lossRatio: 0.001 }); // false
 * ```
 */
export function passed(trial: Trial, lossLimit = DEFAULT_LOSS_LIMIT): boolean {
  return trial.lossRatio <= lossLimit;
}

/**
 * The interval the trials so far leave and the rate to try next. A failure wins over a
 * pass at a higher rate (noise on a shared machine): `pass` is the highest passing rate
 * below the lowest failure, since a rate that lost frames is no zero-loss rate.
 *
 * @example
 * ```ts
 * import { searchState } from "./rfc2544.ts";
 * const opts = { minRate: 1000, maxRate: 8000, maxTrials: 10 };
 * searchState(opts, []).next; // 8000
 * searchState(opts, [{ rate: 8000, lossRatio: 0.5 }]).next; // 2828 (√(1000 · 8000))
 * ```
 */
export function searchState(opts: SearchOptions, trials: readonly Trial[]): SearchState {
  checkOptions(opts);
  const tolerance = opts.tolerance ?? DEFAULT_TOLERANCE;
  const limit = opts.lossLimit ?? DEFAULT_LOSS_LIMIT;
  let fail: number | null = null;
  for (const t of trials) {
    if (!passed(t, limit) && (fail === null || t.rate < fail)) fail = t.rate;
  }
  let pass: number | null = null;
  for (const t of trials) {
    if (passed(t, limit) && (fail === null || t.rate < fail) && (pass === null || t.rate > pass)) {
      pass = t.rate;
    }
  }
  const state = (next: number | null): SearchState => ({ pass, fail, next });
  if (trials.length >= opts.maxTrials) return state(null);
  if (trials.length === 0) return state(opts.maxRate);
  if (fail === null) return state(null); // the upper bound passed: nothing higher is tried
  const tried = (rate: number) => trials.some((t) => t.rate === rate);
  // Nothing passed yet: the lower bound stands in for a pass until it is itself tried.
  const low = pass ?? opts.minRate;
  if (fail <= low) return state(null); // the lower bound failed
  if (fail <= low * (1 + tolerance)) {
    return state(pass === null && !tried(opts.minRate) ? opts.minRate : null);
  }
  const mid = Math.round(Math.sqrt(low * fail));
  // Rounding can land on a bound of a narrow interval: then it is as narrow as it gets.
  if (mid <= low || mid >= fail) return state(pass === null && !tried(low) ? low : null);
  return state(mid);
}

/**
 * The rate to try next, or null when the search is over (interval within the tolerance,
 * the upper bound passed, the lower bound failed, or `maxTrials` run).
 *
 * @example
 * ```ts
 * import { nextRate } from "./rfc2544.ts";
 * const opts = { minRate: 1000, maxRate: 200_000, maxTrials: 12 };
 * nextRate(opts, []); // 200000
 * nextRate(opts, [{ rate: 200_000, lossRatio: 0 }]); // null: the upper bound passed
 * ```
 */
export function nextRate(opts: SearchOptions, trials: readonly Trial[]): number | null {
  return searchState(opts, trials).next;
}

/**
 * The zero-loss rate the trials found: the highest passing rate below the lowest failing
 * one, or 0 when no trial passed.
 *
 * @example
 * ```ts
 * import { zeroLossRate } from "./rfc2544.ts";
 * const opts = { minRate: 1000, maxRate: 200_000, maxTrials: 12 };
 * zeroLossRate(opts, [{ rate: 200_000, lossRatio: 0.3 }, { rate: 14_142, lossRatio: 0 }]); // 14142
 * ```
 */
export function zeroLossRate(opts: SearchOptions, trials: readonly Trial[]): number {
  return searchState(opts, trials).pass ?? 0;
}

function checkOptions(opts: SearchOptions): void {
  const { minRate, maxRate, maxTrials } = opts;
  if (!(minRate > 0 && maxRate >= minRate && Number.isFinite(maxRate))) {
    throw new RangeError(`rfc2544: need 0 < minRate ≤ maxRate (got ${minRate}, ${maxRate})`);
  }
  if (!(Number.isInteger(maxTrials) && maxTrials >= 1)) {
    throw new RangeError(`rfc2544: maxTrials must be a whole number ≥ 1 (got ${maxTrials})`);
  }
  const tolerance = opts.tolerance ?? DEFAULT_TOLERANCE;
  if (!(tolerance > 0)) throw new RangeError(`rfc2544: tolerance must be > 0 (got ${tolerance})`);
  const limit = opts.lossLimit ?? DEFAULT_LOSS_LIMIT;
  if (!(limit >= 0 && limit < 1)) {
    throw new RangeError(`rfc2544: lossLimit must be in [0, 1) (got ${limit})`);
  }
}
