/**
 * Loading a forwarding script on the main thread (the engine reads its `counters`,
 * `tableSize` and `report`; each worker imports it again itself). A path needs read
 * permission for it, a module that is not a script gets one sentence, and so does a
 * script whose `init` refuses its arguments: `init` is called once here, before any
 * worker starts, with the ports' MAC addresses still unknown (all zero).
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

/** What {@linkcode loadScript} gives `init` to check the arguments. */
export interface ScriptCheck {
  /** The script's arguments (`--script-arg`). */
  args: Record<string, string>;
  /** Workers (queue pairs) that will run it. */
  workers: number;
}

/** The first line of an error's message, without its final period. */
function reason(e: unknown): string {
  return String((e as Error)?.message ?? e).split("\n")[0].replace(/\.$/, "");
}

/**
 * Imports the script at `path` (a file path or a file: URL) and checks it is one; with
 * `check`, also calls its `init` once as worker 0 of `check.workers` (MACs all zero), so
 * that arguments it refuses are refused now. Throws one sentence otherwise: PERMISSION
 * without read permission, BAD_ARGUMENT for a file that is missing, does not load, is no
 * script, or whose `init` throws.
 *
 * @example
 * ```ts ignore
 * import { loadScript } from "./script_loader.ts";
 * const { url, module } = await loadScript("examples/scripts/drop_filter.ts");
 * console.log(url, module.counters);
 * ```
 */
export async function loadScript(
  path: string,
  check?: ScriptCheck,
): Promise<{ url: string; module: ForwardScript }> {
  let url: string;
  if (path.startsWith("file:")) {
    url = path;
  } else {
    const perm = Deno.permissions.querySync({ name: "read", path });
    if (perm.state !== "granted") {
      throw new DriverError(
        "PERMISSION",
        `Loading the script ${path} needs read permission for it: run deno with --allow-read=${path}.`,
      );
    }
    let abs: string;
    try {
      abs = Deno.realPathSync(path);
    } catch (e) {
      throw new DriverError(
        "BAD_ARGUMENT",
        `The script ${path} cannot be read (${reason(e)}): give the path of a module.`,
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
      `The script ${path} does not load (${reason(e)}): fix it and try again.`,
    );
  }
  let module: ForwardScript;
  try {
    module = asForwardScript(mod, path);
  } catch (e) {
    throw new DriverError("BAD_ARGUMENT", `${reason(e)}: see src/engine/script_api.ts.`);
  }
  if (check) checkScriptInit(module, path, check);
  return { url, module };
}

/**
 * Calls `module.init` as worker 0 of `check.workers` would (the MACs all zero: no port is
 * open yet); throws one BAD_ARGUMENT sentence with what it threw.
 *
 * @example
 * ```ts ignore
 * checkScriptInit(module, "drop_filter.ts", { args: { "udp-port": "x" }, workers: 1 }); // throws
 * ```
 */
export function checkScriptInit(module: ForwardScript, path: string, check: ScriptCheck): void {
  try {
    module.init?.({
      queue: 0,
      workers: check.workers,
      ports: 2,
      macs: [new Uint8Array(6), new Uint8Array(6)],
      args: { ...check.args },
    });
  } catch (e) {
    throw new DriverError(
      "BAD_ARGUMENT",
      `The script ${path} refuses its arguments (${reason(e)}): fix them, as the script says.`,
    );
  }
}
