/**
 * Run-time steering switches while forwarding workers own a port's receive queues: the
 * main thread sends the command (it owns the control queue), the workers keep the no-
 * reordering gate (docs/steering.md §3) on the queues they poll. They meet in a mailbox,
 * an Int32Array over a SharedArrayBuffer, one block per port:
 *
 * 1. The main thread raises REQ to a new sequence number. Each worker, at its next check
 *    (every 64 polls), stops taking frames from that port's receive queue and answers
 *    with ACK[w] = REQ. The main thread waits for every answer: from now on no frame the
 *    device places is handed on before the epoch below is in force.
 * 2. The main thread sends the command. When the device has acknowledged it, it writes
 *    each queue's boundary (from RSS to RSS the exact one, src/net/switch_boundary.ts;
 *    otherwise the used index read from the shared ring) to BARRIER[w],
 *    sets the gate GATE[seq % 16] to the number of workers, OUTCOME to 1 (0 when the
 *    device refused: no epoch), and RELEASE = REQ.
 * 3. Each worker that sees RELEASE begins the epoch on its queue (RxQueue.beginEpoch with
 *    the barrier and the gate) and goes on polling the port.
 *
 * Every word is written with Atomics.store and read with Atomics.load (sequentially
 * consistent: on x86-64 the stores are XCHG), so a worker that reads RELEASE also sees the
 * barrier and gate written before it.
 *
 * @module
 */

import { DriverError } from "../errors.ts";
import { MAX_PENDING_EPOCHS } from "../net/rx_queue.ts";

const REQ = 0;
const RELEASE = 1;
const OUTCOME = 2;
const HEADER = 4;

/** Words of one port's block for `workers` workers. */
function blockWords(workers: number): number {
  return HEADER + 2 * workers + MAX_PENDING_EPOCHS;
}

/**
 * A zeroed mailbox for `ports` ports polled by `workers` workers.
 *
 * @example
 * ```ts
 * import { steeringMailbox } from "./steering_mailbox.ts";
 * const sab = steeringMailbox(2, 2);
 * sab.byteLength; // 2 ports × (4 + 2 × 2 + 16) words × 4 bytes = 192
 * ```
 */
export function steeringMailbox(ports: number, workers: number): SharedArrayBuffer {
  return new SharedArrayBuffer(4 * ports * blockWords(workers));
}

/** What the main thread needs of the port's receive queues: their used indices. */
export interface UsedIndexSource {
  /** used->idx of the ring as the device last published it. */
  deviceUsedIdx(): number;
}

/**
 * The main thread's side for one port: what `Steering` calls around a switch while
 * workers poll the port (it implements the `WorkerEpochs` hooks of src/net/steering.ts).
 *
 * @example
 * ```ts ignore
 * port.steering.attachWorkers(new MailboxEpochs(sab, 0, 2, [rx0.vq, rx1.vq], port.name));
 * ```
 */
export class MailboxEpochs {
  readonly #mb: Int32Array;
  readonly #base: number;
  readonly #workers: number;
  readonly #queues: readonly UsedIndexSource[];
  readonly #name: string;
  #seq = 0;

  /** Block of port `port` in `mailbox`; `queues[w]` is worker w's receive queue. */
  constructor(
    mailbox: SharedArrayBuffer,
    port: number,
    workers: number,
    queues: readonly UsedIndexSource[],
    name: string,
  ) {
    this.#mb = new Int32Array(mailbox);
    this.#base = port * blockWords(workers);
    this.#workers = workers;
    this.#queues = queues;
    this.#name = name;
  }

  /** Step 1: waits (at most `timeoutMs`) until every worker holds the port's frames. */
  hold(timeoutMs = 1000): void {
    const mb = this.#mb, b = this.#base;
    const gate = b + HEADER + 2 * this.#workers + ((this.#seq + 1) % MAX_PENDING_EPOCHS);
    if (Atomics.load(mb, gate) !== 0) {
      throw new DriverError(
        "BAD_ARGUMENT",
        `The workers of ${this.#name} still hold frames of ${MAX_PENDING_EPOCHS} earlier steering switches, so the steering was not changed: switch less often.`,
      );
    }
    const seq = ++this.#seq;
    Atomics.store(mb, b + REQ, seq);
    const until = performance.now() + timeoutMs;
    for (let w = 0; w < this.#workers; w++) {
      while (Atomics.load(mb, b + HEADER + w) !== seq) {
        if (performance.now() > until) {
          this.release(false);
          throw new DriverError(
            "DEVICE_MISBEHAVED",
            `The forwarding worker of queue pair ${w} did not pause ${this.#name}'s receive queue within ${timeoutMs} ms, so the steering was not changed: is it still running?`,
          );
        }
      }
    }
  }

  /**
   * Steps 2–3: the boundaries (when the device `switched`: `barriers`, or each queue's
   * used index now) and the go-ahead.
   */
  release(switched: boolean, barriers?: readonly number[]): void {
    const mb = this.#mb, b = this.#base, seq = this.#seq;
    if (switched) {
      for (let w = 0; w < this.#workers; w++) {
        const at = barriers?.[w] ?? this.#queues[w].deviceUsedIdx();
        Atomics.store(mb, b + HEADER + this.#workers + w, at);
      }
      const gate = b + HEADER + 2 * this.#workers + (seq % MAX_PENDING_EPOCHS);
      Atomics.store(mb, gate, this.#workers);
    }
    Atomics.store(mb, b + OUTCOME, switched ? 1 : 0);
    Atomics.store(mb, b + RELEASE, seq);
  }
}

/** What a worker's side needs of its receive queue of a port. */
export interface EpochQueue {
  /** Starts a steering epoch at `barrier` sharing `gate` (src/net/rx_queue.ts). */
  beginEpoch(gate: Int32Array, barrier: number): void;
}

/**
 * A worker's side: checks the mailbox and pauses, resumes and begins epochs on its
 * receive queues. Its views are built once; `check` allocates nothing.
 *
 * @example
 * ```ts ignore
 * const reader = new MailboxReader(sab, spec.queue, spec.workers, rxQueues);
 * if ((++loops & 63) === 0) reader.check(fwd.paused);
 * ```
 */
export class MailboxReader {
  readonly #mb: Int32Array;
  readonly #worker: number;
  readonly #workers: number;
  readonly #queues: readonly EpochQueue[];
  readonly #seen: Int32Array;
  readonly #gates: Int32Array[][];

  /** Worker `worker` of `workers`, polling `queues[p]` of port p. */
  constructor(
    mailbox: SharedArrayBuffer,
    worker: number,
    workers: number,
    queues: readonly EpochQueue[],
  ) {
    this.#mb = new Int32Array(mailbox);
    this.#worker = worker;
    this.#workers = workers;
    this.#queues = queues;
    this.#seen = new Int32Array(queues.length);
    this.#gates = queues.map((_, p) =>
      Array.from(
        { length: MAX_PENDING_EPOCHS },
        (_, k) =>
          new Int32Array(
            mailbox,
            4 * (p * blockWords(workers) + HEADER + 2 * workers + k),
            1,
          ),
      )
    );
  }

  /** Applies what the main thread asked for; `paused[p]` is 1 while port p is held. */
  check(paused: Uint8Array): void {
    const mb = this.#mb, words = blockWords(this.#workers), w = this.#worker;
    for (let p = 0; p < this.#queues.length; p++) {
      const b = p * words;
      const req = Atomics.load(mb, b + REQ);
      if (req !== this.#seen[p]) {
        this.#seen[p] = req;
        paused[p] = 1;
        Atomics.store(mb, b + HEADER + w, req);
      }
      if (paused[p] !== 0 && Atomics.load(mb, b + RELEASE) === this.#seen[p]) {
        if (Atomics.load(mb, b + OUTCOME) === 1) {
          this.#queues[p].beginEpoch(
            this.#gates[p][this.#seen[p] % MAX_PENDING_EPOCHS],
            Atomics.load(mb, b + HEADER + this.#workers + w),
          );
        }
        paused[p] = 0;
      }
    }
  }
}
