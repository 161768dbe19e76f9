/**
 * The forwarding engine's public API: {@linkcode ForwardingEngine} (one Deno Worker per
 * queue pair, run to completion), the script API scripts are written against, and the
 * statistics records l2fwd prints.
 *
 * @example
 * ```ts ignore
 * import { createSharedPool, openPort } from "../../mod.ts";
 * import { ForwardingEngine } from "./mod.ts";
 * const pool = createSharedPool(8192);
 * const ports = ["0000:00:04.0", "0000:00:05.0"].map((a) => openPort(a, { pool, queuePairs: 2 }));
 * const engine = await ForwardingEngine.start(ports, pool);
 * ```
 *
 * @module
 */

export {
  type EngineOptions,
  type EngineStopped,
  ForwardingEngine,
  type GeneratorOptions,
} from "./engine.ts";
export type { LatencySummary } from "./latency.ts";
export { checkEngineOptions } from "./engine_options.ts";
export { LiveView } from "./live_view.ts";
export type { CaptureDirection, PrewarmParams } from "./worker_spec.ts";
export { PrewarmedWorkers } from "./prewarmed_workers.ts";
export {
  ENGINE_MODES,
  type EngineMode,
  FORWARD_MODES,
  type ForwardMode,
  isEngineMode,
  isForwardMode,
} from "./fwd_modes/modes.ts";
export {
  asForwardScript,
  BOUNCE,
  type Burst,
  DROP,
  FORWARD,
  type ForwardScript,
  type ScriptInit,
  type ScriptReportInput,
} from "./script_api.ts";
export type {
  EngineSnapshot,
  GeneratorStats,
  PortStats,
  QueueCounters,
  QueueStats,
  WorkerStats,
} from "./snapshot.ts";
export { addSessions, endSession, sinceSnapshot } from "./sessions.ts";
export {
  buildReport,
  type DeviceFault,
  formatTable,
  type PortInfo,
  type PortReport,
  type ReportContext,
  type StatsReport,
} from "./stats_report.ts";
export {
  addXstats,
  DPDK_VIRTIO_QUEUE_STATS,
  OWN_RXQ_STATS,
  OWN_TXQ_STATS,
  portXstats,
  type QueueBlock,
  XSTAT_HELP,
} from "./xstats.ts";
export {
  formatPrometheus,
  type PortXstats,
  type PromFamily,
  type PromSample,
  writeFileAtomic,
  xstatsFamilies,
} from "./prometheus.ts";
