/**
 * Packet steering as a first-class API: which receive queue the device puts each incoming
 * packet on, the rule in force read back, and switching at run time without a reset and
 * without reordering any flow.
 *
 * The 2012 draft's modes map onto virtio 1.x (docs/steering.md says more):
 * - "single": one queue pair — VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET 1 (or no VIRTIO_NET_F_MQ);
 *   with VIRTIO_NET_F_RSS an RSS table of one entry, so no pair-count change detaches a
 *   host queue (the RSS mode keeps max_tx_vq at the port's pairs for the same reason);
 * - "auto": the draft's RX_FOLLOWS_TX, the standard's automatic receive steering
 *   (§5.1.6.5.6.1): VQ_PAIRS_SET N, and the device delivers a flow's packets on the queue
 *   pair the driver last transmitted that flow on;
 * - "rss": the draft's host-driven steering made explicit: VIRTIO_NET_CTRL_MQ_RSS_CONFIG
 *   with a Toeplitz key, hash types and an indirection table (§5.1.6.5.7).
 * The standard has no read-back command (the draft's current_steering_rule config field
 * did not survive), so the driver keeps the last rule the device acknowledged.
 *
 * Switching without reordering. When the device acknowledges a new rule, every packet it
 * steered by the old rule is already on some receive queue: QEMU steers and acknowledges
 * in one thread under its global lock, and the spec lets a device apply the rule only once
 * it has answered. Right after the ack, the driver notes each receive queue's used index
 * (its boundary) and closes a gate: each queue delivers up to its boundary (old-rule
 * packets), then holds back everything after it until every queue has reached its own
 * boundary. A flow that moves from queue A to queue B therefore has all its old packets
 * (on A) delivered before any new one (on B). Transmit queues that a switch takes out of
 * use are drained before the command is sent. Applications keep polling every queue pair
 * the port set up, active or not, so that held packets are released.
 *
 * @module
 */

import { DriverError } from "../errors.ts";
import { hasFeature } from "../virtio/features.ts";
import type { NetConfig } from "./config.ts";
import {
  encodeHashConfig,
  encodeRssConfig,
  type RssConfig,
  type RssLimits,
  validateRssConfig,
} from "../steering/rss_config.ts";
import { microsoftRssKey } from "../steering/toeplitz.ts";
import {
  ControlCommandError,
  type ControlQueue,
  VIRTIO_NET_CTRL_MQ,
  VIRTIO_NET_CTRL_MQ_HASH_CONFIG,
  VIRTIO_NET_CTRL_MQ_RSS_CONFIG,
  VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET,
} from "./control_queue.ts";
import { VIRTIO_NET_F_HASH_REPORT, VIRTIO_NET_F_MQ, VIRTIO_NET_F_RSS } from "./features.ts";
import { MAX_PENDING_EPOCHS, type RxQueue } from "./rx_queue.ts";
import type { TxQueue } from "./tx_queue.ts";
import { switchBoundaries, usedIndices } from "./switch_boundary.ts";
import type { RssSteeringParams } from "../steering/hash_types.ts";

export type {
  AutoSteeringRule,
  HashReportOptions,
  ResolvedRssRule,
  RssSteeringRule,
  SingleQueueRule,
  SteeringCapabilities,
  SteeringRule,
  WorkerEpochs,
} from "./steering_rules.ts";
import type {
  AutoSteeringRule,
  HashReportOptions,
  ResolvedRssRule,
  SingleQueueRule,
  SteeringCapabilities,
  SteeringRule,
  WorkerEpochs,
} from "./steering_rules.ts";

/**
 * The steering of one port. `set()` switches rules at run time; `current` reads back the
 * rule in force.
 *
 * @example
 * ```ts ignore
 * port.steering.set({ mode: "auto", pairs: 4 });
 * console.log(port.steering.current); // { mode: "auto", pairs: 4 }
 * ```
 */
export class Steering {
  readonly #port: string;
  readonly #features: bigint;
  readonly #config: NetConfig;
  readonly #control: ControlQueue | null;
  readonly #rx: RxQueue[];
  readonly #tx: TxQueue[];
  #current: SingleQueueRule | AutoSteeringRule | ResolvedRssRule = { mode: "single" };
  #workers: WorkerEpochs | null = null;
  /** Rule switches the device acknowledged. */
  switches = 0;

  /** Used by VirtioNetPort; applications get it as `port.steering`. */
  constructor(
    port: string,
    features: bigint,
    config: NetConfig,
    control: ControlQueue | null,
    rx: RxQueue[],
    tx: TxQueue[],
  ) {
    this.#port = port;
    this.#features = features;
    this.#config = config;
    this.#control = control;
    this.#rx = rx;
    this.#tx = tx;
  }

  /** What the device offers. */
  get capabilities(): SteeringCapabilities {
    const f = (n: number) => hasFeature(this.#features, n);
    return {
      multiqueue: f(VIRTIO_NET_F_MQ),
      maxVirtqueuePairs: this.#config.maxVirtqueuePairs,
      queuePairs: this.#rx.length,
      rss: f(VIRTIO_NET_F_RSS),
      hashReport: f(VIRTIO_NET_F_HASH_REPORT),
      rssMaxKeySize: this.#config.rssMaxKeySize,
      rssMaxIndirectionTableLength: this.#config.rssMaxIndirectionTableLength,
      supportedHashTypes: this.#config.supportedHashTypes,
    };
  }

  /** The rule the device last acknowledged (a copy). */
  get current(): SteeringRule {
    return structuredClone(this.#current);
  }

  /** Number of queue pairs the current rule spreads packets over. */
  get activePairs(): number {
    return this.#current.mode === "single" ? 1 : this.#current.pairs;
  }

  /**
   * Hands the receive side of later switches to forwarding workers (null: back to this
   * thread). While workers poll the port, a switch keeps the number of queue pairs (the
   * workers forward on theirs): the mode, the RSS key, hash types and table may change.
   */
  attachWorkers(workers: WorkerEpochs | null): void {
    this.#workers = workers;
  }

  /**
   * Switches to `rule` at run time, without a reset: validates it against the device
   * (throws BAD_ARGUMENT / UNSUPPORTED and changes nothing), drains transmit queues the
   * rule takes out of use, sends the command, and on the device's ack starts a new epoch
   * on every receive queue so no flow is reordered (see the module comment).
   */
  set(rule: SteeringRule): void {
    const resolved = this.#validate(rule);
    const pairs = resolved.mode === "single" ? 1 : resolved.pairs;
    const caps = this.capabilities;
    if (!this.#control || !caps.multiqueue && !caps.rss && !caps.hashReport) {
      // No class-4 commands: one queue pair, and "single" is the only rule, in force.
      this.#current = { mode: "single" };
      return;
    }
    if (this.#workers) {
      this.#setWithWorkers(this.#workers, this.#control, resolved, pairs);
      return;
    }
    for (const r of this.#rx) {
      if (r.pendingEpochs === MAX_PENDING_EPOCHS) {
        throw new DriverError(
          "BAD_ARGUMENT",
          `${r.vq.name} still holds frames of ${MAX_PENDING_EPOCHS} earlier steering switches, so the steering was not changed: poll every queue pair before switching again.`,
        );
      }
    }
    this.#drainTx(pairs);
    this.#wakeRx();
    const before = this.#bracket(resolved);
    this.#sendOrRestore(this.#control, resolved);
    this.#newEpoch(this.#boundaries(before, resolved));
    this.#current = resolved;
    this.#wakeRx();
  }

  /** With RSS on either side: the used indices before the command (switch_boundary.ts). */
  #bracket(next: SingleQueueRule | AutoSteeringRule | ResolvedRssRule): number[] | null {
    return this.#asRss(this.#current) || this.#asRss(next) ? usedIndices(this.#rx) : null;
  }

  /**
   * The RSS rule the device is given for `rule`, or null when it is not sent as RSS_CONFIG.
   * On a device with VIRTIO_NET_F_RSS, "single" is an RSS table of one entry (queue 0), so
   * that going to and from one pair never needs VQ_PAIRS_SET (see {@linkcode Steering.set}).
   */
  #asRss(rule: SingleQueueRule | AutoSteeringRule | ResolvedRssRule): ResolvedRssRule | null {
    if (rule.mode === "rss") return rule;
    if (rule.mode === "auto" || !this.capabilities.rss) return null;
    return {
      mode: "rss",
      pairs: 1,
      hashTypes: 0,
      key: microsoftRssKey(),
      indirectionTable: [0],
      unclassifiedQueue: 0,
    };
  }

  /** Where the new rule begins on each queue, when `before` bracketed the switch. */
  #boundaries(
    before: number[] | null,
    next: SingleQueueRule | AutoSteeringRule | ResolvedRssRule,
  ): number[] | undefined {
    if (!before) return undefined;
    // struct virtio_net_rss_config is what the device steers by (§5.1.6.5.7.3).
    const params = (
      r: SingleQueueRule | AutoSteeringRule | ResolvedRssRule,
    ): RssSteeringParams | null => {
      const rss = this.#asRss(r);
      return rss ? this.#rssConfig(rss).config : null;
    };
    return switchBoundaries(
      this.#rx,
      before,
      usedIndices(this.#rx),
      params(this.#current),
      params(next),
    );
  }

  /**
   * Refills and notifies every receive queue. QEMU parks a frame whose receive queue had no
   * buffer and stops reading that frame's tap queue until the receive queue of the tap
   * queue's number is notified; a switch that happens meanwhile lets the flow's newer
   * frames overtake the parked ones through another tap queue (the pair count changes
   * tun's queue count, and tun re-spreads flows). A notification the driver sends without
   * being asked is always allowed (§2.7.13.3), and a switch is rare enough to pay for one
   * per queue before the command and after the ack.
   */
  #wakeRx(): void {
    for (const r of this.#rx) {
      r.refill();
      r.vq.kick();
    }
  }

  /** `set` while workers poll the receive queues (see {@linkcode Steering.attachWorkers}). */
  #setWithWorkers(
    workers: WorkerEpochs,
    control: ControlQueue,
    resolved: SingleQueueRule | AutoSteeringRule | ResolvedRssRule,
    pairs: number,
  ): void {
    if (pairs !== this.activePairs) {
      throw new DriverError(
        "BAD_ARGUMENT",
        `${this.#port} is being forwarded on ${this.activePairs} queue pairs, one worker each, so the steering cannot switch to ${pairs}: change the mode or the RSS table, or stop forwarding first.`,
      );
    }
    workers.hold();
    const before = this.#bracket(resolved);
    try {
      this.#sendOrRestore(control, resolved);
    } catch (e) {
      workers.release(false);
      throw e;
    }
    workers.release(true, this.#boundaries(before, resolved));
    this.#current = resolved;
    this.switches++;
    // A notification only (the workers own the rings): see #wakeRx.
    for (const r of this.#rx) r.vq.kick();
  }

  /**
   * Sends `rule`; when the device refuses it (or does not answer), puts the previous rule
   * back (best effort: QEMU turns RSS off before it even looks at a class-4 command) and
   * throws the device's error.
   */
  #sendOrRestore(
    control: ControlQueue,
    rule: SingleQueueRule | AutoSteeringRule | ResolvedRssRule,
  ): void {
    try {
      this.#send(control, rule);
    } catch (e) {
      // Always: QEMU turns RSS off before it looks at any class-4 command, and with RSS even
      // "single" is an RSS table the device has just dropped.
      if (e instanceof ControlCommandError) {
        try {
          this.#send(control, this.#current);
        } catch { /* the original error says what went wrong */ }
      }
      throw e;
    }
  }

  /** Sends the command that puts `rule` in force (§5.1.6.5.6: VQ_PAIRS_SET; §5.1.6.5.7: RSS_CONFIG). */
  #send(
    control: ControlQueue,
    rule: SingleQueueRule | AutoSteeringRule | ResolvedRssRule,
  ): void {
    const pairs = rule.mode === "single" ? 1 : rule.pairs;
    const caps = this.capabilities;
    const rss = this.#asRss(rule);
    if (!rss) {
      if (caps.multiqueue) {
        const data = new Uint8Array(2);
        new DataView(data.buffer).setUint16(0, pairs, true);
        control.command(VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, data);
      }
      if (caps.hashReport && !caps.rss) {
        // Hash reports on or off (hash_types 0) with every rule change (§5.1.6.5.6.4).
        const h = rule.mode === "rss" ? undefined : rule.hashReport;
        const data = encodeHashConfig(
          { hashTypes: h?.hashTypes ?? 0, key: h?.key ?? new Uint8Array(0) },
          { maxKeySize: caps.rssMaxKeySize, supportedHashTypes: caps.supportedHashTypes },
        );
        control.command(VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_HASH_CONFIG, data);
      }
      return;
    }
    const { config, limits } = this.#rssConfig(rss);
    const data = encodeRssConfig(config, limits);
    control.command(VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_RSS_CONFIG, data);
  }

  /**
   * struct virtio_net_rss_config of `rule`, and the limits it must keep. max_tx_vq is every
   * pair the port set up, whatever `rule.pairs` says: QEMU takes max_tx_vq as its pair
   * count and detaches the tap queues above it, and a tap that gains or loses queues
   * re-spreads its flows over them, reordering them before the device sees them. The
   * table alone decides which receive queues are used; the driver transmits on
   * `rule.pairs` only (max_tx_vq is an upper bound, §5.1.6.5.7.1).
   */
  #rssConfig(rule: ResolvedRssRule): { config: RssConfig; limits: RssLimits } {
    const caps = this.capabilities;
    return {
      config: {
        hashTypes: rule.hashTypes,
        indirectionTable: rule.indirectionTable,
        unclassifiedQueue: rule.unclassifiedQueue,
        maxTxVq: this.#rx.length,
        key: rule.key,
      },
      limits: {
        queuePairs: this.#rx.length,
        maxKeySize: caps.rssMaxKeySize,
        maxIndirectionTableLength: caps.rssMaxIndirectionTableLength,
        supportedHashTypes: caps.supportedHashTypes,
      },
    };
  }

  /** Resolves and checks hash-report options (none: undefined). */
  #hashReport(h: HashReportOptions | undefined): Required<HashReportOptions> | undefined {
    if (!h) return undefined;
    const caps = this.capabilities;
    if (!caps.hashReport) {
      throw new DriverError(
        "UNSUPPORTED",
        `${this.#port} does not offer VIRTIO_NET_F_HASH_REPORT, so packets cannot carry hash reports: give the device hash=on (QEMU).`,
      );
    }
    if (caps.rss) {
      throw new DriverError(
        "UNSUPPORTED",
        `${this.#port} negotiated VIRTIO_NET_F_RSS, where hash reports come with RSS (§5.1.6.5.6.4): use the rss mode to get them.`,
      );
    }
    const resolved = {
      hashTypes: h.hashTypes ?? caps.supportedHashTypes,
      key: h.key ? h.key.slice() : microsoftRssKey(),
    };
    // Throws BAD_ARGUMENT naming what is wrong; nothing has been sent yet.
    encodeHashConfig(resolved, {
      maxKeySize: caps.rssMaxKeySize,
      supportedHashTypes: caps.supportedHashTypes,
    });
    return resolved;
  }

  #validate(rule: SteeringRule): SingleQueueRule | AutoSteeringRule | ResolvedRssRule {
    if (typeof rule !== "object" || rule === null) {
      throw new DriverError(
        "BAD_ARGUMENT",
        `A steering rule is an object such as { mode: "auto", pairs: 2 }, not ${rule}: give one.`,
      );
    }
    if (rule.mode !== "single" && rule.mode !== "auto" && rule.mode !== "rss") {
      throw new DriverError(
        "BAD_ARGUMENT",
        `Unknown steering mode '${(rule as { mode: string }).mode}': use single, auto or rss.`,
      );
    }
    const caps = this.capabilities;
    const hashReport = rule.mode === "rss" ? undefined : this.#hashReport(rule.hashReport);
    if (rule.mode === "single") {
      return hashReport ? { mode: "single", hashReport } : { mode: "single" };
    }
    if (rule.mode === "auto" && !caps.multiqueue) {
      throw new DriverError(
        "UNSUPPORTED",
        `${this.#port} does not offer VIRTIO_NET_F_MQ, so automatic steering is not available: give the device multiqueue (QEMU: mq=on with a multi-queue netdev).`,
      );
    }
    if (rule.mode === "rss" && !caps.rss) {
      throw new DriverError(
        "UNSUPPORTED",
        `${this.#port} does not offer VIRTIO_NET_F_RSS, so RSS steering is not available: use auto or single, or give the device RSS (QEMU: rss=on on virtio-net-pci).`,
      );
    }
    if (!Number.isInteger(rule.pairs) || rule.pairs < 1 || rule.pairs > caps.queuePairs) {
      throw new DriverError(
        "BAD_ARGUMENT",
        `Steering over ${rule.pairs} queue pairs is not possible on ${this.#port}, which has ${caps.queuePairs} set up (max_virtqueue_pairs ${caps.maxVirtqueuePairs}): use 1 to ${caps.queuePairs}, or open the port with more queuePairs.`,
      );
    }
    if (rule.mode === "auto") {
      return hashReport ? { mode: "auto", pairs: rule.pairs, hashReport } : {
        mode: "auto",
        pairs: rule.pairs,
      };
    }
    const length = Math.min(128, caps.rssMaxIndirectionTableLength);
    const resolved: ResolvedRssRule = {
      mode: "rss",
      pairs: rule.pairs,
      hashTypes: rule.hashTypes ?? caps.supportedHashTypes,
      key: rule.key ? rule.key.slice() : microsoftRssKey(),
      indirectionTable: rule.indirectionTable
        ? [...rule.indirectionTable]
        : Array.from({ length }, (_, i) => i % rule.pairs),
      unclassifiedQueue: rule.unclassifiedQueue ?? 0,
    };
    // Throws BAD_ARGUMENT naming what is wrong; nothing has been sent yet. The table and
    // the unclassified queue must name the rule's pairs, max_tx_vq the port's.
    const { config, limits } = this.#rssConfig(resolved);
    validateRssConfig({ ...config, maxTxVq: rule.pairs }, { ...limits, queuePairs: rule.pairs });
    validateRssConfig(config, limits);
    return resolved;
  }

  /** Waits (at most 1 s) until transmit queues at index ≥ `pairs` have nothing in flight. */
  #drainTx(pairs: number): void {
    const deadline = performance.now() + 1000;
    for (let q = pairs; q < this.#tx.length; q++) {
      const tx = this.#tx[q];
      while (tx.vq.inFlight > 0) {
        tx.reclaim();
        if (performance.now() > deadline) {
          throw new DriverError(
            "DEVICE_MISBEHAVED",
            `${this.#port} did not complete ${tx.vq.inFlight} frames on ${tx.vq.name} within 1 s, so the steering switch was not made: restart the port.`,
          );
        }
      }
    }
  }

  #newEpoch(barriers?: readonly number[]): void {
    const gate = new Int32Array(1);
    gate[0] = this.#rx.length;
    this.#rx.forEach((r, q) => r.beginEpoch(gate, barriers?.[q]));
    this.switches++;
  }
}
