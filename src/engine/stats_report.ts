/**
 * The statistics l2fwd prints: one record per report built from two engine snapshots (for
 * rates), as a JSON line or a table. The JSON shape is documented in examples/l2fwd.ts
 * and the README ("Forwarding with l2fwd").
 *
 * @module
 */

import type {
  EngineSnapshot,
  GeneratorStats,
  PortStats,
  QueueStats,
  WorkerStats,
} from "./snapshot.ts";

/** One port in a report. */
export interface PortReport extends Omit<PortStats, "queues"> {
  /** "up", "down" or "unknown" (no VIRTIO_NET_F_STATUS). */
  link: string;
  /** Frames received per second since the last report. */
  rxPps: number;
  /** Frames transmitted per second since the last report. */
  txPps: number;
  /** Each queue pair, with its rates. */
  queues: (QueueStats & { rxPps: number; txPps: number })[];
  /** The virtqueue format, "split" or "packed" (given a {@linkcode PortInfo}). */
  ring?: string;
  /** The negotiated features by spec name (in the summary, given a {@linkcode PortInfo}). */
  features?: string[];
}

/** What a port negotiated, for the reports. */
export interface PortInfo {
  /** "split" or "packed". */
  ring: string;
  /** Negotiated features by spec name. */
  features: readonly string[];
}

/** One report line. */
export interface StatsReport {
  /** "stats" every second, "summary" at exit. */
  event: "stats" | "summary";
  /** Seconds since forwarding started. */
  elapsedS: number;
  /** Per port. */
  ports: PortReport[];
  /** Per worker. */
  workers: WorkerStats[];
  /** The script's counters and its own report, when a script runs. */
  script?: { counters: Record<string, number>; report?: unknown };
  /** Capture figures, when capturing. */
  pcap?: { captured: number; dropped: number; written: number };
  /** Device faults so far (a broken ring, DEVICE_NEEDS_RESET, a back-end gone), if any. */
  faults?: DeviceFault[];
  /** The generator's figures and latency (engine modes txonly and flowgen). */
  generator?: GeneratorStats;
}

/** A device fault the run met: when (seconds since the start) and the driver's sentence. */
export interface DeviceFault {
  /** Seconds since forwarding started. */
  atS: number;
  /** What the driver said (one sentence per failing port or queue). */
  reason: string;
}

/** What {@linkcode buildReport} needs besides the snapshots. */
export interface ReportContext {
  /** "stats" or "summary". */
  event: "stats" | "summary";
  /** Seconds since forwarding started. */
  elapsedS: number;
  /** Seconds between `prev` and `now`. */
  intervalS: number;
  /** Link state per port. */
  links: readonly string[];
  /** What the script reports, if a script runs. */
  scriptReport?: unknown;
  /** Frames written to the capture file, if capturing. */
  pcapWritten?: number;
  /** Device faults met so far (reported when there is at least one). */
  faults?: readonly DeviceFault[];
  /** Per port: its ring format (every report) and features (the summary). */
  portInfo?: readonly PortInfo[];
}

const rate = (now: number, before: number, s: number) => s > 0 ? Math.round((now - before) / s) : 0;

/**
 * A report from the snapshot `now`, with rates against `prev` (null: none yet).
 *
 * @example
 * ```ts ignore
 * const r = buildReport(engine.snapshot(), last, { event: "stats", elapsedS: 3, intervalS: 1, links: ["up", "up"] });
 * console.log(JSON.stringify(r));
 * ```
 */
export function buildReport(
  now: EngineSnapshot,
  prev: EngineSnapshot | null,
  ctx: ReportContext,
): StatsReport {
  const ports = now.ports.map((p, i): PortReport => {
    const b = prev?.ports[i];
    const { queues, ...totals } = p;
    const info = ctx.portInfo?.[i];
    return {
      ...totals,
      ...(info ? { ring: info.ring } : {}),
      ...(info && ctx.event === "summary" ? { features: [...info.features] } : {}),
      link: ctx.links[i] ?? "unknown",
      rxPps: rate(p.rxPackets, b?.rxPackets ?? 0, ctx.intervalS),
      txPps: rate(p.txPackets, b?.txPackets ?? 0, ctx.intervalS),
      queues: queues.map((q, k) => ({
        ...q,
        rxPps: rate(q.rxPackets, b?.queues[k].rxPackets ?? 0, ctx.intervalS),
        txPps: rate(q.txPackets, b?.queues[k].txPackets ?? 0, ctx.intervalS),
      })),
    };
  });
  const r: StatsReport = {
    event: ctx.event,
    elapsedS: +ctx.elapsedS.toFixed(3),
    ports,
    workers: now.workers,
  };
  if (now.scriptCounters) {
    r.script = { counters: now.scriptCounters };
    if (ctx.scriptReport !== undefined) r.script.report = ctx.scriptReport;
  }
  if (ctx.pcapWritten !== undefined) {
    let captured = 0, dropped = 0;
    for (const w of now.workers) {
      captured += w.pcapCaptured;
      dropped += w.pcapDropped;
    }
    r.pcap = { captured, dropped, written: ctx.pcapWritten };
  }
  if (ctx.faults?.length) r.faults = [...ctx.faults];
  if (now.generator) r.generator = now.generator;
  return r;
}

/**
 * The report as a few lines of text for a terminal.
 *
 * @example
 * ```ts ignore
 * console.log(formatTable(report));
 * ```
 */
export function formatTable(r: StatsReport): string {
  const nf = new Intl.NumberFormat("en");
  const n = (x: number) => nf.format(x);
  const lines = [
    `${r.event === "summary" ? "summary" : "stats"} at ${r.elapsedS.toFixed(1)} s`,
    "port queue       rx pkts      rx/s       tx pkts      tx/s   drop:ring  nobuf  script  kicks",
  ];
  const row = (
    port: string,
    q: string,
    s: {
      rxPackets: number;
      rxPps: number;
      txPackets: number;
      txPps: number;
      dropsTxRingFull: number;
      dropsNoBuffer: number;
      dropsScript: number;
      rxKicks: number;
      txKicks: number;
    },
  ) =>
    `${port.padStart(4)} ${q.padStart(5)} ${n(s.rxPackets).padStart(13)} ${
      n(s.rxPps).padStart(9)
    } ${n(s.txPackets).padStart(13)} ${n(s.txPps).padStart(9)} ${
      n(s.dropsTxRingFull).padStart(11)
    } ${n(s.dropsNoBuffer).padStart(6)} ${n(s.dropsScript).padStart(7)} ${
      n(s.rxKicks + s.txKicks).padStart(6)
    }`;
  for (const p of r.ports) {
    lines.push(`${row(String(p.port), "all", p)}  link ${p.link}`);
    if (p.queues.length > 1) { for (const q of p.queues) lines.push(row("", String(q.queue), q)); }
  }
  const heap = r.workers.map((w) =>
    w.heapWarm === 0
      ? `q${w.queue} ${w.state} heap ${(w.heapLast / 1024).toFixed(0)} KiB (warming up)`
      : `q${w.queue} ${w.state} heap ${(w.heapWarm / 1024).toFixed(0)} KiB at warm-up, ` +
        `${w.heapGrowth >= 0 ? "+" : ""}${w.heapGrowth} B since` +
        (w.heapLive && w.state === "done" ? " (live, after full GCs)" : "") +
        ` (${w.heapSteps} compile steps +${w.heapStepBytes} B, other seconds ${
          w.heapCreep >= 0 ? "+" : ""
        }${w.heapCreep} B)` +
        (w.heapDrops > 0 ? `, ${w.heapDrops} GC` : "")
  );
  lines.push(`workers: ${heap.join("; ")}`);
  if (r.script) lines.push(`script: ${JSON.stringify(r.script)}`);
  const g = r.generator, l = g?.latency;
  if (g) {
    lines.push(
      `generator: ${n(g.txFrames)} sent, ${n(g.rxFrames)} back (${n(g.seqGaps)} missing, ${
        n(g.seqLate)
      } late)` +
        (l
          ? `; latency µs min ${l.minUs} mean ${l.meanUs} p50 ${l.p50Us} p99 ${l.p99Us} p99.9 ${l.p999Us} max ${l.maxUs} jitter ${l.jitterUs}`
          : ""),
    );
  }
  if (r.pcap) {
    lines.push(
      `pcap: ${n(r.pcap.written)} written, ${n(r.pcap.dropped)} not captured (side buffer full)`,
    );
  }
  return lines.join("\n");
}
