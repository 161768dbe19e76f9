/**
 * An optional interrupt mode for one receive queue: instead of spinning on rxBurst, a
 * program blocks until the device signals that frames arrived, then polls the queue dry
 * and blocks again (the NAPI pattern). Polling stays the default; nothing here runs on
 * the polling hot path.
 *
 * {@linkcode RxInterrupts.enable} makes an eventfd ({@linkcode Eventfd}) and has the
 * transport route the queue's notifications to it (VirtioTransport.routeQueueInterrupt:
 * an MSI-X vector on PCI, src/virtio/pci_queue_interrupts.ts; the queue's call fd on
 * vhost-user).
 *
 * The queue's used-buffer notifications stay suppressed (VIRTQ_AVAIL_F_NO_INTERRUPT, or a
 * used_event behind the used index with EVENT_IDX, §2.7.7/§2.7.10) except while
 * {@linkcode RxInterrupts.waitRx} waits: it asks for one notification, checks that no
 * frame slipped in meanwhile, blocks on the eventfd, and suppresses them again.
 *
 * @module
 */

import { Eventfd } from "../../ffi/eventfd.ts";
import { DriverError } from "../errors.ts";
import type { Virtqueue } from "../virtio/virtqueue.ts";
import type { QueueInterruptRoute, VirtioTransport } from "../virtio/transport.ts";

/** What {@linkcode RxInterrupts} needs of a port (a VirtioNetPort gives it). */
export interface RxInterruptPort {
  /** The port's name. */
  readonly name: string;
  /** Queue pairs set up. */
  readonly queuePairs: number;
  /** Its transport. */
  readonly transport: VirtioTransport;
  /** Receive queue of pair `q`. */
  rx(q: number): { readonly vq: Virtqueue };
}

/** Options of {@linkcode RxInterrupts.enable}. */
export interface RxInterruptOptions {
  /**
   * PCI: the MSI-X vector to use (default 1 + the virtqueue index: vector 0 is left for
   * configuration changes, as Linux's virtio_pci does, and every queue gets its own).
   * vhost-user has no vectors and ignores it.
   */
  vector?: number;
}

/**
 * Interrupt-driven waiting on one receive queue of a port.
 *
 * @example
 * ```ts ignore
 * import { openPort, RxInterrupts } from "../../mod.ts";
 * const port = openPort("0000:00:04.0", { bind: true });
 * const irq = port.enableRxInterrupts(0); // or RxInterrupts.enable(port, 0)
 * const bufs = new Uint32Array(32), lens = new Uint32Array(32);
 * for (;;) {
 *   if (!irq.waitRx(1000)) continue; // blocks until frames arrive (or 1 s passed)
 *   let n;
 *   while ((n = port.rx(0).rxBurst(bufs, lens, 32)) > 0) {
 *     for (let i = 0; i < n; i++) port.pool.free(bufs[i]);
 *   }
 * }
 * ```
 */
export class RxInterrupts {
  /** The port. */
  readonly port: RxInterruptPort;
  /** Queue pair index (receiveq(pair + 1)). */
  readonly pair: number;
  /** The receive virtqueue. */
  readonly vq: Virtqueue;
  /** The MSI-X vector the queue's notifications go to (-1: the transport has none, vhost-user). */
  readonly vector: number;
  /** The eventfd the vector signals. */
  readonly eventfd: Eventfd;
  /** Waits that ended because the device signalled. */
  wakeups = 0;
  /** Waits that did not block: frames were already waiting when notifications were asked for. */
  alreadyPending = 0;
  /** Waits that ended at their timeout. */
  timeouts = 0;
  /** Signals counted by the eventfd (more than wakeups when several came before a read). */
  signals = 0;
  #closed = false;

  readonly #route: QueueInterruptRoute;

  private constructor(
    port: RxInterruptPort,
    pair: number,
    route: QueueInterruptRoute,
    eventfd: Eventfd,
  ) {
    this.port = port;
    this.pair = pair;
    this.vq = port.rx(pair).vq;
    this.vector = route.vector;
    this.#route = route;
    this.eventfd = eventfd;
  }

  /**
   * Sets up interrupts for receive queue `pair` of `port` (see the module text). On PCI
   * throws UNSUPPORTED when the function has no MSI-X, BAD_ARGUMENT for a vector outside
   * its table or already in use, and DEVICE_REFUSED when the device does not take the
   * mapping; on vhost-user TRANSPORT when the back-end refuses the call fd. Prefer `port.enableRxInterrupts(pair)`, which also undoes it on port close.
   */
  static enable(
    port: RxInterruptPort,
    pair = 0,
    options: RxInterruptOptions = {},
  ): RxInterrupts {
    if (!Number.isInteger(pair) || pair < 0 || pair >= port.queuePairs) {
      throw new DriverError(
        "BAD_ARGUMENT",
        `${port.name} has no receive queue ${pair}: use 0…${port.queuePairs - 1}.`,
      );
    }
    const vq = port.rx(pair).vq;
    const efd = Eventfd.create();
    let route: QueueInterruptRoute;
    try {
      vq.disableInterrupts();
      route = port.transport.routeQueueInterrupt(vq.index, efd.fd, options);
    } catch (e) {
      efd.close();
      throw e;
    }
    return new RxInterrupts(port, pair, route, efd);
  }

  /** True until {@linkcode RxInterrupts.close}. */
  get enabled(): boolean {
    return !this.#closed;
  }

  /**
   * Asks the device for a notification when it next returns a receive buffer. Returns
   * true when frames are already waiting (no notification will come for them).
   */
  arm(): boolean {
    return this.vq.enableInterrupts();
  }

  /** Suppresses the queue's notifications again (the state between waits). */
  disarm(): void {
    this.vq.disableInterrupts();
  }

  /**
   * Blocks until the eventfd is signalled or `timeoutMs` passed, without asking for a
   * notification; returns the signals counted (0: none). For tests and for callers that
   * arm themselves.
   */
  waitSignal(timeoutMs: number): number {
    this.#live();
    const n = this.eventfd.wait(timeoutMs);
    this.signals += n;
    return n;
  }

  /**
   * Waits for frames: asks for a notification, returns at once when frames are already
   * there, else blocks the thread on the eventfd (poll(2)) until the device signals or
   * `timeoutMs` passed, and suppresses notifications again. Returns true when frames wait
   * in the ring: take them with rxBurst until it returns 0, then wait again.
   */
  waitRx(timeoutMs: number): boolean {
    this.#live();
    this.eventfd.take(); // signals from before are stale: the ring is checked after arming
    if (this.arm()) {
      this.disarm();
      this.alreadyPending++;
      return true;
    }
    const n = this.eventfd.wait(timeoutMs);
    this.disarm();
    this.#count(n);
    return this.vq.hasUsed();
  }

  /**
   * {@linkcode RxInterrupts.waitRx} that waits on a Deno FFI worker thread, so the event
   * loop of the calling thread runs on meanwhile.
   */
  async waitRxAsync(timeoutMs: number): Promise<boolean> {
    this.#live();
    this.eventfd.take();
    if (this.arm()) {
      this.disarm();
      this.alreadyPending++;
      return true;
    }
    const n = await this.eventfd.waitAsync(timeoutMs);
    if (this.#closed) return false;
    this.disarm();
    this.#count(n);
    return this.vq.hasUsed();
  }

  #count(n: number): void {
    if (n > 0) {
      this.wakeups++;
      this.signals += n;
    } else {
      this.timeouts++;
    }
  }

  #live(): void {
    if (this.#closed) {
      throw new DriverError(
        "BAD_ARGUMENT",
        `Receive interrupts of receiveq${
          this.pair + 1
        } of ${this.port.name} were turned off: enable them again to wait.`,
      );
    }
  }

  /**
   * Turns the queue's interrupts off: suppresses notifications, has the transport undo the
   * routing (PCI: the queue's vector back to VIRTIO_MSI_NO_VECTOR, §4.1.5.1.2, the eventfd
   * detached, MSI-X off when no other queue uses it; vhost-user: the vring's own call fd
   * again) and closes the eventfd. Idempotent;
   * the queue goes on working by polling.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.vq.disableInterrupts();
      this.#route.unroute();
    } catch (e) {
      // A vfio-user server or vhost-user back-end that went away took its interrupts with it.
      if (!(e instanceof DriverError && e.code === "TRANSPORT")) throw e;
    } finally {
      this.eventfd.close();
    }
  }
}
