/**
 * The forwarding loop's cost per frame without a device: examples/l2fwd.ts's Forwarder
 * with split rings in private memory, each port looped back to itself (the warm-up's
 * in-memory loopback, src/engine/prewarm.ts). A name's "×N" is the frames per iteration.
 *
 * @module
 */

import { InMemoryLoopback } from "../../src/engine/prewarm.ts";
import { SplitQueue } from "../../src/virtio/split_queue.ts";
import { VIRTIO_NET_HDR_SIZE } from "../../src/net/header.ts";

function loopback(macRewrite: boolean): InMemoryLoopback {
  const clock = new Float64Array(1);
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
      tick: () => clock[0] += 0.001,
    },
    (memory, offset, size, notify, name) =>
      new SplitQueue(memory, offset, { index: 0, size, eventIdx: true, notify, name }),
  );
}

/** Polls until `frames` frames were received. */
function forward(loop: InMemoryLoopback, frames: number): void {
  let n = 0;
  while (n < frames) n += loop.poll();
}

const plain = loopback(false);
const rewrite = loopback(true);

Deno.bench("forward, in-memory loopback ×1024", () => forward(plain, 1024));
Deno.bench("forward with MAC rewrite ×1024", () => forward(rewrite, 1024));
