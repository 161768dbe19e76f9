/**
 * One worker of bench/scaling.ts: forwards over its own in-memory loopback (private rings
 * and buffers, as a queue pair's worker owns its queues and pool partition) for the
 * seconds it is sent, and posts the frames it received.
 *
 * @module
 */

import { benchLoopback } from "./in_memory_loopback.ts";

const clock = new Float64Array(1);
const loop = benchLoopback(false, clock, () => clock[0] = performance.now());

/** Forwards until `ms` passed (the clock read every 256 polls); returns frames received. */
function forwardFor(ms: number): number {
  const end = performance.now() + ms;
  let frames = 0;
  for (let i = 0;; i++) {
    frames += loop.poll();
    if ((i & 255) === 0 && (clock[0] = performance.now()) >= end) return frames;
  }
}

/** A module worker's global, which Deno's default types do not describe. */
const scope = self as unknown as {
  onmessage: ((e: MessageEvent) => void) | null;
  postMessage(message: unknown): void;
};

scope.onmessage = (e: MessageEvent<{ warmMs: number; ms: number; start: Int32Array }>) => {
  forwardFor(e.data.warmMs);
  // Every worker starts its measured window together: the main thread releases them at once.
  Atomics.wait(e.data.start, 0, 0);
  const t0 = performance.now();
  const frames = forwardFor(e.data.ms);
  scope.postMessage({ frames, ms: performance.now() - t0 });
};
