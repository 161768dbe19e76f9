/**
 * Times round trips through a driver program that echoes latency probes (the `latency`
 * phase of tests/guest/rx_irq.ts). Runs inside the bed's namespace:
 *
 * ```sh
 * ip netns exec NS deno run --allow-ffi tests/bed/echo_timer.ts --if TAP --dst MAC \
 *   --count N [--gap-ms 20] [--timeout-ms 2000]
 * ```
 *
 * For each probe: stamp CLOCK_MONOTONIC into it, send it into the tap (to the driver),
 * wait for its echo, note the round trip; then pause `gap-ms` so the driver is blocked
 * again before the next one. The echo carries the driver's own CLOCK_MONOTONIC at wake-up:
 * where the driver runs on this kernel (the vfio-user bed) `wake − sent` is the one-way
 * host send → driver wake-up latency; in a guest (the VM bed) its clock is another one and
 * only durations mean something: the round trip, and the driver's turnaround (wake-up to
 * echo ready), which the echo carries too. Prints one JSON line with every sample in µs.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { EAGAIN, libc } from "../../ffi/libc.ts";
import {
  errno,
  MSG_DONTWAIT,
  PACKET_OUTGOING,
  parseSockaddrLl,
  POLLIN,
  sock,
  SOCKADDR_LL_SIZE,
  SysError,
} from "../../ffi/socket.ts";
import { parseMac } from "./frames.ts";
import { openPacketSocket, type TrafficBed } from "./traffic.ts";

/** EtherType of the latency probes (IEEE local experimental 2). */
export const LATENCY_ETHERTYPE = 0x88b6;
/** Probe offset of the sequence number (u32 LE). */
export const PROBE_SEQ = 14;
/** Probe offset of the host's send time (CLOCK_MONOTONIC ns, u64 LE). */
export const PROBE_SENT_NS = 18;
/** Probe offset of the driver's wake-up time (its CLOCK_MONOTONIC ns, u64 LE). */
export const PROBE_WAKE_NS = 30;
/** Probe offset of how the driver's wait ended: 0 timeout, 1 signal, 2 pending, 3 polled. */
export const PROBE_HOW = 38;
/** Probe offset of the driver's turnaround, wake-up to echo ready (ns, u32 LE). */
export const PROBE_TURN_NS = 40;
/** Probe length (the Ethernet minimum). */
export const PROBE_LEN = 60;
/** Source MAC of the probes. */
export const PROBE_SRC = "02:00:00:00:b6:01";

const clock = Deno.dlopen("libc.so.6", {
  clock_gettime: { parameters: ["i32", "buffer"], result: "i32" },
}).symbols;
const ts = new BigInt64Array(2);

/**
 * CLOCK_MONOTONIC in ns (clock_gettime(2)): one clock for every process of one kernel.
 *
 * @example
 * ```ts ignore
 * const t = monoNs();
 * ```
 */
export function monoNs(): bigint {
  clock.clock_gettime(1, /* CLOCK_MONOTONIC */ new Uint8Array(ts.buffer));
  return ts[0] * 1_000_000_000n + ts[1];
}

/** One probe's result. */
export interface EchoSample {
  /** Sequence number. */
  seq: number;
  /** Round trip, µs (send → echo received here). */
  rttUs: number;
  /** Driver wake-up time minus send time, µs (meaningful on one kernel only). */
  wakeUs: number;
  /** The driver's turnaround, wake-up to echo ready, µs (its own clock: a duration). */
  turnUs: number;
  /** How the driver's wait ended: "timeout", "signal", "pending" or "poll". */
  how: string;
}

/** Summary of a run: the samples and the probes that got no echo. */
export interface EchoResult {
  /** Every answered probe. */
  samples: EchoSample[];
  /** Probes without an echo within the timeout. */
  lost: number;
}

/** Sends `count` probes to `dst` on `ifname` one at a time and times their echoes. */
export async function timeEchoes(
  ifname: string,
  dst: string,
  count: number,
  gapMs: number,
  timeoutMs: number,
): Promise<EchoResult> {
  const fd = openPacketSocket(ifname, 1 << 20);
  const samples: EchoSample[] = [];
  let lost = 0;
  const frame = new Uint8Array(PROBE_LEN);
  frame.set(parseMac(dst), 0);
  frame.set(parseMac(PROBE_SRC), 6);
  frame[12] = LATENCY_ETHERTYPE >> 8;
  frame[13] = LATENCY_ETHERTYPE & 0xff;
  const fv = new DataView(frame.buffer);
  const buf = new Uint8Array(2048);
  const bv = new DataView(buf.buffer);
  const from = new Uint8Array(SOCKADDR_LL_SIZE);
  const fromLen = new Uint32Array(1);
  const pfd = new Uint8Array(8);
  const pv = new DataView(pfd.buffer);
  try {
    for (let seq = 0; seq < count; seq++) {
      fv.setUint32(PROBE_SEQ, seq, true);
      const sent = monoNs();
      fv.setBigUint64(PROBE_SENT_NS, sent, true);
      if (Number(sock.sendto(fd, frame, BigInt(frame.length), 0, null, 0)) !== frame.length) {
        throw new SysError("sendto", ifname);
      }
      const deadline = performance.now() + timeoutMs;
      let answered = false;
      while (!answered) {
        fromLen[0] = SOCKADDR_LL_SIZE;
        const n = Number(sock.recvfrom(
          fd,
          buf,
          BigInt(buf.length),
          MSG_DONTWAIT,
          from,
          new Uint8Array(fromLen.buffer),
        ));
        const now = monoNs();
        if (n < 0) {
          if (errno() !== EAGAIN) throw new SysError("recvfrom", ifname);
          const left = Math.ceil(deadline - performance.now());
          if (left <= 0) break;
          pv.setInt32(0, fd, true);
          pv.setInt16(4, POLLIN, true);
          pv.setInt16(6, 0, true);
          sock.poll(pfd, 1n, left);
          continue;
        }
        if (parseSockaddrLl(from).pkttype === PACKET_OUTGOING) continue;
        if (n < PROBE_LEN || ((buf[12] << 8) | buf[13]) !== LATENCY_ETHERTYPE) continue;
        if (bv.getUint32(PROBE_SEQ, true) !== seq) continue; // a late echo of a lost probe
        answered = true;
        samples.push({
          seq,
          rttUs: Number(now - sent) / 1000,
          wakeUs: Number(bv.getBigUint64(PROBE_WAKE_NS, true) - sent) / 1000,
          turnUs: bv.getUint32(PROBE_TURN_NS, true) / 1000,
          how: ["timeout", "signal", "pending", "poll"][buf[PROBE_HOW]] ?? "?",
        });
      }
      if (!answered) lost++;
      await new Promise((r) => setTimeout(r, gapMs));
    }
  } finally {
    libc.close(fd);
  }
  return { samples, lost };
}

/**
 * The p-th percentile (0–100) of `xs` (nearest rank).
 *
 * @example
 * ```ts ignore
 * percentile([3, 1, 2], 50); // 2
 * ```
 */
export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

/**
 * Runs this tool inside `bed`'s namespace against NIC `nic` (whose driver echoes probes
 * sent to `dst`) and returns its result.
 *
 * @example
 * ```ts ignore
 * const r = await echoTimes(bed, 0, "52:54:00:12:34:56", 200);
 * console.log(percentile(r.samples.map((s) => s.rttUs), 50));
 * ```
 */
export async function echoTimes(
  bed: TrafficBed,
  nic: number,
  dst: string,
  count: number,
  opts: { gapMs?: number; timeoutMs?: number } = {},
): Promise<EchoResult> {
  const out = await new Deno.Command("ip", {
    args: [
      "netns",
      "exec",
      bed.netns,
      Deno.execPath(),
      "run",
      "--quiet",
      "--allow-ffi",
      new URL(import.meta.url).pathname,
      "--if",
      bed.tapName(nic),
      "--dst",
      dst,
      "--count",
      String(count),
      "--gap-ms",
      String(opts.gapMs ?? 20),
      "--timeout-ms",
      String(opts.timeoutMs ?? 2000),
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  if (!out.success) {
    throw new Error(`echo_timer failed (exit ${out.code}): ${dec.decode(out.stderr)}`);
  }
  return JSON.parse(dec.decode(out.stdout).trim().split("\n").at(-1)!) as EchoResult;
}

/**
 * Median, 90th percentile and maximum of `xs`, rounded to 0.1 (for reports).
 *
 * @example
 * ```ts ignore
 * summary([1, 2, 3]); // { n: 3, p50: 2, p90: 3, max: 3 }
 * ```
 */
export function summary(xs: number[]): { n: number; p50: number; p90: number; max: number } {
  const r = (x: number) => Math.round(x * 10) / 10;
  return {
    n: xs.length,
    p50: r(percentile(xs, 50)),
    p90: r(percentile(xs, 90)),
    max: r(Math.max(...xs)),
  };
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      if: { type: "string" },
      dst: { type: "string" },
      count: { type: "string", default: "100" },
      "gap-ms": { type: "string", default: "20" },
      "timeout-ms": { type: "string", default: "2000" },
    },
  });
  if (!values.if || !values.dst) {
    console.error(
      "usage: echo_timer.ts --if TAP --dst MAC --count N [--gap-ms G] [--timeout-ms T]",
    );
    Deno.exit(2);
  }
  const r = await timeEchoes(
    values.if,
    values.dst,
    Number(values.count),
    Number(values["gap-ms"]),
    Number(values["timeout-ms"]),
  );
  console.log(JSON.stringify(r));
}
