/**
 * l2fwd run inside the VM bed's guest: its command line (`--bind --stats json` on the
 * bed's two NICs) and a run that can be interrupted with SIGINT and timed from inside.
 *
 * @module
 */

import { shellQuote, type VmBed } from "./vm.ts";

const ROOT = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
const L2FWD = `${ROOT}/examples/l2fwd.ts`;

/** `deno run` of l2fwd in the guest with `--allow-ffi` and the given extra permissions. */
export function l2fwdCmd(bed: VmBed, args: string[], perms: string[] = [], v8 = ""): string {
  // stdbuf: V8's --trace-gc lines go through C stdio; line buffering keeps them from
  // splitting l2fwd's JSON lines.
  return [
    v8 ? "stdbuf -oL" : "",
    "deno run --quiet",
    v8 ? `--v8-flags=${v8}` : "",
    "--allow-ffi",
    ...perms.map(shellQuote),
    shellQuote(L2FWD),
    "--bind",
    "--stats json",
    ...args.map(shellQuote),
    bed.nicAddress(0),
    bed.nicAddress(1),
  ].filter((s) => s).join(" ");
}

/**
 * Runs l2fwd under a guest shell that prints its PID and, when it exits, its status and
 * the time (ns) — so the test can time a stop from inside the guest.
 */
export async function startL2fwd(bed: VmBed, cmd: string) {
  const p = await bed.spawn(
    `${cmd} & pid=$!; echo "l2fwd pid $pid" >&2; wait $pid; rc=$?; ` +
      `echo "l2fwd exit $rc at $(date +%s%N)" >&2`,
  );
  await p.waitForOutput(/port 1: /, 120000, "stderr");
  const pid = (await p.stderr()).match(/l2fwd pid (\d+)/)![1];
  /** Sends SIGINT; returns the exit status, the stop time and the output. */
  const interrupt = async () => {
    const t0 = Number((await bed.exec(`date +%s%N; kill -INT ${pid}`)).stdout.trim());
    const r = await p.wait(30000);
    const m = r.stderr.match(/l2fwd exit (\d+) at (\d+)/)!;
    return { ...r, code: Number(m[1]), stopMs: (Number(m[2]) - t0) / 1e6 };
  };
  return { p, pid, interrupt };
}
