/**
 * A virtio-net port: one virtio-net device driven from user space through a
 * {@linkcode VirtioTransport} (PCI over kernel VFIO or vfio-user, or vhost-user), from the
 * transport's reset to the first receive buffers (virtio 1.x §3.1.1 initialization, §5.1.5
 * virtio-net initialization), with its queue pairs, control queue and steering.
 *
 * Queue indices follow §5.1.2: receiveqK is 2(K-1), transmitqK is 2(K-1)+1, and the
 * control queue is 2·max_virtqueue_pairs with VIRTIO_NET_F_MQ (2 without it). This module
 * speaks of pairs 0…N-1: pair k is receiveq(k+1) and transmitq(k+1).
 *
 * @module
 */

import { BufferPool, NO_BUFFER } from "../dma/buffer_pool.ts";
import { DmaRelease } from "../dma/dma_release.ts";
import { alignUp, DmaRegion } from "../dma/memory.ts";
import { DriverError, ReleaseStack } from "../errors.ts";
import {
  featureNames,
  hasFeature,
  VIRTIO_F_EVENT_IDX,
  VIRTIO_F_IN_ORDER,
  VIRTIO_F_INDIRECT_DESC,
  VIRTIO_F_RING_PACKED,
} from "../virtio/features.ts";
import type { VirtioTransport } from "../virtio/transport.ts";
import { createVirtqueue, ringAreas, type RingFormat } from "../virtio/ring_format.ts";
import type { Virtqueue } from "../virtio/virtqueue.ts";
import {
  VIRTIO_CONFIG_S_ACKNOWLEDGE,
  VIRTIO_CONFIG_S_DRIVER,
  VIRTIO_CONFIG_S_DRIVER_OK,
  VIRTIO_CONFIG_S_FAILED,
} from "../virtio/status.ts";
import { type NetConfig, readNetConfig } from "./config.ts";
import { CONTROL_BUFFER_BYTES, ControlQueue } from "./control_queue.ts";
import {
  VIRTIO_NET_F_GUEST_ANNOUNCE,
  VIRTIO_NET_F_HASH_REPORT,
  VIRTIO_NET_F_MRG_RXBUF,
} from "./features.ts";
import { netHeaderSize } from "./header.ts";
import { type NegotiationOptions, selectFeatures } from "./negotiate.ts";
import { rarpAnnouncement, RxFilter } from "./rx_filter.ts";
import { type RxInterruptOptions, RxInterrupts } from "./rx_interrupts.ts";
import { RxQueue } from "./rx_queue.ts";
import { enableRxOffloads } from "./offload_features.ts";
import { Steering } from "./steering.ts";
import { TxQueue } from "./tx_queue.ts";
import { PORT_SLOTS } from "./queue_counters.ts";
import {
  checkPairs,
  checkPortOptions,
  checkSharedPool,
  planQueues,
  receiveBufferSize,
  validateConfig,
} from "./port_checks.ts";

/** Options of {@linkcode VirtioNetPort.open}. */
export interface PortOptions extends NegotiationOptions {
  /**
   * Queue pairs to set up (default 1). More than one needs VIRTIO_NET_F_MQ; at most
   * max_virtqueue_pairs. Steering can later use any number from 1 to this.
   */
  queuePairs?: number;
  /**
   * Descriptors per data queue (a power of two; default: the device's, at most 256). The
   * control queue keeps the device's size (at most 256).
   */
  queueSize?: number;
  /** Descriptors per receive queue, overriding `queueSize` (e.g. 1024 for a slow consumer). */
  rxQueueSize?: number;
  /** Descriptors per transmit queue, overriding `queueSize`. */
  txQueueSize?: number;
  /** Packet buffers in the port's own pool (default: enough for every ring, at least 4096). */
  poolSize?: number;
  /** Bytes per packet buffer, header included (default 2048). */
  bufferSize?: number;
  /**
   * A buffer pool to use instead of the port's own, e.g. one shared by several ports so
   * that a frame received on one is transmitted on another without a copy (see
   * {@linkcode createSharedPool}). It must outlive the port.
   */
  pool?: BufferPool;
  /** Use 2 MiB huge pages when free ones exist (default true). */
  hugePages?: boolean;
}

interface PortParts {
  name: string;
  transport: VirtioTransport;
  deviceFeatures: bigint;
  features: bigint;
  config: NetConfig;
  pool: BufferPool;
  headerSize: number;
  rx: RxQueue[];
  tx: TxQueue[];
  control: ControlQueue | null;
  release: ReleaseStack;
  dma: DmaRelease;
}

/**
 * One virtio-net function, opened, negotiated and running.
 *
 * @example
 * ```ts ignore
 * import { openPort } from "../../mod.ts";
 * const port = openPort("0000:00:04.0", { bind: true, queuePairs: 4 });
 * console.log(port.negotiatedFeatureNames().join(" "));
 * port.steering.set({ mode: "auto", pairs: 4 });
 * port.close();
 * ```
 */
export class VirtioNetPort {
  /** The port's name (PCI address, vfio-user:path or vhost-user:path). */
  readonly name: string;
  /** The transport. */
  readonly transport: VirtioTransport;
  /** Features the device offered. */
  readonly deviceFeatures: bigint;
  /** Features negotiated. */
  readonly features: bigint;
  /** Configuration read at start-up. */
  readonly config: NetConfig;
  /** The packet buffer pool. */
  readonly pool: BufferPool;
  /** Bytes of virtio_net_hdr in front of each frame in a buffer. */
  readonly headerSize: number;
  /** True when the pool's DMA memory is backed by 2 MiB huge pages. */
  readonly hugePages: boolean;
  /** The control virtqueue, when VIRTIO_NET_F_CTRL_VQ was negotiated. */
  readonly control: ControlQueue | null;
  /** Packet steering: the rule in force, capabilities, and switching at run time. */
  readonly steering: Steering;
  /** Receive filtering (promiscuous, all-multicast, MAC address) and announcements. */
  readonly rxFilter: RxFilter;
  /** Announcements sent because the device asked (VIRTIO_NET_S_ANNOUNCE). */
  announcements = 0;
  readonly #rx: RxQueue[];
  readonly #tx: TxQueue[];
  readonly #release: ReleaseStack;
  readonly #dma: DmaRelease;

  private constructor(p: PortParts) {
    this.name = p.name;
    this.transport = p.transport;
    this.deviceFeatures = p.deviceFeatures;
    this.features = p.features;
    this.config = p.config;
    this.pool = p.pool;
    this.headerSize = p.headerSize;
    this.hugePages = p.pool.region.hugePages;
    this.control = p.control;
    this.#rx = p.rx;
    this.#tx = p.tx;
    this.#release = p.release;
    this.#dma = p.dma;
    this.steering = new Steering(p.name, p.features, p.config, p.control, p.rx, p.tx);
    this.rxFilter = new RxFilter(p.name, p.features, p.control);
  }

  /**
   * Starts a virtio-net device on `transport` (src/open_port.ts opens one by port name)
   * and takes ownership of it: closing the port closes the transport. Any failure
   * releases everything taken so far, the transport included, and throws a
   * {@linkcode DriverError}.
   */
  static open(transport: VirtioTransport, options: PortOptions = {}): VirtioNetPort {
    const name = transport.name;
    const release = new ReleaseStack();
    const dma = new DmaRelease(name);
    let failed = false;
    try {
      // When opening fails half-way, a PCI function goes back to its kernel driver too.
      release.push(`close ${name}`, () => {
        // Whatever may still use the DMA memory may also notify through the BAR mapping
        // or the transport's socket: those stay too (dma's release reports why).
        if (dma.retainedBy === null) {
          transport.close({ restoreDriver: failed });
        }
      });
      checkPortOptions(options); // before the device is reset: nothing touched yet
      const port = VirtioNetPort.#start(name, transport, options, release, dma);
      const pairs = options.queuePairs ?? 1;
      if (pairs > 1) port.steering.set({ mode: "auto", pairs });
      return port;
    } catch (e) {
      failed = true;
      release.releaseAll();
      throw e;
    }
  }

  static #start(
    name: string,
    t: VirtioTransport,
    options: PortOptions,
    release: ReleaseStack,
    dma: DmaRelease,
  ): VirtioNetPort {
    // §3.1.1: reset, ACKNOWLEDGE, DRIVER, negotiate, FEATURES_OK, set up queues, DRIVER_OK.
    t.reset();
    // Released last pushed first: the reset, then the DMA memory below (unmapped and freed
    // only once the reset read back 0, §4.1.4.3.2: the device no longer touches it), then
    // the device. Also on a failed open.
    release.push("release DMA memory", () => {
      const failures = dma.releaseAll();
      if (failures.length) throw new Error(failures.join("; "));
    });
    release.push(`reset ${name}`, () => {
      try {
        t.reset();
      } catch (e) {
        // A vfio-user server or vhost-user back-end that has gone away took the device
        // and its DMA with it: there is nothing left to reset. Anything else keeps the DMA memory mapped.
        if (!(e instanceof DriverError && e.code === "TRANSPORT")) throw e;
      }
      dma.deviceStopped();
    });
    t.addStatus(VIRTIO_CONFIG_S_ACKNOWLEDGE);
    t.addStatus(VIRTIO_CONFIG_S_DRIVER);
    const offered = t.deviceFeatures();
    let features: bigint;
    try {
      features = selectFeatures(name, offered, options, { legacy: t.legacy });
    } catch (e) {
      t.addStatus(VIRTIO_CONFIG_S_FAILED);
      throw e;
    }
    t.setDriverFeatures(features);
    const config = readNetConfig(t, features);
    const mergeable = hasFeature(features, VIRTIO_NET_F_MRG_RXBUF);
    validateConfig(name, config, mergeable);
    const pairs = checkPairs(name, options.queuePairs ?? 1, features, config);
    const legacy = t.legacy === true;
    const headerSize = netHeaderSize(
      hasFeature(features, VIRTIO_NET_F_HASH_REPORT),
      !legacy || hasFeature(features, VIRTIO_NET_F_MRG_RXBUF),
    );
    const bufferSize = receiveBufferSize(config, headerSize, options.bufferSize, mergeable);

    const format: RingFormat = hasFeature(features, VIRTIO_F_RING_PACKED) ? "packed" : "split";
    const { hasCtrl, ctrlIndex, indices, sizes } = planQueues(t, name, pairs, features, config, {
      rx: options.rxQueueSize ?? options.queueSize,
      tx: options.txQueueSize ?? options.queueSize,
    });
    // VIRTIO_F_INDIRECT_DESC: each transmit queue gets its indirect tables beside its ring,
    // in the same DMA memory (docs/indirect.md); receive buffers are one descriptor each.
    const indirect = hasFeature(features, VIRTIO_F_INDIRECT_DESC);
    const tables = indices.map((q) => indirect && q % 2 === 1 && !(hasCtrl && q === ctrlIndex));
    const ringBytes = sizes.map((s, i) =>
      alignUp(ringAreas(format, s, legacy, tables[i]).totalBytes, 4096)
    );
    const ringsTotal = ringBytes.reduce((a, b) => a + b, 0);
    const ctrlBytes = hasCtrl ? alignUp(CONTROL_BUFFER_BYTES, 4096) : 0;
    const ownPool = options.pool === undefined;
    const poolSize = options.poolSize ??
      Math.max(4096, sizes.slice(0, 2 * pairs).reduce((a, b) => a + b, 0) + 1024);
    // A legacy device bypasses the IOMMU: it gets physical addresses (src/dma/pagemap.ts).
    // So does any port whose shared pool is physical, keeping one kind of IOVA per device.
    const physical = legacy || options.pool?.region.pageIovas != null;
    const region = DmaRegion.allocate(
      ringsTotal + ctrlBytes + (ownPool ? poolSize * bufferSize : 0),
      { hugePages: options.hugePages, physical },
    );
    dma.push("free DMA memory", () => region.free());
    if (!region.contiguous(0, ringsTotal + ctrlBytes)) {
      throw new DriverError(
        "DMA",
        `${name}'s ${
          ringsTotal + ctrlBytes
        } bytes of rings do not fit one 2 MiB huge page of physically addressed memory: use fewer or smaller queues.`,
      );
    }
    region.mapFor(t.dma);
    let pool: BufferPool;
    if (options.pool === undefined) {
      pool = new BufferPool(region, ringsTotal + ctrlBytes, poolSize, bufferSize);
    } else {
      pool = options.pool;
      checkSharedPool(pool, config, headerSize, mergeable);
      if (legacy && pool.region.pageIovas === null) {
        throw new DriverError(
          "BAD_ARGUMENT",
          `${name} is a legacy device, which DMAs to physical addresses, and the shared pool is not physically addressed: create it with createSharedPool(count, size, { physical: true }) (l2fwd: --physical-pool).`,
        );
      }
      const shared = pool.region;
      shared.mapFor(t.dma);
      dma.push("unmap the shared pool", () => shared.unmapFrom(t.dma));
    }

    const eventIdx = hasFeature(features, VIRTIO_F_EVENT_IDX);
    const inOrder = hasFeature(features, VIRTIO_F_IN_ORDER);
    const queues: Virtqueue[] = [];
    let at = 0;
    for (const [i, q] of indices.entries()) {
      const areas = ringAreas(format, sizes[i], legacy, tables[i]);
      const base = region.iovaAt(at);
      const notify = t.setupQueue(
        q,
        sizes[i],
        base + areas.descOffset,
        base + areas.driverOffset,
        base + areas.deviceOffset,
      );
      const qname = q === ctrlIndex && hasCtrl
        ? "controlq"
        : `${q % 2 ? "transmitq" : "receiveq"}${(q >> 1) + 1}`;
      queues.push(
        createVirtqueue(format, region.buffer, at, {
          index: q,
          size: sizes[i],
          eventIdx,
          inOrder,
          notify,
          name: `${qname} of ${name}`,
          legacyLayout: legacy,
          indirectIova: tables[i] ? base + areas.indirectOffset : undefined,
        }),
      );
      at += ringBytes[i];
    }
    const rx: RxQueue[] = [], tx: TxQueue[] = [];
    for (let k = 0; k < pairs; k++) {
      // One counter block per queue pair, shared by its two queues (queue_counters.ts).
      const counters = new Float64Array(PORT_SLOTS);
      rx.push(new RxQueue(queues[2 * k], pool, headerSize, counters, 0, mergeable));
      enableRxOffloads(rx[k], features); // docs/offloads.md
      tx.push(new TxQueue(queues[2 * k + 1], pool, headerSize, counters));
    }
    for (const r of rx) r.siblings = rx.filter((o) => o !== r).map((o) => o.vq.notifier);
    const control = hasCtrl ? new ControlQueue(name, queues[2 * pairs], region, at) : null;
    // §3.1.1 step 7 lets the driver post receive buffers before DRIVER_OK (§5.1.5: fill
    // the receive queues first), so the device has somewhere to put the first frame.
    for (const r of rx) r.refill();
    t.addStatus(VIRTIO_CONFIG_S_DRIVER_OK);
    t.checkHealthy();
    return new VirtioNetPort({
      name,
      transport: t,
      deviceFeatures: offered,
      features,
      config,
      pool,
      headerSize,
      rx,
      tx,
      control,
      release,
      dma,
    });
  }

  /** The virtqueue format in use: packed when VIRTIO_F_RING_PACKED was negotiated (§2.8). */
  get ringFormat(): RingFormat {
    return hasFeature(this.features, VIRTIO_F_RING_PACKED) ? "packed" : "split";
  }

  /** True when VIRTIO_NET_F_MRG_RXBUF was negotiated: a frame may span buffers (rx_queue.ts). */
  get mergeable(): boolean {
    return hasFeature(this.features, VIRTIO_NET_F_MRG_RXBUF);
  }

  /** Number of queue pairs set up (steering may use fewer). */
  get queuePairs(): number {
    return this.#rx.length;
  }

  /** Receive queue of pair `q` (receiveq(q+1)). */
  rx(q = 0): RxQueue {
    return this.#rx[q];
  }

  /** Transmit queue of pair `q` (transmitq(q+1)). */
  tx(q = 0): TxQueue {
    return this.#tx[q];
  }

  /**
   * Lets receive queue `q` interrupt instead of being polled only: the transport routes
   * receiveq(q+1)'s notifications to an eventfd (PCI: through an MSI-X vector; vhost-user:
   * as the vring's call fd; see {@linkcode RxInterrupts}). Block in the result's `waitRx()` until frames arrive. The
   * port turns it off again when it closes (or call its `close()` earlier). Polling,
   * the default, is unaffected.
   *
   * @example
   * ```ts ignore
   * const irq = port.enableRxInterrupts(0);
   * if (irq.waitRx(1000)) console.log(port.rx(0).rxBurst(bufs, lens, 32), "frames");
   * ```
   */
  enableRxInterrupts(q = 0, options: RxInterruptOptions = {}): RxInterrupts {
    const irq = RxInterrupts.enable(this, q, options);
    this.#release.push(`turn off receive interrupts of receiveq${q + 1}`, () => irq.close());
    return irq;
  }

  /** Byte offset of buffer `buf`'s frame in `pool.data`. */
  frameOffset(buf: number): number {
    return this.pool.offset(buf) + this.headerSize;
  }

  /** The negotiated features by spec name. */
  negotiatedFeatureNames(): string[] {
    return featureNames(this.features);
  }

  /**
   * Answers the device's request to announce the port (§5.1.6.5.4): when it set
   * VIRTIO_NET_S_ANNOUNCE (after a migration, or QEMU's announce_self), sends a gratuitous
   * RARP from the port's current MAC on transmitq1 and acknowledges with
   * VIRTIO_NET_CTRL_ANNOUNCE_ACK. Returns true when it announced. Call it from the control
   * loop (e.g. once a second), on the thread that owns transmitq1.
   */
  pollAnnounce(): boolean {
    if (!hasFeature(this.features, VIRTIO_NET_F_GUEST_ANNOUNCE)) return false;
    const cfg = this.readConfig();
    if (!cfg.announce) return false;
    const b = this.pool.alloc();
    if (b === NO_BUFFER) {
      throw new DriverError(
        "DMA",
        `${this.name} has no free buffer to send the announcement the device asked for: return buffers to the pool.`,
      );
    }
    const frame = rarpAnnouncement(cfg.mac);
    this.pool.data.set(frame, this.frameOffset(b));
    const bufs = new Uint32Array([b]), lens = new Uint32Array([frame.length]);
    const tx = this.#tx[0];
    if (tx.txBurst(bufs, lens, 1) !== 1) {
      this.pool.free(b);
      tx.reclaim();
      return false; // ring full: the device keeps asking, try again next time
    }
    this.rxFilter.ackAnnounce();
    this.announcements++;
    return true;
  }

  /** Reads the configuration again (link status may change at run time). */
  readConfig(): NetConfig {
    return readNetConfig(this.transport, this.features);
  }

  /**
   * Throws a DEVICE_MISBEHAVED {@linkcode DriverError} when the device has set
   * DEVICE_NEEDS_RESET (§2.1.1: it met an error it cannot recover from, e.g. a descriptor
   * it refused, and stopped using its queues) or FAILED. A forwarding loop calls it now
   * and then (l2fwd: once a second): a device in that state takes no more frames and
   * completes none, so waiting on it would only look like lost traffic.
   *
   * @example
   * ```ts ignore
   * import { openPort } from "../../mod.ts";
   * const port = openPort("0000:00:04.0");
   * port.checkHealthy(); // throws once QEMU has reported, e.g., "virtio: bogus descriptor"
   * ```
   */
  checkHealthy(): void {
    this.transport.checkHealthy();
  }

  /**
   * Keeps the port's DMA memory mapped and its device open when it closes (the device is
   * still reset), until the process exits: for when something this thread cannot stop may
   * still use them, such as a forwarding worker that did not confirm it stopped (the
   * engine calls this). `reason` names it, e.g. "the forwarding worker of queue pair 0
   * did not confirm it stopped".
   *
   * @example
   * ```ts ignore
   * port.retainMemory("the forwarding worker of queue pair 0 did not confirm it stopped");
   * port.close(); // resets the device, then throws: the memory stays mapped
   * ```
   */
  retainMemory(reason: string): void {
    this.#dma.retain(reason);
  }

  /** Why {@linkcode VirtioNetPort.retainMemory} keeps the memory, or null. */
  get memoryRetainedBy(): string | null {
    return this.#dma.retainedBy;
  }

  /**
   * Stops the port: resets the device and waits until the reset reads back (it stops DMA),
   * then unmaps and frees DMA memory, closes the transport (and returns the function to
   * its kernel driver if asked). Idempotent. A device that does not confirm its reset
   * keeps its DMA memory mapped, as does a port whose memory is retained
   * ({@linkcode VirtioNetPort.retainMemory}; it keeps its device open too); both throw.
   */
  close(): void {
    const failures = this.#release.releaseAll();
    const kept = this.#dma.retainedBy;
    if (kept !== null && failures.length) {
      throw new DriverError(
        "WORKER",
        `${kept}, so ${this.name} was reset but keeps its DMA memory and device open until the process exits: let the process exit.`,
      );
    }
    if (failures.length) {
      const what = failures.map((f) => f.replace(/\.+$/, "")).join("; ");
      throw new DriverError(
        "DEVICE_MISBEHAVED",
        `Closing ${this.name} left problems (${what}): check the device and restart the port.`,
      );
    }
  }
}
