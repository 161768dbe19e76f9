/**
 * Adding 1 to an eventfd this process does not own the waiting side of (a vhost-user kick
 * fd): one write(2) of an 8-byte buffer built once, the result read as an i32 (a 64-bit
 * result would allocate a number per call), so nothing is allocated per notification.
 * Opens its own two libc symbols, so a forwarding worker loads nothing else for it.
 *
 * @module
 */

import { lazyLibrary } from "./lazy_library.ts";

const EINTR = 4;
const EAGAIN = 11;

const sys = lazyLibrary("libc.so.6", {
  write: { parameters: ["i32", "buffer", "usize"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
});

let errnoView: Deno.UnsafePointerView | null = null;

/**
 * Writes 1 to an eventfd.
 *
 * @example
 * ```ts
 * import { Eventfd } from "./eventfd.ts";
 * import { EventfdWriter } from "./eventfd_writer.ts";
 * const e = Eventfd.create();
 * new EventfdWriter(e.fd).add1(); // 0: done
 * e.take(); // 1
 * e.close();
 * ```
 */
export class EventfdWriter {
  /** The eventfd written to. */
  readonly fd: number;
  readonly #one = new Uint8Array(new BigUint64Array([1n]).buffer);
  /** The symbol itself: through the lazy library each call would go through its Proxy. */
  readonly #write: typeof sys.write;

  /** Writes to eventfd `fd` (the caller keeps it open); opens libc if not yet open. */
  constructor(fd: number) {
    this.fd = fd;
    this.#write = sys.write;
  }

  /**
   * Adds 1 to the counter. Returns 0, or the errno of a write that failed. EAGAIN (the
   * counter at its maximum) counts as done: a wake-up is pending anyway.
   */
  add1(): number {
    for (;;) {
      if (this.#write(this.fd, this.#one, 8n) === 8) return 0;
      errnoView ??= new Deno.UnsafePointerView(sys.__errno_location()!);
      const e = errnoView.getInt32(0);
      if (e === EAGAIN) return 0;
      if (e !== EINTR) return e;
    }
  }
}
