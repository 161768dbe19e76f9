/**
 * Handing a port's data queues over to forwarding workers (main thread side): describes
 * each ring by address and driver-side state, gives each queue's doorbell as its
 * transport describes it (src/dma/doorbell.ts), and splits the shared buffer pool into one
 * partition per worker.
 *
 * Partitioning. The ports refilled their receive rings from the pool's free list when they
 * opened (virtio 1.x §5.1.5: receive buffers are posted before DRIVER_OK), so by the time
 * the engine starts, some buffers sit in rings. Worker k gets the buffers in its own
 * receive rings (receiveq(k+1) of every port; read from the queues' state, not from the
 * rings) plus an equal share of the free ones, which the main thread takes out of the
 * pool's free list for good. Every buffer then belongs to exactly one worker (checked),
 * and stays with it: worker k receives and transmits on queue pair k only, so whatever it
 * sends comes back to its own partition when the device completes it.
 *
 * After the handover the main thread must not touch the data queues again (their
 * RxQueue/TxQueue objects are stale): it keeps the control path only.
 *
 * @module
 */

import { type BufferPool, NO_BUFFER } from "../dma/buffer_pool.ts";
import { DriverError } from "../errors.ts";
import type { VirtioNetPort } from "../net/port.ts";
import { hasFeature, VIRTIO_F_EVENT_IDX } from "../virtio/features.ts";
import type { Virtqueue } from "../virtio/virtqueue.ts";
import type { Doorbell } from "../dma/doorbell.ts";
import type { RingSpec } from "./worker_spec.ts";

/**
 * Address of the first byte of `buffer` (an ArrayBuffer over foreign memory, such as a
 * DMA region or a BAR mapping) in this process.
 *
 * @example
 * ```ts ignore
 * import { addressOfBuffer } from "./handoff.ts";
 * addressOfBuffer(pool.region.buffer) === pool.region.vaddr; // true
 * ```
 */
export function addressOfBuffer(buffer: ArrayBuffer): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buffer)));
}

/**
 * How a worker notifies virtqueue `queueIndex` (a data queue) of `port`: its transport's
 * doorbell (a register store, a message, or an eventfd write; src/dma/doorbell.ts).
 *
 * @example
 * ```ts ignore
 * import { notifySpec } from "./handoff.ts";
 * notifySpec(port, 1); // { kind: "store16", address: 0x7f…n, value: 1, … } on kernel VFIO
 * ```
 */
export function notifySpec(port: VirtioNetPort, queueIndex: number): Doorbell {
  const pair = queueIndex >> 1;
  if (!(Number.isInteger(queueIndex) && queueIndex >= 0 && pair < port.queuePairs)) {
    throw new DriverError(
      "BAD_ARGUMENT",
      `${port.name} has no data queue ${queueIndex}: use 0 to ${2 * port.queuePairs - 1}.`,
    );
  }
  return port.transport.doorbell(queueIndex);
}

/**
 * Describes `vq` (a data queue of `port`) for a worker to adopt.
 *
 * @example
 * ```ts ignore
 * import { describeRing } from "./handoff.ts";
 * const spec = describeRing(port, port.rx(0).vq);
 * spec.state.numFree; // 0: the ring is full of receive buffers
 * ```
 */
export function describeRing(port: VirtioNetPort, vq: Virtqueue): RingSpec {
  return {
    index: vq.index,
    size: vq.size,
    eventIdx: hasFeature(port.features, VIRTIO_F_EVENT_IDX),
    name: vq.name,
    address: addressOfBuffer(vq.ringMemory) + BigInt(vq.ringOffset),
    bytes: vq.ringBytes,
    state: vq.exportState(),
    notify: port.transport.doorbell(vq.index),
  };
}

/**
 * The buffers a ring holds, by its exported state (tokens of descriptors in flight).
 *
 * @example
 * ```ts ignore
 * import { buffersInRing, describeRing } from "./handoff.ts";
 * buffersInRing(describeRing(port, port.rx(0).vq)).length; // 256: a full receive ring
 * ```
 */
export function buffersInRing(ring: RingSpec): number[] {
  const out: number[] = [];
  for (const t of ring.state.token) if (t >= 0) out.push(t);
  return out;
}

/** One worker's partition: free buffers and buffers already in its rings. */
export interface Partition {
  /** Free buffers. */
  free: Uint32Array;
  /** Buffers in the worker's rings. */
  inUse: Uint32Array;
}

/**
 * Splits `pool` among workers: worker k keeps `inRings[k]` (the buffers in its rings) and
 * gets an equal share of the free ones, which are taken out of the pool's free list. The
 * pool must not be used by this thread afterwards. Throws when a buffer would belong to
 * two workers, or when a buffer is neither free nor in some worker's ring (it would be
 * lost).
 *
 * @example
 * ```ts ignore
 * import { partitionPool } from "./handoff.ts";
 * const parts = partitionPool(pool, [[0, 1], [2, 3]]);
 * parts[0].free.length + parts[1].free.length === pool.count - 4; // true
 * ```
 */
export function partitionPool(pool: BufferPool, inRings: number[][]): Partition[] {
  const owner = new Int32Array(pool.count).fill(-1);
  for (const [k, bufs] of inRings.entries()) {
    for (const b of bufs) {
      if (!(b >= 0 && b < pool.count) || owner[b] !== -1) {
        throw new DriverError(
          "DEVICE_MISBEHAVED",
          `Buffer ${b} sits in the rings of two queue pairs (or is not in the pool): the queues' state is corrupt; restart the ports.`,
        );
      }
      owner[b] = k;
    }
  }
  const free: number[] = [];
  for (let b = pool.alloc(); b !== NO_BUFFER; b = pool.alloc()) free.push(b);
  free.sort((a, b) => a - b);
  const n = inRings.length;
  const parts: Partition[] = inRings.map((bufs, k) => {
    const from = Math.floor((k * free.length) / n), to = Math.floor(((k + 1) * free.length) / n);
    const mine = free.slice(from, to);
    for (const b of mine) {
      if (owner[b] !== -1) {
        throw new DriverError(
          "DEVICE_MISBEHAVED",
          `Buffer ${b} is both free and in a ring: the pool's state is corrupt; restart the ports.`,
        );
      }
      owner[b] = k;
    }
    return { free: Uint32Array.from(mine), inUse: Uint32Array.from(bufs) };
  });
  const lost = owner.indexOf(-1);
  if (lost >= 0) {
    throw new DriverError(
      "BAD_ARGUMENT",
      `Buffer ${lost} of the shared pool is in use outside the forwarding queues (e.g. held by the application or by a queue pair without a worker): free it before starting the engine.`,
    );
  }
  return parts;
}
