/**
 * The command line of examples/l2fwd.ts: its usage text, parsing and validation, and the
 * checks of --script and --pcap that come before any device is touched. Nothing here
 * reaches libc, so l2fwd can say what is wrong even without --allow-ffi.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { asForwardScript, canonicalPortName, DriverError } from "../mod.ts";

/** l2fwd's --help text. */
export const USAGE = `usage: deno run --allow-ffi examples/l2fwd.ts [options] PORT0 PORT1

Forwards PORT0 -> PORT1 and PORT1 -> PORT0 on one worker per queue pair. A PORT is a PCI
address (kernel VFIO, e.g. 0000:00:04.0), vfio-user:/path/to/socket or
vhost-user:/path/to/socket[?mac=02:00:00:00:00:01&queues=N].

  --queues N          queue pairs per port, one worker each (default 1)
  --burst N           frames per receive and transmit burst (default 32)
  --steering MODE     single | auto | rss (default: auto with several queues)
  --rebalance-ms MS   with rss: every MS milliseconds give each port a new indirection
                      table (rotated by one queue) while forwarding, with no reordering
  --mac-rewrite       rewrite source MAC to the sending port's, destination to
                      02:00:00:00:00:<port> (as DPDK l2fwd does)
  --script FILE       run every burst through FILE's handleBurst (needs --allow-read=FILE)
  --script-arg K=V    an option for the script (repeatable)
  --pcap FILE         capture frames of --pcap-port into FILE (needs --allow-write=FILE)
  --pcap-port P       port to capture (default 0)
  --pcap-direction D  rx (frames it received; default), tx (frames sent out of it, as
                      they leave) or both
  --pcap-queue Q      queue pair to capture, or all (default all)
  --stats MODE        table | json | off (default: table on a terminal, json otherwise)
  --duration S        stop after S seconds, at most 2147483 (default: run until
                      SIGINT/SIGTERM)
  --tx-drain-us US    send a partial transmit burst after US microseconds (default 100)
  --tx-full MODE      frames a full transmit ring does not take: wait (keep them, stop
                      receiving that way until there is room; default) or drop (count
                      them, as DPDK l2fwd does)
  --idle-us US        sleep US microseconds when nothing arrives (default 50; 0 = spin)
  --warmup N          packets per worker before the heap figures can start, once V8
                      compiled nothing for 5 s (at 2N in any case; default 150000)
  --prewarm N         synthetic frames each worker forwards between in-memory rings
                      before it takes its queues, so that its first real frames run
                      optimised code (at most 3 s; default 200000; 0 = none)
  --heap-audit        measure the heap figures live: heapWarm/heapLast/heapLive are only
                      live-measured with --heap-audit, which forces full GCs (at warm-up
                      and at the stop) that pause forwarding (default off)
  --bind              take the functions from their kernel driver (bind to vfio-pci)
  --force             with --bind: take a function even if its network interface, or a
                      bridge, bond or VLAN above it, is up with addresses or routes (this
                      host's own network, perhaps)
  --restore-driver    give them back to their kernel driver at exit
  --help              this text

SIGINT or SIGTERM while forwarding stops cleanly (exit 0); during start-up they stop it
between steps, release everything and exit 130 or 143. A second signal while l2fwd stops
ends it at once without releasing (the kernel closes the devices and frees the memory).

exit status:
  0     stopped cleanly: --duration over, or SIGINT/SIGTERM while forwarding
  1     a device, driver or worker error, or no --allow-ffi (the environment, not usage)
  2     a bad command line (options, ports, --script or --pcap files)
  130   SIGINT during start-up, or a second SIGINT while stopping
  143   SIGTERM during start-up, or a second SIGTERM while stopping`;

/**
 * A bad command line (l2fwd exits 2): one sentence; `withUsage` asks for the usage text
 * after it.
 *
 * @example
 * ```ts
 * import { UsageError } from "./l2fwd_options.ts";
 * new UsageError("--queues must be an integer from 1 to 64, not 'x': see --help.").code; // "BAD_ARGUMENT"
 * ```
 */
export class UsageError extends DriverError {
  /** Print the usage text after the sentence. */
  readonly withUsage: boolean;
  /** Creates the error; `message` is the whole sentence. */
  constructor(message: string, withUsage = false) {
    super("BAD_ARGUMENT", message);
    this.withUsage = withUsage;
  }
}

/** setTimeout holds at most 2^31-1 ms; a longer --duration would fire at once. */
const MAX_DURATION_S = Math.floor(0x7fffffff / 1000);

function usageError(message: string): never {
  throw new UsageError(`${message}: see --help.`);
}

function intOption(value: string | undefined, name: string, min: number, max: number): number {
  const n = Number(value);
  if (!(Number.isInteger(n) && n >= min && n <= max)) {
    usageError(`--${name} must be an integer from ${min} to ${max}, not '${value}'`);
  }
  return n;
}

/** One sentence for a command line that parseArgs refuses (its own messages run to two). */
function argumentError(e: unknown): string {
  const message = (e as Error).message;
  const unknown = /^Unknown option '([^']*)'/.exec(message);
  return unknown ? `unknown option '${unknown[1]}'` : message.split("\n")[0].replace(/\.$/, "");
}

/**
 * The first line of an error message, without its final period (Deno's can run long).
 *
 * @example
 * ```ts
 * import { reason } from "./l2fwd_options.ts";
 * reason(new Error("No such file or directory (os error 2).\nmore")); // "No such file or directory (os error 2)"
 * ```
 */
export function reason(e: unknown): string {
  return String((e as Error)?.message ?? e).split("\n")[0].replace(/\.$/, "");
}

/** l2fwd's validated command line: the ports and every option, in the types used. */
export interface Run {
  /** The two port names as given (PCI address or vfio-user:/path). */
  ports: string[];
  /** Queue pairs per port (--queues). */
  queues: number;
  /** Frames per burst (--burst). */
  burst: number;
  /** Run time in ms (--duration), Infinity without one. */
  durationMs: number;
  /** single, auto or rss (--steering). */
  steering: string;
  /** RSS table change interval in ms, 0 for none (--rebalance-ms). */
  rebalanceMs: number;
  /** Rewrite MAC addresses as DPDK l2fwd (--mac-rewrite). */
  macRewrite: boolean;
  /** The script module (--script). */
  script: string | undefined;
  /** Its --script-arg KEY=VALUE pairs. */
  scriptArgs: Record<string, string>;
  /** The capture file (--pcap). */
  pcap: string | undefined;
  /** Port to capture (--pcap-port). */
  pcapPort: number;
  /** Queue pair to capture, undefined for all (--pcap-queue). */
  pcapQueue: number | undefined;
  /** Which frames to capture (--pcap-direction). */
  pcapDirection: "rx" | "tx" | "both";
  /** table, json or off (--stats). */
  statsMode: string;
  /** Partial transmit burst delay in µs (--tx-drain-us). */
  drainUs: number;
  /** Sleep when idle in µs (--idle-us). */
  idleUs: number;
  /** What a full transmit ring does to frames (--tx-full). */
  txFull: "wait" | "drop";
  /** Warm-up packets per worker (--warmup). */
  warmup: number;
  /** Synthetic warm-up frames per worker (--prewarm). */
  prewarm: number;
  /** Live heap figures with full GCs (--heap-audit). */
  heapAudit: boolean;
  /** Bind the functions to vfio-pci (--bind). */
  bind: boolean;
  /** Bind even a function that carries host traffic (--force). */
  force: boolean;
  /** Give the functions back at exit (--restore-driver). */
  restoreDriver: boolean;
}

/**
 * Parses and validates l2fwd's arguments, including the file permissions that --script
 * and --pcap need; returns "help" for --help. Throws a {@linkcode UsageError} otherwise.
 *
 * @example
 * ```ts
 * import { parseCommandLine } from "./l2fwd_options.ts";
 * const run = parseCommandLine(["--queues", "2", "0000:00:04.0", "0000:00:05.0"]);
 * if (run !== "help") run.queues; // 2
 * ```
 */
export function parseCommandLine(args: string[]): Run | "help" {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: {
        queues: { type: "string", default: "1" },
        burst: { type: "string", default: "32" },
        steering: { type: "string" },
        "rebalance-ms": { type: "string", default: "0" },
        "mac-rewrite": { type: "boolean", default: false },
        script: { type: "string" },
        "script-arg": { type: "string", multiple: true, default: [] },
        pcap: { type: "string" },
        "pcap-port": { type: "string", default: "0" },
        "pcap-direction": { type: "string", default: "rx" },
        "pcap-queue": { type: "string", default: "all" },
        stats: { type: "string" },
        duration: { type: "string" },
        "tx-drain-us": { type: "string", default: "100" },
        "tx-full": { type: "string", default: "wait" },
        "idle-us": { type: "string", default: "50" },
        warmup: { type: "string", default: "150000" },
        prewarm: { type: "string", default: "200000" },
        "heap-audit": { type: "boolean", default: false },
        bind: { type: "boolean", default: false },
        force: { type: "boolean", default: false },
        "restore-driver": { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
      allowPositionals: true,
    });
  } catch (e) {
    throw new UsageError(`${argumentError(e)}: see the usage below.`, true);
  }
  const { values, positionals } = parsed;
  if (values.help) return "help";
  const statsMode = values.stats ?? (Deno.stdout.isTerminal() ? "table" : "json");
  const scriptArgs: Record<string, string> = {};
  const drainUs = Number(values["tx-drain-us"]);
  const idleUs = Number(values["idle-us"]);
  const warmup = Number(values.warmup);
  const prewarm = Number(values.prewarm);
  if (positionals.length !== 2) usageError(`l2fwd needs two ports, not ${positionals.length}`);
  const names = positionals.map(canonicalPortName);
  if (names[0] === names[1]) {
    usageError(`l2fwd was given the same port twice (${names[0]}); give two different ports`);
  }
  const queues = intOption(values.queues, "queues", 1, 64);
  const burst = intOption(values.burst, "burst", 1, 256);
  const steering = values.steering ?? (queues > 1 ? "auto" : "single");
  if (!["single", "auto", "rss"].includes(steering)) {
    usageError(`--steering must be single, auto or rss, not '${steering}'`);
  }
  const rebalanceMs = intOption(values["rebalance-ms"], "rebalance-ms", 0, 3_600_000);
  if (rebalanceMs > 0 && (steering !== "rss" || queues < 2)) {
    usageError(`--rebalance-ms needs --steering rss and --queues 2 or more`);
  }
  if (!["wait", "drop"].includes(values["tx-full"])) {
    usageError(`--tx-full must be wait or drop, not '${values["tx-full"]}'`);
  }
  if (!["table", "json", "off"].includes(statsMode)) {
    usageError(`--stats must be table, json or off, not '${statsMode}'`);
  }
  const seconds = values.duration === undefined ? Infinity : Number(values.duration);
  if (values.duration !== undefined && !(seconds > 0 && seconds <= MAX_DURATION_S)) {
    usageError(
      `--duration must be a number of seconds above 0 and at most ${MAX_DURATION_S} (leave it out to run until SIGINT/SIGTERM), not '${values.duration}'`,
    );
  }
  const durationMs = seconds * 1000;
  const pcapQueue = values["pcap-queue"] === "all"
    ? undefined
    : intOption(values["pcap-queue"], "pcap-queue", 0, queues - 1);
  const pcapPort = intOption(values["pcap-port"], "pcap-port", 0, 1);
  if (!["rx", "tx", "both"].includes(values["pcap-direction"])) {
    usageError(`--pcap-direction must be rx, tx or both, not '${values["pcap-direction"]}'`);
  }
  for (const a of values["script-arg"]) {
    const eq = a.indexOf("=");
    if (eq < 1) usageError(`--script-arg takes KEY=VALUE, not '${a}'`);
    scriptArgs[a.slice(0, eq)] = a.slice(eq + 1);
  }
  const numbers = [
    [drainUs, "tx-drain-us"],
    [idleUs, "idle-us"],
    [warmup, "warmup"],
    [prewarm, "prewarm"],
  ] as const;
  for (const [v, name] of numbers) {
    if (!(v >= 0 && v <= 1e9)) usageError(`--${name} must be a number from 0 to 1000000000`);
  }
  // Permissions first, before any device is touched.
  const need: [string | undefined, "read" | "write", string][] = [
    [values.script, "read", "--script"],
    [values.pcap, "write", "--pcap"],
  ];
  for (const [path, name, opt] of need) {
    if (path !== undefined && Deno.permissions.querySync({ name, path }).state !== "granted") {
      throw new UsageError(
        `${opt} ${path} needs ${name} permission for that file: run deno with --allow-${name}=${path}.`,
      );
    }
  }
  return {
    ports: positionals,
    queues,
    burst,
    durationMs,
    steering,
    rebalanceMs,
    macRewrite: values["mac-rewrite"],
    script: values.script,
    scriptArgs,
    pcap: values.pcap,
    pcapPort,
    pcapQueue,
    pcapDirection: values["pcap-direction"] as "rx" | "tx" | "both",
    statsMode,
    drainUs,
    idleUs,
    txFull: values["tx-full"] as "wait" | "drop",
    warmup,
    prewarm,
    heapAudit: values["heap-audit"],
    bind: values.bind,
    force: values.force,
    restoreDriver: values["restore-driver"],
  };
}

/**
 * Checks --script and --pcap before any device is touched: the script must load and be a
 * script; the capture file must be creatable. Returns whether it created the file. Throws
 * a {@linkcode UsageError} naming the file otherwise.
 *
 * @example
 * ```ts ignore
 * import { checkFiles } from "./l2fwd_options.ts";
 * const created = await checkFiles(undefined, "rx.pcap"); // true when rx.pcap is new
 * ```
 */
export async function checkFiles(
  script: string | undefined,
  pcap: string | undefined,
): Promise<boolean> {
  if (script !== undefined) {
    let url: string;
    try {
      url = script.startsWith("file:")
        ? script
        : new URL(`file://${Deno.realPathSync(script)}`).href;
    } catch (e) {
      usageError(`--script ${script} cannot be read (${reason(e)}); give the path of a module`);
    }
    let mod: Record<string, unknown>;
    try {
      mod = await import(url);
    } catch (e) {
      usageError(`--script ${script} does not load (${reason(e)}); fix it`);
    }
    try {
      asForwardScript(mod, `--script ${script}`);
    } catch (e) {
      usageError(`${reason(e)} (see src/engine/script_api.ts)`);
    }
  }
  if (pcap === undefined) return false;
  // Created new (and removed again if start-up fails) or opened as it is: truncating it is
  // for the capture itself, once the ports are up.
  let created = true;
  try {
    try {
      Deno.openSync(pcap, { write: true, createNew: true }).close();
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
      created = false;
      Deno.openSync(pcap, { write: true }).close();
    }
  } catch (e) {
    usageError(
      `--pcap ${pcap} cannot be written (${
        reason(e)
      }); give a file in a directory that exists and that you may write`,
    );
  }
  return created;
}
