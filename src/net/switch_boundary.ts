/**
 * Where a steering switch falls on each receive ring.
 *
 * The driver learns that the device switched when it sees the ack, and only then reads
 * each queue's used index. Frames the device places between its ack and those reads are
 * steered by the new rule but would count as old: one of a flow that moved can overtake
 * the flow's older frames on its previous queue. The window is microseconds on a quiet
 * host; when the host deschedules the driver's thread right after the ack (seen under
 * QEMU's TCG on a busy 2-core host) it is milliseconds, and frames do get reordered.
 *
 * From RSS to RSS the frames themselves say which rule placed them: the driver computes
 * each frame's queue under both rules (the spec's Toeplitz steering, §5.1.6.5.7.3, as
 * ../steering/hash_types.ts predicts it). Reading the used indices before the command is
 * sent (`before`) and after the ack (`after`) brackets the switch; on each queue the
 * first frame in that range that only the new rule puts there is where the new rule
 * begins (the device places a queue's frames in time order, so every frame after it is
 * new too). A frame both rules put on the queue belongs to a flow that did not move,
 * whose order its ring keeps either way. The frames are read where they lie: nobody
 * takes them while the switch is under way (the caller's thread is in `Steering.set`, or
 * the forwarding workers are paused).
 *
 * @module
 */

import type { PacketBuffers } from "../dma/packet_buffers.ts";
import { predictRss, type RssPrediction, type RssSteeringParams } from "../steering/hash_types.ts";

/** What the boundary search needs of a receive queue. */
export interface BoundaryQueue {
  /** The virtqueue, read without taking anything. */
  readonly vq: {
    deviceUsedIdx(): number;
    usedAddr(idx: number): number;
    usedLen(idx: number): number;
  };
  /** Where its buffers are. */
  readonly pool: PacketBuffers;
  /** Bytes of virtio_net_hdr in front of every frame. */
  readonly headerSize: number;
}

/**
 * The device's used index of every queue now.
 *
 * @example
 * ```ts ignore
 * const before = usedIndices(rxQueues);
 * ```
 */
export function usedIndices(queues: readonly BoundaryQueue[]): number[] {
  return queues.map((r) => r.vq.deviceUsedIdx());
}

/**
 * For each queue q, the used index where the new rule begins: the first frame in
 * [`before[q]`, `after[q]`) that `next` steers to q and `previous` does not, or
 * `after[q]` when there is none (see the module comment).
 *
 * @example
 * ```ts ignore
 * const barriers = switchBoundaries(rx, before, usedIndices(rx), oldParams, newParams);
 * ```
 */
export function switchBoundaries(
  queues: readonly BoundaryQueue[],
  before: readonly number[],
  after: readonly number[],
  previous: RssSteeringParams,
  next: RssSteeringParams,
): number[] {
  const a: RssPrediction = { queue: 0, hash: 0, report: 0 };
  const b: RssPrediction = { queue: 0, hash: 0, report: 0 };
  return queues.map((r, q) => {
    const pool = r.pool, hdr = r.headerSize;
    const base = pool.iovaLo[0] + pool.iovaHi[0] * 0x1_0000_0000;
    for (let i = before[q]; i !== after[q]; i = (i + 1) & 0xffff) {
      const addr = r.vq.usedAddr(i), len = r.vq.usedLen(i);
      const buf = (addr - base) / pool.bufferSize;
      if (!Number.isInteger(buf) || buf < 0 || buf >= pool.iovaLo.length || len <= hdr) continue;
      if (len > pool.bufferSize) continue; // the receive queue will refuse it anyway
      const off = pool.offset(buf) + hdr, n = len - hdr;
      const old = predictRss(pool.data, off, n, previous, a).queue === q;
      const now = predictRss(pool.data, off, n, next, b).queue === q;
      if (now && !old) return i;
    }
    return after[q];
  });
}
