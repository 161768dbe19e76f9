/**
 * Bad input on the command line, table-driven (issue 13, item 5): every option of l2fwd
 * and port_info, refused with one `error:` sentence before any device is touched, exit 2
 * when the command line is wrong whatever the machine, 1 when the machine or a file it
 * names is not as the command line expects (a missing permission, a script that does not
 * load, a capture file that cannot be written). The public API's arguments are the table
 * of bad_input_api_test.ts.
 *
 * "Before any device is touched": the ports of most cases are two sockets this test
 * listens on, a tripwire: opening either port connects to it, which the test counts, and
 * no case may. Cases with a PCI address that cannot exist (0000:7f:1f.7) or a socket that
 * cannot exist would fail with "no PCI device" or "No vfio-user server" had they opened
 * it; they must fail with their own sentence instead. Values at their limit are shown to
 * be accepted by getting as far as such a missing device (exit 1, the device's sentence).
 *
 * Unwritable --pcap paths: the tests run as root in CI, and root writes into read-only
 * directories, so the cases use a directory that does not exist, a directory as the file,
 * and /proc, where no file can be created, not even by root (deno asks --allow-all for
 * /proc paths, so that case runs with it).
 */

import assert from "node:assert/strict";
import { assertOneSentence, NO_PCI, NO_SOCK0, NO_SOCK1, run, tripwires } from "./cli_helpers.ts";

const DIR = await Deno.makeTempDir({ prefix: "bad_input_" });
const DROP_FILTER = "examples/scripts/drop_filter.ts";

/** Connections made to these sockets would be ports opened. */
const wires = tripwires(DIR);
// Released when the test module ends, whichever tests a filter ran.
globalThis.addEventListener("unload", () => {
  wires.close();
  Deno.removeSync(DIR, { recursive: true });
});
/** The two tripwire ports, one of each socket transport. */
const { T0, T1 } = wires;
const T = [T0, T1];

const SCRIPTS: Record<string, string> = {
  "broken.ts": "export function handleBurst( {\n",
  "throws.ts":
    'throw new Error("the script failed while loading");\nexport function handleBurst() {}\n',
  "empty.ts": "export const x = 1;\n",
  "counters.ts": "export const counters = 3;\nexport function handleBurst() {}\n",
};
for (const [name, text] of Object.entries(SCRIPTS)) Deno.writeTextFileSync(`${DIR}/${name}`, text);

/** One row: the command line, deno's permissions, the exit status and the sentence. */
interface CliCase {
  name: string;
  example: "l2fwd" | "port_info";
  args: string[];
  status: 1 | 2;
  match: RegExp;
  perms?: string[];
  /** The usage text follows the sentence (parseArgs refused the line). */
  usage?: boolean;
}

type Extra = Pick<CliCase, "perms" | "usage">;
const l2fwd = (what: string, args: string[], status: 1 | 2, match: RegExp, x: Extra = {}) => ({
  name: `l2fwd ${what} with exit ${status}`,
  example: "l2fwd" as const,
  args,
  status,
  match,
  ...x,
});
const portInfo = (what: string, args: string[], status: 1 | 2, match: RegExp, x: Extra = {}) => ({
  ...l2fwd(what, args, status, match, x),
  name: `port_info ${what} with exit ${status}`,
  example: "port_info" as const,
});
/** A value accepted: the run gets as far as the missing device (NO_SOCK0). */
const ABSENT = /No vfio-user server listens on \/nonexistent\/l2fwd-cli-test-0\.sock/;
const ANY = [NO_SOCK0, NO_SOCK1];
const pcapIn = (path: string) => ["--pcap", path, ...T];
const script = (path: string, ...more: string[]) => ["--script", path, ...more, ...T];
const read = (path: string) => ({ perms: ["--allow-ffi", `--allow-read=${path}`] });

const CASES: CliCase[] = [
  // Sizes and counts, at and beyond their limits.
  l2fwd(
    "refuses --queues 0",
    ["--queues", "0", ...T],
    2,
    /--queues must be an integer from 1 to 64, not '0'/,
  ),
  l2fwd("refuses --queues 65, one beyond its most,", ["--queues", "65", ...T], 2, /not '65'/),
  l2fwd("refuses --queues 1.5, not an integer,", ["--queues", "1.5", ...T], 2, /not '1\.5'/),
  l2fwd(
    "takes --queues 64, its most, as far as the missing device",
    ["--queues", "64", "--prewarm", "0", ...ANY],
    1,
    ABSENT,
  ),
  l2fwd(
    "refuses --burst 0",
    ["--burst", "0", ...T],
    2,
    /--burst must be an integer from 1 to 256, not '0'/,
  ),
  l2fwd("refuses --burst 257, one beyond its most,", ["--burst", "257", ...T], 2, /not '257'/),
  l2fwd("refuses --burst=-1", ["--burst=-1", ...T], 2, /--burst must be an integer .* not '-1'/),
  l2fwd(
    "refuses --burst -1, which reads as an option, and says how to write it,",
    ["--burst", "-1", ...T],
    2,
    /--burst is followed by '-1'.*--burst=-1/,
    { usage: true },
  ),
  l2fwd(
    "takes --burst 256, its most, as far as the missing device",
    ["--burst", "256", "--prewarm", "0", ...ANY],
    1,
    ABSENT,
  ),
  l2fwd(
    "refuses --tx-drain-us 1000000001, one beyond its most,",
    ["--tx-drain-us", "1000000001", ...T],
    2,
    /--tx-drain-us must be an integer from 0 to 1000000000/,
  ),
  l2fwd(
    "refuses --idle-us abc",
    ["--idle-us", "abc", ...T],
    2,
    /--idle-us must be an integer .*not 'abc'/,
  ),
  l2fwd(
    "refuses --warmup 1.5",
    ["--warmup", "1.5", ...T],
    2,
    /--warmup must be an integer .*not '1\.5'/,
  ),
  l2fwd("refuses --prewarm=-1", ["--prewarm=-1", ...T], 2, /--prewarm must be an integer from 0 /),
  l2fwd(
    "refuses --rebalance-ms 3600001, one beyond its most,",
    ["--steering", "rss", "--queues", "2", "--rebalance-ms", "3600001", ...T],
    2,
    /--rebalance-ms must be an integer from 0 to 3600000/,
  ),
  // Durations: setTimeout holds 2^31-1 ms, so at most 2147483 s.
  l2fwd(
    "takes --duration 2147483, its most, as far as the missing device",
    ["--duration", "2147483", "--prewarm", "0", ...ANY],
    1,
    ABSENT,
  ),
  ...["2147484", "1e400", "Infinity", "-1", "0", "abc", ""].map((d) =>
    // "=" so that parseArgs takes "-1" as the value, not as an option.
    l2fwd(
      `refuses --duration=${d}`,
      [`--duration=${d}`, ...T],
      2,
      /--duration must be a number of seconds above 0 and at most 2147483/,
    )
  ),
  ...["3601", "-1", "1.5", "soon"].map((r) =>
    l2fwd(
      `refuses --reconnect=${r}`,
      [`--reconnect=${r}`, ...T],
      2,
      /--reconnect must be an integer from 0 to 3600/,
    )
  ),
  l2fwd(
    "refuses --reconnect with --pcap",
    ["--reconnect", "10", "--pcap", "/tmp/x.pcap", ...T],
    2,
    /--reconnect and --pcap do not go together yet/,
  ),
  // Words, and options that do not go together.
  l2fwd(
    "refuses an unknown --steering mode",
    ["--steering", "spray", ...T],
    2,
    /--steering must be single, auto or rss, not 'spray'/,
  ),
  l2fwd(
    "refuses --rebalance-ms without --steering rss",
    ["--rebalance-ms", "100", ...T],
    2,
    /--rebalance-ms needs --steering rss/,
  ),
  l2fwd(
    "refuses --tx-full later",
    ["--tx-full", "later", ...T],
    2,
    /--tx-full must be wait or drop, not 'later'/,
  ),
  l2fwd(
    "refuses --stats xml",
    ["--stats", "xml", ...T],
    2,
    /--stats must be live, table, json or off/,
  ),
  l2fwd("refuses --xstats maybe", ["--xstats", "maybe", ...T], 2, /--xstats must be on or off/),
  l2fwd("refuses --queues without a value", [...T, "--queues"], 2, /--queues needs a value/, {
    usage: true,
  }),
  l2fwd(
    "refuses a value for the flag --mac-rewrite",
    ["--mac-rewrite=yes", ...T],
    2,
    /--mac-rewrite takes no value/,
    { usage: true },
  ),
  l2fwd("refuses --force without --bind", ["--force", ...T], 2, /--force only matters with --bind/),
  l2fwd(
    "refuses --bind when neither port is a PCI function",
    ["--bind", ...T],
    2,
    /--bind acts on PCI functions .*neither port is one/,
  ),
  l2fwd(
    "refuses --pcap-port 2",
    ["--pcap-port", "2", ...pcapIn(`${DIR}/a.pcap`)],
    2,
    /--pcap-port must be an integer from 0 to 1/,
  ),
  l2fwd(
    "refuses --pcap-queue 1 with one queue pair",
    ["--pcap-queue", "1", ...pcapIn(`${DIR}/a.pcap`)],
    2,
    /--pcap-queue must be an integer from 0 to 0/,
  ),
  l2fwd(
    "refuses --pcap-direction sideways",
    ["--pcap-direction", "sideways", ...pcapIn(`${DIR}/a.pcap`)],
    2,
    /--pcap-direction must be rx, tx or both/,
  ),
  l2fwd(
    "refuses --pcap-port without --pcap",
    ["--pcap-port", "1", ...T],
    2,
    /--pcap-port only matters with --pcap/,
  ),
  l2fwd(
    "refuses --script-arg without KEY=",
    script(DROP_FILTER, "--script-arg", "=53"),
    2,
    /--script-arg takes KEY=VALUE, not '=53'/,
  ),
  l2fwd(
    "refuses --script-arg without --script",
    ["--script-arg", "udp-port=53", ...T],
    2,
    /--script-arg only matters with --script/,
  ),
  l2fwd(
    "refuses a --script-arg the script's init rejects",
    script(DROP_FILTER, "--script-arg", "udp-port=http"),
    2,
    /refuses its --script-arg options \(drop_filter: UDP port 'http'/,
    read(DROP_FILTER),
  ),
  // Port names.
  l2fwd("refuses one port", [T0], 2, /l2fwd needs two ports, not 1/),
  l2fwd("refuses three ports", [...T, NO_PCI], 2, /l2fwd needs two ports, not 3/),
  l2fwd(
    "refuses a malformed PCI address",
    ["0000:zz:04.0", T1],
    2,
    /'0000:zz:04\.0' is not a PCI address/,
  ),
  l2fwd(
    "refuses a relative socket path",
    ["vfio-user:t0.sock", T1],
    2,
    /names no socket: write vfio-user:\/absolute/,
  ),
  l2fwd(
    "refuses a socket path longer than 107 bytes",
    [T0, `vhost-user:/${"s".repeat(120)}.sock`],
    2,
    /longer than 107 bytes/,
  ),
  l2fwd(
    "refuses a vhost-user port with queues=0",
    [T0, `${T1}?queues=0`],
    2,
    /option this driver does not know \(queues=0\)/,
  ),
  l2fwd(
    "refuses a vhost-user port with queues=129",
    [T0, `${T1}?queues=129`],
    2,
    /asks for 129 queue pairs: vhost-user has at most 128/,
  ),
  l2fwd(
    "refuses a vhost-user port with a multicast mac",
    [T0, `${T1}?mac=01:00:5e:00:00:01`],
    2,
    /01:00:5e:00:00:01 is a multicast address/,
  ),
  l2fwd(
    "refuses --queues above a vhost-user port's queues=",
    ["--queues", "2", T0, `${T1}?queues=1`],
    2,
    /--queues 2 is more than the 1 queue pairs of vhost-user:/,
  ),
  // The environment: permissions and files.
  l2fwd(
    "without --allow-ffi names it",
    T,
    1,
    /^error: l2fwd needs --allow-ffi .*deno run --allow-ffi/,
    { perms: [] },
  ),
  l2fwd(
    "refuses --script without --allow-read for it",
    script(DROP_FILTER),
    1,
    /--script .* needs read permission .*--allow-read=examples\/scripts\/drop_filter\.ts/,
  ),
  l2fwd(
    "refuses --pcap without --allow-write for it",
    pcapIn(`${DIR}/w.pcap`),
    1,
    /--pcap .*w\.pcap needs write permission .*--allow-write=/,
  ),
  l2fwd(
    "refuses a --pcap in a directory that does not exist",
    pcapIn("/nonexistent/x.pcap"),
    1,
    /--pcap \/nonexistent\/x\.pcap cannot be written \(No such file/,
    { perms: ["--allow-ffi", "--allow-write=/nonexistent/x.pcap"] },
  ),
  l2fwd(
    "refuses a --pcap that is a directory",
    pcapIn(DIR),
    1,
    /cannot be written \(Is a directory/,
    { perms: ["--allow-ffi", `--allow-write=${DIR}`] },
  ),
  l2fwd(
    "refuses a --pcap under /proc, where not even root creates files,",
    pcapIn("/proc/x.pcap"),
    1,
    /--pcap \/proc\/x\.pcap cannot be written/,
    { perms: ["--allow-all"] },
  ),
  l2fwd(
    "refuses a --script that does not exist",
    script(`${DIR}/missing.ts`),
    1,
    /--script .*missing\.ts cannot be read \(No such file/,
    read(`${DIR}/missing.ts`),
  ),
  l2fwd(
    "refuses a --script with a syntax error",
    script(`${DIR}/broken.ts`),
    1,
    /--script .*broken\.ts does not load/,
    read(`${DIR}/broken.ts`),
  ),
  l2fwd(
    "refuses a --script that throws while it loads",
    script(`${DIR}/throws.ts`),
    1,
    /throws\.ts does not load \(.*the script failed while loading/,
    read(`${DIR}/throws.ts`),
  ),
  l2fwd(
    "refuses a --script that exports no handleBurst",
    script(`${DIR}/empty.ts`),
    1,
    /empty\.ts exports no handleBurst/,
    read(`${DIR}/empty.ts`),
  ),
  l2fwd(
    "refuses a --script whose counters are not names",
    script(`${DIR}/counters.ts`),
    1,
    /counters\.ts: its counters export must be an array of names/,
    read(`${DIR}/counters.ts`),
  ),
  // port_info.
  portInfo("refuses no PORT", [], 2, /port_info takes one PORT, not 0/),
  portInfo("refuses two PORTs", T, 2, /port_info takes one PORT, not 2/),
  portInfo(
    "refuses a malformed PCI address",
    ["0000:zz:04.0"],
    2,
    /'0000:zz:04\.0' is not a PCI address/,
  ),
  portInfo(
    "refuses a vhost-user PORT with an all-zero mac",
    [`${T1}?mac=00:00:00:00:00:00`],
    2,
    /all-zero address/,
  ),
  portInfo(
    "refuses --force without --bind",
    ["--force", NO_PCI],
    2,
    /--force only matters with --bind/,
  ),
  portInfo(
    "refuses --bind on a socket PORT",
    ["--bind", T0],
    2,
    /--bind acts on a PCI function .* is none/,
  ),
  portInfo(
    "refuses --restore-driver on a socket PORT",
    ["--restore-driver", T1],
    2,
    /--restore-driver acts on a PCI function/,
  ),
  portInfo("refuses a value for the flag --json", ["--json=1", T0], 2, /--json takes no value/, {
    usage: true,
  }),
  portInfo(
    "without --allow-ffi names it",
    [T0],
    1,
    /^error: port_info needs --allow-ffi .*deno run --allow-ffi/,
    { perms: [] },
  ),
  portInfo("says a PORT is absent", [NO_SOCK0], 1, ABSENT),
];

for (const c of CASES) {
  Deno.test(c.name, async () => {
    const before = wires.touched();
    const r = await run(c.example, c.args, c.perms);
    assertOneSentence(r, c.status, c.match, c.usage);
    await new Promise((resolve) => setTimeout(resolve, 20)); // a connection is accepted by now
    assert.equal(wires.touched(), before, `a port was opened: ${r.stderr}`);
    if (c.match !== ABSENT) {
      assert.doesNotMatch(r.stderr, /no PCI device|No vfio-user server|closed the connection/);
    }
  });
}

Deno.test("the tripwire sees a port that is opened, so the table's zero means none was", async () => {
  const before = wires.touched();
  const r = await run("port_info", [T0]);
  assert.equal(r.code, 1, r.stderr);
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(wires.touched(), before + 1, r.stderr);
});

Deno.test("the bad-input table has at least 30 rows", () => {
  assert.ok(CASES.length >= 30, `${CASES.length} cases`);
});
