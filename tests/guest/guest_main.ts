/**
 * The shared frame of the guest programs: run a mode on an opened port, close it, and
 * turn a DriverError into its one sentence and exit status 1.
 *
 * @module
 */

import { DriverError, type VirtioNetPort } from "../../mod.ts";

/**
 * Runs `main` and exits with its result; a DriverError prints `error: <sentence>` and
 * exits 1 (as the examples do), anything else propagates.
 *
 * @example
 * ```ts ignore
 * guestMain(() => 0);
 * ```
 */
export function guestMain(main: () => number): void {
  try {
    Deno.exit(main());
  } catch (e) {
    if (e instanceof DriverError) {
      console.error(`error: ${e.message}`);
      Deno.exit(1);
    }
    throw e;
  }
}

/**
 * Runs the function `modes[mode]` on `port` and closes the port afterwards, whatever
 * happens; an unknown mode returns 2.
 *
 * @example
 * ```ts ignore
 * guestMain(() => runMode(openPort(addr), "filter", { filter: (p) => 0 }));
 * ```
 */
export function runMode(
  port: VirtioNetPort,
  mode: string,
  modes: Record<string, (port: VirtioNetPort) => number>,
): number {
  try {
    const run = modes[mode];
    if (!run) {
      console.error(`unknown mode '${mode}': use ${Object.keys(modes).join(" or ")}`);
      return 2;
    }
    return run(port);
  } finally {
    port.close();
  }
}
