/**
 * Queue notifications from a forwarding worker (virtio 1.x §4.1.4.4 "Notification
 * structure layout": the driver writes the queue index, 16 bits, at
 * cap.offset + queue_notify_off × notify_off_multiplier of the notify BAR).
 *
 * - Kernel VFIO maps the BAR: the worker rebuilds a one-register Uint16Array from the
 *   address the main thread sent and stores into it, as the main thread's transport does.
 *   Ordering: SplitQueue.publish stores avail->idx with Atomics.store (an XCHG on x86-64,
 *   a full barrier) before it calls the notifier, so the device cannot see the
 *   notification before the index; the BAR is uncached memory, whose stores are not
 *   reordered with earlier ones anyway.
 * - vfio-user has no mappable notify BAR (QEMU 7.2), so a notification is a
 *   VFIO_USER_REGION_WRITE message ("Read and Write Operations"). The worker sends it
 *   itself, posted (the No_reply flag, "Header"), on the connection's socket, which the
 *   main thread keeps open and alone reads from. The send does not block (MSG_DONTWAIT):
 *   a server that leaves no room is waited for in poll(2), in slices of
 *   {@linkcode NOTIFY_POLL_SLICE_MS} between which the worker reads the engine's stop
 *   flag (a stop ends the wait, notification skipped), for at most the notify deadline
 *   (default {@linkcode NOTIFY_SEND_TIMEOUT_MS}); past it the worker fails with one
 *   sentence rather than hang. A 34-byte message goes into the stream
 *   as one piece (AF_UNIX stream sockets queue each send of less than half the send buffer
 *   as one skb, under the peer's lock), so it cannot interleave with the main thread's
 *   messages; the server runs messages in order, and the avail->idx store precedes the
 *   send. Measured in the vfio-user bed: 3.9 µs per posted notification sent by the
 *   worker, 21 µs per acknowledged round trip (README, "Forwarding with l2fwd").
 *
 * @module
 */

import { DriverError } from "../errors.ts";
import { CLOCK_MONOTONIC, FfiClock } from "./clock.ts";
import { CTL_STOP } from "./control.ts";
import {
  encodeHeader,
  FLAG_NO_REPLY,
  FLAG_TYPE_COMMAND,
  HEADER_SIZE,
  VFIO_USER_REGION_WRITE,
} from "../vfio_user/protocol/header.ts";
import { encodeRegionAccessInto, REGION_ACCESS_SIZE } from "../vfio_user/protocol/region_access.ts";
import type { QueueNotifier } from "../virtio/split_queue.ts";
import type { NotifySpec } from "./worker_spec.ts";

const MSG_NOSIGNAL = 0x4000;
const MSG_DONTWAIT = 0x40;
const POLLOUT = 0x4;
const EINTR = 4;
const EAGAIN = 11;
const EPIPE = 32;
const ECONNRESET = 104;

/**
 * How long a notification waits for room on the socket by default before the worker gives
 * up: a server that has not made room in its socket's send buffer for this long is stuck.
 * The vfio-user client's own reply timeout (src/vfio_user/client.ts), so a server stall
 * the main thread would sit out does not end forwarding.
 */
export const NOTIFY_SEND_TIMEOUT_MS = 5000;

/**
 * Longest single poll(2) while waiting for room: between slices the worker reads the stop
 * flag, so a stop request waits at most this long for a worker stuck behind a full socket.
 */
export const NOTIFY_POLL_SLICE_MS = 10;

/** How a vfio-user notification waits for a server that leaves no room on its socket. */
export interface NotifierOptions {
  /** Give up (and fail the worker) after waiting this long (ms; default {@linkcode NOTIFY_SEND_TIMEOUT_MS}). */
  timeoutMs?: number;
  /** The engine's control words (control.ts): a raised stop flag ends the wait, notification skipped. */
  control?: Int32Array;
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
 * Builds the notifier a worker's SplitQueue calls after publishing. `name` names the
 * queue in errors; `options` bound a vfio-user notification's wait for room.
 *
 * @example
 * ```ts ignore
 * import { makeNotifier } from "./notifier.ts";
 * const n = makeNotifier({ kind: "mmio", address: 0x7f00_1234_3000n, value: 1 }, "transmitq1");
 * n.notify(); // one 16-bit store of 1 into the notify register
 * ```
 */
export function makeNotifier(
  spec: NotifySpec,
  name: string,
  options: NotifierOptions = {},
): QueueNotifier {
  if (spec.kind === "mmio") {
    const p = Deno.UnsafePointer.create(spec.address);
    if (p === null) throw new RangeError(`${name}: notify address 0 is not a register`);
    return new MmioNotifier(
      new Uint16Array(Deno.UnsafePointerView.getArrayBuffer(p, 2)),
      spec.value,
    );
  }
  const timeoutMs = options.timeoutMs ?? NOTIFY_SEND_TIMEOUT_MS;
  if (!(Number.isFinite(timeoutMs) && timeoutMs > 0)) {
    throw new RangeError(`${name}: a notify timeout of ${timeoutMs} ms is not possible`);
  }
  return new PostedWriteNotifier(spec, name, timeoutMs, options.control ?? null);
}

/** A 16-bit store of the queue index into the mapped notify register. */
class MmioNotifier implements QueueNotifier {
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
 * A posted VFIO_USER_REGION_WRITE of one 16-bit value, sent from a message built once:
 * each notification is one send(2) through FFI and no allocation. The send does not
 * block (MSG_DONTWAIT, leaving the fd's flags to the main thread's client): when the
 * server leaves no room, its slow path (`#stalled`) waits in short poll(2)
 * slices until there is room, the engine stops the worker (notification skipped) or the
 * deadline passes (the worker fails instead of hanging where the engine cannot stop it).
 */
class PostedWriteNotifier implements QueueNotifier {
  readonly #lib: SendLib;
  readonly #fd: number;
  readonly #msg: Uint8Array<ArrayBuffer>;
  readonly #len: bigint;
  readonly #size: number;
  readonly #ids: Uint16Array;
  readonly #name: string;
  readonly #timeoutMs: number;
  readonly #control: Int32Array | null;
  readonly #pfd = new Uint8Array(new ArrayBuffer(8)); // struct pollfd
  readonly #pfdView = new DataView(this.#pfd.buffer);
  #seq = 0;

  constructor(
    spec: Extract<NotifySpec, { kind: "vfio-user" }>,
    name: string,
    timeoutMs: number,
    control: Int32Array | null,
  ) {
    this.#lib = libcSend();
    this.#fd = spec.fd;
    this.#name = name;
    this.#timeoutMs = timeoutMs;
    this.#control = control;
    const size = HEADER_SIZE + REGION_ACCESS_SIZE + 2;
    this.#size = size;
    this.#msg = new Uint8Array(new ArrayBuffer(size));
    // Message IDs only match replies to commands ("Header"); a posted write gets none. The
    // worker's IDs count in their own range so traces can tell them apart.
    encodeHeader(this.#msg, 0, {
      msgId: 0xf000,
      command: VFIO_USER_REGION_WRITE,
      size,
      flags: FLAG_TYPE_COMMAND | FLAG_NO_REPLY,
      errorNo: 0,
    });
    encodeRegionAccessInto(this.#msg, HEADER_SIZE, spec.offset, spec.region, 2);
    this.#ids = new Uint16Array(this.#msg.buffer, 0, 1);
    new Uint16Array(this.#msg.buffer, HEADER_SIZE + REGION_ACCESS_SIZE, 1)[0] = spec.value;
    this.#len = BigInt(size);
    this.#pfdView.setInt32(0, spec.fd, true);
    this.#pfdView.setInt16(4, POLLOUT, true);
  }

  notify(): void {
    this.#ids[0] = 0xf000 | (this.#seq = (this.#seq + 1) & 0xfff);
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
          `Notifying ${this.#name} over vfio-user sent ${n} of ${this.#size} bytes, which breaks the connection: restart the port.`,
        );
      }
      const e = this.#lib.errno();
      if (e === EINTR) continue;
      if (e === EPIPE || e === ECONNRESET) {
        throw new DriverError(
          "TRANSPORT",
          `The vfio-user server went away while ${this.#name} was being notified (QEMU exited or was killed): restart it and open the port again.`,
        );
      }
      if (e !== EAGAIN) {
        throw new DriverError(
          "TRANSPORT",
          `Notifying ${this.#name} over vfio-user failed (send: errno ${e}): restart the port.`,
        );
      }
      if (this.#control && Atomics.load(this.#control, CTL_STOP) !== 0) return;
      this.#lib.tick();
      if (deadline === 0) deadline = this.#lib.ms[0] + this.#timeoutMs;
      const left = Math.ceil(deadline - this.#lib.ms[0]);
      if (left <= 0) {
        throw new DriverError(
          "TRANSPORT",
          `The vfio-user server stopped reading notifications (${this.#name} waited ${this.#timeoutMs} ms for room on its socket): restart it and open the port again.`,
        );
      }
      this.#pfdView.setInt16(6, 0, true); // revents
      const r = this.#lib.poll(this.#pfd, 1n, Math.min(left, NOTIFY_POLL_SLICE_MS));
      if (r < 0 && this.#lib.errno() !== EINTR) {
        throw new DriverError(
          "TRANSPORT",
          `Waiting to notify ${this.#name} over vfio-user failed (poll: errno ${this.#lib.errno()}): restart the port.`,
        );
      }
    }
  }
}
