/**
 * Kicking a vring: the front-end tells the back-end that a ring has new available buffers
 * by writing to the ring's kick eventfd (VHOST_USER_SET_VRING_KICK: "the event file
 * descriptor for adding buffers to the vring"; "an 8-byte value … has no meaning").
 *
 * The hot path: one write(2) of a buffer built once, nothing allocated. The result is
 * read as an i32 (a 64-bit result would allocate a number per call).
 *
 * @module
 */

import { DriverError } from "../errors.ts";

const EINTR = 4;
const EAGAIN = 11;

let lib: {
  write: (fd: number, buf: Uint8Array<ArrayBuffer>, len: bigint) => number;
  errno: () => number;
} | null = null;

function kickLib(): NonNullable<typeof lib> {
  if (lib) return lib;
  const s = Deno.dlopen("libc.so.6", {
    write: { parameters: ["i32", "buffer", "usize"], result: "i32" },
    __errno_location: { parameters: [], result: "pointer" },
  }).symbols;
  const errnoView = new Deno.UnsafePointerView(s.__errno_location()!);
  lib = { write: s.write, errno: () => errnoView.getInt32(0) };
  return lib;
}

/**
 * Notifies one vring through its kick eventfd: an 8-byte write of 1. EAGAIN (the counter
 * is at its maximum) means a wake-up is pending anyway and is not an error.
 *
 * @example
 * ```ts
 * import { Eventfd } from "../../ffi/eventfd.ts";
 * import { EventfdKick } from "./kick.ts";
 * const e = Eventfd.create();
 * new EventfdKick(e.fd, "receiveq1 of vhost-user:/tmp/a.sock").notify();
 * e.take(); // 1
 * e.close();
 * ```
 */
export class EventfdKick {
  readonly #fd: number;
  readonly #what: string;
  readonly #one = new Uint8Array(new BigUint64Array([1n]).buffer);
  readonly #write = kickLib().write;

  /** Kicks through eventfd `fd`; `what` names the queue for messages. */
  constructor(fd: number, what: string) {
    this.#fd = fd;
    this.#what = what;
  }

  /** The eventfd written to. */
  get fd(): number {
    return this.#fd;
  }

  /** Writes 1 to the eventfd. */
  notify(): void {
    if (this.#write(this.#fd, this.#one, 8n) === 8) return;
    const e = kickLib().errno();
    if (e === EAGAIN) return;
    if (e === EINTR) return this.notify();
    throw new DriverError(
      "TRANSPORT",
      `Kicking ${this.#what} failed (write to its eventfd: errno ${e}): restart the port.`,
    );
  }
}
