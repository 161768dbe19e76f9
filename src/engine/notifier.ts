/**
 * Queue notifications from a forwarding worker: the worker rings the doorbell its
 * transport described ({@linkcode Doorbell}, src/dma/doorbell.ts), knowing no transport:
 *
 * - `store16`: a mapped notify register (virtio-pci over kernel VFIO, §4.1.4.4). The
 *   worker rebuilds a one-register Uint16Array from the address and stores into it.
 *   Ordering: the split ring's publish (src/virtio/split_queue.ts) stores avail->idx with
 *   Atomics.store (an XCHG on x86-64, a full barrier) before it calls the notifier, so the
 *   device cannot see the notification before the index; the BAR is uncached memory,
 *   whose stores are not reordered with earlier ones anyway.
 * - `message`: a complete message sent on a stream socket (vfio-user: a posted
 *   VFIO_USER_REGION_WRITE of the notify register, QEMU 7.2 having no mappable notify
 *   BAR). The send does not block (MSG_DONTWAIT): a peer that leaves no room is waited
 *   for in poll(2), in slices of {@linkcode NOTIFY_POLL_SLICE_MS} between which the worker
 *   reads the engine's stop flag (a stop ends the wait, notification skipped), for at
 *   most the notify deadline (default {@linkcode NOTIFY_SEND_TIMEOUT_MS}); past it the
 *   worker fails with one sentence rather than hang. A message of less than half the
 *   send buffer goes into an AF_UNIX stream as one piece, under the peer's lock, so it
 *   cannot interleave with the main thread's messages. Measured in the vfio-user bed:
 *   3.9 µs per posted notification, 21 µs per acknowledged round trip (README).
 * - `eventfd`: an 8-byte write of 1 (vhost-user's kick fd). The avail->idx store precedes
 *   the write(2), a system call, which orders it anyway.
 * - `pwrite16`: a 2-byte pwrite(2) of the queue index at the register's offset in the VFIO
 *   device fd (a legacy device's QUEUE_NOTIFY in I/O BAR0, §4.1.4.8, which VFIO cannot
 *   map). One system call per notification; EVENT_IDX makes them rare. Ordered as eventfd.
 *
 * @module
 */

import { Eventfd } from "../../ffi/eventfd.ts";
import { EventfdWriter } from "../../ffi/eventfd_writer.ts";
import type { Doorbell } from "../dma/doorbell.ts";
import { DriverError } from "../errors.ts";
import { CLOCK_MONOTONIC, FfiClock } from "./clock.ts";
import { CTL_STOP } from "./control.ts";
import type { QueueNotifier } from "../virtio/virtqueue.ts";

const MSG_NOSIGNAL = 0x4000;
const MSG_DONTWAIT = 0x40;
const POLLOUT = 0x4;
const EINTR = 4;
const EAGAIN = 11;
const EPIPE = 32;
const ECONNRESET = 104;

/**
 * How long a notification waits for room on the socket by default before the worker gives
 * up: a peer that has not made room in its socket's send buffer for this long is stuck.
 * The vfio-user client's own reply timeout (src/vfio_user/client.ts), so a server stall
 * the main thread would sit out does not end forwarding.
 */
export const NOTIFY_SEND_TIMEOUT_MS = 5000;

/**
 * Longest single poll(2) while waiting for room: between slices the worker reads the stop
 * flag, so a stop request waits at most this long for a worker stuck behind a full socket.
 */
export const NOTIFY_POLL_SLICE_MS = 10;

/** How a `message` notification waits for a peer that leaves no room on its socket. */
export interface NotifierOptions {
  /** Give up (and fail the worker) after waiting this long (ms; default {@linkcode NOTIFY_SEND_TIMEOUT_MS}). */
  timeoutMs?: number;
  /** The engine's control words (control.ts): a raised stop flag ends the wait, notification skipped. */
  control?: Int32Array;
}

interface PwriteLib {
  pwrite(fd: number, buf: Uint8Array<ArrayBuffer>, len: bigint, offset: bigint): number;
  errno(): number;
}

let pwriteLib: PwriteLib | null = null;

/** libc's pwrite(2), opened once per worker. */
function libcPwrite(): PwriteLib {
  if (pwriteLib) return pwriteLib;
  const lib = Deno.dlopen("libc.so.6", {
    // ssize_t read as its low 32 bits, as send below: 2 or -1, without a number per call.
    pwrite: { parameters: ["i32", "buffer", "usize", "i64"], result: "i32" },
    __errno_location: { parameters: [], result: "pointer" },
  }).symbols;
  const errnoView = new Deno.UnsafePointerView(lib.__errno_location()!);
  pwriteLib = { pwrite: lib.pwrite, errno: () => errnoView.getInt32(0) };
  return pwriteLib;
}

interface SendLib {
  send(fd: number, buf: Uint8Array<ArrayBuffer>, len: bigint, flags: number): number;
  poll(fds: Uint8Array<ArrayBuffer>, nfds: bigint, timeoutMs: number): number;
  errno(): number;
  /** Reads CLOCK_MONOTONIC into `ms[0]` (ms), allocating nothing. */
  tick(): void;
  ms: Float64Array;
}

let sendLib: SendLib | null = null;

/** libc's send(2) and poll(2), opened once per worker (each worker calls dlopen itself). */
function libcSend(): SendLib {
  if (sendLib) return sendLib;
  const lib = Deno.dlopen("libc.so.6", {
    // ssize_t read as its low 32 bits: enough for a 34-byte send and for -1, and an i32
    // result does not allocate a number per call as a 64-bit one does (see clock.ts).
    send: { parameters: ["i32", "buffer", "usize", "i32"], result: "i32" },
    poll: { parameters: ["buffer", "usize", "i32"], result: "i32" },
    __errno_location: { parameters: [], result: "pointer" },
  }).symbols;
  // errno lives at a fixed address per thread, and a worker is one thread: view it once.
  const errnoView = new Deno.UnsafePointerView(lib.__errno_location()!);
  const clock = new FfiClock(CLOCK_MONOTONIC);
  sendLib = {
    send: lib.send,
    poll: lib.poll,
    errno: () => errnoView.getInt32(0),
    tick: () => clock.tick(),
    ms: clock.ms,
  };
  return sendLib;
}

/**
 * Builds the notifier a worker's virtqueue calls after publishing, from the doorbell its
 * transport described. `name` names the queue in errors; `options` bound a `message`
 * notification's wait for room.
 *
 * @example
 * ```ts ignore
 * import { makeNotifier } from "./notifier.ts";
 * const n = makeNotifier({ kind: "store16", address: 0x7f00_1234_3000n, value: 1, what: "BAR4" }, "transmitq1");
 * n.notify(); // one 16-bit store of 1 into the notify register
 * ```
 */
export function makeNotifier(
  bell: Doorbell,
  name: string,
  options: NotifierOptions = {},
): QueueNotifier {
  if (bell.kind === "store16") {
    const p = Deno.UnsafePointer.create(bell.address);
    if (p === null) throw new RangeError(`${name}: notify address 0 is not a register`);
    return new StoreNotifier(
      new Uint16Array(Deno.UnsafePointerView.getArrayBuffer(p, 2)),
      bell.value,
    );
  }
  if (bell.kind === "eventfd") return new EventfdNotifier(bell, name);
  if (bell.kind === "pwrite16") return new PwriteNotifier(bell, name);
  const timeoutMs = options.timeoutMs ?? NOTIFY_SEND_TIMEOUT_MS;
  if (!(Number.isFinite(timeoutMs) && timeoutMs > 0)) {
    throw new RangeError(`${name}: a notify timeout of ${timeoutMs} ms is not possible`);
  }
  return new MessageNotifier(bell, name, timeoutMs, options.control ?? null);
}

/**
 * Notifiers of the classes a worker's queues get on kernel VFIO and vhost-user, over
 * private targets (a 2-byte array, an eventfd of their own), for the warm-up rings
 * (prewarm.ts): V8 then has seen those classes at the ring's notify call site before real
 * traffic, where one unseen class deoptimises the transmit path at the first
 * notification (docs/performance.md). The vfio-user message is left out: its send would
 * need a reader. `close()` releases the eventfd after warm-up.
 *
 * @example
 * ```ts ignore
 * const w = warmUpNotifiers();
 * w.notifiers[0].notify(); // a store into private memory
 * w.close();
 * ```
 */
export function warmUpNotifiers(): { notifiers: QueueNotifier[]; close(): void } {
  const efd = Eventfd.create();
  const bell = { kind: "eventfd" as const, fd: efd.fd, what: "a warm-up eventfd" };
  return {
    notifiers: [
      new StoreNotifier(new Uint16Array(1), 0),
      new EventfdNotifier(bell, "a warm-up queue"),
    ],
    close: () => efd.close(),
  };
}

/** An 8-byte write of 1 to an eventfd (ffi/eventfd_writer.ts). */
class EventfdNotifier implements QueueNotifier {
  readonly #writer: EventfdWriter;
  readonly #name: string;
  readonly #what: string;

  constructor(bell: Extract<Doorbell, { kind: "eventfd" }>, name: string) {
    this.#writer = new EventfdWriter(bell.fd);
    this.#name = name;
    this.#what = bell.what;
  }

  notify(): void {
    const e = this.#writer.add1();
    if (e === 0) return;
    throw new DriverError(
      "TRANSPORT",
      `Notifying ${this.#name} through ${this.#what} failed (write: errno ${e}): restart the port.`,
    );
  }
}

/** A 2-byte pwrite(2) of the queue index at the notify register's offset in a device fd. */
class PwriteNotifier implements QueueNotifier {
  readonly #lib: PwriteLib;
  readonly #fd: number;
  readonly #offset: bigint;
  readonly #value = new Uint8Array(new ArrayBuffer(2));
  readonly #name: string;
  readonly #what: string;

  constructor(bell: Extract<Doorbell, { kind: "pwrite16" }>, name: string) {
    this.#lib = libcPwrite();
    this.#fd = bell.fd;
    this.#offset = bell.offset;
    this.#value[0] = bell.value & 0xff; // little-endian: guest-endian on x86 (§4.1.4.8)
    this.#value[1] = bell.value >> 8;
    this.#name = name;
    this.#what = bell.what;
  }

  notify(): void {
    if (this.#lib.pwrite(this.#fd, this.#value, 2n, this.#offset) === 2) return;
    throw new DriverError(
      "TRANSPORT",
      `Notifying ${this.#name} through ${this.#what} failed (pwrite: errno ${this.#lib.errno()}): restart the port.`,
    );
  }
}

/** A 16-bit store of the queue index into the mapped notify register. */
class StoreNotifier implements QueueNotifier {
  readonly #reg: Uint16Array;
  readonly #value: number;

  constructor(reg: Uint16Array, value: number) {
    this.#reg = reg;
    this.#value = value;
  }

  notify(): void {
    this.#reg[0] = this.#value;
  }
}

/**
 * A message built once by the transport (vfio-user: a posted VFIO_USER_REGION_WRITE), sent
 * as it is: each notification is one send(2) through FFI and no allocation. The send does not
 * block (MSG_DONTWAIT, leaving the fd's flags to the main thread's client): when the
 * server leaves no room, its slow path (`#stalled`) waits in short poll(2)
 * slices until there is room, the engine stops the worker (notification skipped) or the
 * deadline passes (the worker fails instead of hanging where the engine cannot stop it).
 */
class MessageNotifier implements QueueNotifier {
  readonly #lib: SendLib;
  readonly #fd: number;
  readonly #msg: Uint8Array<ArrayBuffer>;
  readonly #len: bigint;
  readonly #size: number;
  readonly #name: string;
  readonly #timeoutMs: number;
  readonly #control: Int32Array | null;
  readonly #pfd = new Uint8Array(new ArrayBuffer(8)); // struct pollfd
  readonly #pfdView = new DataView(this.#pfd.buffer);
  readonly #what: string;

  constructor(
    bell: Extract<Doorbell, { kind: "message" }>,
    name: string,
    timeoutMs: number,
    control: Int32Array | null,
  ) {
    this.#lib = libcSend();
    this.#fd = bell.fd;
    this.#name = name;
    this.#what = bell.what;
    this.#timeoutMs = timeoutMs;
    this.#control = control;
    this.#size = bell.bytes.length;
    this.#msg = new Uint8Array(new ArrayBuffer(this.#size));
    this.#msg.set(bell.bytes);
    this.#len = BigInt(this.#size);
    this.#pfdView.setInt32(0, bell.fd, true);
    this.#pfdView.setInt16(4, POLLOUT, true);
  }

  notify(): void {
    const n = this.#lib.send(this.#fd, this.#msg, this.#len, MSG_NOSIGNAL | MSG_DONTWAIT);
    // Anything but the whole message is rare (a stalled server, an error): handled apart,
    // so the hot function stays one send.
    if (n !== this.#size) this.#stalled(n);
  }

  /**
   * The send returned `n` (not the whole message): retries after EINTR, waits for room
   * after EAGAIN, fails on anything else. Waits in poll(2) slices of at most
   * {@linkcode NOTIFY_POLL_SLICE_MS}, reading the stop flag before each: once the engine
   * stops the worker, the notification is skipped (the worker leaves its loop next).
   * POLLERR/POLLHUP return from poll too: the next send tells which.
   */
  #stalled(n: number): void {
    let deadline = 0; // the clock is read only once the socket is full
    for (;; n = this.#lib.send(this.#fd, this.#msg, this.#len, MSG_NOSIGNAL | MSG_DONTWAIT)) {
      if (n === this.#size) return;
      if (n >= 0) {
        // A short send would leave half a message in the stream: nothing can repair that.
        throw new DriverError(
          "TRANSPORT",
          `Notifying ${this.#name} to ${this.#what} sent ${n} of ${this.#size} bytes, which breaks the connection: restart the port.`,
        );
      }
      const e = this.#lib.errno();
      if (e === EINTR) continue;
      if (e === EPIPE || e === ECONNRESET) {
        throw new DriverError(
          "TRANSPORT",
          `${
            capital(this.#what)
          } went away while ${this.#name} was being notified (it exited or was killed): restart it and open the port again.`,
        );
      }
      if (e !== EAGAIN) {
        throw new DriverError(
          "TRANSPORT",
          `Notifying ${this.#name} to ${this.#what} failed (send: errno ${e}): restart the port.`,
        );
      }
      if (this.#control && Atomics.load(this.#control, CTL_STOP) !== 0) return;
      this.#lib.tick();
      if (deadline === 0) deadline = this.#lib.ms[0] + this.#timeoutMs;
      const left = Math.ceil(deadline - this.#lib.ms[0]);
      if (left <= 0) {
        throw new DriverError(
          "TRANSPORT",
          `${
            capital(this.#what)
          } stopped reading notifications (${this.#name} waited ${this.#timeoutMs} ms for room on its socket): restart it and open the port again.`,
        );
      }
      this.#pfdView.setInt16(6, 0, true); // revents
      const r = this.#lib.poll(this.#pfd, 1n, Math.min(left, NOTIFY_POLL_SLICE_MS));
      if (r < 0 && this.#lib.errno() !== EINTR) {
        throw new DriverError(
          "TRANSPORT",
          `Waiting to notify ${this.#name} to ${this.#what} failed (poll: errno ${this.#lib.errno()}): restart the port.`,
        );
      }
    }
  }
}

/** `what` with a capital first letter, to start a sentence. */
function capital(what: string): string {
  return what.charAt(0).toUpperCase() + what.slice(1);
}
