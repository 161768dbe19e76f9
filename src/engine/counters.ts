/**
 * The layout of a forwarding worker's counters: one Float64Array over a SharedArrayBuffer
 * per worker, written by the worker with plain stores as it goes and read by the main
 * thread whenever it reports.
 *
 * Memory ordering: each counter is an aligned 8-byte slot, and x86-64 performs aligned
 * 8-byte loads and stores whole (no torn values); under TSO the main thread sees a
 * worker's stores in the order they were made, at most a burst late. Counts stay exact as
 * long as they are below 2^53. Nothing here is a publication point, so no Atomics.
 *
 * Layout: a worker block of {@linkcode WORKER_SLOTS}, then one block of
 * {@linkcode PORT_SLOTS} per port (this worker's queue pair of that port), then the
 * script's named counters, then the script's table, then (only in the engine's generating
 * modes, txonly and flowgen) the generator's block of {@linkcode GEN_SLOTS}.
 *
 * @module
 */

// Worker block.
/** Worker state: {@linkcode STATE_STARTING} … {@linkcode STATE_DONE}. */
export const W_STATE = 0;
/** Polling loop iterations (updated every 64). */
export const W_LOOPS = 1;
/** Idle waits (the worker slept because nothing arrived). */
export const W_IDLE_WAITS = 2;
/**
 * V8 heap used (bytes) when warm-up ended: at the first once-a-second sample after the
 * worker received its warm-up packets and V8 compiled nothing for the engine's
 * `warmupQuietSeconds` (default 5), or after
 * twice the warm-up packets (worker.ts); after a full GC with the engine's `heapAudit`
 * (live memory), as sampled otherwise (garbage included); 0 before.
 */
export const W_HEAP_WARM = 3;
/**
 * V8 heap used (bytes) at the last sample: once a second, and when the loop stops (after
 * a full GC then, once warm-up ended, with `heapAudit`).
 */
export const W_HEAP_LAST = 4;
/**
 * Samples since warm-up at which the heap was smaller than at the sample before: a GC
 * ran (0 when none did; the worker's own full GC at the stop does not count).
 */
export const W_HEAP_DROPS = 5;
/** Free buffers in the worker's pool partition. */
export const W_POOL_AVAILABLE = 6;
/** Frames copied into the pcap side buffer. */
export const W_PCAP_CAPTURED = 7;
/** Frames not captured because the side buffer was full. */
export const W_PCAP_DROPPED = 8;
/** Milliseconds since the worker started forwarding when warm-up ended; 0 before. */
export const W_WARM_AT_MS = 9;
/** Milliseconds since the worker started forwarding (updated once a second and at the end). */
export const W_NOW_MS = 10;
/** Packets received by this worker when warm-up ended. */
export const W_WARM_PACKETS = 11;
/** Packets received by this worker (updated once a second and at the end). */
export const W_PACKETS = 12;
/**
 * Samples since warm-up at which the heap had grown by 1 KiB or more in one second: V8
 * compiling (or re-compiling) the loop's functions, which it does in a few steps spread
 * over the first ~300,000 packets. Memory the loop allocated per packet would grow the
 * heap second after second instead.
 */
export const W_HEAP_STEPS = 13;
/** Bytes those steps added. */
export const W_HEAP_STEP_BYTES = 14;
/** Packets received by this worker at the last such step. */
export const W_LAST_STEP_PACKETS = 15;
/**
 * What the heap grew by (bytes) in the seconds since warm-up that were neither steps nor
 * GCs: garbage the loop made, such as its samples' own few bytes.
 */
export const W_HEAP_CREEP = 16;
/**
 * 1 when the worker runs a full GC before it reads the heap at warm-up and at the stop
 * (so those two figures are live memory): only with the engine's `heapAudit`, and when
 * this Deno offers a GC; 0 otherwise (the figures are sampled as the heap is).
 */
export const W_FULL_GC = 17;
/**
 * Full GCs the worker forced (heapAudit only; each pauses forwarding, ~0.3–0.6 s under
 * TCG emulation, so without heapAudit there are none).
 */
export const W_FORCED_GCS = 18;
/** Synthetic frames the worker forwarded to warm its code before adopting its queues (prewarm.ts). */
export const W_PREWARM_FRAMES = 19;
/** Milliseconds that warm-up took. */
export const W_PREWARM_MS = 20;
/** Size of the worker block. */
export const WORKER_SLOTS = 21;

/** The worker has been created and is building its queues. */
export const STATE_STARTING = 0;
/** The worker is forwarding. */
export const STATE_RUNNING = 1;
/** The worker saw the stop flag and is draining its transmit queues. */
export const STATE_DRAINING = 2;
/** The worker finished. */
export const STATE_DONE = 3;
/** The worker stopped on an error. */
export const STATE_FAILED = 4;

// Per-port block (this worker's queue pair of the port): the queue pair's counters, in
// the layout the receive and transmit queues count into (src/net/queue_counters.ts).
export * from "../net/queue_counters.ts";
import { PORT_SLOTS } from "../net/queue_counters.ts";
import { LATENCY_SLOTS } from "./latency.ts";

// Generator block (generator.ts), from CounterLayout.genBase.
/** Frames received that carry the generator's magic (their latency is recorded). */
export const G_RX_GEN = 0;
/** Frames received without it (counted and freed). */
export const G_RX_OTHER = 1;
/** Generated frames of another worker's streams (latency recorded, sequence not checked). */
export const G_RX_FOREIGN = 2;
/** Frames missing by sequence number: a flow's number jumped ahead by that many. */
export const G_SEQ_GAPS = 3;
/** Frames that came after a later one of their flow (reordered or duplicated). */
export const G_SEQ_LATE = 4;
/** Frames not generated because the worker's pool partition had no free buffer. */
export const G_ALLOC_FAILS = 5;
/** First slot of the latency block (latency.ts's layout). */
export const G_LATENCY = 8;
/** Size of the generator block. */
export const GEN_SLOTS: number = G_LATENCY + LATENCY_SLOTS;

/** Where things are in one worker's counter array. */
export interface CounterLayout {
  /** Number of ports. */
  ports: number;
  /** Number of script counters. */
  scriptCounters: number;
  /** Numbers in the script's table. */
  tableSize: number;
  /** First slot of the script counters. */
  scriptBase: number;
  /** First slot of the script table. */
  tableBase: number;
  /** First slot of the generator block, -1 when there is none (io forwarding). */
  genBase: number;
  /** Slots in all. */
  length: number;
}

/**
 * The layout for `ports` ports and a script with `scriptCounters` counters and a table of
 * `tableSize` numbers, with the generator's block when `generator`.
 *
 * @example
 * ```ts
 * import { counterLayout, portBase } from "./counters.ts";
 * const l = counterLayout(2, 1, 0);
 * portBase(1); // WORKER_SLOTS + PORT_SLOTS
 * l.length; // WORKER_SLOTS + 2 * PORT_SLOTS + 1
 * ```
 */
export function counterLayout(
  ports: number,
  scriptCounters: number,
  tableSize: number,
  generator = false,
): CounterLayout {
  const scriptBase = WORKER_SLOTS + ports * PORT_SLOTS;
  const tableBase = scriptBase + scriptCounters;
  const end = tableBase + tableSize;
  return {
    ports,
    scriptCounters,
    tableSize,
    scriptBase,
    tableBase,
    genBase: generator ? end : -1,
    length: end + (generator ? GEN_SLOTS : 0),
  };
}

/**
 * First slot of port `port`'s block.
 *
 * @example
 * ```ts
 * import { P_RX_PACKETS, portBase } from "./counters.ts";
 * portBase(0) + P_RX_PACKETS; // WORKER_SLOTS + P_RX_PACKETS
 * ```
 */
export function portBase(port: number): number {
  return WORKER_SLOTS + port * PORT_SLOTS;
}

/**
 * A new, zeroed counter array in shared memory for `layout`.
 *
 * @example
 * ```ts
 * import { counterLayout, sharedCounters } from "./counters.ts";
 * sharedCounters(counterLayout(2, 0, 0)).length; // WORKER_SLOTS + 2 * PORT_SLOTS
 * ```
 */
export function sharedCounters(layout: CounterLayout): Float64Array {
  return new Float64Array(new SharedArrayBuffer(8 * layout.length));
}
