/**
 * Reading the workers' shared counters into one statistics snapshot (main thread): per
 * port and per queue pair, totals that are sums of the per-queue numbers, and per-worker
 * heap and loop figures. The layout is in counters.ts.
 *
 * @module
 */

import { type LatencySummary, mergeLatency } from "./latency.ts";
import {
  type CounterLayout,
  G_ALLOC_FAILS,
  G_LATENCY,
  G_RX_FOREIGN,
  G_RX_GEN,
  G_RX_OTHER,
  G_SEQ_GAPS,
  G_SEQ_LATE,
  P_DROP_BAD_MERGE,
  P_DROP_BAD_OFFLOAD,
  P_DROP_MODE,
  P_DROP_NO_BUFFER,
  P_DROP_RUNT,
  P_DROP_SCRIPT,
  P_DROP_TOO_LONG,
  P_DROP_TX_OFFLOAD,
  P_DROP_TX_RING_FULL,
  P_RX_BURSTS,
  P_RX_BYTES,
  P_RX_CSUM_PARTIAL,
  P_RX_CSUM_VALID,
  P_RX_GSO,
  P_RX_KICKS,
  P_RX_KICKS_SUPPRESSED,
  P_RX_PACKETS,
  P_RX_SIBLING_WAKES,
  P_TX_BYTES,
  P_TX_KICKS,
  P_TX_KICKS_SUPPRESSED,
  P_TX_OFFLOADED,
  P_TX_PACKETS,
  P_TX_RING_FULL_WAITS,
  PORT_SLOTS,
  portBase,
  STATE_DONE,
  STATE_DRAINING,
  STATE_FAILED,
  STATE_RUNNING,
  W_FORCED_GCS,
  W_FULL_GC,
  W_HEAP_CREEP,
  W_HEAP_DROPS,
  W_HEAP_LAST,
  W_HEAP_STEP_BYTES,
  W_HEAP_STEPS,
  W_HEAP_WARM,
  W_IDLE_WAITS,
  W_LAST_STEP_PACKETS,
  W_LOOPS,
  W_NOW_MS,
  W_PACKETS,
  W_PCAP_CAPTURED,
  W_PCAP_DROPPED,
  W_POOL_AVAILABLE,
  W_PREWARM_FRAMES,
  W_PREWARM_MS,
  W_STATE,
  W_WARM_AT_MS,
  W_WARM_PACKETS,
} from "./counters.ts";
import { portXstats } from "./xstats.ts";

/** Counters of one queue pair of one port (or their sums over a port's pairs). */
export interface QueueCounters {
  /** Frames received. */
  rxPackets: number;
  /** Bytes received (headers excluded). */
  rxBytes: number;
  /** Frames transmitted. */
  txPackets: number;
  /** Bytes transmitted. */
  txBytes: number;
  /** Frames dropped: transmit ring full (with txFull "drop", or left at stop). */
  dropsTxRingFull: number;
  /** Transmit bursts a full ring did not take whole; the rest waited (txFull "wait"). */
  txRingFullWaits: number;
  /** Receive descriptors left empty: no free buffers. */
  dropsNoBuffer: number;
  /** Frames received here and dropped by the script. */
  dropsScript: number;
  /** Frames received here that the forwarding mode left unanswered (icmpecho). */
  dropsMode: number;
  /** Buffers returned without a frame. */
  dropsRunt: number;
  /** Frames whose mergeable receive buffers broke §5.1.6.4's rules. */
  dropsBadMerge: number;
  /** Frames too long to transmit. */
  dropsTooLong: number;
  /** Frames whose device-written offload fields broke §5.1.6.4.1 (docs/offloads.md). */
  dropsBadOffload: number;
  /** Frames to go out here with an offload request the port cannot honour. */
  dropsTxOffload: number;
  /** Frames received with a checksum the device checked (DATA_VALID). */
  rxCsumValid: number;
  /** Frames received with a partial checksum (NEEDS_CSUM). */
  rxCsumPartial: number;
  /** Frames received as TCP super-frames (large receive). */
  rxGso: number;
  /** Frames sent with an offload request (partial checksum, TSO). */
  txOffloaded: number;
  /** Receive bursts that brought frames. */
  rxBursts: number;
  /** Notifications on the receive queue. */
  rxKicks: number;
  /** Notifications on the transmit queue. */
  txKicks: number;
  /** Publications without a notification (the device suppressed it), both queues. */
  kicksSuppressed: number;
  /** Notifications to the port's other receive queues after this one ran dry. */
  rxSiblingWakes: number;
  /**
   * Frames to go out of this port that were lost when the ports were reset between two
   * engine sessions (src/engine/sessions.ts; l2fwd --reconnect): received, never sent.
   */
  dropsReset: number;
}

/** One queue pair of a port. */
export interface QueueStats extends QueueCounters {
  /** Queue pair index. */
  queue: number;
}

/** One port: totals (sums of its queue pairs) and each pair. */
export interface PortStats extends QueueCounters {
  /** Port index. */
  port: number;
  /** Its name. */
  name: string;
  /** Notifications sent, both directions (rxKicks + txKicks). */
  kicks: number;
  /** Each queue pair. */
  queues: QueueStats[];
  /**
   * Extended statistics named as DPDK's virtio PMD names them (`rx_q0_good_packets`, …),
   * then ours in the same style (xstats.ts); queue N is queue pair N (worker N).
   */
  xstats: Record<string, number>;
}

/** One worker. */
export interface WorkerStats {
  /** Its queue pair. */
  queue: number;
  /** starting, running, draining, done or failed. */
  state: string;
  /** Polling loop iterations. */
  loops: number;
  /** Times it slept because nothing arrived. */
  idleWaits: number;
  /**
   * Its isolate's V8 heap used when warm-up ended, at the first once-a-second sample after
   * its warm-up packets once V8 compiled nothing for `warmupQuietSeconds` (default 5 s;
   * or after twice the warm-up
   * packets), after a full GC with `heapAudit` (bytes; 0 before).
   */
  heapWarm: number;
  /**
   * Heap used at the last sample (bytes): once a second, and when it stopped forwarding
   * (after a full GC then, once warm-up had ended, with `heapAudit`).
   */
  heapLast: number;
  /**
   * heapLast - heapWarm: what the heap did since warm-up (0 before). Once the worker is
   * done, the growth of its live memory from warm-up to the stop.
   */
  heapGrowth: number;
  /**
   * heapWarm, and heapLast once done, were taken after a full GC (live memory): only with
   * the engine option `heapAudit`. Otherwise they are the heap as sampled, garbage
   * included, and no GC was forced.
   */
  heapLive: boolean;
  /** Full GCs the worker forced (0 without `heapAudit`): each one paused forwarding. */
  forcedGcs: number;
  /** Synthetic frames forwarded to warm the code before the queues were adopted (prewarm.ts). */
  prewarmFrames: number;
  /** Milliseconds that warm-up took. */
  prewarmMs: number;
  /**
   * Seconds since warm-up in which the heap grew by 1 KiB or more: V8 compiling the loop
   * (a few steps; counters.ts, W_HEAP_STEPS).
   */
  heapSteps: number;
  /** What those steps added (bytes). */
  heapStepBytes: number;
  /**
   * What all the other seconds since warm-up added, GCs aside (bytes): garbage the loop
   * made, such as its once-a-second samples' own few bytes.
   */
  heapCreep: number;
  /**
   * Samples since warm-up at which the heap had shrunk: GCs (0 when none ran; the full
   * GC at the stop does not count).
   */
  heapDrops: number;
  /** Packets it had received when warm-up ended. */
  warmPackets: number;
  /** Milliseconds it had been forwarding when warm-up ended. */
  warmAtMs: number;
  /** Packets it had received at the last compile step (0: none yet). */
  lastStepPackets: number;
  /** Packets it had received (updated once a second and at the stop). */
  packets: number;
  /** Milliseconds it had been forwarding (updated once a second and at the stop). */
  nowMs: number;
  /** Free buffers in its partition. */
  poolAvailable: number;
  /** Frames it copied to the pcap side buffer. */
  pcapCaptured: number;
  /** Frames it could not copy there (side buffer full). */
  pcapDropped: number;
}

/** The generating modes' figures (txonly, flowgen), summed over workers. */
export interface GeneratorStats {
  /** Frames generated and handed to the devices, both ports (the ports' txPackets). */
  txFrames: number;
  /** Frames received that carry the generator's magic (their latency is recorded). */
  rxFrames: number;
  /** Frames received without it. */
  rxOther: number;
  /** Generated frames of another worker's streams (received by this one). */
  rxForeign: number;
  /** Frames missing by sequence number (a flow's number jumped ahead). */
  seqGaps: number;
  /** Frames that came after a later one of their flow. */
  seqLate: number;
  /** Frames not generated for want of a free buffer. */
  allocFails: number;
  /** Latency of the frames that came back (null: none yet). */
  latency: LatencySummary | null;
}

/** Everything the counters say at one moment. */
export interface EngineSnapshot {
  /** Per port. */
  ports: PortStats[];
  /** Per worker (= queue pair). */
  workers: WorkerStats[];
  /** The script's counters summed over workers (by name), if a script runs. */
  scriptCounters: Record<string, number> | null;
  /** The generator's figures, in the modes txonly and flowgen only. */
  generator?: GeneratorStats;
}

const STATE_NAMES: Record<number, string> = {
  [STATE_RUNNING]: "running",
  [STATE_DRAINING]: "draining",
  [STATE_DONE]: "done",
  [STATE_FAILED]: "failed",
};

function queueCounters(c: Float64Array, o: number): QueueCounters {
  return {
    rxPackets: c[o + P_RX_PACKETS],
    rxBytes: c[o + P_RX_BYTES],
    txPackets: c[o + P_TX_PACKETS],
    txBytes: c[o + P_TX_BYTES],
    dropsTxRingFull: c[o + P_DROP_TX_RING_FULL],
    txRingFullWaits: c[o + P_TX_RING_FULL_WAITS],
    dropsNoBuffer: c[o + P_DROP_NO_BUFFER],
    dropsScript: c[o + P_DROP_SCRIPT],
    dropsMode: c[o + P_DROP_MODE],
    dropsRunt: c[o + P_DROP_RUNT],
    dropsBadMerge: c[o + P_DROP_BAD_MERGE],
    dropsTooLong: c[o + P_DROP_TOO_LONG],
    dropsBadOffload: c[o + P_DROP_BAD_OFFLOAD],
    dropsTxOffload: c[o + P_DROP_TX_OFFLOAD],
    rxCsumValid: c[o + P_RX_CSUM_VALID],
    rxCsumPartial: c[o + P_RX_CSUM_PARTIAL],
    rxGso: c[o + P_RX_GSO],
    txOffloaded: c[o + P_TX_OFFLOADED],
    rxBursts: c[o + P_RX_BURSTS],
    rxKicks: c[o + P_RX_KICKS],
    txKicks: c[o + P_TX_KICKS],
    kicksSuppressed: c[o + P_RX_KICKS_SUPPRESSED] + c[o + P_TX_KICKS_SUPPRESSED],
    rxSiblingWakes: c[o + P_RX_SIBLING_WAKES],
    dropsReset: 0, // an engine session never resets its ports (sessions.ts counts these)
  };
}

/**
 * Reads every worker's counters (`counters[k]` is worker k's) into a snapshot.
 *
 * @example
 * ```ts
 * import { counterLayout, sharedCounters } from "./counters.ts";
 * import { readSnapshot } from "./snapshot.ts";
 * const layout = counterLayout(2, 0, 0);
 * const s = readSnapshot([sharedCounters(layout)], layout, ["a", "b"], []);
 * s.ports[1].queues.length; // 1
 * ```
 */
export function readSnapshot(
  counters: readonly Float64Array[],
  layout: CounterLayout,
  portNames: readonly string[],
  scriptCounterNames: readonly string[],
): EngineSnapshot {
  const ports: PortStats[] = portNames.map((name, p) => {
    const queues = counters.map((c, k) => ({ queue: k, ...queueCounters(c, portBase(p)) }));
    const total = queueCounters(new Float64Array(PORT_SLOTS), 0);
    for (const q of queues) {
      for (const key of Object.keys(total) as (keyof QueueCounters)[]) total[key] += q[key];
    }
    const xstats = portXstats(counters.map((c) => ({ counters: c, base: portBase(p) })));
    return { port: p, name, ...total, kicks: total.rxKicks + total.txKicks, queues, xstats };
  });
  const workers: WorkerStats[] = counters.map((c, k) => {
    const growth = c[W_HEAP_WARM] > 0 ? c[W_HEAP_LAST] - c[W_HEAP_WARM] : 0;
    return {
      queue: k,
      state: STATE_NAMES[c[W_STATE]] ?? "starting",
      loops: c[W_LOOPS],
      idleWaits: c[W_IDLE_WAITS],
      heapWarm: c[W_HEAP_WARM],
      heapLast: c[W_HEAP_LAST],
      heapGrowth: growth,
      heapLive: c[W_FULL_GC] === 1,
      forcedGcs: c[W_FORCED_GCS],
      prewarmFrames: c[W_PREWARM_FRAMES],
      prewarmMs: Math.round(c[W_PREWARM_MS]),
      heapSteps: c[W_HEAP_STEPS],
      heapStepBytes: c[W_HEAP_STEP_BYTES],
      heapCreep: c[W_HEAP_CREEP],
      heapDrops: c[W_HEAP_DROPS],
      warmPackets: c[W_WARM_PACKETS],
      warmAtMs: c[W_WARM_AT_MS],
      lastStepPackets: c[W_LAST_STEP_PACKETS],
      packets: c[W_PACKETS],
      nowMs: c[W_NOW_MS],
      poolAvailable: c[W_POOL_AVAILABLE],
      pcapCaptured: c[W_PCAP_CAPTURED],
      pcapDropped: c[W_PCAP_DROPPED],
    };
  });
  let scriptCounters: Record<string, number> | null = null;
  if (scriptCounterNames.length > 0 || layout.tableSize > 0) {
    scriptCounters = {};
    for (const [i, name] of scriptCounterNames.entries()) {
      let sum = 0;
      for (const c of counters) sum += c[layout.scriptBase + i];
      scriptCounters[name] = sum;
    }
  }
  const snap: EngineSnapshot = { ports, workers, scriptCounters };
  if (layout.genBase >= 0) snap.generator = generatorStats(counters, layout.genBase, ports);
  return snap;
}

/** The generator blocks at `g` of every worker's counters, merged. */
function generatorStats(
  counters: readonly Float64Array[],
  g: number,
  ports: readonly PortStats[],
): GeneratorStats {
  const sum = (slot: number) => counters.reduce((s, c) => s + c[g + slot], 0);
  return {
    txFrames: ports.reduce((s, p) => s + p.txPackets, 0),
    rxFrames: sum(G_RX_GEN),
    rxOther: sum(G_RX_OTHER),
    rxForeign: sum(G_RX_FOREIGN),
    seqGaps: sum(G_SEQ_GAPS),
    seqLate: sum(G_SEQ_LATE),
    allocFails: sum(G_ALLOC_FAILS),
    latency: mergeLatency(counters, g + G_LATENCY),
  };
}
