/**
 * Loading a forwarding script on the main thread (the engine reads its `counters`,
 * `tableSize` and `report`; each worker imports it again itself). A path needs read
 * permission for it, and a module that is not a script gets one sentence.
 *
 * @module
 */

import { DriverError } from "../errors.ts";
import { asForwardScript, type ForwardScript } from "./script_api.ts";

/** A loaded script: the module and what the main thread needs of it. */
export interface LoadedScript {
  /** The module's URL (workers import it from there). */
  url: string;
  /** The module, checked to be a script. */
  module: ForwardScript;
  /** Its `--script-arg` options. */
  args: Record<string, string>;
}

/**
 * Imports the script at `path` (a file path or a file: URL) and checks it is one. Throws a
 * BAD_ARGUMENT {@linkcode DriverError} naming the problem otherwise.
 *
 * @example
 * ```ts ignore
 * import { loadScript } from "./script_loader.ts";
 * const { url, module } = await loadScript("examples/scripts/drop_filter.ts");
 * console.log(url, module.counters);
 * ```
 */
export async function loadScript(path: string): Promise<{ url: string; module: ForwardScript }> {
  let url: string;
  if (path.startsWith("file:")) {
    url = path;
  } else {
    const perm = Deno.permissions.querySync({ name: "read", path });
    if (perm.state !== "granted") {
      throw new DriverError(
        "BAD_ARGUMENT",
        `Loading the script ${path} needs read permission for it: run deno with --allow-read=${path}.`,
      );
    }
    let abs: string;
    try {
      abs = Deno.realPathSync(path);
    } catch (e) {
      throw new DriverError(
        "BAD_ARGUMENT",
        `The script ${path} cannot be read (${(e as Error).message}): give the path of a module.`,
      );
    }
    url = new URL(`file://${abs}`).href;
  }
  let mod: Record<string, unknown>;
  try {
    mod = await import(url);
  } catch (e) {
    throw new DriverError(
      "BAD_ARGUMENT",
      `The script ${path} does not load (${(e as Error).message}): fix it and try again.`,
    );
  }
  try {
    return { url, module: asForwardScript(mod, path) };
  } catch (e) {
    throw new DriverError("BAD_ARGUMENT", `${(e as Error).message}: see src/engine/script_api.ts.`);
  }
}
