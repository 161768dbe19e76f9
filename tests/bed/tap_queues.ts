/**
 * The guest end of a bed's tap without a guest: opens a tap's queues the way QEMU does
 * (`/dev/net/tun`, TUNSETIFF with IFF_TAP | IFF_NO_PI [| IFF_MULTI_QUEUE]), so host-only tests
 * can see which queue the host kernel picked for each frame it sent into the tap, and can
 * write frames into the tap as if a guest had transmitted them.
 *
 * The tap lives in the bed's namespace while the test runs outside it: TUNSETIFF looks the
 * name up in the calling thread's namespace, so the queues are opened after `setns` into it
 * and the thread goes back at once (a tun fd keeps its device wherever it is used). Root only.
 *
 * @module
 */

import {
  check,
  cstr,
  EAGAIN,
  errno,
  libc,
  O_CLOEXEC,
  O_NONBLOCK,
  O_RDONLY,
  O_RDWR,
  SysError,
} from "../../ffi/libc.ts";

const ns = Deno.dlopen("libc.so.6", {
  setns: { parameters: ["i32", "i32"], result: "i32" },
}).symbols;

const CLONE_NEWNET = 0x40000000;
/** `_IOW('T', 202, int)`: attach this fd to a tun/tap device (linux/if_tun.h). */
const TUNSETIFF = 0x400454can;
const IFF_TAP = 0x0002;
const IFF_NO_PI = 0x1000;
const IFF_MULTI_QUEUE = 0x0100;
const IFREQ_SIZE = 40;

/** Runs `fn` on this thread inside network namespace `netns` (a name under /run/netns). */
function inNetns<T>(netns: string, fn: () => T): T {
  const home = check(
    libc.open(cstr("/proc/thread-self/ns/net"), O_RDONLY | O_CLOEXEC, 0),
    "open",
    "own netns",
  );
  try {
    const target = check(
      libc.open(cstr(`/run/netns/${netns}`), O_RDONLY | O_CLOEXEC, 0),
      "open",
      `netns ${netns}`,
    );
    try {
      check(ns.setns(target, CLONE_NEWNET), "setns", netns);
    } finally {
      libc.close(target);
    }
    try {
      return fn();
    } finally {
      // Back at once: nothing else may run on this thread in the bed's namespace.
      check(ns.setns(home, CLONE_NEWNET), "setns", "back");
    }
  } finally {
    libc.close(home);
  }
}

/**
 * Queues of a tap, opened as its guest end (see the module comment).
 *
 * @example
 * ```ts ignore
 * using q = TapQueues.open(bed.netns, bed.tapName(0), 2);
 * await sendFrames(bed, 0, frames);
 * const perQueue = q.drain(); // [frames of queue 0, frames of queue 1]
 * ```
 */
export class TapQueues {
  readonly #fds: number[];
  readonly #buf = new Uint8Array(65536);

  private constructor(fds: number[]) {
    this.#fds = fds;
  }

  /**
   * Opens `queues` queues of `tap` in namespace `netns` (non-blocking). A tap made
   * multi-queue must be opened with more than one queue and vice versa (TUNSETIFF: EINVAL).
   */
  static open(netns: string, tap: string, queues: number): TapQueues {
    const fds: number[] = [];
    try {
      inNetns(netns, () => {
        for (let q = 0; q < queues; q++) {
          const fd = check(
            libc.open(cstr("/dev/net/tun"), O_RDWR | O_NONBLOCK | O_CLOEXEC, 0),
            "open",
            "/dev/net/tun",
          );
          fds.push(fd);
          const ifr = new Uint8Array(IFREQ_SIZE);
          ifr.set(new TextEncoder().encode(tap).subarray(0, 15));
          new DataView(ifr.buffer).setUint16(
            16,
            IFF_TAP | IFF_NO_PI | (queues > 1 ? IFF_MULTI_QUEUE : 0),
            true,
          );
          check(libc.ioctl(fd, TUNSETIFF, ifr), "ioctl TUNSETIFF", tap);
        }
      });
    } catch (e) {
      for (const fd of fds) libc.close(fd);
      throw e;
    }
    return new TapQueues(fds);
  }

  /** Number of queues opened. */
  get queues(): number {
    return this.#fds.length;
  }

  /** Reads every frame waiting on each queue: element q holds queue q's frames, in order. */
  drain(): Uint8Array[][] {
    return this.#fds.map((fd) => {
      const out: Uint8Array[] = [];
      for (;;) {
        const n = Number(libc.read(fd, this.#buf, BigInt(this.#buf.length)));
        if (n < 0) {
          const e = errno();
          if (e === EAGAIN) return out;
          throw new SysError("read", "tap queue", e);
        }
        out.push(this.#buf.slice(0, n));
      }
    });
  }

  /** Writes a frame into the tap through queue `q`, as the guest transmitting it. */
  write(q: number, frame: Uint8Array): void {
    const n = Number(
      libc.write(this.#fds[q], frame as Uint8Array<ArrayBuffer>, BigInt(frame.length)),
    );
    if (n !== frame.length) throw new SysError("write", "tap queue", n < 0 ? errno() : 0);
  }

  /** Detaches every queue (the tap loses its carrier when the last one goes). */
  close(): void {
    for (const fd of this.#fds.splice(0)) libc.close(fd);
  }

  /** Same as {@linkcode TapQueues.close} (for `using`). */
  [Symbol.dispose](): void {
    this.close();
  }
}
