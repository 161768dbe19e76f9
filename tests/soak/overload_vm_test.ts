/**
 * Overload in the VM bed (issue 13, item 3): frames written straight into NIC 0's tap as
 * fast as the host sends them, beyond what l2fwd in the TCG guest forwards, for 60 s under
 * `deno task soak` (5 s in CI). l2fwd (kernel VFIO, in the guest) must keep running, keep
 * its memory (RSS within 16 MiB, no garbage collection, heap creep under 32 KiB), account
 * for every frame (dropped by the tap for want of receive buffers, or received and then sent
 * out of NIC 1 or dropped with a reason; everything sent reached NIC 1's tap), and once the
 * load drops forward a paced stream with no loss.
 *
 * Needs root, KVM-less QEMU (TCG) and the bed's kernel (tests/bed/vm.ts).
 *
 * @module
 */

import assert from "node:assert/strict";
import { PcapWriter } from "../../src/pcap/pcap.ts";
import { shellQuote } from "../bed/guest_agent.ts";
import { udpFrames } from "../bed/frames.ts";
import { sendFrames, startCapture, tapCounters } from "../bed/traffic.ts";
import { VmBed } from "../bed/vm.ts";
import { framesOf, summaryOf } from "../l2fwd_checks.ts";
import {
  assertForwardedOrDropped,
  assertMemoryHeld,
  dropsOf,
  memoryReport,
} from "./overload_checks.ts";
import { soakLength } from "./soak_length.ts";

const ROOT = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
const OVERLOAD_S = soakLength(60, 5);
/** Frames per send: the sender replays one file of these until the time is up. */
const CHUNK = 50_000;
/** The paced stream afterwards: a rate the TCG guest forwards in full. */
const CALM_RATE = 5000, CALM_FRAMES = 10_000;

Deno.test({
  name:
    "l2fwd overloaded in the VM bed keeps forwarding and its memory, counts every frame, and loses none once the load drops",
  ignore: Deno.uid() !== 0,
  async fn() {
    const bed = await VmBed.start({ nics: 2, queuePairs: 1, hugepages: 64 });
    let pcap = "";
    try {
      assert.equal((await bed.exec("modprobe vfio-pci && modprobe vfio_iommu_type1")).code, 0);
      const l2fwd = [
        "deno run --quiet --allow-ffi",
        shellQuote(`${ROOT}/examples/l2fwd.ts`),
        "--bind --stats json",
        bed.nicAddress(0),
        bed.nicAddress(1),
      ].join(" ");
      const p = await bed.spawn(`${l2fwd} & pid=$!; echo "l2fwd pid $pid" >&2; wait $pid`);
      await p.waitForOutput(/port 1: /, 120000, "stderr");
      const pid = (await p.stderr()).match(/l2fwd pid (\d+)/)![1];
      const rss = async () =>
        Number((await bed.exec(`grep VmRSS /proc/${pid}/status`)).stdout.match(/(\d+) kB/)![1]) *
        1024;
      const dst = bed.nicMac(0);
      const w = new PcapWriter();
      for (const f of udpFrames({ seed: 44, count: CHUNK, flows: 256, dst })) w.append(f);
      pcap = await Deno.makeTempFile({ prefix: "vd-overload-", suffix: ".pcap" });
      await Deno.writeFile(pcap, w.bytes());
      // What NIC 1 sent reaches its tap as rx_packets, or as rx_dropped when the tap could
      // not take it; rx_dropped also counts frames the host's stack dropped after rx_packets.
      const sentByNic1 = () => tapCounters(bed, 1, ["rx_packets", "rx_dropped"]);
      const egressBefore = await sentByNic1();

      let offered = 0, tapDrops = 0;
      const send = async (until: number) => {
        do {
          // Straight into the tap: no veth to push back, the tap drops what it cannot hold.
          const r = await sendFrames(bed, 0, pcap, { via: "tap" });
          offered += r.sent;
          tapDrops += r.drops.tap;
        } while (performance.now() < until);
      };
      await send(0); // warm, then measure from here
      const rssBefore = await rss();
      const t0 = performance.now();
      await send(t0 + OVERLOAD_S * 1000);
      const overloadS = (performance.now() - t0) / 1000;
      const rssAfter = await rss();
      await new Promise((r) => setTimeout(r, 3000)); // what the tap holds drains

      const calm = udpFrames({ seed: 45, count: CALM_FRAMES, flows: 64, dst });
      const cap = await startCapture(bed, 1, { count: CALM_FRAMES, timeoutMs: 30000 });
      const calmSent = await sendFrames(bed, 0, calm, { rate: CALM_RATE });
      const got = await framesOf(cap);
      await new Promise((r) => setTimeout(r, 2000));
      const egressAfter = await sentByNic1();
      const [egress, egressDropped] = [0, 1].map((i) => egressAfter[i] - egressBefore[i]);
      await bed.exec(`kill -INT ${pid}`);
      const r = await p.wait(30000);
      assert.equal(r.code, 0, r.stderr);
      const s = summaryOf(r.stdout);
      const [p0, p1] = s.ports;
      console.log(
        `overload ${overloadS.toFixed(1)} s: offered ${offered} frames (${
          Math.round(offered / overloadS)
        }/s incl. warm-up), tap drops (no receive buffers) ${tapDrops}, l2fwd rx ${p0.rxPackets}, ` +
          `tx ${p1.txPackets}, drops ${JSON.stringify(s.ports.map(dropsOf))}; ` +
          `${
            memoryReport(s, rssBefore, rssAfter)
          }; afterwards ${got.length} of ${CALM_FRAMES} paced frames`,
      );
      assert.ok(tapDrops > 0, "the tap dropped nothing: no overload happened");
      assert.equal(offered + calmSent.sent, tapDrops + calmSent.dropped + p0.rxPackets);
      assertForwardedOrDropped(s, 0, 1);
      assert.ok(
        egress <= p1.txPackets && p1.txPackets <= egress + egressDropped,
        `sent out of NIC 1: ${p1.txPackets}; its tap took ${egress} and dropped ${egressDropped}`,
      );
      assertMemoryHeld(s, rssBefore, rssAfter);
      assert.equal(calmSent.dropped, 0, "the tap dropped paced frames after the overload");
      assert.equal(got.length, CALM_FRAMES, "paced frames lost after the overload");
    } finally {
      if (pcap) await Deno.remove(pcap).catch(() => {});
      await bed.close();
    }
  },
});
