/**
 * The command line of examples/testpmd.ts: DPDK testpmd's option names where they exist
 * (`--forward-mode`, `--burst`, `--rxq`/`--txq`, `--rxd`/`--txd`, `--stats-period`), the
 * rest as l2fwd takes them (examples/l2fwd_options.ts parses those). Nothing here reaches
 * libc. A bad command line is one {@linkcode UsageError} sentence (exit 2).
 *
 * @module
 */

import { ENGINE_MODES, isEngineMode } from "../mod.ts";
import type { AppRun } from "./fwd_app.ts";
import { parseCommandLine, UsageError } from "./l2fwd_options.ts";

/** testpmd's --help text. */
export const TESTPMD_USAGE = `usage: deno run --allow-ffi examples/testpmd.ts [options] PORT0 PORT1

Forwards between PORT0 and PORT1 on one worker per queue pair in one of DPDK testpmd's
forwarding modes. A PORT is a PCI address (kernel VFIO, e.g. 0000:00:04.0),
vfio-user:/path/to/socket or vhost-user:/path/to/socket[?mac=…&queues=N].

  --forward-mode=MODE  io (default: frames go out of the other port as they came),
                       mac (source MAC: the output port's, destination
                       02:00:00:00:00:<port>), macswap (destination and source MAC
                       swapped), 5tswap (MACs, IPv4/IPv6 addresses and TCP/UDP/SCTP
                       ports swapped, past up to two VLAN tags), rxonly (every frame
                       received, counted and freed: nothing is sent), icmpecho (ARP
                       requests and ICMPv4 echo requests answered out of the port they
                       came in on; other frames freed and counted in dropsMode),
                       txonly (UDP/IPv4 frames of --txpkts bytes generated on both
                       ports, frames coming back counted and their latency measured),
                       flowgen (the same over --flowgen-flows flows)
  --txpkts=N           txonly/flowgen: bytes per generated frame, Ethernet header
                       included (default 64)
  --flowgen-flows=N    flowgen: flows per port (default 1; at most 65536)
  --tx-rate=PPS        txonly/flowgen: frames per second over all ports and workers
                       (default: as fast as the rings take them)
  --tx-first           send a burst of 64-byte UDP frames out of each port first, then
                       forward (sets traffic going between forwarders that only
                       forward); not with -i or --cmdline-file (use start tx_first)
  -i, --interactive    read testpmd's commands (start, stop, set fwd MODE, show port
                       stats all, show port xstats all, clear port stats all, quit; help
                       lists them) from stdin, with a prompt on a terminal; forwarding
                       waits for start
  --cmdline-file=FILE  run the commands in FILE first (needs --allow-read=FILE), then
                       read stdin with -i, or go on forwarding without it
  --burst=N            frames per receive and transmit burst (default 32, at most 256)
  --rxq=N --txq=N      queue pairs per port, one worker each (give both equal; default 1)
  --rxd=N --txd=N      descriptors per receive / transmit queue (a power of two from 16
                       to 32768; default: the device's)
  --stats-period=S     print statistics every S seconds (default 0: only the summary at
                       exit), as --stats says
  --stats MODE         live | table | json | off (default: live on a terminal, json
                       otherwise; live redraws one view in place, table prints testpmd's
                       "show port stats" each time)
  --duration S         stop after S seconds (default: run until SIGINT/SIGTERM)

l2fwd's other options work the same (see examples/l2fwd.ts --help): --steering,
--physical-pool, --script and --script-arg (with io and mac only: a script and another
mode do not go together), --pcap, --pcap-port, --pcap-direction, --pcap-queue,
--reconnect, --tx-drain-us, --tx-full, --xstats, --ring, --in-order, --mergeable, --indirect,
--tx-csum, --tso, --rx-csum, --lro, --idle-us, --warmup, --prewarm, --heap-audit, --bind,
--force, --restore-driver; --queues and --mac-rewrite are --rxq/--txq and
--forward-mode=mac here.
  --help               this text

exit status: as l2fwd's: 0 stopped cleanly, 1 the environment (a device, driver or
worker error, a missing permission), 2 a bad command line (one sentence), 130/143 a
signal during start-up.`;

/** testpmd's own options, each taking a value (as `--name=V` or `--name V`). */
const OWN = [
  "forward-mode",
  "rxq",
  "txq",
  "rxd",
  "txd",
  "stats-period",
  "txpkts",
  "flowgen-flows",
  "tx-rate",
  "cmdline-file",
] as const;

/** l2fwd options testpmd names otherwise: the name to use instead. */
const RENAMED: Record<string, string> = {
  "--queues": "--rxq=N --txq=N",
  "--mac-rewrite": "--forward-mode=mac",
};

function usageError(message: string): never {
  throw new UsageError(`${message}: see --help.`);
}

/** A whole number from `min` to `max`, or a usage error naming --`name`. */
function int(value: string, name: string, min: number, max: number): number {
  const n = Number(value);
  if (!(value !== "" && Number.isInteger(n) && n >= min && n <= max)) {
    usageError(`--${name} must be an integer from ${min} to ${max}, not '${value}'`);
  }
  return n;
}

/** A ring size: a power of two from 16 to 32768 (virtio's split ring limit). */
function ringSize(value: string, name: string): number {
  const n = int(value, name, 16, 32768);
  if ((n & (n - 1)) !== 0) usageError(`--${name} must be a power of two, not ${n}`);
  return n;
}

/**
 * Parses testpmd's arguments (text only: no file, no device); returns "help" for
 * --help. Throws a {@linkcode UsageError}, or a BAD_ADDRESS DriverError for a port name:
 * both are usage (exit 2).
 *
 * @example
 * ```ts
 * import { parseTestpmdCommandLine } from "./testpmd_options.ts";
 * const run = parseTestpmdCommandLine(["--forward-mode=macswap", "--rxq=2", "--txq=2", "0000:00:04.0", "0000:00:05.0"]);
 * if (run !== "help") [run.mode, run.queues]; // ["macswap", 2]
 * ```
 */
export function parseTestpmdCommandLine(args: string[]): AppRun | "help" {
  const own = new Map<string, string>();
  let interactive = false, txFirst = false;
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "-i" || a === "--interactive") {
      interactive = true;
      continue;
    }
    if (a === "--tx-first") {
      txFirst = true;
      continue;
    }
    if (a === "--") {
      rest.push(...args.slice(i));
      break;
    }
    const eq = a.indexOf("=");
    const name = a.startsWith("--") ? a.slice(2, eq < 0 ? undefined : eq) : "";
    if (RENAMED[`--${name}`] !== undefined) {
      usageError(`testpmd takes ${RENAMED[`--${name}`]} instead of --${name}`);
    }
    if (!(OWN as readonly string[]).includes(name)) {
      rest.push(a);
      continue;
    }
    if (own.has(name)) usageError(`--${name} is given twice; give it once`);
    if (eq >= 0) {
      own.set(name, a.slice(eq + 1));
    } else if (i + 1 < args.length && !args[i + 1].startsWith("--")) {
      own.set(name, args[++i]);
    } else {
      usageError(`--${name} needs a value`);
    }
  }
  const mode = own.get("forward-mode") ?? "io";
  if (!isEngineMode(mode)) {
    usageError(`--forward-mode must be one of ${ENGINE_MODES.join(", ")}, not '${mode}'`);
  }
  const generating = mode === "txonly" || mode === "flowgen";
  for (const name of ["txpkts", "flowgen-flows", "tx-rate"]) {
    if (own.has(name) && !generating) {
      usageError(`--${name} is for --forward-mode=txonly or flowgen, not ${mode}`);
    }
  }
  if (own.has("flowgen-flows") && mode !== "flowgen") {
    usageError(`--flowgen-flows is for --forward-mode=flowgen; txonly sends one flow`);
  }
  if (txFirst && generating) {
    usageError(`--tx-first is for forwarding modes: --forward-mode=${mode} sends on its own`);
  }
  if (txFirst && (interactive || own.has("cmdline-file"))) {
    usageError(`--tx-first starts forwarding at once; in commands use start tx_first`);
  }
  const rate = own.get("tx-rate");
  if (rate !== undefined && !(Number(rate) > 0 && Number(rate) <= 1e9)) {
    usageError(`--tx-rate must be frames per second above 0 and at most 1e9, not '${rate}'`);
  }
  const generator = generating
    ? {
      frameSize: own.has("txpkts") ? int(own.get("txpkts")!, "txpkts", 64, 9230) : undefined,
      flows: own.has("flowgen-flows")
        ? int(own.get("flowgen-flows")!, "flowgen-flows", 1, 65536)
        : undefined,
      ratePps: rate === undefined ? undefined : Number(rate),
    }
    : undefined;
  const rxq = own.get("rxq"), txq = own.get("txq");
  if (rxq !== undefined && txq !== undefined && rxq !== txq) {
    usageError(
      `--rxq ${rxq} and --txq ${txq} differ, but each worker drives one queue pair; give them equal`,
    );
  }
  const queues = rxq ?? txq;
  if (queues !== undefined) int(queues, rxq !== undefined ? "rxq" : "txq", 1, 64);
  const l2fwdArgs = queues !== undefined ? ["--queues", queues, ...rest] : rest;
  if (mode === "mac") l2fwdArgs.unshift("--mac-rewrite");
  // l2fwd's parser, named testpmd; testpmd's own usage goes below its errors (main()).
  const run = parseCommandLine(l2fwdArgs, "testpmd");
  if (run === "help") return run;
  if (generating && (run.pcap !== undefined)) {
    usageError(`--pcap captures forwarded frames, not those --forward-mode=${mode} makes`);
  }
  if (run.script !== undefined && mode !== "io" && mode !== "mac") {
    usageError(
      `--forward-mode=${mode} and --script do not go together (a script can do what the mode does); leave one out`,
    );
  }
  const period = own.get("stats-period");
  return {
    ...run,
    mode,
    rxQueueSize: own.has("rxd") ? ringSize(own.get("rxd")!, "rxd") : undefined,
    txQueueSize: own.has("txd") ? ringSize(own.get("txd")!, "txd") : undefined,
    statsPeriodS: period === undefined ? 0 : int(period, "stats-period", 0, 86400),
    generator,
    interactive,
    cmdlineFile: own.get("cmdline-file"),
    txFirst: txFirst ? 1 : undefined,
  };
}
