/**
 * Running the project's driver-side programs inside the VM bed: the guest command line
 * (`deno run --allow-ffi` and nothing else), the receive/transmit exchange that
 * `tests/guest/rxtx.ts` does with the host, and the steering switches under traffic that
 * `tests/guest/steering.ts` makes.
 *
 * @module
 */

import assert from "node:assert/strict";
import { encodePcap, readPcapFrames } from "../../src/pcap/pcap.ts";
import type { ExecResult } from "./guest_agent.ts";
import { TEST_ETHERTYPE, udpFrames } from "./frames.ts";
import { KernelDropTrace } from "./kernel_drops.ts";
import { sendFrames, type SendResult, startCapture } from "./traffic.ts";
import { shellQuote, type VmBed } from "./vm.ts";

const ROOT = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");

/**
 * The guest shell command that runs project file `file` (relative to the repository) with
 * `--allow-ffi` as its only permission.
 *
 * @example
 * ```ts
 * import { guestDeno } from "./guest_run.ts";
 * guestDeno("examples/port_info.ts", ["--bind", "0000:00:04.0"]);
 * ```
 */
export function guestDeno(file: string, args: string[]): string {
  return `deno run --quiet --allow-ffi ${shellQuote(`${ROOT}/${file}`)} ${
    args.map(shellQuote).join(" ")
  }`;
}

/** What {@linkcode exchangeFrames} saw. */
export interface Exchange {
  /** The guest program's exit and output. */
  res: ExecResult;
  /** The guest program's last JSON line (its counters). */
  done: Record<string, number | boolean | string>;
  /** What the host sent into the tap. */
  sent: SendResult;
  /** The frames the driver received, in order (its rx.pcap). */
  received: Uint8Array[];
  /** The frames the host captured from the guest, in order. */
  captured: Uint8Array[];
}

/**
 * Runs `tests/guest/rxtx.ts` on `port` (bound with --bind): the host sends `toGuest` into
 * NIC `nic`'s tap and captures what the driver transmits of `fromGuest`. The guest is
 * killed if anything goes wrong.
 *
 * @example
 * ```ts ignore
 * const x = await exchangeFrames(bed, 0, bed.nicAddress(0), toGuest, fromGuest, 240000);
 * ```
 */
export async function exchangeFrames(
  bed: VmBed,
  nic: number,
  port: string,
  toGuest: Uint8Array[],
  fromGuest: Uint8Array[],
  timeoutMs: number,
  extra: string[] = [],
): Promise<Exchange> {
  Deno.writeFileSync(`${bed.shareDir}/tx.pcap`, encodePcap(fromGuest));
  const guest = await bed.spawn(guestDeno("tests/guest/rxtx.ts", [
    "--bind",
    "--port",
    port,
    "--rx-count",
    String(toGuest.length),
    "--rx-out",
    bed.guestPath(`${bed.shareDir}/rx.pcap`),
    "--tx-in",
    bed.guestPath(`${bed.shareDir}/tx.pcap`),
    "--timeout-ms",
    String(timeoutMs),
    ...extra,
  ]));
  try {
    await guest.waitForOutput(/"event":"ready"/, 60000);
    const capture = await startCapture(bed, nic, {
      count: fromGuest.length,
      timeoutMs: timeoutMs + 60000,
      ethertype: TEST_ETHERTYPE,
    });
    const sent = await sendFrames(bed, nic, toGuest);
    const res = await guest.wait(timeoutMs + 60000);
    const done = JSON.parse(res.stdout.trim().split("\n").at(-1) || "{}");
    if (res.code !== 0) {
      await capture.kill();
      return { res, done, sent, received: [], captured: [] };
    }
    const received = readPcapFrames(Deno.readFileSync(`${bed.shareDir}/rx.pcap`));
    return { res, done, sent, received, captured: await capture.done() };
  } finally {
    await guest.kill();
  }
}

/**
 * Checks an exchange came through whole: rxtx.ts exited 0, every frame the host sent was
 * received byte for byte in order, every frame it sent was captured byte for byte in
 * order, and no runt was dropped. Returns rxtx.ts's final report.
 *
 * @example
 * ```ts ignore
 * const done = assertExchanged(await exchangeFrames(bed, 0, nic, a, b, 240000), a, b);
 * ```
 */
export function assertExchanged(
  x: Exchange,
  toGuest: readonly Uint8Array[],
  fromGuest: readonly Uint8Array[],
): Exchange["done"] {
  console.log(`guest: ${JSON.stringify(x.done)}`);
  assert.equal(x.res.code, 0, `${x.res.stdout}\n${x.res.stderr}`);
  assert.equal(x.received.length, toGuest.length);
  for (let i = 0; i < toGuest.length; i++) {
    assert.deepEqual(x.received[i], toGuest[i], `received frame ${i} differs`);
  }
  assert.equal(x.captured.length, fromGuest.length);
  for (let i = 0; i < fromGuest.length; i++) {
    assert.deepEqual(x.captured[i], fromGuest[i], `transmitted frame ${i} differs`);
  }
  assert.equal(x.done.rxDropsRunt, 0);
  return x.done;
}

/**
 * A guest program's final report: the last line of its stdout, as JSON.
 *
 * @example
 * ```ts
 * import { lastJson } from "./guest_run.ts";
 * lastJson('{"event":"ready"}\n{"event":"done","n":3}\n'); // { event: "done", n: 3 }
 * ```
 */
export function lastJson(out: string): Record<string, unknown> {
  return JSON.parse(out.trim().split("\n").at(-1)!);
}

/**
 * The fewest steering switches a switching test accepts. The programs ask for one every
 * 100 ms (40–80 over their traffic on a quiet machine), but each waits for the device's
 * answer, and a loaded host stretches that (l2fwd's 4 s of rebalancing made 29 switches
 * with one host core kept busy): the count is not a rate the product promises. 20
 * switches under traffic still exercise every pair count and many tables.
 */
export const MIN_SWITCHES = 20;

/** What {@linkcode switchingRun} saw. */
export interface SwitchingRun {
  /** The guest program's exit. */
  res: ExecResult;
  /** Its final report (frames received, reorderings, switches, drops…). */
  done: Record<string, unknown>;
  /** What the host sent. */
  sent: SendResult;
  /** Frames the host kernel purged from the NIC's tap queues that QEMU detached. */
  purged: number;
}

/**
 * Runs `tests/guest/steering.ts switch` over 4 pairs for 8 s with 1,024-entry receive rings
 * (and `extra` options) on NIC `nic` while the host sends it 20,000 UDP frames of 256 flows
 * (per-flow sequence numbers, seed `seed`) at 4,000 frames/s, recording the host kernel's
 * tap-queue purges; prints what it got.
 *
 * @example
 * ```ts ignore
 * const { done, sent, purged } = await switchingRun(bed, 0, ["--rss"], 12, "pair counts");
 * ```
 */
export async function switchingRun(
  bed: VmBed,
  nic: number,
  extra: string[],
  seed: number,
  what: string,
): Promise<SwitchingRun> {
  const guest = await bed.spawn(guestDeno("tests/guest/steering.ts", [
    "switch",
    ...extra,
    "--port",
    bed.nicAddress(nic),
    "--pairs",
    "4",
    "--seconds",
    "8",
    "--rx-queue-size",
    "1024",
  ]));
  try {
    await guest.waitForOutput(/"capabilities"/, 60000);
    const frames = udpFrames({ seed, count: 20000, flows: 256, dst: bed.nicMac(nic) });
    const trace = KernelDropTrace.start();
    const sent = await sendFrames(bed, nic, frames, { rate: 4000 });
    const res = await guest.wait(90000);
    const purged = trace.stop().tunPurged(bed.qemuPid);
    const done = lastJson(res.stdout);
    console.log(`${what}: sent ${JSON.stringify(sent)} guest ${JSON.stringify(done)}`);
    return { res, done, sent, purged };
  } finally {
    await guest.kill();
  }
}
