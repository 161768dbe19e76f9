/**
 * A second thread that rewrites a split ring's used entries while the driver reads them
 * (split_ring_fuzz_test.ts): ids that name descriptors in flight (the dangerous case, a
 * rewrite between takeUsed's check and its commit), ids out of range, lengths, and
 * used->idx. It follows the ring size the harness publishes in the control words.
 *
 * Control words (Int32Array at `ctlAt`): [0] stop, [1] ring size, [2] writes made.
 *
 * @module
 */

import { splitRingLayout } from "../../../src/virtio/ring_math.ts";
import { Prng } from "./prng.ts";

/** What the test posts to start the scribbler. */
export interface ScribblerStart {
  memory: SharedArrayBuffer;
  ctlAt: number;
  seed: number;
}

const scope = self as unknown as {
  onmessage: ((e: MessageEvent<ScribblerStart>) => void) | null;
  postMessage(m: unknown): void;
};

scope.onmessage = (e) => {
  const { memory, ctlAt, seed } = e.data;
  const ctl = new Int32Array(memory, ctlAt, 4);
  const u16 = new Uint16Array(memory, 0, ctlAt >> 1), u32 = new Uint32Array(memory, 0, ctlAt >> 2);
  const rng = new Prng(seed);
  let size = 0, used = 0, writes = 0;
  scope.postMessage("ready");
  while (Atomics.load(ctl, 0) === 0) {
    const s = Atomics.load(ctl, 1);
    if (s !== size) {
      size = s;
      used = splitRingLayout(size).usedOffset;
    }
    const at = (used >> 2) + 1 + 2 * rng.below(size), r = rng.below(16);
    if (r < 7) u32[at] = rng.below(size);
    else if (r < 9) u32[at] = rng.u32();
    else if (r < 14) u32[at + 1] = rng.below(4096);
    else u16[(used >> 1) + 1] = (u16[(used >> 1) + 1] + 1 + rng.below(2)) & 0xffff;
    writes++;
    // Spin a while: a device writing all the time would break the ring at once, every time.
    for (let i = rng.below(4000); i > 0; i--) if (Atomics.load(ctl, 0) !== 0) break;
  }
  Atomics.store(ctl, 2, writes);
  scope.postMessage("done");
};
