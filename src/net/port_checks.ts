/**
 * What a port checks while it opens (src/net/port.ts), before any queue is live: that the
 * device's configuration is one this driver supports, the queue pairs and queue sizes
 * asked for, and that packet buffers hold the largest frame (virtio 1.x §5.1.6.3.1).
 *
 * @module
 */

import { BufferPool, MAX_BUFFER_SIZE, MAX_POOL_BUFFERS } from "../dma/buffer_pool.ts";
import { alignUp } from "../dma/memory.ts";
import { DriverError } from "../errors.ts";
import { hasFeature } from "../virtio/features.ts";
import type { VirtioTransport } from "../virtio/transport.ts";
import { isValidQueueSize, VIRTQ_MAX_SIZE } from "../virtio/ring_math.ts";
import type { NetConfig } from "./config.ts";
import { VIRTIO_NET_F_CTRL_VQ, VIRTIO_NET_F_MQ, VIRTIO_NET_F_RSS } from "./features.ts";
import type { PortOptions } from "./port.ts";
import { shown } from "../shown.ts";

/** The most queue pairs a device can have (§5.1.4.1: max_virtqueue_pairs ≤ 0x8000). */
export const MAX_QUEUE_PAIRS = 0x8000;

/**
 * Refuses {@linkcode PortOptions} that no device could take (types and ranges), before
 * the port touches its device: what depends on the device (max_virtqueue_pairs, its queue
 * sizes, its MTU) is checked once it is read. Throws one BAD_ARGUMENT sentence.
 *
 * @example
 * ```ts ignore
 * checkPortOptions({ queuePairs: 0 }); // throws: queuePairs 0 is not possible: …
 * ```
 */
export function checkPortOptions(options: PortOptions): void {
  const bad = (m: string): never => {
    throw new DriverError("BAD_ARGUMENT", m);
  };
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    bad(`The port options are ${shown(options)}: give an object such as { queuePairs: 2 }.`);
  }
  const o = options as Record<string, unknown>;
  const q = o.queuePairs;
  if (
    q !== undefined &&
    !(Number.isInteger(q) && (q as number) >= 1 && (q as number) <= MAX_QUEUE_PAIRS)
  ) {
    bad(`queuePairs ${shown(q)} is not possible: give an integer from 1 to ${MAX_QUEUE_PAIRS}.`);
  }
  for (const name of ["queueSize", "rxQueueSize", "txQueueSize"]) {
    const v = o[name];
    if (v !== undefined && !(typeof v === "number" && isValidQueueSize(v))) {
      bad(
        `${name} ${shown(v)} is not a queue size: give a power of two from 1 to ${VIRTQ_MAX_SIZE}.`,
      );
    }
  }
  const count = o.poolSize;
  if (
    count !== undefined &&
    !(Number.isInteger(count) && (count as number) >= 1 && (count as number) <= MAX_POOL_BUFFERS)
  ) {
    bad(`poolSize ${shown(count)} is not possible: give an integer from 1 to ${MAX_POOL_BUFFERS}.`);
  }
  const size = o.bufferSize;
  if (
    size !== undefined &&
    !(Number.isInteger(size) && (size as number) % 64 === 0 && (size as number) >= 64 &&
      (size as number) <= MAX_BUFFER_SIZE)
  ) {
    bad(
      `bufferSize ${
        shown(size)
      } is not possible: give a multiple of 64 from 64 to ${MAX_BUFFER_SIZE} bytes.`,
    );
  }
  if (o.pool !== undefined && !(o.pool instanceof BufferPool)) {
    bad(
      `pool is ${
        shown(o.pool)
      }, not a BufferPool: give one from createSharedPool() or leave it out.`,
    );
  }
  for (
    const name of ["hugePages", "hashReport", "txChecksum", "tso", "rxChecksum", "lro"]
  ) {
    if (o[name] !== undefined && typeof o[name] !== "boolean") {
      bad(`${name} is ${shown(o[name])}, not true or false: give a boolean or leave it out.`);
    }
  }
}

// The largest device MTU a port takes: without VIRTIO_NET_F_MRG_RXBUF every receive
// buffer holds a whole frame (§5.1.6.3.1), so a 65,535-byte MTU would cost 256 MiB of pool.
const MTU_MAX = 9216;

/**
 * Refuses a configuration this driver does not support (readNetConfig in config.ts
 * already checked it against the spec): an MTU above 9216.
 *
 * @example
 * ```ts ignore
 * validateConfig("0000:00:04.0", readNetConfig(transport, features));
 * ```
 */
export function validateConfig(name: string, config: NetConfig, mergeable = false): void {
  // With mergeable buffers a frame spans as many buffers as it needs (§5.1.6.3.1).
  if (!mergeable && config.mtu > MTU_MAX) {
    throw new DriverError(
      "UNSUPPORTED",
      `${name} reports an MTU of ${config.mtu}, more than the ${MTU_MAX} bytes this driver sizes its receive buffers for: give the device an MTU of at most ${MTU_MAX} (QEMU: host_mtu=9000).`,
    );
  }
}

/**
 * Returns `pairs` when the device can have that many queue pairs (VIRTIO_NET_F_MQ or
 * VIRTIO_NET_F_RSS for more than one, at most max_virtqueue_pairs, §5.1.4); throws
 * otherwise.
 *
 * @example
 * ```ts ignore
 * const pairs = checkPairs("0000:00:04.0", 4, features, config); // 4, or a DriverError
 * ```
 */
export function checkPairs(
  name: string,
  pairs: number,
  features: bigint,
  config: NetConfig,
): number {
  if (!Number.isInteger(pairs) || pairs < 1) {
    throw new DriverError(
      "BAD_ARGUMENT",
      `${pairs} queue pairs is not a positive integer: use 1 or more.`,
    );
  }
  if (
    pairs > 1 && !hasFeature(features, VIRTIO_NET_F_MQ) && !hasFeature(features, VIRTIO_NET_F_RSS)
  ) {
    throw new DriverError(
      "UNSUPPORTED",
      `${name} does not offer VIRTIO_NET_F_MQ, so it has one queue pair, not ${pairs}: use --queues 1, or give the device multiqueue (QEMU: mq=on with a multi-queue netdev).`,
    );
  }
  if (pairs > config.maxVirtqueuePairs) {
    throw new DriverError(
      "BAD_ARGUMENT",
      `${pairs} queue pairs is more than ${name}'s max_virtqueue_pairs of ${config.maxVirtqueuePairs}: use at most ${config.maxVirtqueuePairs}.`,
    );
  }
  return pairs;
}

/** The virtqueues a port sets up, by index (§5.1.2), and their sizes. */
export interface QueuePlan {
  /** VIRTIO_NET_F_CTRL_VQ was negotiated: the last index is the control queue. */
  hasCtrl: boolean;
  /** The control queue's index: 2·max_virtqueue_pairs with MQ or RSS, else 2. */
  ctrlIndex: number;
  /** receiveq1, transmitq1, … of `pairs` pairs, then the control queue if any. */
  indices: number[];
  /** Ring size of each queue in `indices`. */
  sizes: number[];
}

/**
 * Which virtqueues a port with `pairs` queue pairs sets up and how large their rings are:
 * the data queues get `wanted.rx` / `wanted.tx` (undefined: the device's, at most 256),
 * the control queue the device's (at most 256). Throws as {@linkcode queueSize} does.
 *
 * @example
 * ```ts ignore
 * const plan = planQueues(t, "0000:00:04.0", 2, features, config, { rx: 1024, tx: undefined });
 * plan.indices; // [0, 1, 2, 3, 2·max_virtqueue_pairs] with a control queue
 * ```
 */
export function planQueues(
  t: VirtioTransport,
  name: string,
  pairs: number,
  features: bigint,
  config: NetConfig,
  wanted: { rx: number | undefined; tx: number | undefined },
): QueuePlan {
  const hasCtrl = hasFeature(features, VIRTIO_NET_F_CTRL_VQ);
  const multi = hasFeature(features, VIRTIO_NET_F_MQ) || hasFeature(features, VIRTIO_NET_F_RSS);
  const ctrlIndex = multi ? 2 * config.maxVirtqueuePairs : 2;
  const indices = Array.from({ length: 2 * pairs }, (_, i) => i);
  if (hasCtrl) indices.push(ctrlIndex);
  // Even indices are receive queues, odd ones transmit queues (§5.1.2); then control.
  const sizes = indices.map((q) =>
    queueSize(t, name, q, q === ctrlIndex && hasCtrl ? undefined : q % 2 ? wanted.tx : wanted.rx)
  );
  return { hasCtrl, ctrlIndex, indices, sizes };
}

/**
 * The size of queue `q`'s ring: `wanted`, or the device's queue_size up to 256; throws
 * when the device offers no such queue or a size that is not a power of two (§2.7), or
 * when `wanted` is not a power of two up to the device's.
 *
 * @example
 * ```ts ignore
 * queueSize(transport, "0000:00:04.0", 0, undefined); // 256 on QEMU
 * ```
 */
export function queueSize(
  t: VirtioTransport,
  name: string,
  q: number,
  wanted: number | undefined,
): number {
  const max = t.queueMaxSize(q);
  if (max === 0) {
    throw new DriverError(
      "DEVICE_MISBEHAVED",
      `${name} has no virtqueue ${q}: the device is broken.`,
    );
  }
  if (!isValidQueueSize(max)) {
    throw new DriverError(
      "DEVICE_MISBEHAVED",
      `${name} offers virtqueue ${q} with ${max} entries, not a power of two: the device is broken.`,
    );
  }
  // A legacy device fixes its queue sizes (§4.1.4.8: QUEUE_NUM is read-only).
  if (t.legacy && wanted !== undefined && wanted !== max) {
    throw new DriverError(
      "BAD_ARGUMENT",
      `${name} is a legacy device whose virtqueue ${q} has ${max} entries, which the driver cannot change: leave the queue size out or give ${max}.`,
    );
  }
  const size = wanted ?? (t.legacy ? max : Math.min(256, max));
  if (!isValidQueueSize(size) || size > max) {
    throw new DriverError(
      "BAD_ARGUMENT",
      `A queue size of ${size} is not possible on ${name}: use a power of two up to ${max}.`,
    );
  }
  return size;
}

/**
 * Bytes per packet buffer: `wanted`, or at least 2048; it must be a multiple of 64 that
 * holds the virtio-net header and the largest frame, since without
 * VIRTIO_NET_F_MRG_RXBUF every received frame fits one buffer (§5.1.6.3.1); with it
 * (`mergeable`), a header and a 64-byte frame.
 *
 * @example
 * ```ts ignore
 * receiveBufferSize(config, 12, undefined); // 2048 with a 1500-byte MTU
 * ```
 */
export function receiveBufferSize(
  config: NetConfig,
  headerSize: number,
  wanted: number | undefined,
  mergeable = false,
): number {
  const { frameMax, need } = mergeable
    ? { frameMax: 64, need: alignUp(headerSize + 64, 64) } // a header and a minimal frame
    : bufferNeed(config, headerSize);
  const bufferSize = wanted ?? Math.max(2048, need);
  if (bufferSize < need || bufferSize % 64 !== 0) {
    throw new DriverError(
      "BAD_ARGUMENT",
      `A buffer size of ${bufferSize} cannot hold a ${frameMax}-byte frame (MTU ${config.mtu}) and its ${headerSize}-byte header: use a multiple of 64 of at least ${need}.`,
    );
  }
  return bufferSize;
}

/**
 * Refuses a shared pool whose buffers cannot hold the header and the largest frame.
 *
 * @example
 * ```ts ignore
 * checkSharedPool(options.pool, config, 12);
 * ```
 */
export function checkSharedPool(
  pool: BufferPool,
  config: NetConfig,
  headerSize: number,
  mergeable = false,
): void {
  const { frameMax, need } = bufferNeed(config, headerSize);
  if (!mergeable && pool.bufferSize < headerSize + frameMax) {
    throw new DriverError(
      "BAD_ARGUMENT",
      `The shared pool's ${pool.bufferSize}-byte buffers cannot hold a ${frameMax}-byte frame (MTU ${config.mtu}) and its header: use buffers of at least ${need} bytes.`,
    );
  }
}

/** The largest frame (the MTU, an Ethernet header and a VLAN tag) and the buffer it needs. */
function bufferNeed(config: NetConfig, headerSize: number): { frameMax: number; need: number } {
  const frameMax = config.mtu + 18;
  return { frameMax, need: alignUp(headerSize + frameMax, 64) };
}
