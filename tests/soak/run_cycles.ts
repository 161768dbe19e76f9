/**
 * Runs tests/soak/port_cycles.ts on the host (`--allow-ffi` and `--expose-gc` only) in
 * step mode: before each cycle the test's `beforeCycle` runs (a fresh vfio-user server, a
 * reading of the back-end's resources), then the program opens the ports.
 *
 * @module
 */

import type { CycleReport } from "./cycle_report.ts";

const ROOT = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");

/** The program's command line (relative to the repository), for the host or a guest. */
export function cycleProgramArgs(args: string[]): string[] {
  return [
    "run",
    "--quiet",
    "--allow-ffi",
    "--v8-flags=--expose-gc",
    `${ROOT}/tests/soak/port_cycles.ts`,
    ...args,
  ];
}

/**
 * Runs the program with `args` (plus `--step`), calling `beforeCycle(i)` before cycle i
 * (warm-up cycles included: 0 … warmup + cycles - 1). Resolves with its report; throws
 * with its output when it fails.
 */
export async function runCycles(
  args: string[],
  beforeCycle: (cycle: number) => Promise<void> = async () => {},
): Promise<CycleReport> {
  const child = new Deno.Command(Deno.execPath(), {
    args: cycleProgramArgs([...args, "--step"]),
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  const stdin = child.stdin.getWriter();
  const lines: string[] = [];
  let buf = "";
  try {
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        lines.push(line);
        const m = /^\{"event":"open","cycle":(\d+)\}$/.exec(line);
        if (!m) continue;
        await beforeCycle(Number(m[1]));
        await stdin.write(new TextEncoder().encode("\n"));
      }
    }
  } catch (e) {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
    await child.status;
    throw e;
  } finally {
    await stdin.close().catch(() => {});
  }
  const { code } = await child.status;
  if (code !== 0) {
    throw new Error(
      `port_cycles.ts exited ${code}: ${await stderr}\n${lines.slice(-5).join("\n")}`,
    );
  }
  return JSON.parse(lines.at(-1)!) as CycleReport;
}
