/**
 * A seeded pseudo-random generator (mulberry32) for the fuzz tests: a failing run names its
 * seed, and VIRTIO_FUZZ_SEED=<seed> replays it.
 *
 * @module
 */

/** Random numbers from a 32-bit seed. */
export class Prng {
  #s: number;

  constructor(seed: number) {
    this.#s = seed >>> 0;
  }

  /** A uniform 32-bit unsigned integer. */
  u32(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** An integer in [0, n). */
  below(n: number): number {
    return this.u32() % n;
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.u32() < p * 0x1_0000_0000;
  }

  /** One of `items`. */
  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)];
  }
}

/** The seed of this run: VIRTIO_FUZZ_SEED if set, otherwise a fresh one. */
export function fuzzSeed(): number {
  const s = Deno.env.get("VIRTIO_FUZZ_SEED");
  return s ? Number(s) >>> 0 : (Math.random() * 0x1_0000_0000) >>> 0;
}
