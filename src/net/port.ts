/**
 * A virtio-net port: one virtio-net PCI function driven from user space, from opening the
 * transport to the first receive buffers (virtio 1.x §3.1.1 initialization, §5.1.5
 * virtio-net initialization), with its receive and transmit queues.
 *
 * @module
 */

import { BufferPool } from "../dma/buffer_pool.ts";
import { alignUp, DmaRegion } from "../dma/memory.ts";
import { DriverError, ReleaseStack } from "../errors.ts";
import { parsePortSpec, type PortSpec } from "../pci/address.ts";
import { PCI_DEVICE_ID, PCI_SUBSYSTEM_ID, PCI_VENDOR_ID } from "../pci/capabilities.ts";
import type { PciDevice } from "../pci/pci_device.ts";
import { isVirtioNet, notVirtioNetMessage } from "../pci/sysfs.ts";
import { VfioPciDevice } from "../vfio/vfio_pci_device.ts";
import {
  bit,
  featureName,
  featureNames,
  hasFeature,
  VIRTIO_F_ACCESS_PLATFORM,
  VIRTIO_F_EVENT_IDX,
  VIRTIO_F_VERSION_1,
} from "../virtio/features.ts";
import { VirtioPciTransport } from "../virtio/pci_transport.ts";
import { isValidQueueSize, splitRingLayout } from "../virtio/ring_math.ts";
import { SplitQueue } from "../virtio/split_queue.ts";
import {
  VIRTIO_CONFIG_S_ACKNOWLEDGE,
  VIRTIO_CONFIG_S_DRIVER,
  VIRTIO_CONFIG_S_DRIVER_OK,
  VIRTIO_CONFIG_S_FAILED,
} from "../virtio/status.ts";
import { type NetConfig, readNetConfig } from "./config.ts";
import {
  VIRTIO_NET_F_HASH_REPORT,
  VIRTIO_NET_F_MAC,
  VIRTIO_NET_F_MTU,
  VIRTIO_NET_F_STATUS,
} from "./features.ts";
import { netHeaderSize } from "./header.ts";
import { RxQueue } from "./rx_queue.ts";
import { TxQueue } from "./tx_queue.ts";

/** Options of {@linkcode VirtioNetPort.open}. */
export interface PortOptions {
  /** Take a PCI function from its kernel driver (bind it to vfio-pci). */
  bind?: boolean;
  /** Give the function back to its previous kernel driver on close. */
  restoreDriver?: boolean;
  /** Descriptors per queue (a power of two; default: the device's, at most 256). */
  queueSize?: number;
  /** Packet buffers in the pool (default 4096). */
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
  /** Opens transports other than kernel VFIO (set by the vfio-user module). */
  openDevice?: (spec: PortSpec) => PciDevice;
}

/** Features this driver cannot work without (§6: an IOMMU-mapped, virtio 1.x device). */
export const REQUIRED_FEATURES = [VIRTIO_F_VERSION_1, VIRTIO_F_ACCESS_PLATFORM];
/** Features this driver uses when offered. */
export const WANTED_FEATURES = [
  VIRTIO_NET_F_MAC,
  VIRTIO_NET_F_MTU,
  VIRTIO_NET_F_STATUS,
  VIRTIO_F_EVENT_IDX,
];

const FIX_FOR: Record<number, string> = {
  [VIRTIO_F_VERSION_1]: "use a modern device (QEMU: disable-legacy=on)",
  [VIRTIO_F_ACCESS_PLATFORM]: "give the device iommu_platform=on (QEMU) so it uses the IOMMU",
};

/**
 * One virtio-net function, opened, negotiated and running with one queue pair.
 *
 * @example
 * ```ts ignore
 * import { VirtioNetPort } from "../../mod.ts";
 * const port = VirtioNetPort.open("0000:00:04.0", { bind: true });
 * console.log(port.negotiatedFeatureNames().join(" "));
 * port.close();
 * ```
 */
export class VirtioNetPort {
  /** The port's name (PCI address or vfio-user:path). */
  readonly name: string;
  /** The transport. */
  readonly transport: VirtioPciTransport;
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
  /** True when the DMA memory is backed by 2 MiB huge pages. */
  readonly hugePages: boolean;
  readonly #rx: RxQueue[];
  readonly #tx: TxQueue[];
  readonly #release: ReleaseStack;

  private constructor(
    init: {
      name: string;
      transport: VirtioPciTransport;
      deviceFeatures: bigint;
      features: bigint;
      config: NetConfig;
      pool: BufferPool;
      headerSize: number;
      hugePages: boolean;
      rx: RxQueue[];
      tx: TxQueue[];
      release: ReleaseStack;
    },
  ) {
    this.name = init.name;
    this.transport = init.transport;
    this.deviceFeatures = init.deviceFeatures;
    this.features = init.features;
    this.config = init.config;
    this.pool = init.pool;
    this.headerSize = init.headerSize;
    this.hugePages = init.hugePages;
    this.#rx = init.rx;
    this.#tx = init.tx;
    this.#release = init.release;
  }

  /**
   * Opens a port: `spec` is a PCI address (kernel VFIO) or `vfio-user:/path`. Any failure
   * releases everything taken so far and throws a {@linkcode DriverError}.
   */
  static open(spec: string | PortSpec, options: PortOptions = {}): VirtioNetPort {
    const ps = typeof spec === "string" ? parsePortSpec(spec) : spec;
    const release = new ReleaseStack();
    let failed = false;
    try {
      let pci: PciDevice;
      if (ps.kind === "pci") {
        pci = VfioPciDevice.open(ps.address, {
          bind: options.bind,
          restoreDriver: options.restoreDriver,
        });
      } else if (options.openDevice) {
        pci = options.openDevice(ps);
      } else {
        throw new DriverError(
          "UNSUPPORTED",
          `${ps.name}: no vfio-user transport was given to open it: use openPort() from mod.ts, which knows it.`,
        );
      }
      const opened = pci;
      // When opening fails half-way, the function goes back to its kernel driver too.
      release.push(`close ${ps.name}`, () => opened.close({ restoreDriver: failed }));
      return VirtioNetPort.#start(ps.name, pci, options, release);
    } catch (e) {
      failed = true;
      release.releaseAll();
      throw e;
    }
  }

  static #start(
    name: string,
    pci: PciDevice,
    options: PortOptions,
    release: ReleaseStack,
  ): VirtioNetPort {
    const id = {
      vendor: pci.config.read16(PCI_VENDOR_ID),
      device: pci.config.read16(PCI_DEVICE_ID),
      subsystemDevice: pci.config.read16(PCI_SUBSYSTEM_ID),
      classCode: 0,
    };
    if (!isVirtioNet(id)) throw new DriverError("NOT_VIRTIO_NET", notVirtioNetMessage(name, id));
    const t = new VirtioPciTransport(pci);
    // §3.1.1: reset, ACKNOWLEDGE, DRIVER, negotiate, FEATURES_OK, set up queues, DRIVER_OK.
    t.reset();
    // Reset before anything taken below is released: the device must stop using DMA
    // memory before it is unmapped and freed.
    release.push(`reset ${name}`, () => t.reset());
    t.addStatus(VIRTIO_CONFIG_S_ACKNOWLEDGE);
    t.addStatus(VIRTIO_CONFIG_S_DRIVER);
    const offered = t.deviceFeatures();
    for (const f of REQUIRED_FEATURES) {
      if (!hasFeature(offered, f)) {
        t.addStatus(VIRTIO_CONFIG_S_FAILED);
        throw new DriverError(
          "MISSING_FEATURE",
          `${name} does not offer ${featureName(f)}, which this driver requires: ${FIX_FOR[f]}.`,
        );
      }
    }
    let wanted = 0n;
    for (const f of [...REQUIRED_FEATURES, ...WANTED_FEATURES]) wanted |= bit(f);
    const features = offered & wanted;
    t.setDriverFeatures(features);
    const config = readNetConfig(t, features);
    if (config.mtu < 68) {
      throw new DriverError(
        "DEVICE_MISBEHAVED",
        `${name} reports an MTU of ${config.mtu}, below IPv4's minimum of 68: the device is broken.`,
      );
    }
    const headerSize = netHeaderSize(hasFeature(features, VIRTIO_NET_F_HASH_REPORT));
    const bufferSize = options.bufferSize ?? 2048;
    if (bufferSize < headerSize + 1514 || bufferSize % 64 !== 0) {
      throw new DriverError(
        "BAD_ARGUMENT",
        `A buffer size of ${bufferSize} cannot hold a 1514-byte frame and its header: use a multiple of 64 of at least ${
          headerSize + 1514
        }.`,
      );
    }

    // Queue layout for one pair: receiveq1 = 0, transmitq1 = 1 (§5.1.2).
    const qsizes = [0, 1].map((q) => {
      const max = t.queueMaxSize(q);
      if (max === 0) {
        throw new DriverError(
          "DEVICE_MISBEHAVED",
          `${name} has no virtqueue ${q}: the device is broken.`,
        );
      }
      const size = options.queueSize ?? Math.min(256, max);
      if (!isValidQueueSize(size) || size > max) {
        throw new DriverError(
          "BAD_ARGUMENT",
          `A queue size of ${size} is not possible on ${name}: use a power of two up to ${max}.`,
        );
      }
      return size;
    });
    const ringBytes = qsizes.map((s) => alignUp(splitRingLayout(s).totalBytes, 4096));
    const ringsTotal = ringBytes.reduce((a, b) => a + b, 0);
    const ownPool = options.pool === undefined;
    const poolSize = options.poolSize ?? 4096;
    const region = DmaRegion.allocate(ringsTotal + (ownPool ? poolSize * bufferSize : 0), {
      hugePages: options.hugePages,
    });
    release.push("free DMA memory", () => region.free());
    region.mapFor(pci);
    let pool: BufferPool;
    if (options.pool === undefined) {
      pool = new BufferPool(region, ringsTotal, poolSize, bufferSize);
    } else {
      pool = options.pool;
      if (pool.bufferSize < headerSize + 1514) {
        throw new DriverError(
          "BAD_ARGUMENT",
          `The shared pool's ${pool.bufferSize}-byte buffers cannot hold a 1514-byte frame and its header: use buffers of at least ${
            headerSize + 1514
          } bytes.`,
        );
      }
      const shared = pool.region;
      shared.mapFor(pci);
      release.push("unmap the shared pool", () => shared.unmapFrom(pci));
    }

    const queues: SplitQueue[] = [];
    let at = 0;
    for (let q = 0; q < 2; q++) {
      const layout = splitRingLayout(qsizes[q]);
      const base = region.iova + at;
      const notify = t.setupQueue(
        q,
        qsizes[q],
        base + layout.descOffset,
        base + layout.availOffset,
        base + layout.usedOffset,
      );
      queues.push(
        new SplitQueue(region.buffer, at, {
          index: q,
          size: qsizes[q],
          eventIdx: hasFeature(features, VIRTIO_F_EVENT_IDX),
          notify,
          name: `${q % 2 ? "transmitq" : "receiveq"}${(q >> 1) + 1} of ${name}`,
        }),
      );
      at += ringBytes[q];
    }
    const rx = new RxQueue(queues[0], pool, headerSize);
    const tx = new TxQueue(queues[1], pool, headerSize);
    // §3.1.1 step 8 lets the driver post receive buffers before DRIVER_OK (§5.1.5: fill
    // receiveq first), so the device has somewhere to put the first frame.
    rx.refill();
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
      hugePages: pool.region.hugePages,
      rx: [rx],
      tx: [tx],
      release,
    });
  }

  /** Receive queue `q` (receiveq(q+1)). */
  rx(q = 0): RxQueue {
    return this.#rx[q];
  }

  /** Transmit queue `q` (transmitq(q+1)). */
  tx(q = 0): TxQueue {
    return this.#tx[q];
  }

  /** Byte offset of buffer `buf`'s frame in `pool.data`. */
  frameOffset(buf: number): number {
    return this.pool.offset(buf) + this.headerSize;
  }

  /** The negotiated features by spec name. */
  negotiatedFeatureNames(): string[] {
    return featureNames(this.features);
  }

  /** Reads the configuration again (link status may change at run time). */
  readConfig(): NetConfig {
    return readNetConfig(this.transport, this.features);
  }

  /**
   * Stops the port: resets the device (it stops DMA), unmaps and frees DMA memory, closes
   * the transport (and returns the function to its kernel driver if asked). Idempotent.
   */
  close(): void {
    const failures = this.#release.releaseAll();
    if (failures.length) {
      throw new DriverError("VFIO", `Closing ${this.name} left problems: ${failures.join("; ")}.`);
    }
  }
}
