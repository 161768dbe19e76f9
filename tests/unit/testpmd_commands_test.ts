import assert from "node:assert/strict";
import {
  commandLoop,
  type ConsoleTarget,
  linesOf,
  parseCommand,
} from "../../examples/testpmd_commands.ts";

Deno.test("testpmd commands parse as DPDK testpmd spells them", () => {
  assert.deepEqual(parseCommand("start", 2), { kind: "start", txFirst: 0 });
  assert.deepEqual(parseCommand("  start   tx_first ", 2), { kind: "start", txFirst: 1 });
  assert.deepEqual(parseCommand("start tx_first 8", 2), { kind: "start", txFirst: 8 });
  assert.deepEqual(parseCommand("stop", 2), { kind: "stop" });
  assert.deepEqual(parseCommand("set fwd macswap", 2), { kind: "set-fwd", mode: "macswap" });
  assert.deepEqual(parseCommand("show port stats all", 2), { kind: "show-stats", port: "all" });
  assert.deepEqual(parseCommand("show port stats 1", 2), { kind: "show-stats", port: 1 });
  assert.deepEqual(parseCommand("show port xstats 0", 2), { kind: "show-xstats", port: 0 });
  assert.deepEqual(parseCommand("clear port stats all", 2), { kind: "clear-stats", port: "all" });
  assert.deepEqual(parseCommand("quit", 2), { kind: "quit" });
  assert.deepEqual(parseCommand("exit", 2), { kind: "quit" });
  assert.deepEqual(parseCommand("", 2), { kind: "none" });
  assert.deepEqual(parseCommand("# a comment", 2), { kind: "none" });
});

Deno.test("testpmd commands refuse what testpmd would not take, in one sentence each", () => {
  const cases: [string, RegExp][] = [
    ["show port stats 2", /there is no port 2: give all, or 0 to 1/],
    ["show port stats -1", /there is no port -1/],
    ["show port stats", /give a port/],
    ["clear port xstats all", /use clear port stats all\|P/],
    ["start tx_first 0", /1 to 1024 bursts, not '0'/],
    ["start rx_first", /use start or start tx_first/],
    ["set fwd", /use set fwd MODE/],
    ["stop now", /'stop' takes no arguments/],
    ["frobnicate", /'frobnicate' is not a command: type help/],
  ];
  for (const [line, re] of cases) {
    const c = parseCommand(line, 2);
    assert.equal(c.kind, "error", line);
    assert.match((c as { message: string }).message, re, line);
  }
});

/** A target that records what it was asked. */
function recorder(): { target: ConsoleTarget; calls: string[] } {
  const calls: string[] = [];
  const target: ConsoleTarget = {
    ports: 2,
    start: (n) => (calls.push(`start ${n}`), Promise.resolve("started")),
    stop: () => (calls.push("stop"), Promise.resolve("stopped")),
    setForwardMode: (m) => {
      calls.push(`fwd ${m}`);
      return m === "bogus"
        ? Promise.reject(new Error("bogus is not a forwarding mode: use io, mac, …"))
        : Promise.resolve(`Set ${m} packet forwarding mode`);
    },
    portStats: (p) => (calls.push(`stats ${p}`), "STATS"),
    portXstats: (p) => (calls.push(`xstats ${p}`), "XSTATS"),
    clearPortStats: (p) => (calls.push(`clear ${p}`), "cleared"),
  };
  return { target, calls };
}

function linesFrom(text: string): AsyncIterable<string> {
  return linesOf(new Blob([text]).stream());
}

Deno.test("a command file runs in order up to quit, a refusal printed and the session going on", async () => {
  const { target, calls } = recorder();
  let out = "";
  await commandLoop(
    linesFrom(
      "set fwd bogus\nset fwd macswap\nstart tx_first 4\nshow port stats all\n" +
        "nonsense\nshow port xstats 1\nclear port stats 0\nstop\nquit\nstart\n",
    ),
    target,
    (t) => out += t,
  );
  assert.deepEqual(calls, [
    "fwd bogus",
    "fwd macswap",
    "start 4",
    "stats all",
    "xstats 1",
    "clear 0",
    "stop",
  ]);
  assert.match(out, /bogus is not a forwarding mode/);
  assert.match(out, /Set macswap packet forwarding mode\nstarted\nSTATS\nBad command: 'nonsense'/);
  assert.doesNotMatch(out, /testpmd> /, "no prompt when the input is not a terminal");
});

Deno.test("with a prompt, it is written before each line, and input ending without quit ends the loop", async () => {
  const { target } = recorder();
  let out = "";
  await commandLoop(linesFrom("show port stats 0\r\nhelp"), target, (t) => out += t, "testpmd> ");
  assert.match(out, /^testpmd> STATS\ntestpmd> commands \(as DPDK testpmd's\)/);
  assert.ok(out.endsWith("testpmd> "));
});
