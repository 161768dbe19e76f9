/**
 * Two-port layer-2 forwarding, as DPDK's l2fwd: every frame received on PORT0 is sent out
 * of PORT1 and the other way round, through one buffer pool shared by both ports (no
 * copy). Run to completion on one Deno Worker per queue pair (src/engine/): worker k
 * forwards receiveq(k+1) of each port to transmitq(k+1) of the other; the main thread
 * keeps the control path (steering, link status, statistics, capture file, shutdown).
 *
 *     deno run --allow-ffi examples/l2fwd.ts [options] PORT0 PORT1
 *
 * `--script FILE` also needs `--allow-read=FILE`, `--pcap FILE` `--allow-write=FILE`
 * (`--prometheus FILE` goes through libc: nothing more).
 *
 * Statistics: every second, and a summary at exit. On a terminal a live view redrawn in
 * place (`--stats live`: rates, drops, a sparkline per port; the summary as a table), or
 * with `--stats table` a table each time; otherwise (or `--stats json`) one JSON object
 * per line:
 *
 *     {"event":"stats"|"summary","elapsedS":S,
 *      "ports":[{"port":0,"name":N,"ring":"split"|"packed","link":"up"|"down"|"unknown",
 *                "rxPackets","rxBytes","txPackets","txBytes","rxPps","txPps",
 *                "dropsTxRingFull","txRingFullWaits","dropsNoBuffer","dropsScript","dropsMode","dropsRunt",
 *                "dropsBadMerge","dropsTooLong","dropsReset","dropsBadOffload",
 *                "dropsTxOffload","rxCsumValid","rxCsumPartial","rxGso","txOffloaded",
 *                "rxBursts","rxKicks","txKicks","kicksSuppressed","kicks",
 *                "queues":[{"queue":0, …the same counters and rates for that pair}],
 *                "xstats":{"rx_q0_good_packets":N, …},  (DPDK virtio's names, then ours:
 *                                                       src/engine/xstats.ts)
 *                "features":[NAME, …]}],       (in the summary: the negotiated features)
 *      "workers":[{"queue","state","loops","idleWaits","prewarmFrames","prewarmMs",
 *                  "heapWarm","heapLast","heapGrowth",
 *                  "heapLive","heapSteps","heapStepBytes","heapCreep","heapDrops","warmPackets",
 *                  "warmAtMs","lastStepPackets","packets","nowMs","poolAvailable",
 *                  "pcapCaptured","pcapDropped"}],
 *      "script":{"counters":{NAME:N},"report":…},      (with --script)
 *      "pcap":{"captured","dropped","written"},        (with --pcap)
 *      "faults":[{"atS":S,"reason":R}]}                 (from a device fault on)
 *     {"event":"link","port":0,"name":N,"link":"up"|"down","elapsedS":S}
 *     {"event":"reconnecting","reason":R,"lostFrames":N,"elapsedS":S}  (with --reconnect)
 *     {"event":"reconnected","downMs":MS,"elapsedS":S}
 *
 * A "link" line comes as soon as l2fwd sees a port's link change (it reads the link
 * status once a second, only with VIRTIO_NET_F_STATUS; "unknown" otherwise, and no
 * event); in table or off mode it is `port 0: link down at 12.0 s` on stderr. Forwarding
 * goes on while a link is down: what the device does with the frames sent meanwhile
 * (QEMU drops them) is not seen by the driver, which counts them as transmitted.
 *
 * With `--reconnect S`, a device fault (DEVICE_NEEDS_RESET, a ring the device corrupted, a
 * server or back-end gone) resets and reopens both ports instead of ending the run, with
 * the two events above; counters go on, and "dropsReset" counts the frames the reset lost
 * (docs/reliability.md).
 *
 * A port's totals are the sums of its queue pairs. Receive counters count frames received
 * on that port; transmit counters and "dropsTxRingFull" frames sent (or not) out of it
 * ("txRingFullWaits": bursts its full ring did not take whole, which waited);
 * "dropsScript" frames received on it that the script dropped; "dropsNoBuffer" receive
 * descriptors left empty because the worker's buffers ran out. Bytes exclude the
 * virtio-net header. Heap figures are bytes of each worker's V8 heap, sampled once a
 * second: "heapWarm" at warm-up (the first sample after `--warmup` packets once V8
 * compiled nothing for 5 s, or after twice those packets), "heapLast" at the latest
 * sample, "heapGrowth" the difference. Only with `--heap-audit` are heapWarm and heapLast
 * taken after a full GC (at warm-up and at the stop), so that they are live memory
 * ("heapLive" says so); those GCs pause forwarding. Between them, "heapStepBytes" over
 * the "heapSteps" seconds in which the heap grew by 1 KiB or more (V8 compiling, the last
 * at "lastStepPackets"), "heapCreep" over all other seconds (garbage made), "heapDrops"
 * the GCs; "warmPackets"/"packets" the packets received by then and by now;
 * "prewarmFrames"/"prewarmMs" the synthetic frames the worker forwarded, and how long it
 * took, to warm its code before the ports opened (`--prewarm`). Exit
 * status: 0 after a clean stop (duration over, SIGINT or SIGTERM while forwarding, also
 * after reconnections), 1 on a driver or worker error, a device that reports
 * DEVICE_NEEDS_RESET (without --reconnect, or when reconnecting failed) or a missing
 * --allow-ffi, --allow-read or --allow-write, a --script that does not load or a --pcap
 * file that cannot be written (the environment, not the command line), 2 on bad usage
 * (`--help` lists both), 130 (SIGINT) or
 * 143 (SIGTERM) when a signal stops the start-up, or when a second signal ends l2fwd at
 * once without releasing (the kernel does at exit).
 *
 * @module
 */

import { formatTable } from "../mod.ts";
import { type App, runApp } from "./fwd_app.ts";
import { parseCommandLine, USAGE } from "./l2fwd_options.ts";

/** l2fwd: the shared forwarding program with l2fwd's command line and table. */
const L2FWD: App = {
  name: "l2fwd",
  usage: USAGE,
  parse(args) {
    const run = parseCommandLine(args);
    return run === "help" ? run : { ...run, mode: "io", statsPeriodS: 1 };
  },
  formatTable,
};

if (import.meta.main) await runApp(L2FWD, Deno.args);
