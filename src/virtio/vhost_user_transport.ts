/**
 * The vhost-user transport: a virtio-net device whose data queues a vhost-user back-end
 * (DPDK's vhost PMD, a software switch) serves over shared memory, and whose status,
 * configuration and control queue this front-end provides itself — as QEMU's virtio-net
 * does in front of vhost-user, and DPDK's virtio-user (drivers/net/virtio/virtio_user).
 *
 * - Status is kept here; feature negotiation ends in SET_FEATURES (minus the bits only the
 *   front-end implements); FEATURES_OK sticks unless the back-end refuses.
 * - Data queues are vrings of the back-end: set up with SET_VRING_NUM/BASE/ADDR/KICK/CALL
 *   (ring addresses translated to this process's addresses through the memory table),
 *   split (§2.7) or, when the driver acked VIRTIO_F_RING_PACKED, packed (§2.8): the
 *   back-end learns the format from SET_FEATURES, the rings' set-up from this transport,
 *   notified through their kick eventfds, enabled at DRIVER_OK (pair 0) and by
 *   VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET (the others); DPDK brings its port's link up once
 *   vrings 0 and 1 have rings, kick and call fds and are enabled (vhost_user.c
 *   virtio_is_ready).
 * - Reset stops every started vring with GET_VRING_BASE: its reply means the back-end no
 *   longer touches the ring, so DMA memory may then be freed (§2.1.2 for a real device).
 * - The configuration (§5.1.4) is synthesized: MAC, link status, max_virtqueue_pairs.
 * - The control queue (§5.1.6.5) is answered here, split (vhost_user_control.ts) or packed
 *   (vhost_user_control_packed.ts).
 *
 * @module
 */

import type { Doorbell } from "../dma/doorbell.ts";
import type { DmaTarget } from "../dma/dma_target.ts";
import { DriverError } from "../errors.ts";
import { MappedRegionIo, type RegionIo } from "../pci/pci_device.ts";
import { EventfdKick } from "../vhost_user/kick.ts";
import { freshVringBase } from "../vhost_user/payloads.ts";
import { VhostUserDevice } from "../vhost_user/vhost_user_device.ts";
import {
  bit,
  featureNames,
  hasFeature,
  VIRTIO_F_ACCESS_PLATFORM,
  VIRTIO_F_EVENT_IDX,
  VIRTIO_F_IN_ORDER,
  VIRTIO_F_INDIRECT_DESC,
  VIRTIO_F_ORDER_PLATFORM,
  VIRTIO_F_RING_PACKED,
  VIRTIO_F_VERSION_1,
} from "./features.ts";
import type { QueueNotifier } from "./virtqueue.ts";
import {
  VIRTIO_CONFIG_S_DRIVER_OK,
  VIRTIO_CONFIG_S_FAILED,
  VIRTIO_CONFIG_S_FEATURES_OK,
  VIRTIO_CONFIG_S_NEEDS_RESET,
} from "./status.ts";
import type { QueueInterruptRoute, VirtioTransport } from "./transport.ts";
import { DeviceControlQueue, netControlHandler } from "./vhost_user_control.ts";
import { PackedDeviceControlQueue } from "./vhost_user_control_packed.ts";

// virtio-net feature bits (§5.1.3) this transport handles; src/net/features.ts names them
// all, but virtio/ may not import net/.
const NET_F_MAC = 5;
const NET_F_STATUS = 16;
const NET_F_CTRL_VQ = 17;
const NET_F_MQ = 22;
/** VIRTIO_NET_S_LINK_UP (§5.1.4). */
const NET_S_LINK_UP = 1;

/**
 * Back-end features passed through to the driver: the data path's (checksum and
 * segmentation offloads 0–1 and 6–14, MRG_RXBUF 15, NOTIFY_ON_EMPTY 24, ANY_LAYOUT 27,
 * ring features, VERSION_1, RING_PACKED, IN_ORDER, ORDER_PLATFORM). Packed rings go through
 * vhost-user unchanged — the back-end learns the format from SET_FEATURES and the ring
 * bases carry the wrap counters (DPDK's vhost library serves them) — and the control queue
 * is served here in either format. Everything else is dropped: bits the control queue would
 * have to serve (CTRL_RX, CTRL_VLAN, GUEST_ANNOUNCE, CTRL_MAC_ADDR, CTRL_GUEST_OFFLOADS,
 * RSS, HASH_REPORT, NOTF_COAL, …), configuration fields this side would have to invent
 * (MTU, SPEED_DUPLEX), what this transport does not implement over vhost-user
 * (NOTIFICATION_DATA: the kick is an eventfd, which carries no data; RING_RESET), and
 * vhost's own bits (LOG_ALL, PROTOCOL_FEATURES).
 */
const PASSED_THROUGH = [0, 1, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 24, 27]
  .concat([VIRTIO_F_INDIRECT_DESC, VIRTIO_F_EVENT_IDX, VIRTIO_F_VERSION_1, VIRTIO_F_IN_ORDER])
  .concat([VIRTIO_F_RING_PACKED, VIRTIO_F_ORDER_PLATFORM])
  .reduce((a, b) => a | bit(b), 0n);

/**
 * Bits the front-end implements and the back-end never sees: MAC and STATUS (the
 * configuration is synthesized here), CTRL_VQ (the control queue is answered here), and
 * ACCESS_PLATFORM: the device reaches memory only through a translation the platform sets
 * up — the memory table maps each IOVA the driver writes into descriptors (§6.1) — which is
 * what the driver requires of every device.
 */
const FRONT_END_ONLY = bit(NET_F_MAC) | bit(NET_F_STATUS) | bit(NET_F_CTRL_VQ) |
  bit(VIRTIO_F_ACCESS_PLATFORM);

/** Size of the control queue (QEMU's virtio-net uses 64). */
export const CONTROL_QUEUE_SIZE = 64;

/** Options of {@linkcode VhostUserTransport.open}. */
export interface VhostUserTransportOptions {
  /** The port's MAC address (default: a locally administered one derived from the path). */
  mac?: Uint8Array;
  /** How users name the port (default `vhost-user:PATH`). */
  name?: string;
  /**
   * At most this many queue pairs (default: what the back-end reports; DPDK 22.11 reports
   * 128 whatever its `queues=` says, so cap it to that).
   */
  maxQueuePairs?: number;
  /** Milliseconds to wait for each reply (default 5000). */
  timeoutMs?: number;
}

/**
 * A virtio-net device over vhost-user.
 *
 * @example
 * ```ts ignore
 * import { VhostUserTransport } from "./vhost_user_transport.ts";
 * const t = VhostUserTransport.open("/tmp/a.sock", { maxQueuePairs: 1 });
 * t.reset();
 * console.log(t.deviceFeatures().toString(16));
 * t.close();
 * ```
 */
export class VhostUserTransport implements VirtioTransport {
  /** How users name the port. */
  readonly name: string;
  /** The vhost-user session. */
  readonly device: VhostUserDevice;
  /** Queue pairs offered (max_virtqueue_pairs). */
  readonly queuePairs: number;
  readonly #offered: bigint;
  readonly #config: MappedRegionIo;
  #status = 0;
  #features = 0n;
  #activePairs = 1;
  #control: DeviceControlQueue | PackedDeviceControlQueue | null = null;
  #closed = false;

  private constructor(name: string, device: VhostUserDevice, pairs: number, mac: Uint8Array) {
    this.name = name;
    this.device = device;
    this.queuePairs = pairs;
    const mq = pairs > 1 && hasFeature(device.features, NET_F_MQ);
    this.#offered = (device.features & PASSED_THROUGH) | FRONT_END_ONLY | (mq ? bit(NET_F_MQ) : 0n);
    // struct virtio_net_config (§5.1.4): mac[6], status le16, max_virtqueue_pairs le16, the
    // rest (mtu, speed, duplex, RSS fields) zero as their features are never offered.
    this.#config = new MappedRegionIo(new ArrayBuffer(24));
    mac.forEach((b, i) => this.#config.write8(i, b));
    this.#config.write16(8, pairs);
  }

  /**
   * Connects to the vhost-user back-end listening on `path` (it is the server; this side
   * the client) and starts the session. Throws one sentence when nothing listens there.
   */
  static open(path: string, options: VhostUserTransportOptions = {}): VhostUserTransport {
    const name = options.name ?? `vhost-user:${path}`;
    const mac = options.mac ?? macFromPath(path);
    if (mac.length !== 6 || mac[0] & 1 || mac.every((b) => b === 0)) {
      throw new DriverError(
        "BAD_ARGUMENT",
        `${name}: the MAC address must be 6 bytes, unicast and not all zero (e.g. 02:00:00:00:00:01).`,
      );
    }
    const cap = options.maxQueuePairs ?? Infinity;
    if (cap !== Infinity && !(Number.isInteger(cap) && cap >= 1)) {
      throw new DriverError("BAD_ARGUMENT", `${name}: maxQueuePairs must be a whole number ≥ 1.`);
    }
    const device = VhostUserDevice.connect(path, { name, timeoutMs: options.timeoutMs });
    return new VhostUserTransport(name, device, Math.min(device.queuePairs, cap), mac);
  }

  /** The memory table: map DMA memory for it before setting queues up. */
  get dma(): DmaTarget {
    return this.device.memory;
  }

  /** device_status, kept by the front-end. */
  get status(): number {
    return this.#status;
  }

  /** Adds status bits; DRIVER_OK enables the active pairs' vrings. */
  addStatus(bits: number): void {
    const before = this.#status;
    this.#status |= bits;
    if (bits & VIRTIO_CONFIG_S_DRIVER_OK && !(before & VIRTIO_CONFIG_S_DRIVER_OK)) {
      this.#applyPairs();
    }
  }

  /**
   * Stops every started vring (GET_VRING_BASE: once answered, the back-end no longer uses
   * the ring or its buffers) and forgets the negotiation. Throws TRANSPORT when the
   * back-end is gone, which also stopped it.
   */
  reset(): void {
    let first: unknown = null;
    for (const index of this.device.startedVrings) {
      try {
        this.device.stopVring(index);
      } catch (e) {
        first ??= e;
      }
    }
    this.#status = 0;
    this.#features = 0n;
    this.#activePairs = 1;
    this.#control = null;
    if (first !== null) throw first;
  }

  /** What the back-end offers that this transport carries, plus what it provides itself. */
  deviceFeatures(): bigint {
    return this.#offered;
  }

  /**
   * Sends the back-end its share of `features` (SET_FEATURES) and sets FEATURES_OK.
   * Throws DEVICE_REFUSED for bits not offered, or when the back-end refuses.
   */
  setDriverFeatures(features: bigint): void {
    const extra = features & ~this.#offered;
    const mqWithoutCtrl = hasFeature(features, NET_F_MQ) && !hasFeature(features, NET_F_CTRL_VQ);
    if (extra !== 0n || mqWithoutCtrl) {
      this.#status |= VIRTIO_CONFIG_S_FAILED;
      throw new DriverError(
        "DEVICE_REFUSED",
        `${this.name} refused the feature set ${featureNames(features).join(", ")} (${
          extra ? `it does not offer ${featureNames(extra).join(", ")}` : "MQ needs CTRL_VQ"
        }): ask only for what deviceFeatures() offers.`,
      );
    }
    try {
      this.device.setFeatures(features & ~FRONT_END_ONLY);
    } catch (e) {
      this.#status |= VIRTIO_CONFIG_S_FAILED;
      throw e;
    }
    this.#features = features;
    this.#status |= VIRTIO_CONFIG_S_FEATURES_OK;
  }

  /** The control queue's index once features are negotiated (§5.1.2), or -1. */
  get controlIndex(): number {
    if (!hasFeature(this.#features, NET_F_CTRL_VQ)) return -1;
    return hasFeature(this.#features, NET_F_MQ) ? 2 * this.queuePairs : 2;
  }

  /**
   * 32768 for a data queue (the split- and packed-ring maximum, which DPDK accepts), 64 for
   * control.
   */
  queueMaxSize(index: number): number {
    if (index === this.controlIndex) return CONTROL_QUEUE_SIZE;
    const pairs = hasFeature(this.#features, NET_F_MQ) ? this.queuePairs : 1;
    return Number.isInteger(index) && index >= 0 && index < 2 * pairs ? 32768 : 0;
  }

  /**
   * Sets queue `index` up: the control queue here, a data queue at the back-end (rings
   * translated through the memory table; DMA error when they are not mapped). With
   * VIRTIO_F_RING_PACKED negotiated the ring is packed (§2.8): `descIova` is the
   * descriptor ring (16·size bytes), `availIova` the driver area and `usedIova` the device
   * area (event suppression, 4 bytes each); otherwise the split ring's three parts (§2.7).
   */
  setupQueue(
    index: number,
    size: number,
    descIova: number,
    availIova: number,
    usedIova: number,
  ): QueueNotifier {
    if (!(this.#status & VIRTIO_CONFIG_S_FEATURES_OK)) {
      throw new DriverError(
        "BAD_ARGUMENT",
        `${this.name}: queue ${index} was set up before feature negotiation ended (§3.1.1): negotiate first.`,
      );
    }
    const max = this.queueMaxSize(index);
    if (this.device.isStarted(index)) {
      throw new DriverError(
        "BAD_ARGUMENT",
        `${this.name}'s queue ${index} is already set up: reset the device before setting it up again.`,
      );
    }
    if (max === 0 || !(size >= 1 && size <= max && (size & (size - 1)) === 0)) {
      throw new DriverError(
        "BAD_ARGUMENT",
        `${this.name} has no queue ${index} of ${size} entries: use an existing queue and a power of two up to ${max}.`,
      );
    }
    const qname = `${
      index === this.controlIndex ? "controlq" : index % 2 ? "transmitq" : "receiveq"
    }${index === this.controlIndex ? "" : (index >> 1) + 1} of ${this.name}`;
    const mem = this.device.memory;
    // Ring addresses go to the back-end as this process's addresses (vhost-user.rst,
    // "Memory access"); each part must lie inside one region of the memory table.
    const user = (what: string, iova: number, len: number) =>
      mem.requireUserAddress(iova, len, `the ${what} of ${qname}`);
    const packed = hasFeature(this.#features, VIRTIO_F_RING_PACKED);
    const desc = user(packed ? "descriptor ring" : "descriptor table", descIova, 16 * size);
    const avail = user(
      packed ? "driver area" : "available ring",
      availIova,
      packed ? 4 : 6 + 2 * size,
    );
    const used = user(packed ? "device area" : "used ring", usedIova, packed ? 4 : 6 + 8 * size);
    if (index === this.controlIndex) {
      const ring = {
        name: qname,
        size,
        memory: mem,
        descAddr: descIova,
        eventIdx: hasFeature(this.#features, VIRTIO_F_EVENT_IDX),
        handle: netControlHandler({
          mq: hasFeature(this.#features, NET_F_MQ),
          maxPairs: this.queuePairs,
          setPairs: (n) => {
            const before = this.#activePairs;
            this.#activePairs = n;
            if (!(this.#status & VIRTIO_CONFIG_S_DRIVER_OK)) return;
            try {
              this.#applyPairs();
            } catch (e) {
              // Refused half-way: back to the pairs in force (best effort), and the command
              // is answered VIRTIO_NET_ERR.
              this.#activePairs = before;
              try {
                this.#applyPairs();
              } catch { /* the first error says what went wrong */ }
              throw e;
            }
          },
        }),
      };
      this.#control = packed
        ? new PackedDeviceControlQueue({ ...ring, driverAddr: availIova, deviceAddr: usedIova })
        : new DeviceControlQueue({ ...ring, availAddr: availIova, usedAddr: usedIova });
      return this.#control;
    }
    this.device.startVring({
      index,
      size,
      packed,
      desc,
      avail,
      used,
      base: freshVringBase(packed),
    });
    if (this.#status & VIRTIO_CONFIG_S_DRIVER_OK) this.#applyPairs();
    return this.device.kicker(index, qname);
  }

  /** SET_VRING_ENABLE 1 on the started vrings of pairs < active, 0 on the others. */
  #applyPairs(): void {
    for (const index of this.device.startedVrings) {
      this.device.setVringEnable(index, index >> 1 < this.#activePairs);
    }
  }

  /** A data queue's kick eventfd, for a forwarding worker. */
  doorbell(index: number): Doorbell {
    if (index === this.controlIndex || !this.device.isStarted(index)) {
      throw new DriverError(
        "BAD_ARGUMENT",
        `${this.name}'s queue ${index} has no doorbell: only data queues that were set up have one (the control queue is served on the thread that set it up).`,
      );
    }
    return {
      kind: "eventfd",
      fd: this.device.kickFd(index),
      what: `the vhost-user back-end at ${this.device.connection.path}`,
    };
  }

  /**
   * Routes queue `index`'s used-buffer notifications to `fd`: SET_VRING_CALL for a data
   * queue; the control queue signals `fd` itself. Vector -1: vhost-user has no MSI-X.
   */
  routeQueueInterrupt(index: number, fd: number): QueueInterruptRoute {
    if (index === this.controlIndex && this.#control) {
      const control = this.#control;
      const kick = new EventfdKick(fd, `the interrupt eventfd of controlq of ${this.name}`);
      control.signal = () => kick.notify();
      return {
        vector: -1,
        unroute: () => {
          control.signal = null;
        },
      };
    }
    if (!this.device.isStarted(index)) {
      throw new DriverError(
        "BAD_ARGUMENT",
        `${this.name}'s queue ${index} is not set up, so its interrupts cannot be routed: set it up first.`,
      );
    }
    this.device.setVringCall(index, fd);
    let routed = true;
    return {
      vector: -1,
      unroute: () => {
        if (!routed) return;
        routed = false;
        if (this.device.connection.connected && this.device.isStarted(index)) {
          this.device.setVringCall(index);
        }
      },
    };
  }

  /** The synthesized virtio_net_config; the link is up while the back-end is connected. */
  readConfig<T>(read: (cfg: RegionIo) => T): T {
    this.#config.write16(6, this.device.connection.connected ? NET_S_LINK_UP : 0);
    return read(this.#config);
  }

  /**
   * Throws TRANSPORT when the back-end closed the connection (a look at the socket, no
   * waiting), DEVICE_MISBEHAVED when the control queue broke or a status bit says so.
   */
  checkHealthy(): void {
    this.device.checkOpen();
    const broken = this.#control?.broken;
    if (broken) this.#status |= VIRTIO_CONFIG_S_NEEDS_RESET;
    const s = this.#status;
    if (s & (VIRTIO_CONFIG_S_NEEDS_RESET | VIRTIO_CONFIG_S_FAILED)) {
      throw new DriverError(
        "DEVICE_MISBEHAVED",
        `${this.name} reports ${s & VIRTIO_CONFIG_S_NEEDS_RESET ? "DEVICE_NEEDS_RESET" : "FAILED"}${
          broken ? ` (its control queue: ${broken})` : ""
        }: restart the port to reset the device.`,
      );
    }
  }

  /** Closes the connection and every eventfd (after {@linkcode reset}). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.device.close();
  }
}

/**
 * A locally administered unicast MAC derived from `path` (FNV-1a), so one socket path
 * always gives the same address.
 *
 * @example
 * ```ts
 * import { macFromPath } from "./vhost_user_transport.ts";
 * macFromPath("/tmp/a.sock")[0]; // 0x02
 * ```
 */
export function macFromPath(path: string): Uint8Array {
  let h = 0x811c9dc5, g = 0x01000193;
  for (const c of new TextEncoder().encode(path)) {
    h = Math.imul(h ^ c, 0x01000193) >>> 0;
    g = Math.imul(g ^ c, 0x811c9dc5) >>> 0;
  }
  return new Uint8Array([0x02, g & 0xff, h >>> 24, (h >>> 16) & 0xff, (h >>> 8) & 0xff, h & 0xff]);
}
