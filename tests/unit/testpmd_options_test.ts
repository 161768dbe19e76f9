/**
 * examples/testpmd.ts's command line: testpmd's option names (both `--name=V` and
 * `--name V`), what they become, and one usage sentence (exit 2) for each bad one; the
 * program itself run for --help, a bad mode and a missing port. No device is touched.
 */

import assert from "node:assert/strict";
import { UsageError } from "../../examples/l2fwd_options.ts";
import { parseTestpmdCommandLine } from "../../examples/testpmd_options.ts";
import { formatPortStats } from "../../examples/testpmd_stats.ts";
import { buildReport } from "../../src/engine/stats_report.ts";
import { assertOneSentence, NO_SOCK0, NO_SOCK1, run } from "./cli_helpers.ts";
import { counters } from "./queue_counters_fixture.ts";

const PORTS = ["0000:00:04.0", "0000:00:05.0"];

function parsed(...args: string[]) {
  const r = parseTestpmdCommandLine([...args, ...PORTS]);
  assert.notEqual(r, "help");
  return r as Exclude<typeof r, "help">;
}

Deno.test("testpmd options: defaults, and testpmd's names in both spellings", () => {
  const d = parsed();
  assert.deepEqual(
    [d.mode, d.queues, d.burst, d.rxQueueSize, d.txQueueSize, d.statsPeriodS, d.macRewrite],
    ["io", 1, 32, undefined, undefined, 0, false],
  );
  const r = parsed(
    "--forward-mode=5tswap",
    "--burst=64",
    "--rxq=2",
    "--txq",
    "2",
    "--rxd=512",
    "--txd",
    "1024",
    "--stats-period=3",
    "--duration=5",
  );
  assert.deepEqual(
    [r.mode, r.burst, r.queues, r.rxQueueSize, r.txQueueSize, r.statsPeriodS, r.durationMs],
    ["5tswap", 64, 2, 512, 1024, 3, 5000],
  );
  assert.deepEqual(r.ports, PORTS);
  assert.equal(parsed("--forward-mode", "mac").macRewrite, true, "mac is l2fwd's MAC rewrite");
  assert.equal(parsed("--txq=4").queues, 4, "--txq alone sets the pairs too");
  for (const mode of ["macswap", "rxonly", "icmpecho"]) {
    assert.equal(parsed(`--forward-mode=${mode}`).mode, mode);
  }
  assert.equal(parsed("--script", "s.ts", "--forward-mode=io").script, "s.ts");
  const gen = parsed(
    "--forward-mode=flowgen",
    "--txpkts=128",
    "--flowgen-flows=64",
    "--tx-rate=2e4",
  );
  assert.deepEqual(gen.generator, { frameSize: 128, flows: 64, ratePps: 20000 });
  assert.equal(parsed("-i").interactive, true);
  assert.equal(parsed("--interactive", "--cmdline-file=cmds").cmdlineFile, "cmds");
  assert.equal(parsed().interactive, false);
  assert.equal(parsed("--tx-first").txFirst, 1);
  assert.equal(parsed().txFirst, undefined);
  assert.equal(parseTestpmdCommandLine(["--help"]), "help");
});

Deno.test("testpmd options: each bad command line is one usage sentence", () => {
  const bad: [string[], RegExp][] = [
    [
      ["--forward-mode=txgen"],
      /--forward-mode must be one of io, mac, macswap.*flowgen, not 'txgen'/,
    ],
    [["--txpkts=128"], /--txpkts is for --forward-mode=txonly or flowgen, not io/],
    [
      ["--forward-mode=txonly", "--flowgen-flows=4"],
      /--flowgen-flows is for --forward-mode=flowgen/,
    ],
    [["--forward-mode=txonly", "--txpkts=63"], /--txpkts must be an integer from 64/],
    [["--forward-mode=flowgen", "--tx-rate=0"], /--tx-rate must be frames per second above 0/],
    [["--rxq=2", "--txq=1"], /--rxq 2 and --txq 1 differ/],
    [["--rxq=0"], /--rxq must be an integer from 1 to 64/],
    [["--rxd=100"], /--rxd must be a power of two, not 100/],
    [["--txd=8"], /--txd must be an integer from 16 to 32768/],
    [["--stats-period=x"], /--stats-period must be an integer/],
    [["--burst=0"], /--burst must be an integer from 1 to 256/],
    [["--queues", "2"], /testpmd takes --rxq=N --txq=N instead of --queues/],
    [["--mac-rewrite"], /testpmd takes --forward-mode=mac instead of --mac-rewrite/],
    [["--forward-mode=icmpecho", "--script", "s.ts"], /do not go together/],
    [["--rxq=1", "--rxq=1"], /--rxq is given twice/],
    [["--forward-mode=txonly", "--tx-first"], /--tx-first is for forwarding modes/],
    [["-i", "--tx-first"], /in commands use start tx_first/],
  ];
  for (const [args, match] of bad) {
    assert.throws(() => parseTestpmdCommandLine([...args, ...PORTS]), (e) => {
      assert.ok(e instanceof UsageError, `${args.join(" ")}: ${e}`);
      assert.match(e.message, match);
      assert.equal(e.message.split(/\.\s/).length, 1, `one sentence: ${e.message}`);
      return true;
    });
  }
  assert.throws(() => parseTestpmdCommandLine([PORTS[0]]), /testpmd needs two ports, not 1/);
  assert.throws(() => parseTestpmdCommandLine([...PORTS, "--rxd"]), /--rxd needs a value/);
});

Deno.test("testpmd's table is testpmd's 'show port stats' per port", () => {
  const port = (p: number) => ({
    port: p,
    name: `p${p}`,
    ...counters({ rxPackets: 10, rxBytes: 640, txPackets: 7, dropsNoBuffer: 2, dropsMode: 3 }),
    kicks: 0,
    queues: [],
    xstats: {},
  });
  const r = buildReport({ ports: [port(0), port(1)], workers: [], scriptCounters: null }, null, {
    event: "stats",
    elapsedS: 1,
    intervalS: 1,
    links: ["up", "up"],
  });
  const t = formatPortStats(r);
  assert.match(t, /NIC statistics for port 0/);
  assert.match(t, /NIC statistics for port 1/);
  assert.match(t, /RX-packets: 10 +RX-missed: 2 +RX-bytes: +640/);
  assert.match(t, /TX-packets: 7 +TX-errors: 0 +TX-bytes: +0/);
  assert.match(t, /Mode-drops: 3/);
});

Deno.test("testpmd.ts: --help, a bad mode (exit 2, one sentence with the usage), two ports needed", async () => {
  const help = await run("testpmd", ["--help"], []);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /^usage: .*testpmd\.ts/);
  assert.match(help.stdout, /--forward-mode=MODE/);
  assertOneSentence(
    await run("testpmd", ["--forward-mode=bogus", NO_SOCK0, NO_SOCK1]),
    2,
    /--forward-mode must be one of/,
  );
  assertOneSentence(
    await run("testpmd", ["--bogus", NO_SOCK0, NO_SOCK1]),
    2,
    /unknown option '--bogus'/,
    true,
  );
  assertOneSentence(await run("testpmd", [NO_SOCK0]), 2, /testpmd needs two ports/);
});
