/**
 * Compiles and runs small C programs against the system headers, so unit tests can check
 * this project's constants and struct layouts against the C definitions themselves.
 *
 * @module
 */

function which(cmd: string): string | null {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (!dir) continue;
    try {
      if (Deno.statSync(`${dir}/${cmd}`).isFile) return `${dir}/${cmd}`;
    } catch {
      // not here
    }
  }
  return null;
}

/** Path of the C compiler, or null when there is none. */
export const CC: string | null = which("cc");

/**
 * Whether a C probe can run here: a compiler and every header (paths below /usr/include).
 * `reason` says what is missing, for the name of a skipped test.
 *
 * @example
 * ```ts
 * import { cProbeAvailable } from "./c_probe.ts";
 * const { ok, reason } = cProbeAvailable(["linux/vfio.h"]);
 * ```
 */
export function cProbeAvailable(headers: string[]): { ok: boolean; reason: string } {
  if (CC === null) return { ok: false, reason: "no `cc` in PATH" };
  for (const h of headers) {
    try {
      if (Deno.statSync(`/usr/include/${h}`).isFile) continue;
    } catch {
      // missing
    }
    return { ok: false, reason: `/usr/include/${h} is missing` };
  }
  return { ok: true, reason: "" };
}

/**
 * Compiles `source` with cc, runs it, and returns its standard output; throws with the
 * compiler's message when it does not build.
 *
 * @example
 * ```ts ignore
 * import { runCProbe } from "./c_probe.ts";
 * const out = await runCProbe('#include <stdio.h>\nint main(void){puts("1");return 0;}');
 * ```
 */
export async function runCProbe(source: string): Promise<string> {
  if (CC === null) throw new Error("no `cc` in PATH");
  const dir = await Deno.makeTempDir({ prefix: "c_probe_" });
  try {
    await Deno.writeTextFile(`${dir}/probe.c`, source);
    const build = await new Deno.Command(CC, {
      args: ["-o", `${dir}/probe`, `${dir}/probe.c`],
      stderr: "piped",
    }).output();
    if (build.code !== 0) {
      throw new Error(`cc failed:\n${new TextDecoder().decode(build.stderr)}`);
    }
    const run = await new Deno.Command(`${dir}/probe`, { stdout: "piped", stderr: "piped" })
      .output();
    if (run.code !== 0) {
      throw new Error(
        `the probe exited with ${run.code}:\n${new TextDecoder().decode(run.stderr)}`,
      );
    }
    return new TextDecoder().decode(run.stdout);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
