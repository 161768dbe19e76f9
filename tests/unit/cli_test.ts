/**
 * The examples' command lines (examples/l2fwd.ts, examples/port_info.ts): help, signals,
 * one port in two spellings. Each is run as `deno run` with ports that do not exist
 * (0000:7f:1f.7, sockets in a temporary directory), so no device of this host is touched.
 * A failure must be one `error:` sentence (usage may follow), a non-zero exit and never a
 * stack trace. The table of bad inputs (bad values, missing permissions, files) is
 * bad_input_test.ts.
 */

import assert from "node:assert/strict";
import { assertOneSentence, command, NO_PCI, NO_SOCK0, NO_SOCK1, run } from "./cli_helpers.ts";

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
