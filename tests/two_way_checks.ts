/**
 * The two-way forwarding check the packed, legacy and vfio-user packed tests share: l2fwd
 * (already running, with --mac-rewrite) forwards UDP frames of many flows sent into both
 * ports at once; each port's capture holds every frame, rewritten, each flow in order; the
 * queue counters add up; nothing dropped; every queue pair carried a tenth at least.
 *
 * @module
 */

import assert from "node:assert/strict";
import { udpFrames } from "./bed/frames.ts";
import { sendFrames, startCapture, type TrafficBed } from "./bed/traffic.ts";
import {
  assertCaptured,
  assertQueuesAddUp,
  assertSameFramesPerFlow,
  framesOf,
  rewritten,
  type Summary,
  summaryOf,
} from "./l2fwd_checks.ts";

/** What {@linkcode checkTwoWay} sends and expects. */
export interface TwoWayOptions {
  /** Frames each way. */
  frames: number;
  /** Flows each way. */
  flows: number;
  /** Frames per second each way. */
  rate: number;
  /** Seeds of the two directions' frames. */
  seeds: [number, number];
  /** The ports' MACs (the frames' destinations, and the rewrite's source). */
  macs: [string, string];
  /** How the messages name port i ("NIC 1", "port 1"). */
  name: (i: number) => string;
  /** More to say when frames are missing (e.g. what the servers printed). */
  context?: () => string[];
}

/**
 * Runs the traffic against `run` (an l2fwd started on `bed`'s two ports) and checks it;
 * returns l2fwd's summary for the caller's own checks (ring format, features).
 *
 * @example
 * ```ts ignore
 * const s = await checkTwoWay(bed, run, { frames: 40_000, flows: 1024, rate: 5000,
 *   seeds: [63, 64], macs: [bed.nicMac(0), bed.nicMac(1)], name: (i) => `NIC ${i}` });
 * ```
 */
export async function checkTwoWay(
  bed: TrafficBed,
  run: { interrupt(): Promise<{ code: number; stdout: string; stderr: string }> },
  o: TwoWayOptions,
): Promise<Summary> {
  const [a, b] = o.seeds.map((seed, i) =>
    udpFrames({ seed, count: o.frames, flows: o.flows, dst: o.macs[i] })
  );
  const opts = {
    count: o.frames,
    timeoutMs: (o.frames / o.rate) * 1000 + 60000,
    ethertype: 0x0800,
  };
  const cap1 = await startCapture(bed, 1, opts);
  const cap0 = await startCapture(bed, 0, opts);
  const [s0, s1] = await Promise.all([
    sendFrames(bed, 0, a, { rate: o.rate }),
    sendFrames(bed, 1, b, { rate: o.rate }),
  ]);
  const [out1, out0] = await Promise.all([framesOf(cap1), framesOf(cap0)]);
  const r = await run.interrupt();
  assert.equal(r.code, 0, r.stderr);
  const s = summaryOf(r.stdout);
  assertCaptured([[o.name(1), out1.length], [o.name(0), out0.length]], o.frames, s, r.stderr, [
    ...(o.context?.() ?? []),
    `host drops before the ports: ${JSON.stringify(s0.drops)} + ${JSON.stringify(s1.drops)}`,
  ]);
  const flows1 = assertSameFramesPerFlow(a, out1, (f) => rewritten(f, 1, o.macs[1]), o.name(1));
  const flows0 = assertSameFramesPerFlow(b, out0, (f) => rewritten(f, 0, o.macs[0]), o.name(0));
  assert.deepEqual([flows1, flows0], [o.flows, o.flows]);
  assertQueuesAddUp(s);
  for (const p of s.ports) {
    assert.equal(p.rxPackets, o.frames);
    assert.equal(p.txPackets, o.frames);
    assert.equal(p.dropsTxRingFull + p.dropsNoBuffer, 0);
    for (const q of p.queues) {
      assert.ok(q.rxPackets > o.frames / 10, `queue pair ${q.queue} received ${q.rxPackets}`);
    }
  }
  return s;
}
