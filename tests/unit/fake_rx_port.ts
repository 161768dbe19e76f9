/**
 * A receive port for forwarder and generator unit tests: it hands out the frames queued on
 * it (buffer index and length), once each, in order.
 *
 * @module
 */

import type { RxPort } from "../../src/engine/forwarder.ts";

/** A receive port that hands out the frames queued on it, once. */
export class FakeRx implements RxPort {
  bufs: number[] = [];
  lens: number[] = [];
  rxBurst(bufs: Uint32Array, lens: Uint32Array, max: number): number {
    const n = Math.min(max, this.bufs.length);
    for (let i = 0; i < n; i++) {
      bufs[i] = this.bufs.shift()!;
      lens[i] = this.lens.shift()!;
    }
    return n;
  }
}
