/**
 * Host-side traffic for the test beds: send a pcap's frames into a tap (to the guest) and
 * capture the frames the guest sends out of it, with AF_PACKET raw sockets through FFI.
 *
 * As a program it runs inside the bed's namespace:
 *
 * ```sh
 * ip netns exec NS deno run --allow-ffi --allow-read --allow-write tests/bed/traffic.ts \
 *   send --if TAP --pcap FILE [--rate PPS] [--via IFACE]
 * ip netns exec NS deno run --allow-ffi --allow-read --allow-write tests/bed/traffic.ts \
 *   capture --if TAP --out FILE --count N --timeout-ms T [--ethertype 0x88b5] [--ring BYTES] [--hold-ms MS]
 * ```
 *
 * `send` sends on the tap's injection veth when the namespace has one (netns.ts; the bridge
 * keeps a tagged flow on one tap queue), else on the tap (`--via` chooses), and prints one
 * JSON line {@linkcode SendResult}: `dropped` counts the frames the host lost on the way,
 * each counter once it has been stable for 100 ms (the tun ring drops after `sendto`
 * returned). `capture` prints `READY` once its socket is bound, never sees the frames the
 * host sends into the tap (PACKET_IGNORE_OUTGOING), writes what it got to FILE, prints one
 * JSON line {@linkcode CaptureStats} (with the frames its socket dropped for want of buffer)
 * and exits 0 when N frames arrived, 1 with a message saying how many arrived on timeout.
 *
 * As a module it gives the tests {@linkcode sendFrames} and {@linkcode startCapture}.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { PcapWriter, readPcapFrames } from "../../src/pcap/pcap.ts";
import { captureOnInterface, type CaptureStats } from "./host_capture.ts";
import { sendOnInterface, type SendResult, sleepMs } from "./host_send.ts";
import { openPacketSocket as openSocket } from "./packet_socket.ts";

export { captureOnInterface, type CaptureStats, sendOnInterface, type SendResult };

/**
 * Opens an AF_PACKET raw socket bound to `ifname` for all EtherTypes (see
 * packet_socket.ts for the options a capture uses).
 *
 * @example
 * ```ts ignore
 * const fd = openPacketSocket(bed.tapName(0), 1 << 20);
 * ```
 */
export function openPacketSocket(ifname: string, bufBytes = 64 << 20): number {
  return openSocket(ifname, { bufBytes });
}

/** What the traffic helpers need to know about a bed. */
export interface TrafficBed {
  /** Name of the network namespace holding the taps. */
  readonly netns: string;
  /** Tap name of NIC `nic`. */
  tapName(nic: number): string;
}

const SCRIPT = new URL(import.meta.url).pathname;

function trafficCommand(bed: TrafficBed, args: string[]): Deno.Command {
  return new Deno.Command("ip", {
    args: [
      "netns",
      "exec",
      bed.netns,
      Deno.execPath(),
      "run",
      "--quiet",
      "--allow-ffi",
      "--allow-read",
      "--allow-write",
      SCRIPT,
      ...args,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
}

const dec = new TextDecoder();

/**
 * Sends frames (or the frames of a pcap file) from the host into NIC `nic`'s tap, i.e. to the
 * guest: through the tap's injection veth and bridge when the bed has them (netns.ts), else
 * straight into the tap; `via: "tap"` forces the tap. Runs traffic.ts inside the bed's
 * namespace.
 *
 * @example
 * ```ts ignore
 * const r = await sendFrames(bed, 0, udpFrames({ count: 1000, dst: bed.nicMac(0) }), { rate: 5000 });
 * r.dropped; // frames the host lost before the guest could see them (r.drops says where)
 * ```
 */
export async function sendFrames(
  bed: TrafficBed,
  nic: number,
  frames: Uint8Array[] | string,
  opts: { rate?: number; via?: "tap" } = {},
): Promise<SendResult> {
  let pcap = typeof frames === "string" ? frames : undefined;
  let tmp: string | undefined;
  if (pcap === undefined) {
    tmp = pcap = await Deno.makeTempFile({ prefix: "vdbed-send-", suffix: ".pcap" });
    const w = new PcapWriter();
    for (const f of frames as Uint8Array[]) w.append(f);
    await Deno.writeFile(tmp, w.bytes());
  }
  try {
    const args = ["send", "--if", bed.tapName(nic), "--pcap", pcap];
    if (opts.rate) args.push("--rate", String(opts.rate));
    if (opts.via === "tap") args.push("--via", bed.tapName(nic));
    const out = await trafficCommand(bed, args).output();
    const stdout = dec.decode(out.stdout), stderr = dec.decode(out.stderr);
    if (!out.success) throw new Error(`traffic send failed (exit ${out.code}): ${stderr.trim()}`);
    return JSON.parse(stdout.trim().split("\n").at(-1)!) as SendResult;
  } finally {
    if (tmp) await Deno.remove(tmp).catch(() => {});
  }
}

/**
 * A statistics counter (e.g. "rx_packets", "tx_dropped") of NIC `nic`'s tap, read inside the
 * bed's namespace.
 *
 * @example
 * ```ts ignore
 * const sentToHost = await tapCounter(bed, 1, "rx_packets"); // frames the NIC sent
 * ```
 */
export async function tapCounter(bed: TrafficBed, nic: number, name: string): Promise<number> {
  const path = `/sys/class/net/${bed.tapName(nic)}/statistics/${name}`;
  const out = await new Deno.Command("ip", { args: ["netns", "exec", bed.netns, "cat", path] })
    .output();
  if (!out.success) throw new Error(`reading ${path} in ${bed.netns} failed`);
  return Number(dec.decode(out.stdout).trim());
}

/**
 * Several statistics counters of NIC `nic`'s tap, in the order named.
 *
 * @example
 * ```ts ignore
 * const [taken, dropped] = await tapCounters(bed, 1, ["rx_packets", "rx_dropped"]);
 * ```
 */
export async function tapCounters(
  bed: TrafficBed,
  nic: number,
  names: readonly string[],
): Promise<number[]> {
  const values: number[] = [];
  for (const n of names) values.push(await tapCounter(bed, nic, n));
  return values;
}

/** Error of an incomplete capture; carries what did arrive. */
export class CaptureError extends Error {
  /** The frames that arrived before the timeout. */
  readonly frames: Uint8Array[];
  /** The capture's counters (null when it was killed or died before printing them). */
  readonly stats: CaptureStats | null;
  /** Creates the error. */
  constructor(message: string, frames: Uint8Array[], stats: CaptureStats | null = null) {
    super(message);
    this.name = "CaptureError";
    this.frames = frames;
    this.stats = stats;
  }
}

/** A running capture, see {@linkcode startCapture}. */
export interface CaptureHandle {
  /** Path of the pcap file the capture writes. */
  readonly pcapPath: string;
  /** Waits for the capture to end; gives the frames, or throws {@linkcode CaptureError}. */
  done(): Promise<Uint8Array[]>;
  /**
   * Waits for the capture to end (whether done() resolves or throws) and gives its
   * counters, e.g. `socketDrops`: null when it was killed.
   */
  stats(): Promise<CaptureStats | null>;
  /** Stops the capture early (its frames are lost). */
  kill(): Promise<void>;
}

/** The capture's counters from its last JSON line, or null. */
function parseStats(stdout: string): CaptureStats | null {
  const line = stdout.trim().split("\n").findLast((l) => l.startsWith("{"));
  if (!line) return null;
  try {
    const o = JSON.parse(line);
    return typeof o.socketDrops === "number" ? o as CaptureStats : null;
  } catch {
    return null;
  }
}

/**
 * Starts capturing what the guest sends out of NIC `nic` and resolves once the capture
 * socket is bound, so traffic triggered afterwards is not missed. `ringBytes` sizes its
 * receive ring (default 64 MiB), `holdMs` delays its reading (to test accounting).
 *
 * @example
 * ```ts ignore
 * const cap = await startCapture(bed, 1, { count: 1000, timeoutMs: 20000 });
 * const frames = await cap.done().catch((e: CaptureError) => e.frames);
 * const { socketDrops } = (await cap.stats())!; // frames the capture socket could not hold
 * ```
 */
export async function startCapture(
  bed: TrafficBed,
  nic: number,
  opts: {
    count: number;
    timeoutMs: number;
    ethertype?: number;
    pcapPath?: string;
    ringBytes?: number;
    holdMs?: number;
  },
): Promise<CaptureHandle> {
  const own = opts.pcapPath === undefined;
  const pcapPath = opts.pcapPath ??
    await Deno.makeTempFile({ prefix: "vdbed-capture-", suffix: ".pcap" });
  const args = ["capture", "--if", bed.tapName(nic), "--out", pcapPath];
  args.push("--count", String(opts.count), "--timeout-ms", String(opts.timeoutMs));
  if (opts.ethertype !== undefined) args.push("--ethertype", "0x" + opts.ethertype.toString(16));
  if (opts.ringBytes !== undefined) args.push("--ring", String(opts.ringBytes));
  if (opts.holdMs !== undefined) args.push("--hold-ms", String(opts.holdMs));
  const child = trafficCommand(bed, args).spawn();
  const stdoutP = new Response(child.stdout).text();
  const stderrP = new Response(child.stderr).text();
  const status = child.status;
  // Wait for READY: the script writes it into the pcap's sibling file.
  const ready = `${pcapPath}.ready`;
  const t0 = performance.now();
  for (;;) {
    try {
      await Deno.stat(ready);
      await Deno.remove(ready);
      break;
    } catch { /* not yet */ }
    const settled = await Promise.race([status, sleepMs(10).then(() => null)]);
    if (settled) {
      const err = await stderrP;
      throw new Error(`traffic capture exited before it was ready (${settled.code}): ${err}`);
    }
    if (performance.now() - t0 > 30000) {
      child.kill("SIGKILL");
      await status;
      throw new Error("traffic capture did not get ready within 30 s");
    }
  }
  let stats: CaptureStats | null = null;
  const finish = async (): Promise<Uint8Array[]> => {
    const st = await status;
    const [stdout, stderr] = await Promise.all([stdoutP, stderrP]);
    stats = parseStats(stdout);
    let frames: Uint8Array[] = [];
    let unreadable = "";
    try {
      frames = readPcapFrames(await Deno.readFile(pcapPath));
    } catch (e) {
      unreadable = `; its pcap ${pcapPath} does not read back (${(e as Error).message})`;
    }
    if (own) await Deno.remove(pcapPath).catch(() => {});
    if (!st.success || unreadable) {
      const said = (stderr.trim() || stdout.trim().split("\n").at(-1) || "").trim();
      throw new CaptureError(
        `capture on ${bed.tapName(nic)}: ${said} (exit ${st.code})${unreadable}`,
        frames,
        stats,
      );
    }
    return frames;
  };
  let result: Promise<Uint8Array[]> | undefined;
  return {
    pcapPath,
    done: () => (result ??= finish()),
    stats: async () => {
      await (result ??= finish()).catch(() => {});
      return stats;
    },
    kill: async () => {
      try {
        child.kill("SIGKILL");
      } catch { /* exited */ }
      await (result ??= finish()).catch(() => {});
    },
  };
}

async function main(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      if: { type: "string" },
      pcap: { type: "string" },
      rate: { type: "string" },
      via: { type: "string" },
      out: { type: "string" },
      count: { type: "string" },
      "timeout-ms": { type: "string" },
      ethertype: { type: "string" },
      ring: { type: "string" },
      "hold-ms": { type: "string" },
    },
  });
  const usage = "usage: traffic.ts send --if TAP --pcap FILE [--rate PPS] [--via IFACE]\n" +
    "       traffic.ts capture --if TAP --out FILE --count N --timeout-ms T [--ethertype 0xXXXX]" +
    " [--ring BYTES] [--hold-ms MS]";
  const ifname = values.if;
  if (!ifname) {
    console.error(usage);
    return 2;
  }
  if (positionals[0] === "send" && values.pcap) {
    const frames = readPcapFrames(await Deno.readFile(values.pcap));
    try {
      const r = await sendOnInterface(ifname, frames, {
        rate: values.rate ? Number(values.rate) : undefined,
        via: values.via,
      });
      console.log(JSON.stringify(r));
    } catch (e) {
      console.error((e as Error).message);
      return 1;
    }
    return 0;
  }
  if (positionals[0] === "capture" && values.out && values.count) {
    const count = Number(values.count);
    const timeoutMs = Number(values["timeout-ms"] ?? 10000);
    const ethertype = values.ethertype === undefined ? undefined : Number(values.ethertype);
    const times: number[] = [];
    const { frames, stats } = captureOnInterface(ifname, {
      count,
      timeoutMs,
      ethertype,
      ringBytes: values.ring === undefined ? undefined : Number(values.ring),
      holdMs: values["hold-ms"] === undefined ? undefined : Number(values["hold-ms"]),
      timestamps: times,
      onReady: () => {
        Deno.writeTextFileSync(`${values.out}.ready`, "READY\n");
        console.log("READY");
      },
    });
    const w = new PcapWriter();
    for (const [i, f] of frames.entries()) w.append(f, times[i]);
    await Deno.writeFile(values.out, w.bytes());
    console.log(JSON.stringify(stats));
    if (frames.length < count) {
      console.error(
        `timeout: ${frames.length} of ${count} frames arrived on ${ifname} within ${timeoutMs} ms` +
          (stats.socketDrops
            ? ` (its socket dropped ${stats.socketDrops} for want of room in its ring)`
            : ""),
      );
      return 1;
    }
    return 0;
  }
  console.error(usage);
  return 2;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
