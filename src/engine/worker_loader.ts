/**
 * Starts a Worker whose modules come from blob: URLs of their source text (see
 * worker_sources.ts for why: a worker loaded from files needs read permission, one loaded
 * from blobs needs none). The texts are TypeScript, turned into JavaScript here
 * (`stripTypeScriptTypes` of node:module, "transform": parameter properties too): Deno
 * would compile a TypeScript blob itself, but it keeps what it compiled in DENO_DIR/gen/blob
 * under the blob's random URL, about 1 MiB per engine start that nothing ever reads again
 * or removes (denoland/deno#18260). A JavaScript blob leaves no compiled module there (its
 * V8 code cache still takes an entry per blob URL: docs/reliability.md, Leaks).
 *
 * Each module's static imports (`import … from "./x.ts"`, `export … from "./x.ts"` at the
 * start of a line, so not those in doc comments) are resolved against its URL and
 * replaced with the blob: URL of the imported module, depth first (type-only imports too:
 * the transform then erases them).
 *
 * Copies: a module imported as `./x.ts?copy=TAG` is a module instance of its own, and so is
 * every module of the `copied` set it imports, transitively (each gets the same tag). The
 * worker imports its data path once per ring format that way, so that V8's type feedback
 * of each copy sees one ring class (docs/performance.md, "one data path per ring format").
 * Deno itself, running from files, copies only the tagged module.
 *
 * @module
 */

import { stripTypeScriptTypes } from "node:module";

// `import`/`export` at the start of a line; then braces (possibly over several lines), or a
// rest of the line, up to `from`; or nothing (a side-effect import); then the specifier.
const STATIC_IMPORT =
  /^(import|export)(\s+type\b)?(\s*\{[^}]*\}\s*from\s*|[^;'"\n{]*?\bfrom\s*|\s*)(["'])([^"']+)\4/gm;

/**
 * Rewrites the static imports of `source` (a module at `url`) with `resolve`, which gets
 * each absolute specifier and returns what to import instead.
 *
 * @example
 * ```ts
 * import { rewriteImports } from "./worker_loader.ts";
 * rewriteImports('import { a } from "./a.ts";', "file:///m/b.ts", (u) => u + "#x");
 * // 'import { a } from "file:///m/a.ts#x";'
 * ```
 */
export function rewriteImports(
  source: string,
  url: string,
  resolve: (absolute: string) => string,
): string {
  return source.replace(
    STATIC_IMPORT,
    (whole, kw: string, type: string | undefined, mid: string, q: string, spec: string) => {
      if (kw === "export" && !/\bfrom\s*$/.test(mid)) return whole;
      return `${kw}${type ?? ""}${mid}${q}${resolve(new URL(spec, url).href)}${q}`;
    },
  );
}

/**
 * Blob URLs for `entry` and everything it imports, from `sources` (module URL → text);
 * `copied` lists the modules a copy (`?copy=TAG`) takes its own instance of.
 * Throws when a module imports one that `sources` lacks, or when imports form a cycle.
 *
 * @example
 * ```ts
 * import { blobModuleGraph } from "./worker_loader.ts";
 * const urls = blobModuleGraph("file:///m/a.ts", new Map([["file:///m/a.ts", "export const a = 1;"]]));
 * urls.get("file:///m/a.ts")!.startsWith("blob:"); // true
 * for (const u of urls.values()) URL.revokeObjectURL(u);
 * ```
 */
export function blobModuleGraph(
  entry: string,
  sources: ReadonlyMap<string, string>,
  copied: ReadonlySet<string> = new Set(),
): Map<string, string> {
  const done = new Map<string, string>();
  const visiting = new Set<string>();
  const visit = (url: string, from: string): string => {
    const have = done.get(url);
    if (have) return have;
    if (visiting.has(url)) throw new Error(`worker modules import each other in a cycle at ${url}`);
    const [file, tag] = splitCopyTag(url);
    const src = sources.get(file);
    if (src === undefined) {
      throw new Error(
        `the forwarding worker needs ${file} (imported by ${from}), which src/engine/worker_sources.ts does not list: add it there`,
      );
    }
    visiting.add(url);
    // Imports first, while they still start their lines (the transform joins lines).
    const ts = rewriteImports(
      src,
      url,
      (dep) => visit(tag !== null && copied.has(dep) ? `${dep}?copy=${tag}` : dep, url),
    );
    const code = stripTypeScriptTypes(ts, { mode: "transform", sourceUrl: url });
    visiting.delete(url);
    const blob = URL.createObjectURL(new Blob([code], { type: "application/javascript" }));
    done.set(url, blob);
    return blob;
  };
  visit(entry, "the engine");
  return done;
}

/** A module URL without its `?copy=TAG`, and the tag (null for no copy). */
function splitCopyTag(url: string): [string, string | null] {
  const m = /^([^?#]*)\?copy=([\w-]+)$/.exec(url);
  return m ? [m[1], m[2]] : [url, null];
}

/**
 * Starts a module Worker running `entry` from `sources` (with `copied` as in
 * {@linkcode blobModuleGraph}). The blob URLs are revoked once the worker has loaded (its
 * first message), or when it fails to.
 *
 * @example
 * ```ts ignore
 * import { startBlobWorker } from "./worker_loader.ts";
 * import { WORKER_ENTRY, workerSources } from "./worker_sources.ts";
 * const w = startBlobWorker(WORKER_ENTRY, workerSources, "queue 0");
 * w.postMessage({ type: "ping" });
 * ```
 */
export function startBlobWorker(
  entry: string,
  sources: ReadonlyMap<string, string>,
  name: string,
  copied: ReadonlySet<string> = new Set(),
): Worker {
  const urls = blobModuleGraph(entry, sources, copied);
  const revoke = () => {
    for (const u of urls.values()) URL.revokeObjectURL(u);
    urls.clear();
  };
  const w = new Worker(urls.get(entry)!, { type: "module", name });
  w.addEventListener("message", revoke, { once: true });
  w.addEventListener("error", revoke, { once: true });
  return w;
}
