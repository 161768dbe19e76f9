/**
 * The burst a forwarding script sees (script_api.ts `Burst`): the forwarder's own arrays,
 * built once, and the offload fields of each frame (docs/offloads.md).
 *
 * @module
 */

import type { FrameOffloads } from "../net/offloads.ts";
import type { Burst } from "./script_api.ts";

/**
 * A preallocated burst a script sees (one per input port).
 *
 * @example
 * ```ts ignore
 * const b = new ScriptBurst(0, 1, 0, bufs, lens, pool.data, room, counters, table, macs, frames);
 * script.handleBurst(b);
 * ```
 */
export class ScriptBurst implements Burst {
  count = 0;
  readonly csum: Uint8Array;
  readonly csumStart: Uint16Array;
  readonly csumOffset: Uint16Array;
  readonly gsoType: Uint8Array;
  readonly gsoSize: Uint16Array;
  readonly hdrLen: Uint16Array;
  readonly verdicts: Uint8Array;
  readonly offsets: Uint32Array;
  readonly view: DataView;
  /** Views the forwarder's arrays; `f`: the burst's offload fields (docs/offloads.md). */
  constructor(
    readonly inPort: number,
    readonly outPort: number,
    readonly queue: number,
    readonly bufs: Uint32Array,
    readonly lens: Uint32Array,
    readonly data: Uint8Array,
    readonly room: number,
    readonly counters: Float64Array,
    readonly table: Float64Array,
    readonly macs: readonly Uint8Array[],
    f: FrameOffloads,
  ) {
    this.csum = f.csum;
    this.csumStart = f.csumStart;
    this.csumOffset = f.csumOffset;
    this.gsoType = f.gsoType;
    this.gsoSize = f.gsoSize;
    this.hdrLen = f.hdrLen;
    this.verdicts = new Uint8Array(bufs.length);
    this.offsets = new Uint32Array(bufs.length);
    this.view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  }
}
