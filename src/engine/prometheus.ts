/**
 * Prometheus' text exposition format (version 0.0.4, what node_exporter's textfile
 * collector and a plain scrape read): a pure formatter ({@linkcode formatPrometheus}), the
 * families for ports' extended statistics ({@linkcode xstatsFamilies}: `rx_q0_good_packets`
 * of port 0 becomes `virtio_net_rx_good_packets{port="0",name="…",queue="0"}`), and a file
 * written so that a reader never sees half of it ({@linkcode writeFileAtomic}).
 *
 * @module
 */

import { renamePath, writeBytes } from "../../ffi/fs.ts";
import { XSTAT_HELP } from "./xstats.ts";

/** One sample: its labels (in order) and value. */
export interface PromSample {
  /** Label names and values; names as Prometheus allows, values any text. */
  labels: Readonly<Record<string, string>>;
  /** The value. */
  value: number;
}

/** One metric family: # HELP, # TYPE and its samples. */
export interface PromFamily {
  /** Metric name: [a-zA-Z_:][a-zA-Z0-9_:]*. */
  name: string;
  /** One line on what it counts. */
  help: string;
  /** "counter" (only goes up) or "gauge". */
  type: "counter" | "gauge";
  /** Its samples. */
  samples: readonly PromSample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

const escapeHelp = (s: string) => s.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
const escapeLabel = (s: string) =>
  s.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");

function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

/**
 * The families as Prometheus text: per family a `# HELP` and a `# TYPE` line, then one
 * line per sample (`name{label="value",…} value`); label values and help escaped as the
 * format says (backslash, double quote, newline). Throws a RangeError on a metric or
 * label name the format does not allow.
 *
 * @example
 * ```ts
 * import { formatPrometheus } from "./prometheus.ts";
 * formatPrometheus([{
 *   name: "frames", help: "Frames.", type: "counter",
 *   samples: [{ labels: { port: "0" }, value: 3 }],
 * }]); // '# HELP frames Frames.\n# TYPE frames counter\nframes{port="0"} 3\n'
 * ```
 */
export function formatPrometheus(families: readonly PromFamily[]): string {
  const out: string[] = [];
  for (const f of families) {
    if (!METRIC_NAME.test(f.name)) {
      throw new RangeError(`'${f.name}' is no Prometheus metric name: use [a-zA-Z0-9_:] only`);
    }
    out.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`);
    for (const s of f.samples) {
      const labels = Object.entries(s.labels).map(([k, v]) => {
        if (!LABEL_NAME.test(k)) {
          throw new RangeError(`'${k}' is no Prometheus label name: use [a-zA-Z0-9_] only`);
        }
        return `${k}="${escapeLabel(v)}"`;
      });
      out.push(`${f.name}${labels.length ? `{${labels.join(",")}}` : ""} ${formatValue(s.value)}`);
    }
  }
  return out.length ? out.join("\n") + "\n" : "";
}

/** A port's extended statistics, as in a snapshot (snapshot.ts PortStats). */
export interface PortXstats {
  /** Port index. */
  port: number;
  /** Its name (a label). */
  name: string;
  /** Its extended statistics by xstats name (xstats.ts). */
  xstats: Readonly<Record<string, number>>;
}

/**
 * Metric families for ports' extended statistics: `rx_qN_STAT` becomes
 * `PREFIX_rx_STAT{port="P",name="NAME",queue="N"}` (one family per statistic, every
 * port's and queue's samples in it), a name without a queue `PREFIX_STAT{port,name}`.
 * All are counters; help from xstats.ts's XSTAT_HELP.
 *
 * @example
 * ```ts
 * import { formatPrometheus, xstatsFamilies } from "./prometheus.ts";
 * const text = formatPrometheus(
 *   xstatsFamilies([{ port: 0, name: "p0", xstats: { rx_q0_good_packets: 7 } }]),
 * );
 * text.includes('virtio_net_rx_good_packets{port="0",name="p0",queue="0"} 7'); // true
 * ```
 */
export function xstatsFamilies(
  ports: readonly PortXstats[],
  prefix = "virtio_net",
): PromFamily[] {
  const families = new Map<string, { help: string; samples: PromSample[] }>();
  for (const p of ports) {
    for (const [stat, value] of Object.entries(p.xstats)) {
      const m = /^(rx|tx)_q(\d+)_(.+)$/.exec(stat);
      const key = m ? `${m[1]}_${m[3]}` : stat;
      const labels: Record<string, string> = { port: String(p.port), name: p.name };
      if (m) labels.queue = m[2];
      let f = families.get(key);
      if (!f) {
        f = { help: XSTAT_HELP[key] ?? `${key} (extended statistic).`, samples: [] };
        families.set(key, f);
      }
      f.samples.push({ labels, value });
    }
  }
  return [...families].map(([key, f]) => ({
    name: `${prefix}_${key}`,
    help: f.help,
    type: "counter" as const,
    samples: f.samples,
  }));
}

/**
 * Writes `text` to `path` so that a reader sees the old file or the new one, never part:
 * into `path + ".tmp"` first, then renamed over `path` (rename(2) is atomic within a file
 * system). Through libc (ffi/fs.ts), so `--allow-ffi` is all it needs, as the driver.
 *
 * @example
 * ```ts ignore
 * writeFileAtomic("/var/lib/node_exporter/virtio.prom", formatPrometheus(families));
 * ```
 */
export function writeFileAtomic(path: string, text: string): void {
  const tmp = `${path}.tmp`;
  writeBytes(tmp, new TextEncoder().encode(text));
  renamePath(tmp, path);
}
