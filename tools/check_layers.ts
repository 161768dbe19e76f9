/**
 * Checks that every import points down the layers of docs/architecture.md:
 *
 *   examples → mod.ts (low_level.ts adds the layers' own modules) → engine | open_port
 *     → net → steering → virtio
 *     → transports (vfio, vfio_user, vhost_user) → pci → dma | pcap → errors → ffi
 *
 * A module may import from its own folder, and from any lower layer; never from a higher
 * one, nor from another folder of its own layer (vfio never imports vfio_user). Examples
 * import the public API only: mod.ts. Prints every
 * arrow that breaks this and exits 1; prints the layer counts and exits 0 when none does.
 *
 * Usage: deno run --allow-read tools/check_layers.ts [--graph]
 *   --graph also prints each folder's imports (folder → folders), for docs/architecture.md.
 *
 * @module
 */

const ROOT = new URL("../", import.meta.url).pathname;

/** Layer of each folder (or top-level file), lowest first; one rank may hold several. */
const LAYERS: [string, number][] = [
  ["ffi", 0],
  ["src/errors.ts", 1],
  ["src/shown.ts", 1],
  ["src/dma", 2],
  ["src/pcap", 2],
  ["src/pci", 3],
  ["src/vfio", 4],
  ["src/vfio_user", 4],
  ["src/vhost_user", 4],
  ["src/virtio", 5],
  ["src/steering", 6],
  ["src/net", 7],
  ["src/port_name.ts", 8],
  ["src/same_port.ts", 9],
  ["src/open_port.ts", 9],
  ["src/engine", 9],
  ["mod.ts", 10],
  ["low_level.ts", 11],
  ["examples", 12],
];

function groupOf(path: string): [string, number] | null {
  const rel = path.slice(ROOT.length);
  let best: [string, number] | null = null;
  for (const [g, rank] of LAYERS) {
    if ((rel === g || rel.startsWith(`${g}/`)) && (!best || g.length > best[0].length)) {
      best = [g, rank];
    }
  }
  return best;
}

function* walk(dir: string): Generator<string> {
  for (const e of Deno.readDirSync(dir)) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) yield* walk(p);
    else if (e.name.endsWith(".ts")) yield p;
  }
}

const IMPORT =
  /(?:^|\n)\s*(?:import|export)\b[^;]*?\bfrom\s*["']([^"']+)["']|\bimport\(\s*["']([^"']+)["']\s*\)/g;

const files = [
  ...walk(`${ROOT}ffi`),
  ...walk(`${ROOT}src`),
  ...walk(`${ROOT}examples`),
  `${ROOT}mod.ts`,
  `${ROOT}low_level.ts`,
];
const bad: string[] = [];
const graph = new Map<string, Set<string>>();
for (const file of files) {
  const from = groupOf(file);
  if (!from) continue;
  const text = Deno.readTextFileSync(file);
  for (const m of text.matchAll(IMPORT)) {
    const spec = m[1] ?? m[2];
    if (!spec.startsWith(".")) continue;
    const target = new URL(spec, `file://${file}`).pathname;
    const to = groupOf(target);
    if (!to || to[0] === from[0]) continue;
    if (!graph.has(from[0])) graph.set(from[0], new Set());
    graph.get(from[0])!.add(to[0]);
    if (from[0] === "examples" && to[0] !== "mod.ts") {
      bad.push(
        `${file.slice(ROOT.length)} imports ${target.slice(ROOT.length)}: examples use mod.ts only`,
      );
    } else if (to[1] >= from[1]) {
      bad.push(
        `${file.slice(ROOT.length)} imports ${target.slice(ROOT.length)}: ${from[0]} (layer ${
          from[1]
        }) may not import ${to[0]} (layer ${to[1]})`,
      );
    }
  }
}
if (Deno.args.includes("--graph")) {
  for (const [g] of LAYERS) {
    const to = graph.get(g);
    if (to) console.log(`${g} → ${[...to].sort().join(", ")}`);
  }
}
if (bad.length) {
  for (const b of bad) console.log(b);
  console.log(`${bad.length} imports point up or sideways: see docs/architecture.md.`);
  Deno.exit(1);
}
console.log(`layers ok: ${files.length} modules, every import points down.`);
