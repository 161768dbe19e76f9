/**
 * testpmd.ts's statistics table: each port as DPDK testpmd's `show port stats` prints it
 * (packets, errors and bytes each way, the rates since the last report), from the same
 * report l2fwd prints (src/engine/stats_report.ts).
 *
 * @module
 */

import type { EngineSnapshot, PortReport, StatsReport } from "../mod.ts";

const n = (v: number) => String(Math.round(v));

/**
 * One port's block. RX-missed: receive descriptors left empty (no free buffer);
 * RX-errors: frames the device delivered broken (runts, bad mergeable buffers, bad
 * offload fields); TX-errors: frames not sent (ring full, too long, an offload the port
 * cannot do); Mode-drops: frames the mode left unanswered (icmpecho).
 */
function portBlock(p: PortReport): string[] {
  const rxErrors = p.dropsRunt + p.dropsBadMerge + p.dropsBadOffload;
  const txErrors = p.dropsTxRingFull + p.dropsTooLong + p.dropsTxOffload;
  const col = (label: string, v: number) => `${label}: ${n(v)}`.padEnd(22);
  return [
    `  ######################## NIC statistics for port ${p.port}  ########################`,
    `  ${col("RX-packets", p.rxPackets)} ${col("RX-missed", p.dropsNoBuffer)} RX-bytes:  ${
      n(p.rxBytes)
    }`,
    `  RX-errors: ${n(rxErrors)}`,
    `  RX-nombuf:  ${n(p.dropsNoBuffer)}`,
    `  ${col("TX-packets", p.txPackets)} ${col("TX-errors", txErrors)} TX-bytes:  ${n(p.txBytes)}`,
    `  Mode-drops: ${n(p.dropsMode)}    Script-drops: ${n(p.dropsScript)}    link ${p.link}`,
    "",
    "  Throughput (since last show)",
    `  Rx-pps: ${n(p.rxPps).padStart(12)}`,
    `  Tx-pps: ${n(p.txPps).padStart(12)}`,
    "  ############################################################################",
  ];
}

/**
 * A report as testpmd's `show port stats all` (and, at exit, a line saying it is the
 * summary).
 *
 * @example
 * ```ts ignore
 * console.log(formatPortStats(report)); // "  ######## NIC statistics for port 0 …"
 * ```
 */
export function formatPortStats(r: StatsReport): string {
  const lines = r.ports.flatMap((p) => ["", ...portBlock(p)]);
  if (r.event === "summary") lines.unshift(`summary after ${r.elapsedS.toFixed(1)} s:`);
  if (r.script) lines.push(`script: ${JSON.stringify(r.script)}`);
  return lines.join("\n");
}

/**
 * The counters of `snap` as testpmd's `show port xstats` (port `port`, or all): every
 * extended statistic by DPDK's virtio names, then ours (src/engine/xstats.ts).
 *
 * @example
 * ```ts ignore
 * console.log(formatXstats(engine.snapshot(), "all")); // "###### NIC extended statistics for port 0 …"
 * ```
 */
export function formatXstats(snap: EngineSnapshot, port: number | "all"): string {
  const lines: string[] = [];
  for (const p of snap.ports) {
    if (port !== "all" && p.port !== port) continue;
    lines.push(`###### NIC extended statistics for port ${p.port}`);
    for (const [name, v] of Object.entries(p.xstats)) lines.push(`${name}: ${Math.round(v)}`);
  }
  return lines.join("\n");
}
