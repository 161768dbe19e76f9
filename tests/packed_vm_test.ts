/**
 * Packed virtqueues (virtio 1.x §2.8, VIRTIO_F_RING_PACKED) against QEMU's virtio-net
 * with `packed=on`, through real kernel VFIO in the VM bed: the driver negotiates them
 * and moves 10,000 frames each way byte for byte; l2fwd forwards 2 × 2 queue pairs with
 * every flow's frames captured in order; RSS tables and pair counts switched under
 * traffic reorder no flow; a receive interrupt wakes waitRx() and suppression holds.
 * The split-ring versions of these checks are driver_vm_test.ts, l2fwd_vm_test.ts,
 * rss_vm_test.ts and irq_vm_test.ts.
 *
 * Needs root, QEMU, a Debian kernel (tools/setup.sh installs them).
 * Run: `deno test --allow-all tests/packed_vm_test.ts`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { testFrames } from "./bed/frames.ts";
import { assertExchanged, exchangeFrames, MIN_SWITCHES, switchingRun } from "./bed/guest_run.ts";
import { assertFramesAccounted } from "./bed/kernel_drops.ts";
import { l2fwdCmd, startL2fwd } from "./bed/l2fwd_guest.ts";
import { VmBed } from "./bed/vm.ts";
import { checkRxInterrupts } from "./irq_checks.ts";
import { checkTwoWay } from "./two_way_checks.ts";

const FRAMES = 10_000;
const L2FWD_FRAMES = 40_000;
const FLOWS = 1024;
const RATE = 5000;

Deno.test("packed rings in a QEMU guest: byte-exact frames, l2fwd 2 × 2, steering switches without reordering, interrupts", async (t) => {
  // NICs 0 and 1: 4 pairs with RSS (the switching run uses 4); NIC 2: 1 pair for the
  // interrupt checks (4 MSI-X vectors). rx_queue_size=1024: see rss_vm_test.ts.
  const bed = await VmBed.start({
    nics: 3,
    queuePairs: [4, 4, 1],
    nicProps: ["packed=on,rss=on,rx_queue_size=1024", "packed=on,rss=on", "packed=on"],
    hugepages: 64,
  });
  try {
    const mod = await bed.exec("modprobe vfio-pci && modprobe vfio_iommu_type1");
    assert.equal(mod.code, 0, mod.stderr);
    const mac = [bed.nicMac(0), bed.nicMac(1)];

    await t.step(`receives ${FRAMES} frames and transmits ${FRAMES}, byte for byte`, async () => {
      const toGuest = testFrames({ seed: 61, count: FRAMES, dst: mac[0] });
      const fromGuest = testFrames({ seed: 62, count: FRAMES, src: mac[0] });
      const done = assertExchanged(
        await exchangeFrames(bed, 0, bed.nicAddress(0), toGuest, fromGuest, 240000),
        toGuest,
        fromGuest,
      );
      assert.equal(done.ring, "packed");
      assert.equal(done.poolAvailable, 4096 - 256, "every buffer is back in the pool");
    });

    await t.step(
      `l2fwd, 2 queue pairs a port: ${L2FWD_FRAMES} frames of ${FLOWS} flows each way with MAC rewrite, every flow in order`,
      async () => {
        const run = await startL2fwd(bed, l2fwdCmd(bed, ["--queues", "2", "--mac-rewrite"]));
        assert.match(
          await run.p.stderr(),
          /port 0: .* ring packed features .*VIRTIO_F_RING_PACKED/,
        );
        const s = await checkTwoWay(bed, run, {
          frames: L2FWD_FRAMES,
          flows: FLOWS,
          rate: RATE,
          seeds: [63, 64],
          macs: [mac[0], mac[1]],
          name: (i) => `NIC ${i}`,
        });
        for (const p of s.ports) {
          assert.equal(p.ring, "packed");
          assert.ok(p.features?.includes("VIRTIO_F_RING_PACKED"), `features ${p.features}`);
        }
      },
    );

    // As rss_vm_test.ts: RSS never changes max_tx_vq, so no tap queue is detached.
    await t.step(
      "pair counts and RSS tables switched every 100 ms under traffic: no flow reordered",
      async () => {
        const { res, done, sent, purged } = await switchingRun(bed, 0, ["--rss"], 65, "packed");
        assert.equal(res.code, 0, `${res.stdout}\n${res.stderr}`);
        assert.equal(done.ring, "packed");
        assert.equal(done.reorders, 0);
        assert.ok((done.switches as number) >= MIN_SWITCHES, `only ${done.switches} switches`);
        assert.equal(purged, 0, "no queue detached, none purged");
        assertFramesAccounted("packed switching", sent, done.received as number, purged);
      },
    );

    await t.step(
      "a frame wakes waitRx() through the interrupt; suppressed, none comes",
      async () => {
        await checkRxInterrupts(bed, 2, 4, "packed");
      },
    );
  } finally {
    await bed.close();
  }
});
