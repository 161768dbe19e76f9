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
 * When either rule is RSS, the frames themselves say enough. The driver reads the used
 * indices before the command is sent (`before`) and after the ack (`after`); the switch
 * happened between. On each queue the device places frames in time order, so the old
 * rule's frames come first. Using the spec's Toeplitz steering (§5.1.6.5.7.3, as
 * ../steering/hash_types.ts predicts it):
 * - new rule RSS: every frame after the boundary is one the new rule puts on this queue,
 *   so the boundary is just past the last frame in the range that it does not;
 * - old rule RSS (and the new one not): every frame before the boundary is one the old
 *   rule put on this queue, so the boundary is at the first frame in the range it did not.
 * A frame left on the wrong side is one both rules put on this queue: its flow did not
 * move, and its ring keeps its order either way. When neither rule is RSS (automatic
 * steering, one queue, a new pair count without RSS) nothing in a frame tells, and the
 * boundary is the used index after the ack. The frames are read where they lie: nobody
 * takes them while the switch is under way (the caller's thread is in `Steering.set`, or
 * the forwarding workers are paused).
 *
 * @module
 */

import { positionAdd } from "../virtio/virtqueue.ts";
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
 * For each queue q, the used index where the new rule begins, searching
 * [`before[q]`, `after[q]`) with the rules that are RSS (null: not RSS; see the module
 * comment).
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
  previous: RssSteeringParams | null,
  next: RssSteeringParams | null,
): number[] {
  const p: RssPrediction = { queue: 0, hash: 0, report: 0 };
  /** The queue `rule` gives used element `i` of `r`, or -1 when it holds no readable frame. */
  const queueOf = (r: BoundaryQueue, i: number, rule: RssSteeringParams): number => {
    const pool = r.pool, hdr = r.headerSize;
    const base = pool.iovaLo[0] + pool.iovaHi[0] * 0x1_0000_0000;
    const addr = r.vq.usedAddr(i), len = r.vq.usedLen(i);
    const buf = (addr - base) / pool.bufferSize;
    if (!Number.isInteger(buf) || buf < 0 || buf >= pool.iovaLo.length) return -1;
    if (len <= hdr || len > pool.bufferSize) return -1; // the receive queue refuses these
    return predictRss(pool.data, pool.offset(buf) + hdr, len - hdr, rule, p).queue;
  };
  return queues.map((r, q) => {
    const from = before[q], to = after[q];
    if (next) {
      for (let i = to; i !== from;) {
        i = positionAdd(i, -1);
        const k = queueOf(r, i, next);
        if (k >= 0 && k !== q) return positionAdd(i, 1);
      }
      return from;
    }
    if (previous) {
      for (let i = from; i !== to; i = positionAdd(i, 1)) {
        const k = queueOf(r, i, previous);
        if (k >= 0 && k !== q) return i;
      }
    }
    return to;
  });
}
