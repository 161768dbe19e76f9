/**
 * Two-port layer-2 forwarding, as DPDK's l2fwd: every frame received on PORT0 is sent out
 * of PORT1 and the other way round, through one buffer pool shared by both ports (no
 * copy). Run to completion on one Deno Worker per queue pair (src/engine/): worker k
 * forwards receiveq(k+1) of each port to transmitq(k+1) of the other; the main thread
 * keeps the control path (steering, link status, statistics, capture file, shutdown).
 *
 *     deno run --allow-ffi examples/l2fwd.ts [options] PORT0 PORT1
 *
 * `--script FILE` also needs `--allow-read=FILE`, `--pcap FILE` `--allow-write=FILE`.
 *
 * Statistics: every second, and a summary at exit. On a terminal (or `--stats table`) a
 * table; otherwise (or `--stats json`) one JSON object per line:
 *
 *     {"event":"stats"|"summary","elapsedS":S,
 *      "ports":[{"port":0,"name":N,"link":"up"|"down"|"unknown",
 *                "rxPackets","rxBytes","txPackets","txBytes","rxPps","txPps",
 *                "dropsTxRingFull","txRingFullWaits","dropsNoBuffer","dropsScript","dropsRunt",
 *                "dropsTooLong",
 *                "rxBursts","rxKicks","txKicks","kicksSuppressed","kicks",
 *                "queues":[{"queue":0, …the same counters and rates for that pair}]}],
 *      "workers":[{"queue","state","loops","idleWaits","heapWarm","heapLast","heapGrowth",
 *                  "heapLive","heapSteps","heapStepBytes","heapCreep","heapDrops","warmPackets",
 *                  "warmAtMs","lastStepPackets","packets","nowMs","poolAvailable",
 *                  "pcapCaptured","pcapDropped"}],
 *      "script":{"counters":{NAME:N},"report":…},      (with --script)
 *      "pcap":{"captured","dropped","written"}}        (with --pcap)
 *
 * A port's totals are the sums of its queue pairs. Receive counters count frames received
 * on that port; transmit counters and "dropsTxRingFull" frames sent (or not) out of it
 * ("txRingFullWaits": bursts its full ring did not take whole, which waited);
 * "dropsScript" frames received on it that the script dropped; "dropsNoBuffer" receive
 * descriptors left empty because the worker's buffers ran out. Bytes exclude the
 * virtio-net header. Heap figures are bytes of each worker's V8 heap, sampled once a
 * second: "heapWarm" at warm-up (the first sample after `--warmup` packets once V8
 * compiled nothing for 5 s, or after twice those packets; after a full GC), "heapLast" at the latest sample (after a full GC at the stop: "heapLive" says the
 * two are live memory), "heapGrowth" the difference; between them, "heapStepBytes" over
 * the "heapSteps" seconds in which the heap grew by 1 KiB or more (V8 compiling, the last
 * at "lastStepPackets"), "heapCreep" over all other seconds (garbage made), "heapDrops"
 * the GCs; "warmPackets"/"packets" the packets received by then and by now. Exit
 * status: 0 after a clean stop (duration over, SIGINT or SIGTERM), 1 on a driver or worker error or a
 * device that reports DEVICE_NEEDS_RESET, 2 on bad usage.
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  createSharedPool,
  DriverError,
  formatMac,
  openPort,
  VIRTIO_NET_F_STATUS,
  type VirtioNetPort,
} from "../mod.ts";
import { ForwardingEngine } from "../src/engine/engine.ts";
import { type EngineSnapshot } from "../src/engine/snapshot.ts";
import { buildReport, formatTable } from "../src/engine/stats_report.ts";
import { hasFeature } from "../src/virtio/features.ts";

const USAGE = `usage: deno run --allow-ffi examples/l2fwd.ts [options] PORT0 PORT1

Forwards PORT0 -> PORT1 and PORT1 -> PORT0 on one worker per queue pair. A PORT is a PCI
address (kernel VFIO, e.g. 0000:00:04.0) or vfio-user:/path/to/socket.

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
  --duration S        stop after S seconds (default: run until SIGINT/SIGTERM)
  --tx-drain-us US    send a partial transmit burst after US microseconds (default 100)
  --tx-full MODE      frames a full transmit ring does not take: wait (keep them, stop
                      receiving that way until there is room; default) or drop (count
                      them, as DPDK l2fwd does)
  --idle-us US        sleep US microseconds when nothing arrives (default 50; 0 = spin)
  --warmup N          packets per worker before the heap figures can start, once V8
                      compiled nothing for 5 s (at 2N in any case; default 150000)
  --bind              take the functions from their kernel driver (bind to vfio-pci)
  --restore-driver    give them back to their kernel driver at exit
  --help              this text`;

/** Set when closing a port failed (the exit status is then 1). */
let closeFailed = false;

function usageError(message: string): never {
  throw new DriverError("BAD_ARGUMENT", `${message}: see --help.`);
}

function intOption(value: string | undefined, name: string, min: number, max: number): number {
  const n = Number(value);
  if (!(Number.isInteger(n) && n >= min && n <= max)) {
    usageError(`--${name} must be an integer from ${min} to ${max}, not '${value}'`);
  }
  return n;
}

async function main(args: string[]): Promise<number> {
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
        bind: { type: "boolean", default: false },
        "restore-driver": { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
      allowPositionals: true,
    });
  } catch (e) {
    console.error(`error: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  let queues: number, burst: number, durationMs: number, steering: string, rebalanceMs: number;
  let pcapQueue: number | undefined, pcapPort: number;
  const statsMode = values.stats ?? (Deno.stdout.isTerminal() ? "table" : "json");
  const scriptArgs: Record<string, string> = {};
  try {
    if (positionals.length !== 2) usageError(`l2fwd needs two ports, not ${positionals.length}`);
    queues = intOption(values.queues, "queues", 1, 64);
    burst = intOption(values.burst, "burst", 1, 256);
    steering = values.steering ?? (queues > 1 ? "auto" : "single");
    if (!["single", "auto", "rss"].includes(steering)) {
      usageError(`--steering must be single, auto or rss, not '${steering}'`);
    }
    rebalanceMs = intOption(values["rebalance-ms"], "rebalance-ms", 0, 3_600_000);
    if (rebalanceMs > 0 && (steering !== "rss" || queues < 2)) {
      usageError(`--rebalance-ms needs --steering rss and --queues 2 or more`);
    }
    if (!["wait", "drop"].includes(values["tx-full"])) {
      usageError(`--tx-full must be wait or drop, not '${values["tx-full"]}'`);
    }
    if (!["table", "json", "off"].includes(statsMode)) {
      usageError(`--stats must be table, json or off, not '${statsMode}'`);
    }
    durationMs = values.duration === undefined ? Infinity : Number(values.duration) * 1000;
    if (!(durationMs > 0)) usageError(`--duration must be a positive number of seconds`);
    pcapQueue = values["pcap-queue"] === "all"
      ? undefined
      : intOption(values["pcap-queue"], "pcap-queue", 0, queues - 1);
    pcapPort = intOption(values["pcap-port"], "pcap-port", 0, 1);
    if (!["rx", "tx", "both"].includes(values["pcap-direction"])) {
      usageError(`--pcap-direction must be rx, tx or both, not '${values["pcap-direction"]}'`);
    }
    for (const a of values["script-arg"]) {
      const eq = a.indexOf("=");
      if (eq < 1) usageError(`--script-arg takes KEY=VALUE, not '${a}'`);
      scriptArgs[a.slice(0, eq)] = a.slice(eq + 1);
    }
  } catch (e) {
    if (!(e instanceof DriverError)) throw e;
    console.error(`error: ${e.message}`);
    return 2;
  }
  // Permissions first, before any device is touched.
  const need: [string | undefined, "read" | "write", string][] = [
    [values.script, "read", "--script"],
    [values.pcap, "write", "--pcap"],
  ];
  for (const [path, name, opt] of need) {
    if (path !== undefined && Deno.permissions.querySync({ name, path }).state !== "granted") {
      console.error(
        `error: ${opt} ${path} needs ${name} permission for that file: run deno with --allow-${name}=${path}.`,
      );
      return 2;
    }
  }
  const drainUs = Number(values["tx-drain-us"]);
  const idleUs = Number(values["idle-us"]);
  const warmup = Number(values.warmup);
  for (
    const [v, name] of [[drainUs, "tx-drain-us"], [idleUs, "idle-us"], [warmup, "warmup"]] as const
  ) {
    if (!(v >= 0 && v <= 1e9)) {
      console.error(`error: --${name} must be a number from 0 to 1000000000: see --help.`);
      return 2;
    }
  }

  // Room for every ring of both ports, what the workers buffer, and slack to refill.
  const pool = createSharedPool(Math.max(8192, 2 * queues * (256 + 256 + 2 * burst) + 1024));
  const ports: VirtioNetPort[] = [];
  let engine: ForwardingEngine | null = null;
  try {
    for (const spec of positionals) {
      ports.push(openPort(spec, {
        bind: values.bind,
        restoreDriver: values["restore-driver"],
        pool,
        queuePairs: queues,
        // Both ports must put frames at the same offset: no hash report (8 more bytes).
        hashReport: false,
      }));
    }
    for (const p of ports) {
      if (steering === "single") p.steering.set({ mode: "single" });
      else if (steering === "rss") p.steering.set({ mode: "rss", pairs: queues });
      else if (queues > 1) p.steering.set({ mode: "auto", pairs: queues });
    }
    const failed: DriverError[] = [];
    /** Records an error of the control path; anything but a DriverError counts as TRANSPORT. */
    const noteFailure = (e: unknown) =>
      failed.push(e instanceof DriverError ? e : new DriverError("TRANSPORT", String(e)));
    let wake: (() => void) | null = null as (() => void) | null;
    engine = await ForwardingEngine.start(ports, pool, {
      burst,
      drainUs,
      idleUs,
      macRewrite: values["mac-rewrite"],
      txFull: values["tx-full"] as "wait" | "drop",
      warmupPackets: warmup,
      script: values.script ? { path: values.script, args: scriptArgs } : undefined,
      capture: values.pcap
        ? {
          path: values.pcap,
          port: pcapPort,
          queue: pcapQueue,
          direction: values["pcap-direction"] as "rx" | "tx" | "both",
        }
        : undefined,
      onError: (e) => {
        failed.push(e);
        wake?.();
      },
    });
    for (const [i, p] of ports.entries()) {
      console.error(
        `port ${i}: ${p.name} mac ${formatMac(p.config.mac)} link ${
          p.config.linkUp ? "up" : "down"
        } queues ${queues} steering ${steering} features ${p.negotiatedFeatureNames().join(" ")}`,
      );
    }

    // Reading the link status is also how a port that went away (a vfio-user server that
    // died) is noticed: the first failure ends the run; later reports say "unknown".
    let linksFailed = false;
    const links = () =>
      ports.map((p) => {
        if (linksFailed || !hasFeature(p.features, VIRTIO_NET_F_STATUS)) return "unknown";
        try {
          return p.readConfig().linkUp ? "up" : "down";
        } catch (e) {
          linksFailed = true;
          noteFailure(e);
          wake?.();
          return "unknown";
        }
      });
    const t0 = performance.now();
    let last: EngineSnapshot | null = null, lastAt = t0;
    const report = (event: "stats" | "summary", snap: EngineSnapshot, now: number) => {
      const r = buildReport(snap, event === "summary" ? null : last, {
        event,
        elapsedS: (now - t0) / 1000,
        intervalS: event === "summary" ? (now - t0) / 1000 : (now - lastAt) / 1000,
        links: links(),
        scriptReport: engine!.scriptReport(),
        pcapWritten: values.pcap ? engine!.pcapWritten : undefined,
      });
      if (statsMode === "json" || (event === "summary" && statsMode === "off")) {
        console.log(JSON.stringify(r));
      } else if (statsMode === "table") {
        console.log(formatTable(r));
      }
      last = snap;
      lastAt = now;
    };

    // Wait for the duration, a signal or a worker failure, reporting every second.
    await new Promise<void>((resolve) => {
      const finish = () => {
        clearInterval(ticker);
        clearInterval(rebalance);
        clearTimeout(ends);
        Deno.removeSignalListener("SIGINT", finish);
        Deno.removeSignalListener("SIGTERM", finish);
        wake = null;
        resolve();
      };
      const ticker = setInterval(() => {
        // A device that set DEVICE_NEEDS_RESET takes and completes nothing more: say so and
        // stop rather than forward into it (the frames in flight are lost with it).
        for (const p of ports) {
          try {
            p.checkHealthy();
          } catch (e) {
            linksFailed = true;
            noteFailure(e);
            finish();
            return;
          }
        }
        if (statsMode !== "off") report("stats", engine!.snapshot(), performance.now());
      }, 1000);
      // A new RSS table for every port every rebalanceMs, while the workers forward:
      // queue q's buckets move to q + 1 (docs/steering.md: no flow is reordered).
      let turn = 0;
      const rebalance = rebalanceMs > 0
        ? setInterval(() => {
          turn++;
          for (const p of ports) {
            const length = Math.min(128, p.steering.capabilities.rssMaxIndirectionTableLength);
            try {
              p.steering.set({
                mode: "rss",
                pairs: queues,
                indirectionTable: Array.from({ length }, (_, i) => (i + turn) % queues),
              });
            } catch (e) {
              noteFailure(e);
              finish();
              return;
            }
          }
        }, rebalanceMs)
        : undefined;
      const ends = Number.isFinite(durationMs) ? setTimeout(finish, durationMs) : undefined;
      Deno.addSignalListener("SIGINT", finish);
      Deno.addSignalListener("SIGTERM", finish);
      wake = finish;
      if (failed.length) finish();
    });
    const final = await engine.stop();
    report("summary", final, performance.now());
    if (rebalanceMs > 0) {
      console.error(
        `steering: ${ports.map((p, i) => `port ${i} ${p.steering.switches} switches`).join(", ")}`,
      );
    }
    for (const e of failed) console.error(`error: ${e.message}`);
    return failed.length ? 1 : 0;
  } finally {
    if (engine) await engine.stop();
    const problems: string[] = [];
    for (const p of ports.reverse()) {
      try {
        p.close();
      } catch (e) {
        problems.push((e as Error).message);
      }
    }
    pool.region.free();
    // Reported, not thrown: an error from try{} above must not be replaced by this one.
    for (const m of problems) console.error(`error: ${m}`);
    if (problems.length) closeFailed = true;
  }
}

if (import.meta.main) {
  try {
    const code = await main(Deno.args);
    Deno.exit(code === 0 && closeFailed ? 1 : code);
  } catch (e) {
    if (e instanceof DriverError) {
      console.error(`error: ${e.message}`);
      Deno.exit(1);
    }
    throw e;
  }
}
