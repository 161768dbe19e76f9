/**
 * Kicking a vring: the front-end tells the back-end that a ring has new available buffers
 * by writing to the ring's kick eventfd (VHOST_USER_SET_VRING_KICK: "the event file
 * descriptor for adding buffers to the vring"; "an 8-byte value … has no meaning").
 *
 * The hot path: one write(2) of a buffer built once, nothing allocated
 * (ffi/eventfd_writer.ts).
 *
 * @module
 */

import { EventfdWriter } from "../../ffi/eventfd_writer.ts";
import { DriverError } from "../errors.ts";

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
  readonly #writer: EventfdWriter;
  readonly #what: string;

  /** Kicks through eventfd `fd`; `what` names the queue for messages. */
  constructor(fd: number, what: string) {
    this.#writer = new EventfdWriter(fd);
    this.#what = what;
  }

  /** The eventfd written to. */
  get fd(): number {
    return this.#writer.fd;
  }

  /** Writes 1 to the eventfd. */
  notify(): void {
    const e = this.#writer.add1();
    if (e === 0) return;
    throw new DriverError(
      "TRANSPORT",
      `Kicking ${this.#what} failed (write to its eventfd: errno ${e}): restart the port.`,
    );
  }
}
