/**
 * The forwarding loop's cost per frame without a device: examples/l2fwd.ts's Forwarder
 * with split rings in private memory, each port looped back to itself (the warm-up's
 * in-memory loopback, src/engine/prewarm.ts). A name's "×N" is the frames per iteration.
 *
 * @module
 */

import { benchLoopback, type Loopback } from "../in_memory_loopback.ts";

function loopback(macRewrite: boolean): Loopback {
  const clock = new Float64Array(1);
  return benchLoopback(macRewrite, clock, () => clock[0] += 0.001);
}

/** Polls until `frames` frames were received. */
function forward(loop: Loopback, frames: number): void {
  let n = 0;
  while (n < frames) n += loop.poll();
}

const plain = loopback(false);
const rewrite = loopback(true);

Deno.bench("forward, in-memory loopback ×1024", () => forward(plain, 1024));
Deno.bench("forward with MAC rewrite ×1024", () => forward(rewrite, 1024));
