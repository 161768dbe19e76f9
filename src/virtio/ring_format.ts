/**
 * The two virtqueue formats side by side (virtio 1.x §2.7 split, §2.8 packed): where a
 * ring's three areas lie and which class drives it. The one place that knows both, so a
 * port, a forwarding worker adopting a queue, and a test build the same queue for the
 * format VIRTIO_F_RING_PACKED decided.
 *
 * @module
 */

import { indirectTablesBytes, indirectTablesOffset } from "./indirect_table.ts";
import { PackedQueue, type PackedQueueState } from "./packed_queue.ts";
import { packedRingLayout } from "./packed_ring_math.ts";
import { splitRingLayout } from "./ring_math.ts";
import { SplitQueue, type SplitQueueOptions, type SplitQueueState } from "./split_queue.ts";
import type { Virtqueue, VirtqueueState } from "./virtqueue.ts";

/** A virtqueue format: split (§2.7) or packed (§2.8, VIRTIO_F_RING_PACKED). */
export type RingFormat = "split" | "packed";

/**
 * Where a ring's areas lie, as offsets from its start: the transport gives the device
 * their addresses (§4.1.4.3: queue_desc, queue_driver, queue_device).
 */
export interface RingAreas {
  /** Descriptor table (split) or descriptor ring (packed). */
  descOffset: number;
  /** Driver area: the available ring (split) or driver event suppression (packed). */
  driverOffset: number;
  /** Device area: the used ring (split) or device event suppression (packed). */
  deviceOffset: number;
  /**
   * The ring's indirect tables (VIRTIO_F_INDIRECT_DESC, indirect_table.ts), after its
   * areas; -1 when asked for none.
   */
  indirectOffset: number;
  /** Bytes the ring takes, driver-only parts (and indirect tables) included. */
  totalBytes: number;
}

/**
 * The areas of a `size`-entry ring of `format`; `legacy`: a split ring laid out as a legacy
 * device expects (§2.7 legacy note; no packed ring is legacy); `indirect`: with a table
 * per slot for indirect descriptors after the ring (the queue then gets their IOVA as
 * `indirectIova`).
 *
 * @example
 * ```ts
 * import { ringAreas } from "./ring_format.ts";
 * ringAreas("split", 256).driverOffset; // 4096: the available ring follows 256 descriptors
 * ringAreas("split", 256, false, true).indirectOffset; // 6784: after the used ring
 * ```
 */
export function ringAreas(
  format: RingFormat,
  size: number,
  legacy = false,
  indirect = false,
): RingAreas {
  let a: RingAreas;
  if (format === "packed") {
    if (legacy) throw new RangeError("a packed ring has no legacy layout (§2.8 is virtio 1.x)");
    const l = packedRingLayout(size);
    a = {
      descOffset: l.descOffset,
      driverOffset: l.driverOffset,
      deviceOffset: l.deviceOffset,
      indirectOffset: -1,
      totalBytes: l.totalBytes,
    };
  } else {
    const l = splitRingLayout(size, legacy);
    a = {
      descOffset: l.descOffset,
      driverOffset: l.availOffset,
      deviceOffset: l.usedOffset,
      indirectOffset: -1,
      totalBytes: l.totalBytes,
    };
  }
  if (indirect) {
    a.indirectOffset = indirectTablesOffset(a.totalBytes);
    a.totalBytes = a.indirectOffset + indirectTablesBytes(size);
  }
  return a;
}

/**
 * A queue of `format` over `memory` at `offset` (zeroed), or one adopting `state` (from
 * `exportState()` of a queue over the same ring, which must not be used again; its
 * `layout` decides the format then, its `inOrder` whether buffers are used in order, and
 * its `indirectIova` whether it has indirect tables).
 *
 * @example
 * ```ts
 * import { createVirtqueue, ringAreas } from "./ring_format.ts";
 * const mem = new ArrayBuffer(ringAreas("packed", 8).totalBytes);
 * const q = createVirtqueue("packed", mem, 0, { index: 0, size: 8, eventIdx: true, notify: { notify() {} }, name: "q" });
 * q.add(1, 0x1000, 0, 2048, true);
 * ```
 */
export function createVirtqueue(
  format: RingFormat,
  memory: ArrayBuffer,
  offset: number,
  opts: SplitQueueOptions,
  state?: VirtqueueState,
): Virtqueue {
  const packed = state ? state.layout === "packed" : format === "packed";
  if (state && state.layout !== format) {
    throw new RangeError(
      `${opts.name}: a ${state.layout} queue's state cannot drive a ${format} ring`,
    );
  }
  return packed
    ? new PackedQueue(memory, offset, opts, state as PackedQueueState | undefined)
    : new SplitQueue(memory, offset, opts, state as SplitQueueState | undefined);
}
