/**
 * A strict reader of Prometheus' text exposition format for the tests: every line is a
 * `# HELP name text`, a `# TYPE name counter|gauge|…`, or a sample `name{l="v",…} value`
 * whose family had its HELP and TYPE first; anything else throws naming the line.
 */

/** One sample read back. */
export interface ReadSample {
  /** Metric name. */
  name: string;
  /** Labels, unescaped. */
  labels: Record<string, string>;
  /** Value. */
  value: number;
}

/** Families (name → help, type) and samples of a Prometheus text file. */
export interface ReadExposition {
  help: Map<string, string>;
  type: Map<string, string>;
  samples: ReadSample[];
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/y;

/** Parses `text`; throws on the first line that is not the format. */
export function parsePrometheus(text: string): ReadExposition {
  const help = new Map<string, string>(), type = new Map<string, string>();
  const samples: ReadSample[] = [];
  if (text.length > 0 && !text.endsWith("\n")) {
    throw new Error("the text does not end in a newline");
  }
  for (const [i, line] of text.split("\n").entries()) {
    if (line === "") continue;
    const bad = (why: string) => new Error(`line ${i + 1} '${line}': ${why}`);
    if (line.startsWith("# HELP ")) {
      const [name, ...rest] = line.slice(7).split(" ");
      if (help.has(name)) throw bad("a second HELP");
      help.set(name, rest.join(" ").replace(/\\n/g, "\n").replace(/\\\\/g, "\\"));
      continue;
    }
    if (line.startsWith("# TYPE ")) {
      const [name, t] = line.slice(7).split(" ");
      if (!["counter", "gauge", "histogram", "summary", "untyped"].includes(t)) {
        throw bad(`no type '${t}'`);
      }
      type.set(name, t);
      continue;
    }
    if (line.startsWith("#")) continue;
    const m = SAMPLE.exec(line);
    if (!m) throw bad("not a sample");
    const [, name, body, v] = m;
    if (!help.has(name) || !type.has(name)) throw bad("a sample before its HELP and TYPE");
    const labels: Record<string, string> = {};
    if (body !== undefined && body.length > 0) {
      LABEL.lastIndex = 0;
      while (LABEL.lastIndex < body.length) {
        const l = LABEL.exec(body);
        if (!l) throw bad("labels do not parse");
        labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => c === "n" ? "\n" : c);
      }
    }
    const value = v === "+Inf" ? Infinity : v === "-Inf" ? -Infinity : Number(v);
    if (Number.isNaN(value) && v !== "NaN") throw bad(`value '${v}' is no number`);
    samples.push({ name, labels, value });
  }
  return { help, type, samples };
}
