/**
 * Packed virtqueues (virtio 1.x §2.8) in the vfio-user bed: QEMU's vfio-user server with
 * `packed=on`, l2fwd on the host with two queue pairs a port, 40,000 UDP frames of 1,024
 * flows each way with MAC rewrite, every flow captured in order, nothing dropped. The
 * split-ring version is l2fwd_vfio_user_test.ts; the VM bed's is packed_vm_test.ts.
 *
 * Needs root and QEMU's vfio-user server (tools/build_bed_qemu.sh).
 * Run: `deno test --allow-all tests/packed_vfio_user_test.ts`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { udpFrames } from "./bed/frames.ts";
import { startHostL2fwd } from "./bed/host_l2fwd.ts";
import { sendFrames, startCapture } from "./bed/traffic.ts";
import { VfioUserBed } from "./bed/vfio_user_bed.ts";
import {
  assertCaptured,
  assertQueuesAddUp,
  assertSameFramesPerFlow,
  framesOf,
  rewritten,
  summaryOf,
} from "./l2fwd_checks.ts";

const FRAMES = 40_000;
const FLOWS = 1024;
const RATE = 5000;
/** The MACs QEMU gives the bed's NICs. */
const MACS = ["52:54:00:12:34:56", "52:54:00:12:34:57"];

Deno.test({
  name:
    "packed rings in the vfio-user bed: l2fwd 2 × 2 forwards every flow in order, nothing dropped",
  ignore: Deno.uid() !== 0,
  async fn() {
    await using bed = await VfioUserBed.start({ ports: 2, queues: 2, nicProps: "packed=on" });
    const run = await startHostL2fwd(bed, ["--queues", "2", "--mac-rewrite"]);
    const a = udpFrames({ seed: 71, count: FRAMES, flows: FLOWS });
    const b = udpFrames({ seed: 72, count: FRAMES, flows: FLOWS });
    const opts = { count: FRAMES, timeoutMs: (FRAMES / RATE) * 1000 + 30000, ethertype: 0x0800 };
    const cap1 = await startCapture(bed, 1, opts);
    const cap0 = await startCapture(bed, 0, opts);
    const [s0, s1] = await Promise.all([
      sendFrames(bed, 0, a, { rate: RATE }),
      sendFrames(bed, 1, b, { rate: RATE }),
    ]);
    const [out1, out0] = await Promise.all([framesOf(cap1), framesOf(cap0)]);
    const r = await run.interrupt();
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /port 0: .* ring packed features .*VIRTIO_F_RING_PACKED/);
    const s = summaryOf(r.stdout);
    assertCaptured([["port 1", out1.length], ["port 0", out0.length]], FRAMES, s, r.stderr, [
      `QEMU: ${bed.serverLog(0)} ${bed.serverLog(1)}`,
      `host drops before the ports: ${JSON.stringify(s0.drops)} + ${JSON.stringify(s1.drops)}`,
    ]);
    assert.equal(
      assertSameFramesPerFlow(a, out1, (f) => rewritten(f, 1, MACS[1]), "port 1"),
      FLOWS,
    );
    assert.equal(
      assertSameFramesPerFlow(b, out0, (f) => rewritten(f, 0, MACS[0]), "port 0"),
      FLOWS,
    );
    assertQueuesAddUp(s);
    for (const p of s.ports) {
      assert.equal(p.ring, "packed");
      assert.equal(p.rxPackets, FRAMES);
      assert.equal(p.txPackets, FRAMES);
      assert.equal(p.dropsTxRingFull + p.dropsNoBuffer, 0);
      for (const q of p.queues) assert.ok(q.rxPackets > FRAMES / 10, "both queues in use");
    }
  },
});
