/**
 * A testpmd-like front end: DPDK testpmd's forwarding modes (`--forward-mode`, as its
 * `set fwd`) on the forwarding engine, between two ports opened as l2fwd opens them.
 * Every frame received on one port goes out of the other (io, mac, macswap, 5tswap), is
 * freed (rxonly), or is answered out of the port it came in on (icmpecho: ARP and ICMPv4
 * echo requests; other frames are freed and counted in "dropsMode").
 *
 *     deno run --allow-ffi examples/testpmd.ts [options] PORT0 PORT1
 *
 * Options are testpmd's names where it has them (`--forward-mode=MODE`, `--burst=N`,
 * `--rxq=N --txq=N`, `--rxd=N --txd=N`, `--stats-period=S`), l2fwd's otherwise
 * (`--help` lists them). Statistics every `--stats-period` seconds and a summary at exit:
 * on a terminal (or `--stats table`) as testpmd's `show port stats`, otherwise (or
 * `--stats json`) l2fwd's JSON lines, with "dropsMode" per port. Exit statuses, signals
 * and reconnection as l2fwd (examples/l2fwd.ts). A script (`--script`) runs with the io
 * and mac modes only.
 *
 * `--tx-first` (and `start tx_first` with `-i`) sends a burst of 64-byte UDP frames out
 * of each port before forwarding (src/engine/tx_first.ts).
 *
 * @module
 */

import { type App, runApp } from "./fwd_app.ts";
import { parseTestpmdCommandLine, TESTPMD_USAGE } from "./testpmd_options.ts";
import { formatPortStats, formatXstats } from "./testpmd_stats.ts";

/** testpmd: the shared forwarding program with testpmd's command line and table. */
const TESTPMD: App = {
  name: "testpmd",
  usage: TESTPMD_USAGE,
  parse: parseTestpmdCommandLine,
  formatTable: formatPortStats,
  formatXstats,
};

if (import.meta.main) await runApp(TESTPMD, Deno.args);
