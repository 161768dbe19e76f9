/**
 * One queue pair's counters for unit tests of reports and sessions: zero but `c`.
 *
 * @module
 */

import type { QueueCounters } from "../../src/engine/snapshot.ts";

/**
 * Counters of one queue pair, zero but the ones given.
 *
 * @example
 * ```ts ignore
 * counters({ rxPackets: 10 }).txPackets; // 0
 * ```
 */
export function counters(c: Partial<QueueCounters> = {}): QueueCounters {
  return {
    rxPackets: 0,
    rxBytes: 0,
    txPackets: 0,
    txBytes: 0,
    dropsTxRingFull: 0,
    txRingFullWaits: 0,
    dropsNoBuffer: 0,
    dropsScript: 0,
    dropsMode: 0,
    dropsRunt: 0,
    dropsBadMerge: 0,
    dropsTooLong: 0,
    dropsBadOffload: 0,
    dropsTxOffload: 0,
    rxCsumValid: 0,
    rxCsumPartial: 0,
    rxGso: 0,
    txOffloaded: 0,
    rxBursts: 0,
    rxKicks: 0,
    txKicks: 0,
    kicksSuppressed: 0,
    rxSiblingWakes: 0,
    dropsReset: 0,
    ...c,
  };
}
