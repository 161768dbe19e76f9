/**
 * Running the examples (examples/l2fwd.ts, examples/port_info.ts) as `deno run` in the
 * command-line tests (cli_test.ts, bad_input_test.ts), with ports that do not exist
 * (0000:7f:1f.7, sockets under /nonexistent), and checking that a failure is one
 * `error:` sentence with the right exit status and never a stack trace.
 *
 * @module
 */

import assert from "node:assert/strict";

/** The repository's root directory, with a trailing slash. */
export const ROOT = new URL("../../", import.meta.url).pathname;
/** A PCI address no host has (bus 0x7f, device 0x1f, function 7). */
export const NO_PCI = "0000:7f:1f.7";
/** Two vfio-user ports whose sockets cannot exist. */
export const NO_SOCK0 = "vfio-user:/nonexistent/l2fwd-cli-test-0.sock";
/** See {@linkcode NO_SOCK0}. */
export const NO_SOCK1 = "vfio-user:/nonexistent/l2fwd-cli-test-1.sock";

/** How an example ended. */
export interface Run {
  code: number;
  signal: Deno.Signal | null;
  stdout: string;
  stderr: string;
}

/** `deno run --no-prompt PERMS examples/EXAMPLE.ts ARGS` from the repository's root. */
export function command(example: string, args: string[], perms: string[]): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", ...perms, `${ROOT}examples/${example}.ts`, ...args],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  });
}

/** Runs an example to its end (with --allow-ffi unless `perms` says otherwise). */
export async function run(example: string, args: string[], perms = ["--allow-ffi"]): Promise<Run> {
  const out = await command(example, args, perms).output();
  const dec = new TextDecoder();
  return {
    code: out.code,
    signal: out.signal,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
  };
}

/**
 * A failure: exit `code`, stderr starts with one `error:` line matching `match`, no stack
 * frames; that line is all of stderr unless `usage` (then the usage text follows).
 */
export function assertOneSentence(r: Run, code: number, match: RegExp, usage = false): void {
  const what = `stderr:\n${r.stderr}`;
  assert.equal(r.signal, null, what);
  assert.equal(r.code, code, what);
  assert.doesNotMatch(r.stderr, /^\s+at /m, `no stack trace: ${what}`);
  assert.doesNotMatch(r.stderr, /Uncaught/, what);
  const lines = r.stderr.trimEnd().split("\n");
  assert.match(lines[0], /^error: /, what);
  assert.match(lines[0], match, what);
  if (usage) assert.match(r.stderr, /^usage: /m, `the usage follows: ${what}`);
  else assert.equal(lines.length, 1, `one line: ${what}`);
}

/**
 * Two sockets in `dir` that count the connections made to them, named as ports of both
 * socket transports (`T0` vfio-user, `T1` vhost-user): a program given them that opens a
 * port connects, so a count that stays 0 shows it touched no device. Closed at `close()`.
 *
 * @example
 * ```ts ignore
 * const wires = tripwires(dir);
 * await run("l2fwd", ["--burst", "0", wires.T0, wires.T1]);
 * assert.equal(wires.touched(), 0);
 * ```
 */
export function tripwires(dir: string): {
  T0: string;
  T1: string;
  touched(): number;
  close(): void;
} {
  let touched = 0;
  const listeners = [0, 1].map((i) =>
    Deno.listen({ transport: "unix", path: `${dir}/t${i}.sock` })
  );
  for (const l of listeners) {
    (async () => {
      try {
        for await (const conn of l) {
          touched++;
          conn.close();
        }
      } catch { /* closed at the end */ }
    })();
  }
  return {
    T0: `vfio-user:${dir}/t0.sock`,
    T1: `vhost-user:${dir}/t1.sock`,
    touched: () => touched,
    close: () => listeners.forEach((l) => l.close()),
  };
}
