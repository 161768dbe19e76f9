/**
 * examples/l2fwd.ts run on the host against two ports of a bed whose ports the host
 * reaches (the vfio-user bed, tests/bed/vfio_user_bed.ts; the vhost-user bed,
 * tests/bed/vhost_user_bed.ts), with `--allow-ffi` and `--stats json`.
 *
 * @module
 */

/** A bed that names its ports (VfioUserBed does; wrap others). */
export interface NamedPorts {
  /** The port name of port `i`, as l2fwd takes it. */
  portName(i: number): string;
}

const ROOT = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");

/** How an l2fwd run ended (see {@linkcode startHostL2fwd}). */
export interface L2fwdExit {
  /** Its exit status. */
  code: number;
  /** Milliseconds from SIGINT to exit. */
  stopMs: number;
  /** All it printed on stdout (the `--stats json` lines). */
  stdout: string;
  /** All it printed on stderr. */
  stderr: string;
}

/** A running l2fwd (see {@linkcode startHostL2fwd}). */
export interface L2fwdRun {
  /** The l2fwd process. */
  child: Deno.ChildProcess;
  /** Sends SIGINT; resolves once it exited and its output is read. */
  interrupt(): Promise<L2fwdExit>;
  /** Resolves once it exited by itself (no signal sent) and its output is read. */
  exited(): Promise<L2fwdExit>;
  /** What it has printed on stdout so far (the `--stats json` lines, one a second). */
  stdoutSoFar(): string;
}

/**
 * Starts l2fwd on the host on ports 0 and 1 of `bed` with `args`, `perms` (besides
 * `--allow-ffi`), `v8` as `--v8-flags` and `env` added to its environment; resolves once
 * it printed "port 1: " on stderr, and throws (killing it) when it exits first or has not
 * within 60 s.
 *
 * @example
 * ```ts ignore
 * const run = await startHostL2fwd(bed, ["--queues", "2"]);
 * const { code, stdout } = await run.interrupt();
 * ```
 */
export async function startHostL2fwd(
  bed: NamedPorts,
  args: string[],
  perms: string[] = [],
  v8 = "",
  env: Record<string, string> = {},
): Promise<L2fwdRun> {
  // With V8 flags (--trace-gc), through `stdbuf -oL`: V8 prints through C stdio, which a
  // pipe makes fully buffered, so its lines were flushed in 4 KiB pieces that split
  // l2fwd's JSON lines (a summary was lost so, once); line buffered, each is one write.
  const deno = [
    Deno.execPath(),
    "run",
    "--quiet",
    ...(v8 ? [`--v8-flags=${v8}`] : []),
  ];
  const child = new Deno.Command(v8 ? "stdbuf" : deno[0], {
    args: [
      ...(v8 ? ["-oL", ...deno] : deno.slice(1)),
      "--allow-ffi",
      ...perms,
      `${ROOT}/examples/l2fwd.ts`,
      "--stats",
      "json",
      ...args,
      bed.portName(0),
      bed.portName(1),
    ],
    env,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let out = "", stderr = "";
  const readAll = async (s: ReadableStream<Uint8Array>, add: (t: string) => void) => {
    const reader = s.pipeThrough(new TextDecoderStream()).getReader();
    for (let r = await reader.read(); !r.done; r = await reader.read()) add(r.value);
  };
  const stdout = readAll(child.stdout, (t) => out += t).then(() => out);
  const stderrDone = readAll(child.stderr, (t) => stderr += t);
  const deadline = performance.now() + 60000;
  while (!/port 1: /.test(stderr)) {
    const st = await Promise.race([child.status, new Promise((r) => setTimeout(r, 20))]);
    if (st || performance.now() > deadline) {
      try {
        child.kill("SIGKILL");
      } catch { /* exited */ }
      throw new Error(`l2fwd did not start: ${stderr}${await stdout}`);
    }
  }
  const interrupt = async () => {
    const t0 = performance.now();
    child.kill("SIGINT");
    // A hang guard, not a speed claim: the stop's duration is reported, never asserted.
    const timer = setTimeout(() => child.kill("SIGKILL"), 30000);
    const st = await child.status.finally(() => clearTimeout(timer));
    if (st.signal === "SIGKILL") throw new Error(`l2fwd hung: no exit 30 s after SIGINT`);
    const stopMs = performance.now() - t0;
    await stderrDone;
    return { code: st.code, stopMs, stdout: await stdout, stderr };
  };
  const exited = async () => {
    const t0 = performance.now();
    const st = await child.status;
    await stderrDone;
    return { code: st.code, stopMs: performance.now() - t0, stdout: await stdout, stderr };
  };
  return { child, interrupt, exited, stdoutSoFar: () => out };
}
