/**
 * What the mixed-traffic bed tests (tests/mixed_traffic_vm_test.ts,
 * tests/mixed_traffic_vfio_user_test.ts) count: of the mixed frames sent (tests/bed/
 * mixed_frames.ts), how many came out, byte for byte, and how many arrived after a later
 * frame of their own flow (reordered); plus the one JSON line per forwarder run that
 * tools/mixed_runs.sh adds up.
 *
 * @module
 */

import { MIXED_KINDS, type MixedKind, parseMixedFrame } from "./bed/mixed_frames.ts";
import {
  CaptureError,
  sendFrames,
  type SendResult,
  startCapture,
  type TrafficBed,
} from "./bed/traffic.ts";

/** What each bed's mixed-traffic test sends (see {@linkcode mixedPlan}). */
export interface MixedPlan {
  /** Run number: MIXED_RUN, default 1 (tools/mixed_runs.sh numbers runs; it picks the frames). */
  run: number;
  /** Frames per pass. */
  count: number;
  /** Flows among them. */
  flows: number;
  /** Frames per second sent into NIC 0. */
  rate: number;
  /** Queue pairs per port, one pass each. */
  queues: number[];
}

/**
 * The plan both mixed-traffic bed tests follow, so that tools/mixed_runs.sh adds up like
 * runs: 3,000 frames of 600 flows at 2,000/s, for 1, 2 and 4 queue pairs.
 *
 * @example
 * ```ts ignore
 * const { run, count, flows } = mixedPlan(); // reads MIXED_RUN (needs --allow-env)
 * mixedFrames({ seed: 1000 * run + 1, count, flows, dst: "52:54:00:12:34:56" });
 * ```
 */
export function mixedPlan(): MixedPlan {
  const run = Number(Deno.env.get("MIXED_RUN") ?? "1");
  return { run, count: 3000, flows: 600, rate: 2000, queues: [1, 2, 4] };
}

/** The counts of one forwarder run (see {@linkcode countMixed}). */
export interface MixedCount {
  /** Frames sent. */
  sent: number;
  /** Frames captured (all of them, ours or not). */
  captured: number;
  /** Captured frames equal, byte for byte, to the frame sent with their sequence number. */
  identical: number;
  /** Captured frames of ours whose bytes differ from what was sent. */
  differing: number;
  /** Sent frames never captured. */
  missing: number;
  /** Captured frames of ours seen a second time. */
  duplicated: number;
  /** Captured frames that are not ours (another stream, unparseable). */
  foreign: number;
  /** Frames captured after a frame of their flow with a higher sequence number. */
  reordered: number;
  /** Flows with at least one reordered frame. */
  reorderedFlows: number;
  /** Reordered frames by the kind of their flow (only kinds with some). */
  reorderedByKind: Partial<Record<MixedKind, number>>;
  /** Distinct flows captured. */
  flows: number;
  /** The first few reorders, e.g. "flow 183 (vlan-udp4): seq 1983 after seq 2583". */
  examples: string[];
}

/**
 * Counts what a capture holds of `sent` (mixed frames of one stream): `expect` gives the
 * frame a sent one should become on the way (default: unchanged). A frame is reordered
 * when a frame of its flow with a higher sequence number came before it.
 *
 * @example
 * ```ts
 * import { mixedFrames } from "./bed/mixed_frames.ts";
 * import { countMixed } from "./mixed_checks.ts";
 * const sent = mixedFrames({ seed: 1, count: 12, flows: 6, dst: "52:54:00:12:34:50" });
 * const c = countMixed(sent, [sent[6], ...sent.slice(0, 6), ...sent.slice(7)]);
 * c.reordered; // 1 (seq 0 of flow 0 after seq 6)
 * ```
 */
export function countMixed(
  sent: readonly Uint8Array[],
  captured: readonly Uint8Array[],
  expect: (f: Uint8Array) => Uint8Array = (f) => f,
): MixedCount {
  const bySeq = new Map<number, Uint8Array>();
  let seed: number | undefined;
  for (const f of sent) {
    const info = parseMixedFrame(f);
    if (!info) throw new Error("countMixed: a sent frame is not a mixed frame");
    if (seed !== undefined && info.seed !== seed) throw new Error("countMixed: two streams sent");
    seed = info.seed;
    bySeq.set(info.seq, f);
  }
  const seen = new Set<number>();
  const lastSeq = new Map<number, number>();
  const badFlows = new Set<number>();
  const c: MixedCount = {
    sent: sent.length,
    captured: captured.length,
    identical: 0,
    differing: 0,
    missing: 0,
    duplicated: 0,
    foreign: 0,
    reordered: 0,
    reorderedFlows: 0,
    reorderedByKind: {},
    flows: 0,
    examples: [],
  };
  for (const f of captured) {
    const info = parseMixedFrame(f);
    const want = info && info.seed === seed ? bySeq.get(info.seq) : undefined;
    if (!info || !want) {
      c.foreign++;
      continue;
    }
    if (seen.has(info.seq)) {
      c.duplicated++;
      continue;
    }
    seen.add(info.seq);
    if (sameBytes(f, expect(want))) c.identical++;
    else c.differing++;
    const prev = lastSeq.get(info.flow);
    if (prev !== undefined && info.seq < prev) {
      c.reordered++;
      badFlows.add(info.flow);
      c.reorderedByKind[info.kind] = (c.reorderedByKind[info.kind] ?? 0) + 1;
      if (c.examples.length < 5) {
        c.examples.push(`flow ${info.flow} (${info.kind}): seq ${info.seq} after seq ${prev}`);
      }
    } else lastSeq.set(info.flow, info.seq);
  }
  c.missing = sent.length - seen.size;
  c.reorderedFlows = badFlows.size;
  c.flows = lastSeq.size;
  return c;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * The kinds of flow `product` reordered that `reference` (DPDK's testpmd in the same bed,
 * same queues, same frames) did not: reorders the reference shares are the host's; these
 * are not. With no reference, every kind `product` reordered.
 *
 * @example
 * ```ts
 * import { reordersNotInReference } from "./mixed_checks.ts";
 * reordersNotInReference({ "vlan-udp4": 2, udp4: 1 }, { "vlan-udp4": 1 }); // ["udp4"]
 * ```
 */
export function reordersNotInReference(
  product: Partial<Record<MixedKind, number>>,
  reference: Partial<Record<MixedKind, number>> | null,
): MixedKind[] {
  return MIXED_KINDS.filter((k) => (product[k] ?? 0) > 0 && !((reference?.[k] ?? 0) > 0));
}

/** One forwarder run as tools/mixed_runs.sh reads it (a `MIXED {json}` line). */
export interface MixedLine extends Omit<MixedCount, "examples"> {
  /** "vm", "vfio-user" or "vhost-user". */
  bed: string;
  /** Run number (MIXED_RUN, default 1). */
  run: number;
  /** "l2fwd", "l2fwd-rss" or "testpmd". */
  forwarder: string;
  /** Queue pairs per port. */
  queues: number;
  /** Frames the host dropped on the way in (the tap's ring). */
  hostDrops: number;
  /** Frames the capture socket dropped (PACKET_STATISTICS). */
  captureDrops: number;
  /** Frames received per queue of port 0, as the forwarder counted them. */
  perQueue: number[];
}

/**
 * The `MIXED {json}` line of one run, and a sentence for people.
 *
 * @example
 * ```ts ignore
 * console.log(mixedLine({ bed: "vm", run: 1, forwarder: "l2fwd", queues: 2, ...count }));
 * ```
 */
export function mixedLine(l: MixedLine & { examples?: string[] }): string {
  const { examples, ...rest } = l;
  const kinds = Object.entries(l.reorderedByKind).map(([k, n]) => `${k} ${n}`).join(", ");
  return `${l.bed} ${l.forwarder} --queues ${l.queues}: sent ${l.sent}, captured ${l.captured}, ` +
    `byte-identical ${l.identical}, reordered ${l.reordered} in ${l.reorderedFlows} flows` +
    (kinds ? ` (${kinds}; e.g. ${examples?.join("; ")})` : "") +
    `; missing ${l.missing}, host drops ${l.hostDrops}, capture drops ${l.captureDrops}; ` +
    `port 0 queues ${l.perQueue.join("/")}\nMIXED ${JSON.stringify(rest)}`;
}

/** What {@linkcode sendMixed} saw. */
export interface MixedPass {
  /** The frames captured out of NIC 1, in order. */
  out: Uint8Array[];
  /** What the host sent into NIC 0 and dropped on the way. */
  sent: SendResult;
  /** Frames the capture socket dropped (its tp_drops), or -1 when it printed no counters. */
  captureDrops: number;
  /** Why the capture ended early, or "". */
  captureEnd: string;
}

/**
 * Sends `frames` into NIC 0 of `bed` at `rate` frames/s while capturing as many out of
 * NIC 1 (whatever their EtherType); gives what arrived even when the capture timed out.
 *
 * @example
 * ```ts ignore
 * const pass = await sendMixed(bed, frames, 2000);
 * countMixed(frames, pass.out);
 * ```
 */
export async function sendMixed(
  bed: TrafficBed,
  frames: Uint8Array[],
  rate: number,
): Promise<MixedPass> {
  const timeoutMs = (frames.length / rate) * 1000 + 20000;
  const cap = await startCapture(bed, 1, { count: frames.length, timeoutMs });
  const sent = await sendFrames(bed, 0, frames, { rate });
  let out: Uint8Array[], captureEnd = "";
  try {
    out = await cap.done();
  } catch (e) {
    if (!(e instanceof CaptureError)) throw e;
    out = e.frames;
    captureEnd = e.message;
  }
  const stats = await cap.stats();
  return { out, sent, captureDrops: stats?.socketDrops ?? -1, captureEnd };
}
