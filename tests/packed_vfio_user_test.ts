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
import { startHostL2fwd } from "./bed/host_l2fwd.ts";
import { VfioUserBed } from "./bed/vfio_user_bed.ts";
import { checkTwoWay } from "./two_way_checks.ts";

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
    const s = await checkTwoWay(bed, run, {
      frames: FRAMES,
      flows: FLOWS,
      rate: RATE,
      seeds: [71, 72],
      macs: [MACS[0], MACS[1]],
      name: (i) => `port ${i}`,
      context: () => [`QEMU: ${bed.serverLog(0)} ${bed.serverLog(1)}`],
    });
    for (const p of s.ports) assert.equal(p.ring, "packed");
  },
});
