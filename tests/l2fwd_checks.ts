/**
 * What the l2fwd bed tests (tests/l2fwd_vm_test.ts, tests/l2fwd_vfio_user_test.ts) check
 * and measure, whatever the bed: forwarded frames against sent ones, l2fwd's JSON
 * statistics, V8 GC traces.
 *
 * @module
 */

import { MIN_SWITCHES } from "./bed/guest_run.ts";
import assert from "node:assert/strict";
import { CaptureError, type CaptureHandle } from "./bed/traffic.ts";
import { parseMac, parseUdpTestFrame, udpFrames } from "./bed/frames.ts";
import { readPcap } from "../src/pcap/pcap.ts";

/** MAC rewrite as l2fwd --mac-rewrite does it for frames leaving port `port`. */
export function rewritten(frame: Uint8Array, port: number, portMac: string): Uint8Array {
  const f = frame.slice();
  f.set([0x02, 0, 0, 0, 0, port], 0);
  f.set(parseMac(portMac), 6);
  return f;
}

/**
 * Checks that `captured` holds exactly the frames of `sent` (each transformed by `expect`,
 * e.g. MAC rewrite), byte for byte, each once, and in order within each flow (frames of
 * different flows may interleave differently: they travel on different queue pairs).
 * Returns the number of flows seen.
 */
export function assertSameFramesPerFlow(
  sent: readonly Uint8Array[],
  captured: readonly Uint8Array[],
  expect: (f: Uint8Array) => Uint8Array = (f) => f,
  what = "captured frames",
): number {
  assert.equal(captured.length, sent.length, `${what}: ${captured.length} of ${sent.length}`);
  const bySeq = new Map<number, Uint8Array>();
  for (const f of sent) bySeq.set(parseUdpTestFrame(f)!.seq, f);
  const lastSeq = new Map<number, number>();
  for (const [i, c] of captured.entries()) {
    const info = parseUdpTestFrame(c);
    assert.ok(info, `${what}: frame ${i} is not a valid UDP test frame`);
    const want = bySeq.get(info.seq);
    assert.ok(want, `${what}: frame ${i} (seq ${info.seq}) was not sent, or came twice`);
    assert.deepEqual(c, expect(want), `${what}: frame seq ${info.seq} differs`);
    bySeq.delete(info.seq);
    const prev = lastSeq.get(info.flow) ?? -1;
    assert.ok(info.seq > prev, `${what}: flow ${info.flow} reordered at seq ${info.seq}`);
    lastSeq.set(info.flow, info.seq);
  }
  return lastSeq.size;
}

/**
 * Which of `sent` (UDP test frames) are not in `captured`, by their position in sending
 * order: e.g. "41 missing, positions 1199959–1199999 (the last 41 sent)", or "none".
 * Tells a tail held back somewhere (a queue nobody was told to look at) from frames lost
 * here and there.
 */
export function missingFrames(
  sent: readonly Uint8Array[],
  captured: readonly Uint8Array[],
): string {
  const got = new Set<number>();
  for (const c of captured) {
    const info = parseUdpTestFrame(c);
    if (info) got.add(info.seq);
  }
  const missing: number[] = [];
  for (const [i, f] of sent.entries()) {
    if (!got.has(parseUdpTestFrame(f)!.seq)) missing.push(i);
  }
  if (missing.length === 0) return "none";
  const first = missing[0], last = missing[missing.length - 1];
  const tail = last === sent.length - 1 && last - first === missing.length - 1;
  return `${missing.length} missing, positions ${first}–${last} of ${sent.length}` +
    (tail
      ? ` (the last ${missing.length} sent)`
      : ` (first ones: ${missing.slice(0, 8).join(", ")})`);
}

/** One port of l2fwd's JSON statistics (the fields the tests use). */
export interface PortLine {
  port: number;
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  dropsTxRingFull: number;
  txRingFullWaits: number;
  dropsNoBuffer: number;
  dropsScript: number;
  /** testpmd's icmpecho: frames left unanswered. */
  dropsMode?: number;
  dropsTooLong: number;
  dropsReset: number;
  kicks: number;
  /** Offload counters (docs/offloads.md). */
  dropsBadOffload?: number;
  dropsTxOffload?: number;
  rxCsumValid?: number;
  rxCsumPartial?: number;
  rxGso?: number;
  txOffloaded?: number;
  /** "split" or "packed". */
  ring?: string;
  /** Negotiated features (the summary only). */
  features?: string[];
  /** Extended statistics by DPDK's names, then ours (src/engine/xstats.ts). */
  xstats?: Record<string, number>;
  queues: {
    queue: number;
    rxPackets: number;
    rxBytes: number;
    txPackets: number;
    txBytes: number;
    dropsTxRingFull: number;
    dropsScript: number;
  }[];
}

/** One worker of l2fwd's JSON statistics. */
export interface WorkerLine {
  queue: number;
  state: string;
  heapWarm: number;
  heapLast: number;
  heapGrowth: number;
  heapLive: boolean;
  heapDrops: number;
  warmPackets: number;
  warmAtMs: number;
  heapSteps: number;
  heapStepBytes: number;
  heapCreep: number;
  prewarmFrames: number;
  prewarmMs: number;
  lastStepPackets: number;
  packets: number;
  nowMs: number;
}

/** l2fwd's summary line. */
export interface Summary {
  event: "summary";
  elapsedS: number;
  ports: PortLine[];
  workers: WorkerLine[];
  script?: { counters: Record<string, number>; report?: unknown };
  pcap?: { captured: number; dropped: number; written: number };
  faults?: { atS: number; reason: string }[];
}

/**
 * Frames of a capture, even when it ended early; then also says why it ended and what the
 * capture socket itself dropped (PACKET_STATISTICS), so a short capture is accounted for.
 */
export async function framesOf(c: CaptureHandle): Promise<Uint8Array[]> {
  try {
    return await c.done();
  } catch (e) {
    if (e instanceof CaptureError) {
      const st = e.stats;
      console.log(
        `capture ended early: ${e.message}` +
          (st ? ` (capture socket dropped ${st.socketDrops}, ${st.unread} unread)` : ""),
      );
      return e.frames;
    }
    throw e;
  }
}

/** The last `"event":"summary"` line of l2fwd's standard output. */
export function summaryOf(stdout: string): Summary {
  const line = stdout.split("\n").filter((l) => l.startsWith('{"event":"summary"')).at(-1);
  assert.ok(line, `l2fwd printed no summary:\n${stdout.slice(-2000)}`);
  return JSON.parse(line);
}

/**
 * Throws when a capture holds fewer frames than `want`, with what explains it: l2fwd's
 * counters per port, the end of its stderr and `bedNotes` (e.g. what QEMU printed). A CI
 * log that shows only the failing assertion then still shows the cause.
 */
export function assertCaptured(
  captures: [what: string, got: number][],
  want: number,
  s: Summary | null,
  stderr: string,
  bedNotes: string[] = [],
): void {
  const short = captures.filter(([, got]) => got !== want);
  if (short.length === 0) return;
  const ports =
    s?.ports.map((p) =>
      `port ${p.port}: rx ${p.rxPackets} tx ${p.txPackets} ring-full drops ${p.dropsTxRingFull} ` +
      `no-buffer drops ${p.dropsNoBuffer} script drops ${p.dropsScript} kicks ${p.kicks}`
    ) ?? ["l2fwd printed no summary"];
  const notes = bedNotes.filter((n) => n.trim() !== "");
  throw new assert.AssertionError({
    message: `${
      short.map(([what, got]) => `${what}: ${got} of ${want} frames captured`).join(", ")
    }` +
      `\n${ports.join("\n")}\nl2fwd stderr (end): ${stderr.trim().slice(-1500) || "(empty)"}` +
      (notes.length ? `\n${notes.join("\n")}` : ""),
  });
}

/** Checks that every port's totals are the sums of its queue pairs' counters. */
export function assertQueuesAddUp(s: Summary): void {
  for (const p of s.ports) {
    for (const k of ["rxPackets", "rxBytes", "txPackets", "txBytes", "dropsTxRingFull"] as const) {
      const sum = p.queues.reduce((n, q) => n + q[k], 0);
      assert.equal(sum, p[k], `port ${p.port}: ${k} of the queues add up to ${sum}, not ${p[k]}`);
    }
  }
}

/**
 * V8 GCs per isolate from `--v8-flags=--trace-gc` lines (`[pid:isolate] T ms: Kind …`),
 * in the order isolates first appear.
 */
export function gcTrace(
  stdout: string,
): { isolate: string; gcs: { ms: number; kind: string }[] }[] {
  const by = new Map<string, { ms: number; kind: string }[]>();
  for (const l of stdout.split("\n")) {
    const m = /\[\d+:(0x[0-9a-f]+)\]\s+(\d+) ms: ([A-Za-z-]+)/.exec(l);
    if (!m) continue;
    if (!by.has(m[1])) by.set(m[1], []);
    by.get(m[1])!.push({ ms: Number(m[2]), kind: m[3] });
  }
  return [...by.entries()].map(([isolate, gcs]) => ({ isolate, gcs }));
}

/** Whole seconds a worker forwarded after its warm-up ended. */
function secondsAfterWarmUp(w: WorkerLine): number {
  return Math.floor((w.nowMs - w.warmAtMs) / 1000);
}

/**
 * Every worker got past warm-up and, from there to the stop, kept no memory and made no
 * garbage to speak of: its live heap (after the worker's full GCs at warm-up and at the
 * stop) within 4 KiB of warm-up's besides the code V8 compiled in between (quiet: 0 B and
 * no compile step; on a busy host V8's concurrent compiler finishes later, and a compile
 * step of ~7 KB came after warm-up: code, not data; a leak of 1 byte a packet would keep
 * 150 KB and more), no GC in between, and under 32 KiB of garbage in the seconds without
 * compiling (each once-a-second sample makes 16 bytes; allocating even 8 bytes a packet
 * would make 40 KB every second at 5,000 frames/s), over at least 150,000 packets a worker.
 */
export function assertHeapFlat(s: Summary): void {
  for (const w of s.workers) {
    if (!(w.heapWarm > 0)) throw new Error(`worker ${w.queue} never got past its warm-up`);
    if (!w.heapLive || w.state !== "done") {
      throw new Error(`worker ${w.queue} (${w.state}) has no live-heap figures (no full GC)`);
    }
    if (w.heapDrops !== 0) {
      throw new Error(
        `worker ${w.queue} collected garbage after warm-up (${w.heapDrops} heap drops; warm at ${w.warmPackets} packets, ${w.heapSteps} compile steps after it of ${w.heapStepBytes} B, the last at ${w.lastStepPackets} packets; ${w.heapCreep} B of garbage in the other seconds; ${w.packets} packets in all)`,
      );
    }
    if (!(w.packets - w.warmPackets >= 150000)) {
      throw new Error(
        `worker ${w.queue} forwarded only ${
          w.packets - w.warmPackets
        } packets after warm-up: too short a run to tell`,
      );
    }
    if (!(w.heapGrowth < 4096 + w.heapStepBytes)) {
      throw new Error(
        `worker ${w.queue}'s live heap grew by ${w.heapGrowth} bytes after warm-up, more than the ${w.heapStepBytes} bytes of its ${w.heapSteps} compile steps (the last at ${w.lastStepPackets} packets)`,
      );
    }
    if (!(w.heapCreep < 32768)) {
      throw new Error(
        `worker ${w.queue}'s heap grew by ${w.heapCreep} bytes in the seconds after warm-up without a compile step`,
      );
    }
  }
}

/**
 * Runs l2fwd with `args` (and deno permissions `perms`), sends `frames` into port 0 and
 * returns the `expect` frames port 1 sent, with l2fwd's summary and stderr. Each bed's
 * test has its own.
 */
export type OneWay = (
  args: string[],
  perms: string[],
  frames: Uint8Array[],
  expect: number,
) => Promise<{ out: Uint8Array[]; summary: Summary; stderr: string }>;

/**
 * `l2fwd --queues 2 --steering rss --rebalance-ms 100` with 20,000 frames of 256 flows to
 * `dst` (port 0's MAC): every frame forwarded, in order per flow, both queues used, and at
 * least MIN_SWITCHES RSS table switches on each port (its stderr says how many); prints the figures.
 */
export async function checkRebalancing(oneWay: OneWay, seed: number, dst: string): Promise<void> {
  const sent = udpFrames({ seed, count: 20000, flows: 256, dst });
  const { out, summary, stderr } = await oneWay(
    ["--queues", "2", "--steering", "rss", "--rebalance-ms", "100"],
    [],
    sent,
    20000,
  );
  const switches = [...stderr.matchAll(/port \d (\d+) switches/g)].map((m) => Number(m[1]));
  console.log(
    `rebalancing: ${out.length} of ${sent.length} frames forwarded; steering switches ` +
      `per port ${switches.join(", ")}; queues ${
        summary.ports[0].queues.map((q) => `${q.queue}:${q.rxPackets}`).join(" ")
      }`,
  );
  assertSameFramesPerFlow(sent, out);
  assert.equal(switches.length, 2, stderr);
  // 20,000 frames at 5,000/s: about 4 s of traffic, a switch asked every 100 ms.
  for (const n of switches) assert.ok(n >= MIN_SWITCHES, `only ${n} switches`);
  for (const q of summary.ports[0].queues) {
    assert.ok(q.rxPackets > sent.length / 10, "both queues used");
  }
}

/**
 * l2fwd with `script` (examples/scripts/mac_swap.ts) and a capture of what port 1 sends:
 * 2,000 frames of 16 flows to `dst`, every one forwarded with its MAC addresses swapped,
 * the script's count 2,000, and the capture (one queue pair) equal to what the host
 * received. `pcap.l2fwd` is the capture file as l2fwd names it, `pcap.host` where this
 * test reads it.
 */
export async function checkMacSwapTxPcap(
  oneWay: OneWay,
  script: string,
  pcap: { l2fwd: string; host: string },
  seed: number,
  dst: string,
): Promise<void> {
  const frames = udpFrames({ seed, count: 2000, flows: 16, dst });
  const { out, summary } = await oneWay(
    ["--script", script, "--pcap", pcap.l2fwd, "--pcap-port", "1", "--pcap-direction", "tx"],
    [`--allow-read=${script}`, `--allow-write=${pcap.l2fwd}`],
    frames,
    2000,
  );
  assertSameFramesPerFlow(frames, out, (f) => {
    const g = f.slice();
    g.set(f.subarray(6, 12), 0);
    g.set(f.subarray(0, 6), 6);
    return g;
  });
  assert.equal(summary.script?.counters.swapped, 2000);
  assert.deepEqual(readPcap(await Deno.readFile(pcap.host)).map((r) => r.data), out);
}

/** A one-line account of the workers' heaps and of the GCs per isolate. */
export function heapReport(s: Summary, stdout: string): string {
  const workers = s.workers.map((w) =>
    `queue ${w.queue}: live heap ${w.heapWarm} B at warm-up (${w.warmPackets} packets), ${w.heapLast} B at the stop (${w.packets} packets): ${
      w.heapGrowth >= 0 ? "+" : ""
    }${w.heapGrowth} B; between: ${w.heapSteps} compile steps (+${w.heapStepBytes} B${
      w.heapSteps ? `, the last at ${w.lastStepPackets} packets` : ""
    }), ${w.heapCreep} B of garbage in the other ${secondsAfterWarmUp(w) - w.heapSteps} seconds, ${
      w.heapDrops ? `${w.heapDrops} GC` : "no GC"
    }`
  );
  const gcs = gcTrace(stdout).map((i) =>
    `${i.isolate}: ${i.gcs.length} (${i.gcs.map((g) => `${g.kind}@${g.ms}ms`).join(" ")})`
  );
  return `workers: ${workers.join("; ")}\nV8 GCs per isolate (main first): ${gcs.join("; ")}`;
}
