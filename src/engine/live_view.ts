/**
 * A live terminal view of the statistics, redrawn in place once a report: per port its
 * link, receive and transmit rates, drops (every reason summed) and a sparkline of the
 * receive rate over the last minute, as DPDK users know from `dpdk-proc-info` or pktgen's
 * screen. Only for a terminal: the caller prints JSON lines otherwise. Pure: it returns the
 * text to write (ANSI cursor movement included), and touches no stream itself.
 *
 * @module
 */

import type { PortReport, StatsReport } from "./stats_report.ts";

/** The eight heights of a sparkline. */
const BARS = "▁▂▃▄▅▆▇█";

/**
 * Every drop reason of a port, summed (snapshot.ts's drops* fields).
 *
 * @example
 * ```ts ignore
 * portDrops(report.ports[0]); // dropsTxRingFull + dropsNoBuffer + … + dropsReset
 * ```
 */
export function portDrops(p: PortReport): number {
  return p.dropsTxRingFull + p.dropsNoBuffer + p.dropsScript + p.dropsRunt + p.dropsBadMerge +
    p.dropsTooLong + p.dropsBadOffload + p.dropsTxOffload + p.dropsReset + p.dropsMode;
}

/**
 * A sparkline of `values`, each scaled to the largest (all low when every value is 0).
 *
 * @example
 * ```ts
 * import { sparkline } from "./live_view.ts";
 * sparkline([0, 1, 2, 4]); // "▁▃▅█"
 * ```
 */
export function sparkline(values: readonly number[]): string {
  const top = Math.max(0, ...values);
  let s = "";
  for (const v of values) {
    const k = top > 0 ? Math.round((Math.max(0, v) / top) * (BARS.length - 1)) : 0;
    s += BARS[k];
  }
  return s;
}

/** Rates as people read them: 14.52 M, 830.1 k, 12. */
function rate(x: number): string {
  if (x >= 1e6) return `${(x / 1e6).toFixed(2)} M`;
  if (x >= 1e3) return `${(x / 1e3).toFixed(1)} k`;
  return x.toFixed(0);
}

/**
 * The view: {@linkcode LiveView.render} returns the text that replaces the last frame.
 *
 * @example
 * ```ts ignore
 * const view = new LiveView("l2fwd");
 * // each stats report, when stdout is a terminal:
 * Deno.stdout.writeSync(new TextEncoder().encode(view.render(report)));
 * ```
 */
export class LiveView {
  readonly #title: string;
  readonly #width: number;
  readonly #columns: number;
  readonly #history: number[][] = [];
  #lines = 0;

  /**
   * A view titled `title`, keeping `width` reports of history per port (default 60), its
   * lines cut to `columns` characters (the terminal's width: a wrapped line would throw the
   * redraw off by one).
   */
  constructor(title: string, width = 60, columns = 120) {
    this.#title = title;
    this.#width = width;
    this.#columns = Math.max(20, columns);
  }

  /**
   * The next frame for report `r`: the cursor moved back over the previous frame, which
   * is cleared, then the new one (ending with a newline).
   */
  render(r: StatsReport): string {
    const nf = new Intl.NumberFormat("en");
    for (const p of r.ports) {
      const h = (this.#history[p.port] ??= []);
      h.push(p.rxPps);
      if (h.length > this.#width) h.shift();
    }
    const lines = [
      `${this.#title}  ${r.elapsedS.toFixed(1)} s`,
      "port  link        rx/s        tx/s          rx total        drops  rx/s, last " +
      `${this.#width} s`,
    ];
    for (const p of r.ports) {
      lines.push(
        `${String(p.port).padStart(4)}  ${p.link.padEnd(7)} ${rate(p.rxPps).padStart(10)}  ${
          rate(p.txPps).padStart(10)
        } ${nf.format(p.rxPackets).padStart(17)} ${nf.format(portDrops(p)).padStart(12)}  ${
          sparkline(this.#history[p.port])
        }`,
      );
    }
    if (r.faults && r.faults.length > 0) {
      const f = r.faults[r.faults.length - 1];
      lines.push(`fault at ${f.atS.toFixed(1)} s: ${f.reason}`);
    }
    // Back to the previous frame's first line (CSI n F), clear to the end (CSI J).
    const back = this.#lines > 0 ? `\x1b[${this.#lines}F\x1b[J` : "";
    this.#lines = lines.length;
    const cut = lines.map((l) => [...l].slice(0, this.#columns - 1).join(""));
    return back + cut.join("\n") + "\n";
  }
}
