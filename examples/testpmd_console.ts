/**
 * What testpmd's interactive commands (testpmd_commands.ts) do to a running
 * examples/testpmd.ts: `start` and `stop` resume and halt the engine (its workers keep
 * their queues; halted, the ports' receive rings fill, as testpmd's do), `set fwd` (only
 * while stopped, as testpmd) starts a new engine session in the new mode, `show port
 * stats` prints testpmd's table with the throughput since the last show, `clear port
 * stats` counts from zero again, `stop` prints testpmd's forward statistics since `start`.
 *
 * @module
 */

import {
  checkEngineOptions,
  type EngineOptions,
  type EngineSnapshot,
  isEngineMode,
  sinceSnapshot,
  type StatsReport,
} from "../mod.ts";
import type { ConsoleTarget } from "./testpmd_commands.ts";

/** What the console needs of the application (examples/fwd_app.ts). */
export interface ConsoleHost {
  /** Number of ports. */
  ports: number;
  /** The engine options of the running session (mode included). */
  options(): EngineOptions;
  /** Counters of every session so far. */
  snapshot(): EngineSnapshot;
  /** A statistics report of `snap` with rates against `prev` over `intervalS` seconds. */
  report(snap: EngineSnapshot, prev: EngineSnapshot | null, intervalS: number): StatsReport;
  /** testpmd's `show port stats` of a report. */
  formatTable(r: StatsReport): string;
  /** testpmd's `show port xstats` of the counters. */
  formatXstats(snap: EngineSnapshot, port: number | "all"): string;
  /** Halts (true) or resumes (false) the engine. */
  halt(on: boolean): void;
  /** Asks the engine to send `bursts` bursts out of each port (ForwardingEngine.txFirst). */
  txFirst(bursts: number): void;
  /** True while halted. */
  halted(): boolean;
  /** Ends this session and starts another, halted, with `options` (ports reset and reopened). */
  restart(options: EngineOptions): Promise<void>;
}

const pad = (label: string, v: number) => `${label}: ${v}`.padEnd(27);

/** testpmd's forward statistics of `s` (counted since `start`). */
function forwardStats(s: EngineSnapshot): string {
  const lines: string[] = [];
  let rx = 0, rxDrop = 0, tx = 0, txDrop = 0;
  const block = (r: number, rd: number, t: number, td: number) => [
    `  ${pad("RX-packets", r)}${pad("RX-dropped", rd)}RX-total: ${r + rd}`,
    `  ${pad("TX-packets", t)}${pad("TX-dropped", td)}TX-total: ${t + td}`,
  ];
  for (const p of s.ports) {
    const rd = p.dropsNoBuffer + p.dropsRunt + p.dropsBadMerge + p.dropsBadOffload +
      p.dropsScript + p.dropsMode;
    const td = p.dropsTxRingFull + p.dropsTooLong + p.dropsTxOffload + p.dropsReset;
    rx += p.rxPackets, rxDrop += rd, tx += p.txPackets, txDrop += td;
    lines.push(
      "",
      `  ---------------------- Forward statistics for port ${p.port}  ----------------------`,
      ...block(p.rxPackets, rd, p.txPackets, td),
      "  ----------------------------------------------------------------------------",
    );
  }
  lines.push(
    "",
    "  +++++++++++++++ Accumulated forward statistics for all ports+++++++++++++++",
    ...block(rx, rxDrop, tx, txDrop),
    "  ++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++",
  );
  if (s.generator) lines.push(`generator: ${JSON.stringify(s.generator)}`);
  return lines.join("\n");
}

/**
 * The commands' target over `host`.
 *
 * @example
 * ```ts ignore
 * await commandLoop(linesOf(Deno.stdin.readable), testpmdConsole(host), print, "testpmd> ");
 * ```
 */
export function testpmdConsole(host: ConsoleHost): ConsoleTarget {
  let started: EngineSnapshot | null = null; // counters at the last start
  let cleared: EngineSnapshot | null = null; // counters at the last clear
  let shown: EngineSnapshot | null = null, shownAt = performance.now();
  const only = (r: StatsReport, port: number | "all"): StatsReport =>
    port === "all" ? r : { ...r, ports: r.ports.filter((p) => p.port === port) };
  return {
    ports: host.ports,
    start(txFirst: number) {
      if (!host.halted()) return Promise.resolve("Packet forwarding already started");
      const mode = host.options().mode ?? "io";
      if (txFirst > 0 && (mode === "txonly" || mode === "flowgen")) {
        return Promise.reject(
          new Error(`start tx_first is for forwarding modes: ${mode} sends on its own; use start.`),
        );
      }
      started = host.snapshot();
      if (txFirst > 0) host.txFirst(txFirst);
      host.halt(false);
      return Promise.resolve(`${mode} packet forwarding started`);
    },
    stop() {
      if (host.halted()) return Promise.resolve("Packet forwarding not started");
      host.halt(true);
      // What the workers held goes out within their drain time (100 µs by default).
      return new Promise((resolve) =>
        setTimeout(() => {
          const s = sinceSnapshot(host.snapshot(), started);
          resolve(`Telling cores to stop...\n${forwardStats(s)}\nDone.`);
        }, 20)
      );
    },
    async setForwardMode(mode: string) {
      if (!isEngineMode(mode)) {
        throw new Error(
          `${mode} is not a forwarding mode: use io, mac, macswap, 5tswap, rxonly, icmpecho, txonly or flowgen.`,
        );
      }
      if (!host.halted()) throw new Error("Please stop forwarding first");
      // The mode says it all: "mac" is the MAC rewrite, which no other mode keeps.
      const options = { ...host.options(), mode, halted: true, macRewrite: false };
      if (mode !== "flowgen" && options.generator) {
        options.generator = { ...options.generator, flows: undefined };
      }
      if (mode !== "txonly" && mode !== "flowgen") options.generator = undefined;
      checkEngineOptions(options); // a mode the run cannot take is refused here, in a sentence
      await host.restart(options);
      started = cleared = shown = null;
      return `Set ${mode} packet forwarding mode`;
    },
    portStats(port) {
      const now = performance.now(), snap = sinceSnapshot(host.snapshot(), cleared);
      const prev = shown === null ? null : sinceSnapshot(shown, cleared);
      const r = host.report(snap, prev, (now - shownAt) / 1000);
      shown = host.snapshot();
      shownAt = now;
      return host.formatTable(only(r, port));
    },
    portXstats(port) {
      return host.formatXstats(sinceSnapshot(host.snapshot(), cleared), port);
    },
    clearPortStats(port) {
      cleared = shown = host.snapshot();
      shownAt = performance.now();
      return port === "all"
        ? "  NIC statistics for all ports cleared"
        : `  NIC statistics for port ${port} cleared (counting of every port starts again)`;
    },
  };
}
