/**
 * The examples' command lines (examples/l2fwd.ts, examples/port_info.ts) with bad input:
 * each is run as `deno run` with ports that do not exist (0000:7f:1f.7, sockets in a
 * temporary directory), so no device of this host is touched. A failure must be one
 * `error:` sentence (usage may follow), a non-zero exit and never a stack trace.
 */

import assert from "node:assert/strict";

const ROOT = new URL("../../", import.meta.url).pathname;
const NO_PCI = "0000:7f:1f.7";
const NO_SOCK0 = "vfio-user:/nonexistent/l2fwd-cli-test-0.sock";
const NO_SOCK1 = "vfio-user:/nonexistent/l2fwd-cli-test-1.sock";

interface Run {
  code: number;
  signal: Deno.Signal | null;
  stdout: string;
  stderr: string;
}

function command(example: string, args: string[], perms: string[]): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", ...perms, `${ROOT}examples/${example}.ts`, ...args],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  });
}

async function run(example: string, args: string[], perms = ["--allow-ffi"]): Promise<Run> {
  const out = await command(example, args, perms).output();
  const dec = new TextDecoder();
  return {
    code: out.code,
    signal: out.signal,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
  };
}

/** A failure: exit `code`, stderr starts with one `error:` line, and no stack frames. */
function assertOneSentence(r: Run, code: number, match: RegExp, usage = false): void {
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

Deno.test("port_info refuses an unknown option with one sentence and its usage", async () => {
  assertOneSentence(
    await run("port_info", ["--bogus", NO_PCI]),
    2,
    /unknown option '--bogus'/,
    true,
  );
});

Deno.test("l2fwd refuses an unknown option with one sentence and its usage", async () => {
  assertOneSentence(
    await run("l2fwd", ["--bogus", NO_SOCK0, NO_SOCK1]),
    2,
    /unknown option '--bogus'/,
    true,
  );
});

Deno.test("without --allow-ffi both examples name the missing permission in one sentence", async () => {
  for (const example of ["port_info", "l2fwd"]) {
    const args = example === "l2fwd" ? [NO_SOCK0, NO_SOCK1] : [NO_PCI];
    const r = await run(example, args, []);
    assertOneSentence(
      r,
      1,
      new RegExp(`^error: ${example} needs --allow-ffi .*deno run --allow-ffi`),
    );
  }
});

Deno.test("--help works without --allow-ffi", async () => {
  for (const example of ["port_info", "l2fwd"]) {
    const r = await run(example, ["--help"], []);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^usage: /);
  }
});

Deno.test("--force is an option of both examples", async () => {
  const help = await run("port_info", ["--help"]);
  assert.match(help.stdout, /--force/);
  assertOneSentence(await run("port_info", ["--bind", "--force", NO_PCI]), 1, /no PCI device/);
  assert.match((await run("l2fwd", ["--help"])).stdout, /--force/);
  assertOneSentence(
    await run("l2fwd", ["--bind", "--force", NO_PCI, "0000:7f:1f.6"]),
    1,
    /no PCI device/,
  );
});

Deno.test("l2fwd refuses one port given twice in two spellings", async () => {
  for (
    const pair of [
      ["7f:1f.7", NO_PCI],
      ["0000:7F:1F.7", NO_PCI],
      ["vfio-user://nonexistent/./x.sock", "vfio-user:/nonexistent/x.sock"],
    ]
  ) {
    assertOneSentence(await run("l2fwd", pair), 2, /the same port twice/);
  }
});

Deno.test("l2fwd refuses one socket given twice through a symlink", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cli_test_" });
  const sock = `${dir}/net0.sock`;
  const listener = Deno.listen({ transport: "unix", path: sock });
  try {
    await Deno.symlink(sock, `${dir}/alias.sock`);
    const r = await run("l2fwd", [`vfio-user:${sock}`, `vfio-user:${dir}/alias.sock`]);
    assertOneSentence(r, 2, /the same port twice .*one socket/);
  } finally {
    listener.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("l2fwd refuses a --duration setTimeout cannot hold, and other bad durations", async () => {
  for (const d of ["2147484", "1e400", "Infinity", "-1", "0", "abc"]) {
    // "=" so that parseArgs takes "-1" as the value, not as an option.
    assertOneSentence(await run("l2fwd", [`--duration=${d}`, NO_SOCK0, NO_SOCK1]), 2, /--duration/);
  }
});

Deno.test("l2fwd checks --pcap before it touches a device", async () => {
  const path = "/nonexistent/l2fwd-cli-test.pcap";
  const r = await run("l2fwd", ["--pcap", path, NO_SOCK0, NO_SOCK1], [
    "--allow-ffi",
    `--allow-write=${path}`,
  ]);
  assertOneSentence(r, 2, /--pcap \/nonexistent\/l2fwd-cli-test\.pcap/);
  assert.doesNotMatch(r.stderr, /sock/, "no device was opened");
});

Deno.test("l2fwd checks --script before it touches a device", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cli_test_" });
  try {
    const missing = `${dir}/missing.ts`, broken = `${dir}/broken.ts`, empty = `${dir}/empty.ts`;
    await Deno.writeTextFile(broken, "export function handleBurst( {\n");
    await Deno.writeTextFile(empty, "export const x = 1;\n");
    for (const script of [missing, broken, empty]) {
      const r = await run("l2fwd", ["--script", script, NO_SOCK0, NO_SOCK1], [
        "--allow-ffi",
        `--allow-read=${script}`,
      ]);
      assertOneSentence(r, 2, new RegExp(`script ${script}`));
      assert.doesNotMatch(r.stderr, /\.sock/, "no device was opened");
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("l2fwd takes --heap-audit and its --help says what the heap figures need", async () => {
  const help = (await run("l2fwd", ["--help"])).stdout;
  assert.match(help, /--heap-audit/);
  assert.match(help, /heapWarm\/heapLast\/heapLive/);
  assert.match(help, /full GCs?/);
  // Accepted: the run gets as far as the (missing) device.
  assertOneSentence(
    await run("l2fwd", ["--heap-audit", NO_SOCK0, NO_SOCK1]),
    1,
    /l2fwd-cli-test-0/,
  );
});

Deno.test("a signal during l2fwd's start-up stops it cleanly with one sentence", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cli_test_" });
  const listeners: Deno.Listener[] = [];
  try {
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
      // A server that accepts and never answers: l2fwd waits in port 0's first command.
      const path = `${dir}/${signal}.sock`;
      const listener = Deno.listen({ transport: "unix", path });
      listeners.push(listener);
      const child = command("l2fwd", [`vfio-user:${path}`, NO_SOCK1], ["--allow-ffi"]).spawn();
      const conn = await listener.accept();
      await new Promise((r) => setTimeout(r, 300));
      child.kill(signal);
      const out = await child.output();
      const r = {
        code: out.code,
        signal: out.signal,
        stdout: new TextDecoder().decode(out.stdout),
        stderr: new TextDecoder().decode(out.stderr),
      };
      assertOneSentence(r, signal === "SIGINT" ? 130 : 143, new RegExp(`${signal}.*start-up`));
      // The connection was released: the server reads end-of-file, not a hang.
      assert.equal(
        await conn.read(new Uint8Array(4096)).then(async (n) => {
          while (n !== null) n = await conn.read(new Uint8Array(4096));
          return n;
        }),
        null,
      );
      conn.close();
    }
  } finally {
    for (const l of listeners) l.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("--help of both examples says what each exit status means", async () => {
  for (const example of ["port_info", "l2fwd"]) {
    const help = (await run(example, ["--help"], [])).stdout;
    const section = help.split(/^exit status:$/m)[1];
    assert.ok(section, `${example} --help has an "exit status:" section:\n${help}`);
    for (const code of [0, 1, 2, 130, 143]) {
      assert.match(section, new RegExp(`^  ${code} +\\S`, "m"), `${example}: exit ${code}`);
    }
    assert.match(section, /^ {2}1 .*--allow-ffi/m, `${example}: a missing --allow-ffi is 1`);
    assert.match(section, /^ {2}2 .*command line/m, `${example}: a bad command line is 2`);
  }
});

Deno.test("a second signal ends l2fwd at once with one sentence while the first waits for a start-up step", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cli_test_" });
  try {
    // A script whose loading takes 30 s: the first signal waits for it (a start-up step).
    const script = `${dir}/slow.ts`;
    await Deno.writeTextFile(
      script,
      'console.log("script loading");\nawait new Promise((r) => setTimeout(r, 30_000));\nexport function handleBurst() {}\n',
    );
    for (const [first, second] of [["SIGINT", "SIGINT"], ["SIGINT", "SIGTERM"]] as const) {
      const child = command("l2fwd", ["--script", script, NO_SOCK0, NO_SOCK1], [
        "--allow-ffi",
        `--allow-read=${script}`,
      ]).spawn();
      const stderr = new Response(child.stderr).text();
      const stdout = child.stdout.getReader();
      let seen = "";
      while (!seen.includes("script loading")) {
        const { value, done } = await stdout.read();
        if (done) break;
        seen += new TextDecoder().decode(value);
      }
      assert.match(seen, /script loading/);
      child.kill(first);
      await new Promise((r) => setTimeout(r, 500));
      child.kill(second);
      const killer = setTimeout(() => child.kill("SIGKILL"), 8000);
      const status = await child.status;
      clearTimeout(killer);
      await stdout.cancel();
      const r = { code: status.code, signal: status.signal, stdout: seen, stderr: await stderr };
      assert.equal(
        r.signal,
        null,
        `l2fwd did not exit within 8 s of the second signal: ${r.stderr}`,
      );
      assertOneSentence(
        r,
        second === "SIGINT" ? 130 : 143,
        new RegExp(`second signal \\(${second}\\).*at once`),
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
