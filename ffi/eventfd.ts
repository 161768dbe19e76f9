/**
 * An eventfd(2) that a device interrupt signals: VFIO (kernel or vfio-user) adds 1 to its
 * counter each time the interrupt fires (Linux `include/uapi/linux/vfio.h`,
 * VFIO_IRQ_SET_DATA_EVENTFD; vfio-user.rst "VFIO_USER_DEVICE_SET_IRQS"). Waiting is
 * poll(2) with a timeout, then a read(2) of the 8-byte counter, which resets it to 0.
 *
 * The descriptor is non-blocking (EFD_NONBLOCK), so a read never blocks: only poll does,
 * either on the calling thread ({@linkcode Eventfd.wait}) or on a Deno FFI worker thread
 * ({@linkcode Eventfd.waitAsync}, a `nonblocking: true` symbol) so the event loop runs on.
 *
 * @module
 */

import { lazyLibrary } from "./lazy_library.ts";
import { check, EAGAIN, EFD_CLOEXEC, EFD_NONBLOCK, EINTR, errno, libc, SysError } from "./libc.ts";

const sys = lazyLibrary("libc.so.6", {
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32" },
  /** poll(2) on a worker thread: the promise settles when it returns. */
  poll_nb: { name: "poll", parameters: ["buffer", "u64", "i32"], result: "i32", nonblocking: true },
});

/** poll(2) event: readable (for an eventfd: the counter is above 0). */
export const POLLIN = 0x1;

/**
 * One eventfd, created non-blocking and close-on-exec.
 *
 * @example
 * ```ts
 * import { Eventfd } from "./eventfd.ts";
 * const e = Eventfd.create();
 * e.signal();
 * e.wait(0); // 1: one event was counted (and the counter is 0 again)
 * e.wait(10); // 0: nothing within 10 ms
 * e.close();
 * ```
 */
export class Eventfd {
  /** The descriptor (-1 once closed). */
  fd: number;
  readonly #pfd = new Uint8Array(new ArrayBuffer(8));
  readonly #pfdView = new DataView(this.#pfd.buffer);
  readonly #counter = new Uint8Array(new ArrayBuffer(8));
  readonly #counterView = new DataView(this.#counter.buffer);

  private constructor(fd: number) {
    this.fd = fd;
  }

  /** eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC). */
  static create(): Eventfd {
    return new Eventfd(check(libc.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), "eventfd"));
  }

  #live(): void {
    if (this.fd < 0) throw new SysError("poll", "closed eventfd", 9 /* EBADF */);
  }

  #setPollfd(): void {
    this.#pfdView.setInt32(0, this.fd, true);
    this.#pfdView.setInt16(4, POLLIN, true);
    this.#pfdView.setInt16(6, 0, true);
  }

  /**
   * Takes the counter without waiting: the number of signals since the last take (0 when
   * none). read(2) of an eventfd returns the 8-byte count and resets it.
   */
  take(): number {
    this.#live();
    for (;;) {
      const n = Number(libc.read(this.fd, this.#counter, 8n));
      if (n === 8) return Number(this.#counterView.getBigUint64(0, true));
      const e = errno();
      if (n < 0 && e === EAGAIN) return 0;
      if (n < 0 && e === EINTR) continue;
      throw new SysError("read", "eventfd", e);
    }
  }

  /**
   * Blocks the calling thread until the eventfd is signalled or `timeoutMs` passed
   * (poll(2)); returns the count taken (0 on timeout). A timeout of 0 only looks.
   */
  wait(timeoutMs: number): number {
    this.#live();
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      this.#setPollfd();
      const left = Math.max(0, Math.ceil(deadline - performance.now()));
      const r = sys.poll(this.#pfd, 1n, Math.min(left, 0x7fffffff));
      if (r > 0) {
        const n = this.take();
        if (n > 0) return n;
      } else if (r < 0) {
        const e = errno();
        if (e !== EINTR) throw new SysError("poll", "eventfd", e);
      }
      if (performance.now() >= deadline) return 0;
    }
  }

  /**
   * Like {@linkcode Eventfd.wait}, but poll(2) runs on a Deno FFI worker thread: the
   * calling thread's event loop goes on meanwhile. One waiter at a time.
   */
  async waitAsync(timeoutMs: number): Promise<number> {
    this.#live();
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      this.#setPollfd();
      const left = Math.max(0, Math.ceil(deadline - performance.now()));
      const r = await sys.poll_nb(this.#pfd, 1n, Math.min(left, 0x7fffffff));
      if (this.fd < 0) return 0; // closed while waiting
      if (r > 0) {
        const n = this.take();
        if (n > 0) return n;
      }
      // poll_nb's errno belongs to the worker thread: EINTR is the only expected failure.
      if (performance.now() >= deadline) return 0;
    }
  }

  /** Adds 1 to the counter (what the device's interrupt does; for tests and wake-ups). */
  signal(): void {
    this.#live();
    this.#counterView.setBigUint64(0, 1n, true);
    if (Number(libc.write(this.fd, this.#counter, 8n)) !== 8) {
      throw new SysError("write", "eventfd");
    }
  }

  /** Closes the descriptor. Idempotent. */
  close(): void {
    if (this.fd < 0) return;
    libc.close(this.fd);
    this.fd = -1;
  }
}
