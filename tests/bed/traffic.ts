/**
 * Host-side traffic for the test beds: send a pcap's frames into a tap (to the guest) and
 * capture the frames the guest sends out of it, with AF_PACKET raw sockets through FFI.
 *
 * As a program it runs inside the bed's namespace:
 *
 * ```sh
 * ip netns exec NS deno run --allow-ffi --allow-read --allow-write tests/bed/traffic.ts \
 *   send --if TAP --pcap FILE [--rate PPS]
 * ip netns exec NS deno run --allow-ffi --allow-read --allow-write tests/bed/traffic.ts \
 *   capture --if TAP --out FILE --count N --timeout-ms T [--ethertype 0x88b5]
 * ```
 *
 * `send` prints one JSON line `{"sent":N,"dropped":D,"elapsedMs":T}` (D: the tap's
 * tx_dropped increase, i.e. frames the tun ring had no room for, counted once it has been
 * stable for 100 ms: the qdisc feeds the ring after `sendto` returned). `capture` prints `READY`
 * once its socket is bound, ignores frames the host itself sent (sll_pkttype
 * PACKET_OUTGOING), writes what it got to FILE, and exits 0 when N frames arrived, 1 with a
 * message saying how many arrived on timeout.
 *
 * As a module it gives the tests {@linkcode sendFrames} and {@linkcode startCapture}.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { readText } from "../../ffi/fs.ts";
import { libc } from "../../ffi/libc.ts";
import {
  AF_PACKET,
  check,
  errno,
  ETH_P_ALL,
  htons,
  ifIndex,
  MSG_DONTWAIT,
  MSG_TRUNC,
  PACKET_OUTGOING,
  parseSockaddrLl,
  POLLIN,
  setIntOption,
  SO_RCVBUFFORCE,
  SO_SNDBUFFORCE,
  sock,
  SOCK_CLOEXEC,
  SOCK_RAW,
  SOCKADDR_LL_SIZE,
  sockaddrLl,
  SOL_SOCKET,
  SysError,
} from "../../ffi/socket.ts";
import { PcapWriter, readPcapFrames } from "../../src/pcap/pcap.ts";

const ENOBUFS = 105;
const EAGAIN = 11;
const EINTR = 4;

/** Opens an AF_PACKET raw socket bound to `ifname` for all EtherTypes. */
export function openPacketSocket(ifname: string, bufBytes = 64 << 20): number {
  const fd = check(
    sock.socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL)),
    "socket",
    "AF_PACKET",
  );
  try {
    setIntOption(fd, SOL_SOCKET, SO_RCVBUFFORCE, bufBytes);
    setIntOption(fd, SOL_SOCKET, SO_SNDBUFFORCE, bufBytes);
    const addr = sockaddrLl(ifIndex(ifname), ETH_P_ALL);
    check(sock.bind(fd, addr, addr.length), "bind", ifname);
  } catch (e) {
    libc.close(fd);
    throw e;
  }
  return fd;
}

function sleepMs(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * An interface counter. Read through libc: Deno's own file APIs refuse /sys/devices/… without
 * --allow-all, even with --allow-read.
 */
function readCounter(ifname: string, name: string): number {
  try {
    return Number(readText(`/sys/class/net/${ifname}/statistics/${name}`).trim());
  } catch {
    return 0;
  }
}

/** Result of sending frames. */
export interface SendResult {
  /** Frames handed to the kernel. */
  sent: number;
  /** Increase of the tap's tx_dropped counter while sending. */
  dropped: number;
  /** Time spent sending. */
  elapsedMs: number;
}

/**
 * Sends frames on an interface (inside the current namespace), optionally paced at `rate`
 * frames per second. Retries a frame the queue had no room for (ENOBUFS/EAGAIN).
 */
export async function sendOnInterface(
  ifname: string,
  frames: Uint8Array[],
  rate?: number,
): Promise<SendResult> {
  const fd = openPacketSocket(ifname);
  const dropped0 = readCounter(ifname, "tx_dropped");
  const t0 = performance.now();
  let sent = 0;
  try {
    for (const [i, f] of frames.entries()) {
      if (rate) {
        const due = t0 + (i * 1000) / rate;
        let now = performance.now();
        if (due - now > 2) await sleepMs(due - now - 1);
        while ((now = performance.now()) < due) { /* spin to the exact time */ }
      }
      for (;;) {
        const n = Number(
          sock.sendto(fd, f as Uint8Array<ArrayBuffer>, BigInt(f.length), 0, null, 0),
        );
        if (n === f.length) break;
        const e = errno();
        if (n < 0 && (e === ENOBUFS || e === EAGAIN || e === EINTR)) {
          await sleepMs(1);
          continue;
        }
        throw n < 0 ? new SysError("sendto", ifname, e) : new Error(`sendto: short write ${n}`);
      }
      sent++;
    }
  } finally {
    libc.close(fd);
  }
  const elapsedMs = performance.now() - t0;
  // The qdisc hands frames to the tun ring (which drops when full) after sendto returned:
  // wait until the drop counter has been stable for 100 ms (at most 2 s).
  let dropped = readCounter(ifname, "tx_dropped");
  for (let stable = 0, waited = 0; stable < 100 && waited < 2000; waited += 20) {
    await sleepMs(20);
    const d = readCounter(ifname, "tx_dropped");
    stable = d === dropped ? stable + 20 : 0;
    dropped = d;
  }
  return { sent, dropped: dropped - dropped0, elapsedMs };
}

/** Options of {@linkcode captureOnInterface}. */
export interface CaptureOptions {
  /** Stop after this many frames. */
  count: number;
  /** Give up after this long. */
  timeoutMs: number;
  /** Keep only frames of this EtherType (outer, at offset 12). */
  ethertype?: number;
  /** Called once the socket is bound (frames arriving from then on are seen). */
  onReady?: () => void;
  /** If given, receives each frame's arrival time (µs since the epoch). */
  timestamps?: number[];
}

/**
 * Captures frames arriving on an interface (not those the host sends) until `count` frames
 * were seen or the timeout passed. Blocks the calling thread (it is meant for the CLI).
 */
export function captureOnInterface(ifname: string, opts: CaptureOptions): Uint8Array[] {
  const fd = openPacketSocket(ifname);
  const frames: Uint8Array[] = [];
  const times: number[] = [];
  try {
    opts.onReady?.();
    const buf = new Uint8Array(65536 + 4);
    const from = new Uint8Array(SOCKADDR_LL_SIZE);
    const fromLen = new Uint32Array(1);
    const pfd = new Uint8Array(8);
    const pv = new DataView(pfd.buffer);
    const deadline = performance.now() + opts.timeoutMs;
    while (frames.length < opts.count) {
      fromLen[0] = SOCKADDR_LL_SIZE;
      const n = Number(sock.recvfrom(
        fd,
        buf,
        BigInt(buf.length),
        MSG_DONTWAIT | MSG_TRUNC,
        from,
        new Uint8Array(fromLen.buffer),
      ));
      if (n < 0) {
        const e = errno();
        if (e !== EAGAIN && e !== EINTR) throw new SysError("recvfrom", ifname, e);
        const left = Math.ceil(deadline - performance.now());
        if (left <= 0) break;
        pv.setInt32(0, fd, true);
        pv.setInt16(4, POLLIN, true);
        pv.setInt16(6, 0, true);
        sock.poll(pfd, 1n, Math.min(left, 100));
        continue;
      }
      if (parseSockaddrLl(from).pkttype === PACKET_OUTGOING) continue;
      const len = Math.min(n, buf.length);
      if (
        opts.ethertype !== undefined && (len < 14 || ((buf[12] << 8) | buf[13]) !== opts.ethertype)
      ) {
        continue;
      }
      frames.push(buf.slice(0, len));
      times.push(Date.now() * 1000);
    }
  } finally {
    libc.close(fd);
  }
  if (opts.timestamps) { for (const t of times) opts.timestamps.push(t); }
  return frames;
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
 * guest. Runs traffic.ts inside the bed's namespace.
 */
export async function sendFrames(
  bed: TrafficBed,
  nic: number,
  frames: Uint8Array[] | string,
  opts: { rate?: number } = {},
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
    const out = await trafficCommand(bed, args).output();
    const stdout = dec.decode(out.stdout), stderr = dec.decode(out.stderr);
    if (!out.success) throw new Error(`traffic send failed (exit ${out.code}): ${stderr}`);
    return JSON.parse(stdout.trim().split("\n").at(-1)!) as SendResult;
  } finally {
    if (tmp) await Deno.remove(tmp).catch(() => {});
  }
}

/** Error of an incomplete capture; carries what did arrive. */
export class CaptureError extends Error {
  /** The frames that arrived before the timeout. */
  readonly frames: Uint8Array[];
  /** Creates the error. */
  constructor(message: string, frames: Uint8Array[]) {
    super(message);
    this.name = "CaptureError";
    this.frames = frames;
  }
}

/** A running capture, see {@linkcode startCapture}. */
export interface CaptureHandle {
  /** Path of the pcap file the capture writes. */
  readonly pcapPath: string;
  /** Waits for the capture to end; gives the frames, or throws {@linkcode CaptureError}. */
  done(): Promise<Uint8Array[]>;
  /** Stops the capture early (its frames are lost). */
  kill(): Promise<void>;
}

/**
 * Starts capturing what the guest sends out of NIC `nic` and resolves once the capture
 * socket is bound, so traffic triggered afterwards is not missed.
 */
export async function startCapture(
  bed: TrafficBed,
  nic: number,
  opts: { count: number; timeoutMs: number; ethertype?: number; pcapPath?: string },
): Promise<CaptureHandle> {
  const own = opts.pcapPath === undefined;
  const pcapPath = opts.pcapPath ??
    await Deno.makeTempFile({ prefix: "vdbed-capture-", suffix: ".pcap" });
  const args = ["capture", "--if", bed.tapName(nic), "--out", pcapPath];
  args.push("--count", String(opts.count), "--timeout-ms", String(opts.timeoutMs));
  if (opts.ethertype !== undefined) args.push("--ethertype", "0x" + opts.ethertype.toString(16));
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
  const finish = async (): Promise<Uint8Array[]> => {
    const st = await status;
    const [stdout, stderr] = await Promise.all([stdoutP, stderrP]);
    let frames: Uint8Array[] = [];
    let unreadable = "";
    try {
      frames = readPcapFrames(await Deno.readFile(pcapPath));
    } catch (e) {
      unreadable = `; its pcap ${pcapPath} does not read back (${(e as Error).message})`;
    }
    if (own) await Deno.remove(pcapPath).catch(() => {});
    if (!st.success || unreadable) {
      throw new CaptureError(
        `capture on ${bed.tapName(nic)}: ${
          (stderr || stdout).trim()
        } (exit ${st.code})${unreadable}`,
        frames,
      );
    }
    return frames;
  };
  let result: Promise<Uint8Array[]> | undefined;
  return {
    pcapPath,
    done: () => (result ??= finish()),
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
      out: { type: "string" },
      count: { type: "string" },
      "timeout-ms": { type: "string" },
      ethertype: { type: "string" },
    },
  });
  const usage = "usage: traffic.ts send --if TAP --pcap FILE [--rate PPS]\n" +
    "       traffic.ts capture --if TAP --out FILE --count N --timeout-ms T [--ethertype 0xXXXX]";
  const ifname = values.if;
  if (!ifname) {
    console.error(usage);
    return 2;
  }
  if (positionals[0] === "send" && values.pcap) {
    const frames = readPcapFrames(await Deno.readFile(values.pcap));
    const r = await sendOnInterface(ifname, frames, values.rate ? Number(values.rate) : undefined);
    console.log(JSON.stringify(r));
    return 0;
  }
  if (positionals[0] === "capture" && values.out && values.count) {
    const count = Number(values.count);
    const timeoutMs = Number(values["timeout-ms"] ?? 10000);
    const ethertype = values.ethertype === undefined ? undefined : Number(values.ethertype);
    const times: number[] = [];
    const frames = captureOnInterface(ifname, {
      count,
      timeoutMs,
      ethertype,
      timestamps: times,
      onReady: () => {
        Deno.writeTextFileSync(`${values.out}.ready`, "READY\n");
        console.log("READY");
      },
    });
    const w = new PcapWriter();
    for (const [i, f] of frames.entries()) w.append(f, times[i]);
    await Deno.writeFile(values.out, w.bytes());
    if (frames.length < count) {
      console.error(
        `timeout: ${frames.length} of ${count} frames arrived on ${ifname} within ${timeoutMs} ms`,
      );
      return 1;
    }
    console.log(`captured ${frames.length} frames`);
    return 0;
  }
  console.error(usage);
  return 2;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
