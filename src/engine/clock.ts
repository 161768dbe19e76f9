/**
 * A clock for the forwarding loop that allocates nothing: clock_gettime(2) through FFI
 * into a typed array built once.
 *
 * Why not performance.now() or Date.now(): measured with Deno 2.9.6, each call of either
 * allocates a heap number (3 million calls: 46 scavenges), and the loop reads the clock
 * on every pass. clock_gettime(CLOCK_MONOTONIC) through FFI with an i32 result allocates
 * nothing and costs about 35 ns (vDSO). FFI functions with a 64-bit result (isize, i64)
 * allocate on every call too, hence the i32 result here and in notifier.ts.
 *
 * @module
 */

/** clockid_t of CLOCK_REALTIME (<linux/time.h>). */
export const CLOCK_REALTIME = 0;
/** clockid_t of CLOCK_MONOTONIC. */
export const CLOCK_MONOTONIC = 1;

/**
 * Reads one clock, in milliseconds, without allocating. {@linkcode FfiClock.tick} stores
 * the time in {@linkcode FfiClock.ms}, a one-element Float64Array, rather than returning
 * it: a double passed to or returned from a call V8 does not inline is boxed in a new
 * heap number, so hot code reads the time from the array.
 *
 * @example
 * ```ts ignore
 * import { CLOCK_MONOTONIC, FfiClock } from "./clock.ts";
 * const clock = new FfiClock(CLOCK_MONOTONIC);
 * clock.tick();
 * const t0 = clock.ms[0];
 * ```
 */
export class FfiClock {
  /** The time at the last {@linkcode FfiClock.tick}, in ms. */
  readonly ms: Float64Array = new Float64Array(1);
  readonly #id: number;
  readonly #ts = new Int32Array(4); // struct timespec: tv_sec (i64), tv_nsec (i64)
  readonly #bytes = new Uint8Array(this.#ts.buffer);
  readonly #gettime: (id: number, ts: Uint8Array) => number;

  /** A clock reading `clockId` (CLOCK_MONOTONIC or CLOCK_REALTIME). Needs --allow-ffi. */
  constructor(clockId: number) {
    this.#id = clockId;
    this.#gettime = Deno.dlopen("libc.so.6", {
      clock_gettime: { parameters: ["i32", "buffer"], result: "i32" },
    }).symbols.clock_gettime;
  }

  /** Reads the clock into {@linkcode FfiClock.ms} (ms, with fractions down to ns). */
  tick(): void {
    this.#gettime(this.#id, this.#bytes);
    const ts = this.#ts;
    // tv_sec fits 53 bits as hi·2^32 + lo; tv_nsec < 10^9 fits the low word.
    this.ms[0] = (ts[1] * 4294967296 + (ts[0] >>> 0)) * 1000 + ts[2] / 1e6;
  }

  /** Reads the clock and returns the time (for code off the hot path). */
  nowMs(): number {
    this.tick();
    return this.ms[0];
  }
}
