/**
 * The in-memory loopback the benchmarks forward over (the warm-up's, src/engine/prewarm.ts)
 * with l2fwd's default forwarding options and split rings: the forwarding micro-benchmark
 * and each worker of bench/scaling.ts build theirs here.
 *
 * @module
 */

import { InMemoryLoopback } from "../src/engine/prewarm.ts";
import { VIRTIO_NET_HDR_SIZE } from "../src/net/header.ts";
import { createVirtqueue } from "../src/virtio/ring_format.ts";

/**
 * What the benchmarks use of a loopback.
 *
 * @example
 * ```ts
 * import type { Loopback } from "./in_memory_loopback.ts";
 * const drive = (l: Loopback) => l.poll();
 * ```
 */
export interface Loopback {
  /** One forwarding poll, then the device's turn; returns the frames received. */
  poll(): number;
}

/**
 * A loopback whose forwarder reads its time from `clock` (element 0, ms), which `tick`
 * advances; `macRewrite` as l2fwd's option.
 *
 * @example
 * ```ts
 * import { benchLoopback } from "./in_memory_loopback.ts";
 * const clock = new Float64Array(1);
 * const loop = benchLoopback(false, clock, () => clock[0] += 0.001);
 * let frames = 0;
 * while (frames < 1000) frames += loop.poll();
 * ```
 */
export function benchLoopback(
  macRewrite: boolean,
  clock: Float64Array,
  tick: () => void,
): Loopback {
  const mac = new Uint8Array(6);
  return new InMemoryLoopback(
    {
      burst: 32,
      drainMs: 0.1,
      txFull: "wait",
      macRewrite,
      headerSizes: [VIRTIO_NET_HDR_SIZE, VIRTIO_NET_HDR_SIZE],
      macs: [mac, mac],
      clock,
      tick,
      steady: true,
    },
    (format, memory, offset, size, notify, name) =>
      createVirtqueue(format, memory, offset, { index: 0, size, eventIdx: true, notify, name }),
  );
}
