/**
 * Overload in the vfio-user bed (issue 13, item 3): frames offered into both ports as fast as
 * the host can send them, far beyond what QEMU's vfio-user server takes, for 60 s under
 * `deno task soak` (5 s in CI). l2fwd must keep running, keep its memory (RSS within a few
 * MiB, no garbage collection, heap creep under 32 KiB), account for every frame (each one
 * sent was dropped by the tap for want of receive buffers, or received by l2fwd and then
 * transmitted or dropped with a reason, and everything transmitted reached the other tap),
 * and once the load drops forward a paced stream with no loss at all.
 *
 * Needs root and QEMU's vfio-user server (tools/build_bed_qemu.sh).
 *
 * @module
 */

import assert from "node:assert/strict";
import { PcapWriter } from "../../src/pcap/pcap.ts";
import { udpFrames } from "../bed/frames.ts";
import { startHostL2fwd } from "../bed/host_l2fwd.ts";
import { sendFrames, startCapture, tapCounter } from "../bed/traffic.ts";
import { VfioUserBed } from "../bed/vfio_user_bed.ts";
import { framesOf, summaryOf } from "../l2fwd_checks.ts";
import {
  assertForwardedOrDropped,
  assertMemoryHeld,
  dropsOf,
  memoryReport,
  quiet,
  rss,
} from "./overload_checks.ts";
import { soakLength } from "./soak_length.ts";

const OVERLOAD_S = soakLength(60, 5);
/** Frames per send: the sender replays one file of these until the time is up. */
const CHUNK = 50_000;
/** The paced stream afterwards: a rate the server takes in full (tests/l2fwd_vfio_user_test.ts). */
const CALM_RATE = 5000, CALM_FRAMES = 10_000;

Deno.test({
  name:
    "l2fwd overloaded in the vfio-user bed keeps forwarding and its memory, counts every frame, and loses none once the load drops",
  ignore: Deno.uid() !== 0,
  async fn() {
    await using bed = await VfioUserBed.start({ ports: 2, queues: 1 });
    const run = await startHostL2fwd(bed, []);
    const pid = run.child.pid;
    const pcaps: string[] = [];
    try {
      for (const nic of [0, 1]) {
        const w = new PcapWriter();
        for (const f of udpFrames({ seed: 40 + nic, count: CHUNK, flows: 256 })) w.append(f);
        pcaps.push(await Deno.makeTempFile({ prefix: "vd-overload-", suffix: ".pcap" }));
        await Deno.writeFile(pcaps[nic], w.bytes());
      }
      // What each NIC sent reaches its tap as the tap's rx.
      const tapRx = async () => [
        await tapCounter(bed, 0, "rx_packets"),
        await tapCounter(bed, 1, "rx_packets"),
      ];
      const egressBefore = await tapRx();
      // Let it warm on the first chunk, then measure memory from there.
      const offered = [0, 0], tapDrops = [0, 0];
      const send = async (nic: number, until: number) => {
        do {
          // Straight into the tap: no veth to push back, the tap drops what it cannot hold.
          const r = await sendFrames(bed, nic, pcaps[nic], { via: "tap" });
          offered[nic] += r.sent;
          tapDrops[nic] += r.drops.tap;
        } while (performance.now() < until);
      };
      await Promise.all([0, 1].map((nic) => send(nic, 0)));
      const rssBefore = rss(pid);
      const t0 = performance.now();
      await Promise.all([0, 1].map((nic) => send(nic, t0 + OVERLOAD_S * 1000)));
      const overloadS = (performance.now() - t0) / 1000;
      const rssAfter = rss(pid);
      await quiet(run.stdoutSoFar);

      // The load dropped: a paced stream goes through whole.
      const calm = udpFrames({ seed: 49, count: CALM_FRAMES, flows: 64 });
      const cap = await startCapture(bed, 1, { count: CALM_FRAMES, timeoutMs: 30000 });
      const calmSent = await sendFrames(bed, 0, calm, { rate: CALM_RATE });
      const got = await framesOf(cap);
      await quiet(run.stdoutSoFar);
      const egressAfter = await tapRx();
      const r = await run.interrupt();
      assert.equal(r.code, 0, `l2fwd ended with ${r.code}: ${r.stderr}`);
      const s = summaryOf(r.stdout);

      console.log(
        `overload ${overloadS.toFixed(1)} s: offered ${offered.join(" + ")} frames ` +
          `(${Math.round((offered[0] + offered[1]) / overloadS)}/s incl. warm-up), tap drops ` +
          `(no receive buffers) ${tapDrops.join(" + ")}, l2fwd rx ${
            s.ports.map((p) => p.rxPackets).join(" + ")
          }, ` +
          `tx ${s.ports.map((p) => p.txPackets).join(" + ")}, drops by reason ${
            JSON.stringify(s.ports.map(dropsOf))
          }; ${memoryReport(s, rssBefore, rssAfter)}; ` +
          `afterwards ${got.length} of ${CALM_FRAMES} paced frames (${calmSent.dropped} tap drops)`,
      );
      // It was overloaded: the device ran out of receive buffers and the taps dropped.
      assert.ok(tapDrops[0] + tapDrops[1] > 0, "the taps dropped nothing: no overload happened");
      // Every frame accounted for, per direction (port 0 → port 1 and back).
      for (const [inn, out] of [[0, 1], [1, 0]]) {
        const calmIn = inn === 0 ? calmSent.sent : 0;
        assert.equal(
          offered[inn] + calmIn,
          tapDrops[inn] + (inn === 0 ? calmSent.dropped : 0) + s.ports[inn].rxPackets,
          `port ${inn}: offered ≠ tap drops + received`,
        );
        assertForwardedOrDropped(s, inn, out);
      }
      for (const nic of [0, 1]) {
        assert.equal(
          egressAfter[nic] - egressBefore[nic],
          s.ports[nic].txPackets,
          `port ${nic}: transmitted ≠ what reached its tap`,
        );
      }
      assertMemoryHeld(s, rssBefore, rssAfter);
      // And the load dropped: no loss.
      assert.equal(calmSent.dropped, 0, "the tap dropped paced frames after the overload");
      assert.equal(got.length, CALM_FRAMES, "paced frames lost after the overload");
    } finally {
      try {
        run.child.kill("SIGKILL");
      } catch { /* exited */ }
      for (const p of pcaps) await Deno.remove(p).catch(() => {});
    }
  },
});
