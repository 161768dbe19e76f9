/**
 * The command line of examples/l2fwd.ts: its usage text, parsing and validation, and the
 * checks of --script and --pcap that come before any device is touched. Nothing here
 * reaches libc, so l2fwd can say what is wrong even without --allow-ffi.
 *
 * Two kinds of error, each one sentence: a {@linkcode UsageError} when the command line
 * itself is wrong whatever the machine (exit 2), any other DriverError when the machine
 * or a file it names is not as the command line expects (exit 1).
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  asForwardScript,
  DriverError,
  parsePortSpec,
  type ScriptInit,
  writeFileAtomic,
} from "../mod.ts";

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
  --physical-pool     put the packet pool at physical addresses (2 MiB huge pages,
                      root): needed by legacy virtio-pci devices, which bypass the IOMMU
  --mac-rewrite       rewrite source MAC to the sending port's, destination to
                      02:00:00:00:00:<port> (as DPDK l2fwd does)
  --script FILE       run every burst through FILE's handleBurst (needs --allow-read=FILE)
  --script-arg K=V    an option for the script (repeatable)
  --pcap FILE         capture frames of --pcap-port into FILE (needs --allow-write=FILE)
  --pcap-port P       port to capture (default 0)
  --pcap-direction D  rx (frames it received; default), tx (frames sent out of it, as
                      they leave) or both
  --pcap-queue Q      queue pair to capture, or all (default all)
  --stats MODE        live | table | json | off (default: live on a terminal, json
                      otherwise); live redraws one view in place (rates, drops, a
                      sparkline per port), table prints a table each time
  --prometheus FILE   write the ports' extended statistics (DPDK's names) to FILE in
                      Prometheus text format every second and at exit, atomically
                      (written to FILE.tmp, then renamed over FILE)
  --duration S        stop after S seconds, at most 2147483 (default: run until
                      SIGINT/SIGTERM)
  --reconnect S       when a port fails (the device needs a reset, a ring broke, its
                      server or back-end went away), reset and reopen both ports and go
                      on forwarding, trying for up to S seconds, at most 3600 (default 0:
                      exit 1 with one sentence); not with --pcap
  --tx-drain-us US    send a partial transmit burst after US microseconds (default 100)
  --tx-full MODE      frames a full transmit ring does not take: wait (keep them, stop
                      receiving that way until there is room; default) or drop (count
                      them, as DPDK l2fwd does)
  --xstats MODE       on (count each frame's size bin, multicast and broadcast for the
                      extended statistics, as DPDK's virtio PMD; default) or off (those
                      stay 0; forwarding is faster: 15-30 % at 64 bytes)
  --ring FORMAT       virtqueue format: auto (packed when the device offers
                      VIRTIO_F_RING_PACKED, split otherwise; default) or split
  --in-order MODE     auto (negotiate VIRTIO_F_IN_ORDER when the device offers it: it
                      uses buffers in order and may return a batch at once; default)
                      or off (never negotiate it)
  --mergeable MODE    auto (take VIRTIO_NET_F_MRG_RXBUF when offered: frames longer
                      than a buffer span several; default) or off
  --indirect MODE     auto (take VIRTIO_F_INDIRECT_DESC when offered: a frame that
                      spans buffers is sent through one ring slot; default) or off
  --tx-csum MODE      auto (take VIRTIO_NET_F_CSUM when offered: the device completes
                      partial checksums; default) or off
  --tso MODE          auto (take VIRTIO_NET_F_HOST_TSO4/6 when offered with CSUM: the
                      device segments TCP super-frames; default) or off
  --rx-csum MODE      auto (take VIRTIO_NET_F_GUEST_CSUM when offered: received frames
                      may come checked or with a partial checksum) or off (default:
                      the device completes every checksum)
  --lro MODE          auto (take VIRTIO_NET_F_GUEST_TSO4/6 when offered with GUEST_CSUM
                      and mergeable buffers: TCP super-frames of up to 64 KiB come in)
                      or off (default). With either, a frame received with a partial
                      checksum or as a super-frame goes out as one: its output port
                      needs --tx-csum and --tso, or it is dropped and counted
                      (docs/offloads.md)
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
  1     the environment, not usage: a device, driver or worker error, no --allow-ffi,
        no --allow-read or --allow-write for the --script or --pcap file, a --script
        that is missing, does not load or is no script, a --pcap file that cannot be
        written
  2     a bad command line: an unknown option, a value out of its range, a malformed
        port or the same port twice, options that do not go together, or a
        --script-arg the script's init refuses
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

/** The machine or a file is not as the command line expects (l2fwd exits 1). */
function environment(code: "PERMISSION" | "BAD_ARGUMENT", message: string): never {
  throw new DriverError(code, message);
}

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

/**
 * One clause for a command line that parseArgs refuses (its own messages run to three
 * sentences); the caller adds where the fix is. `args` finds the value it refused.
 *
 * @example
 * ```ts
 * import { argumentError } from "./l2fwd_options.ts";
 * argumentError(new Error("Option '--queues <value>' argument missing"), ["--queues"]);
 * // "--queues needs a value"
 * ```
 */
export function argumentError(e: unknown, args: readonly string[]): string {
  const message = String((e as Error)?.message ?? e);
  let m = /^Unknown option '([^']*)'/.exec(message);
  if (m) return `unknown option '${m[1]}'`;
  if ((m = /^Option '(-[^' ]*)(?: <value>)?' argument missing/.exec(message))) {
    return `${m[1]} needs a value`;
  }
  if ((m = /^Option '(-[^']*)' argument is ambiguous/.exec(message))) {
    const next = args[args.indexOf(m[1]) + 1] ?? "";
    return `${m[1]} is followed by '${next}', which looks like an option (write ${
      m[1]
    }=${next} if it is the value)`;
  }
  if ((m = /^Option '(-[^']*)' does not take an argument/.exec(message))) {
    return `${m[1]} takes no value (write ${m[1]} alone)`;
  }
  return message.split("\n")[0].replace(/\.$/, "");
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
  /** The packet pool at physical addresses, for legacy devices (--physical-pool). */
  physicalPool: boolean;
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
  /** The Prometheus text file rewritten every second (--prometheus). */
  prometheus: string | undefined;
  /** live, table, json or off (--stats). */
  statsMode: string;
  /** Partial transmit burst delay in µs (--tx-drain-us). */
  drainUs: number;
  /** Sleep when idle in µs (--idle-us). */
  idleUs: number;
  /** What a full transmit ring does to frames (--tx-full). */
  txFull: "wait" | "drop";
  /** Count the extended statistics per frame (--xstats on). */
  xstats: boolean;
  /** Negotiate packed rings when offered (--ring auto) or keep split ones (--ring split). */
  packedRing: boolean;
  /** Negotiate VIRTIO_F_IN_ORDER when offered (--in-order auto) or not (--in-order off). */
  inOrder: boolean;
  /** Negotiate mergeable receive buffers when offered (--mergeable auto). */
  mergeable: boolean;
  /** Negotiate indirect descriptors when offered (--indirect auto) or not (--indirect off). */
  indirect: boolean;
  /** Negotiate VIRTIO_NET_F_CSUM when offered (--tx-csum auto). */
  txChecksum: boolean;
  /** Negotiate VIRTIO_NET_F_HOST_TSO4/6 when offered (--tso auto). */
  tso: boolean;
  /** Negotiate VIRTIO_NET_F_GUEST_CSUM when offered (--rx-csum auto). */
  rxChecksum: boolean;
  /** Negotiate VIRTIO_NET_F_GUEST_TSO4/6 when offered (--lro auto). */
  lro: boolean;
  /** Warm-up packets per worker (--warmup). */
  warmup: number;
  /** Synthetic warm-up frames per worker (--prewarm). */
  prewarm: number;
  /** Live heap figures with full GCs (--heap-audit). */
  heapAudit: boolean;
  /** Seconds to try reopening the ports after a fault, 0 for none (--reconnect). */
  reconnectS: number;
  /** Bind the functions to vfio-pci (--bind). */
  bind: boolean;
  /** Bind even a function that carries host traffic (--force). */
  force: boolean;
  /** Give the functions back at exit (--restore-driver). */
  restoreDriver: boolean;
}

/**
 * Parses and validates l2fwd's arguments (text only: no file, no device); returns "help"
 * for --help. Throws a {@linkcode UsageError}, or a BAD_ADDRESS DriverError for a port
 * name, otherwise: both are usage (exit 2). `program` names the program in them.
 *
 * @example
 * ```ts
 * import { parseCommandLine } from "./l2fwd_options.ts";
 * const run = parseCommandLine(["--queues", "2", "0000:00:04.0", "0000:00:05.0"]);
 * if (run !== "help") run.queues; // 2
 * ```
 */
export function parseCommandLine(args: string[], program = "l2fwd"): Run | "help" {
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
        "physical-pool": { type: "boolean", default: false },
        script: { type: "string" },
        "script-arg": { type: "string", multiple: true },
        pcap: { type: "string" },
        "pcap-port": { type: "string" },
        "pcap-direction": { type: "string" },
        "pcap-queue": { type: "string" },
        stats: { type: "string" },
        prometheus: { type: "string" },
        duration: { type: "string" },
        reconnect: { type: "string", default: "0" },
        "tx-drain-us": { type: "string", default: "100" },
        "tx-full": { type: "string", default: "wait" },
        xstats: { type: "string", default: "on" },
        ring: { type: "string", default: "auto" },
        "in-order": { type: "string", default: "auto" },
        mergeable: { type: "string", default: "auto" },
        indirect: { type: "string", default: "auto" },
        "tx-csum": { type: "string", default: "auto" },
        tso: { type: "string", default: "auto" },
        "rx-csum": { type: "string", default: "off" },
        lro: { type: "string", default: "off" },
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
    throw new UsageError(`${argumentError(e, args)}: see the usage below.`, true);
  }
  const { values, positionals } = parsed;
  if (values.help) return "help";
  const statsMode = values.stats ?? (Deno.stdout.isTerminal() ? "live" : "json");
  const scriptArgs: Record<string, string> = {};
  if (positionals.length !== 2) usageError(`${program} needs two ports, not ${positionals.length}`);
  const specs = positionals.map(parsePortSpec);
  if (specs[0].name === specs[1].name) {
    usageError(
      `${program} was given the same port twice (${specs[0].name}); give two different ports`,
    );
  }
  const queues = intOption(values.queues, "queues", 1, 64);
  for (const ps of specs) {
    // A back-end named with ?queues=N serves N pairs: refused now, not once port 0 is open.
    if (ps.kind === "vhost-user" && ps.queues !== undefined && ps.queues < queues) {
      usageError(
        `--queues ${queues} is more than the ${ps.queues} queue pairs of ${ps.name} (its ?queues=${ps.queues}); lower --queues or raise queues=`,
      );
    }
  }
  const burst = intOption(values.burst, "burst", 1, 256);
  const steering = values.steering ?? (queues > 1 ? "auto" : "single");
  if (!["single", "auto", "rss"].includes(steering)) {
    usageError(`--steering must be single, auto or rss, not '${steering}'`);
  }
  const rebalanceMs = intOption(values["rebalance-ms"], "rebalance-ms", 0, 3_600_000);
  if (rebalanceMs > 0 && (steering !== "rss" || queues < 2)) {
    usageError(`--rebalance-ms needs --steering rss and --queues 2 or more`);
  }
  if (!["on", "off"].includes(values.xstats)) {
    usageError(`--xstats must be on or off, not '${values.xstats}'`);
  }
  if (!["wait", "drop"].includes(values["tx-full"])) {
    usageError(`--tx-full must be wait or drop, not '${values["tx-full"]}'`);
  }
  if (!["auto", "split"].includes(values.ring)) {
    usageError(`--ring must be auto or split, not '${values.ring}'`);
  }
  if (!["auto", "off"].includes(values["in-order"])) {
    usageError(`--in-order must be auto or off, not '${values["in-order"]}'`);
  }
  for (const o of ["mergeable", "tx-csum", "tso", "rx-csum", "lro"] as const) {
    if (!["auto", "off"].includes(values[o])) {
      usageError(`--${o} must be auto or off, not '${values[o]}'`);
    }
  }
  if (!["auto", "off"].includes(values.indirect)) {
    usageError(`--indirect must be auto or off, not '${values.indirect}'`);
  }
  if (!["live", "table", "json", "off"].includes(statsMode)) {
    usageError(`--stats must be live, table, json or off, not '${statsMode}'`);
  }
  const seconds = values.duration === undefined ? Infinity : Number(values.duration);
  if (values.duration !== undefined && !(seconds > 0 && seconds <= MAX_DURATION_S)) {
    usageError(
      `--duration must be a number of seconds above 0 and at most ${MAX_DURATION_S} (leave it out to run until SIGINT/SIGTERM), not '${values.duration}'`,
    );
  }
  const durationMs = seconds * 1000;
  const reconnectS = intOption(values.reconnect, "reconnect", 0, 3600);
  // A new session would open the capture file again, from its start.
  if (reconnectS > 0 && values.pcap !== undefined) {
    usageError(`--reconnect and --pcap do not go together yet; leave one out`);
  }
  // The capture's options mean nothing without --pcap, the script's without --script.
  for (const name of ["pcap-port", "pcap-queue", "pcap-direction"] as const) {
    if (values[name] !== undefined && values.pcap === undefined) {
      usageError(`--${name} only matters with --pcap; add --pcap FILE or leave it out`);
    }
  }
  const pcapQueue = (values["pcap-queue"] ?? "all") === "all"
    ? undefined
    : intOption(values["pcap-queue"], "pcap-queue", 0, queues - 1);
  const pcapPort = intOption(values["pcap-port"] ?? "0", "pcap-port", 0, 1);
  const pcapDirection = values["pcap-direction"] ?? "rx";
  if (!["rx", "tx", "both"].includes(pcapDirection)) {
    usageError(`--pcap-direction must be rx, tx or both, not '${pcapDirection}'`);
  }
  const scriptArgList = values["script-arg"] ?? [];
  if (scriptArgList.length && values.script === undefined) {
    usageError(`--script-arg only matters with --script; add --script FILE or leave it out`);
  }
  for (const a of scriptArgList) {
    const eq = a.indexOf("=");
    if (eq < 1) usageError(`--script-arg takes KEY=VALUE, not '${a}'`);
    scriptArgs[a.slice(0, eq)] = a.slice(eq + 1);
  }
  const drainUs = intOption(values["tx-drain-us"], "tx-drain-us", 0, 1e9);
  const idleUs = intOption(values["idle-us"], "idle-us", 0, 1e9);
  const warmup = intOption(values.warmup, "warmup", 0, 1e9);
  const prewarm = intOption(values.prewarm, "prewarm", 0, 1e9);
  // --bind and its companions act on PCI functions only (kernel VFIO).
  if (values.force && !values.bind) {
    usageError(`--force only matters with --bind; add --bind or leave --force out`);
  }
  const flag = ["bind", "force", "restore-driver"].find((f) => values[f as "bind"]);
  if (flag && !specs.some((ps) => ps.kind === "pci")) {
    usageError(
      `--${flag} acts on PCI functions (kernel VFIO) and neither port is one; leave it out`,
    );
  }
  return {
    ports: positionals,
    queues,
    burst,
    durationMs,
    steering,
    rebalanceMs,
    macRewrite: values["mac-rewrite"],
    physicalPool: values["physical-pool"],
    script: values.script,
    scriptArgs,
    pcap: values.pcap,
    pcapPort,
    pcapQueue,
    pcapDirection: pcapDirection as "rx" | "tx" | "both",
    prometheus: values.prometheus,
    statsMode,
    drainUs,
    idleUs,
    txFull: values["tx-full"] as "wait" | "drop",
    xstats: values.xstats === "on",
    packedRing: values.ring === "auto",
    inOrder: values["in-order"] === "auto",
    mergeable: values.mergeable === "auto",
    indirect: values.indirect === "auto",
    txChecksum: values["tx-csum"] === "auto",
    tso: values.tso === "auto",
    rxChecksum: values["rx-csum"] === "auto",
    lro: values.lro === "auto",
    warmup,
    prewarm,
    heapAudit: values["heap-audit"],
    reconnectS,
    bind: values.bind,
    force: values.force,
    restoreDriver: values["restore-driver"],
  };
}

/**
 * Checks --script, --pcap and --prometheus before any device is touched: the permissions
 * deno needs for them, that the script loads, is a script and takes its --script-arg options (its `init`
 * is called once, as worker 0, with the MACs all zero), and that the capture file can be
 * created. Returns whether it created the file. Throws one sentence naming the file: a
 * {@linkcode UsageError} when `init` refuses the arguments (exit 2), a DriverError for the
 * environment otherwise (exit 1).
 *
 * @example
 * ```ts ignore
 * import { checkFiles, parseCommandLine } from "./l2fwd_options.ts";
 * const run = parseCommandLine(["--pcap", "rx.pcap", "0000:00:04.0", "0000:00:05.0"]);
 * if (run !== "help") await checkFiles(run); // true when rx.pcap is new
 * ```
 */
export async function checkFiles(
  run: Pick<Run, "script" | "scriptArgs" | "queues" | "pcap"> & { prometheus?: string },
): Promise<boolean> {
  const { script, pcap, prometheus } = run;
  const need: [string | undefined, "read" | "write", string][] = [
    [script, "read", "--script"],
    [pcap, "write", "--pcap"],
  ];
  for (const [path, name, opt] of need) {
    if (path !== undefined && Deno.permissions.querySync({ name, path }).state !== "granted") {
      environment(
        "PERMISSION",
        `${opt} ${path} needs ${name} permission for that file: run deno with --allow-${name}=${path}.`,
      );
    }
  }
  // --prometheus goes through libc (--allow-ffi): an empty exposition is a valid one.
  if (prometheus !== undefined) {
    try {
      writeFileAtomic(prometheus, "");
    } catch (e) {
      environment(
        "BAD_ARGUMENT",
        `--prometheus ${prometheus} cannot be written (${
          reason(e)
        }): give a file in a directory that exists and that you may write.`,
      );
    }
  }
  if (script !== undefined) {
    let url: string;
    try {
      url = script.startsWith("file:")
        ? script
        : new URL(`file://${Deno.realPathSync(script)}`).href;
    } catch (e) {
      environment(
        "BAD_ARGUMENT",
        `--script ${script} cannot be read (${reason(e)}): give the path of a module.`,
      );
    }
    let mod: Record<string, unknown>;
    try {
      mod = await import(url);
    } catch (e) {
      environment("BAD_ARGUMENT", `--script ${script} does not load (${reason(e)}): fix it.`);
    }
    let init: unknown;
    try {
      init = asForwardScript(mod, `--script ${script}`).init;
    } catch (e) {
      environment("BAD_ARGUMENT", `${reason(e)}: see src/engine/script_api.ts.`);
    }
    try {
      (init as ((i: ScriptInit) => void) | undefined)?.({
        queue: 0,
        workers: run.queues,
        ports: 2,
        macs: [new Uint8Array(6), new Uint8Array(6)],
        args: { ...run.scriptArgs },
      });
    } catch (e) {
      throw new UsageError(
        `--script ${script} refuses its --script-arg options (${
          reason(e)
        }): fix them, as the script says.`,
      );
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
    environment(
      "BAD_ARGUMENT",
      `--pcap ${pcap} cannot be written (${
        reason(e)
      }): give a file in a directory that exists and that you may write.`,
    );
  }
  return created;
}
