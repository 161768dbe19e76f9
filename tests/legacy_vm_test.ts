/**
 * Legacy virtio-pci (virtio 0.9.5; virtio 1.x §4.1.4.8) against QEMU's virtio-net with
 * `disable-modern=on,disable-legacy=off` and no iommu_platform, through real kernel VFIO
 * in the VM bed: the device bypasses the IOMMU, so the driver gives it physical addresses
 * (huge pages, /proc/self/pagemap). port_info shows the legacy transport; 10,000 frames
 * move each way byte for byte; l2fwd forwards between two legacy NICs with every flow's
 * frames captured in order, with one queue pair and with two (VIRTIO_NET_F_MQ, the pair
 * count set through the control queue).
 *
 * Needs root, QEMU, a Debian kernel (tools/setup.sh installs them).
 * Run: `deno test --allow-all tests/legacy_vm_test.ts`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { testFrames } from "./bed/frames.ts";
import { assertExchanged, exchangeFrames, guestDeno, lastJson } from "./bed/guest_run.ts";
import { l2fwdCmd, startL2fwd } from "./bed/l2fwd_guest.ts";
import { VmBed } from "./bed/vm.ts";
import { checkTwoWay } from "./two_way_checks.ts";

const FRAMES = 10_000;
const L2FWD_FRAMES = 20_000;
const FLOWS = 1024;
const RATE = 5000;

Deno.test("legacy virtio-pci in a QEMU guest: port_info, byte-exact frames, l2fwd with every flow in order", async (t) => {
  const bed = await VmBed.start({ nics: 2, queuePairs: 2, legacy: true, hugepages: 64 });
  try {
    const mod = await bed.exec("modprobe vfio-pci && modprobe vfio_iommu_type1");
    assert.equal(mod.code, 0, mod.stderr);
    const mac = [bed.nicMac(0), bed.nicMac(1)];

    await t.step("port_info shows the legacy transport and 32-bit features", async () => {
      const r = await bed.exec(
        guestDeno("examples/port_info.ts", ["--bind", "--json", bed.nicAddress(0)]),
        { timeoutMs: 60000 },
      );
      assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
      const info = lastJson(r.stdout);
      console.log(`port_info: ${JSON.stringify(info)}`);
      assert.equal(info.transport, "legacy");
      assert.equal(info.ring, "split");
      assert.equal(info.hugePages, true);
      const negotiated = info.negotiated as string[];
      assert.ok(negotiated.includes("VIRTIO_F_ANY_LAYOUT"), negotiated.join(" "));
      assert.ok(negotiated.includes("VIRTIO_NET_F_MRG_RXBUF"), negotiated.join(" "));
      assert.ok(!negotiated.includes("VIRTIO_F_VERSION_1"), negotiated.join(" "));
      assert.equal(info.mac, mac[0]);
    });

    await t.step(`receives ${FRAMES} frames and transmits ${FRAMES}, byte for byte`, async () => {
      const toGuest = testFrames({ seed: 71, count: FRAMES, dst: mac[0] });
      const fromGuest = testFrames({ seed: 72, count: FRAMES, src: mac[0] });
      assertExchanged(
        await exchangeFrames(bed, 0, bed.nicAddress(0), toGuest, fromGuest, 240000),
        toGuest,
        fromGuest,
      );
    });

    for (const [queues, seed] of [[1, 73], [2, 75]]) {
      await t.step(
        `l2fwd between two legacy NICs, ${queues} queue pair(s): ${L2FWD_FRAMES} frames of ${FLOWS} flows each way with MAC rewrite, every flow in order`,
        async () => {
          const run = await startL2fwd(
            bed,
            l2fwdCmd(bed, ["--physical-pool", "--mac-rewrite", "--queues", String(queues)]),
          );
          const s = await checkTwoWay(bed, run, {
            frames: L2FWD_FRAMES,
            flows: FLOWS,
            rate: RATE,
            seeds: [seed, seed + 1],
            macs: [mac[0], mac[1]],
            name: (i) => `NIC ${i}`,
          });
          for (const p of s.ports) {
            assert.equal(p.ring, "split");
            assert.ok(!p.features?.includes("VIRTIO_F_VERSION_1"), `features ${p.features}`);
            // Multiqueue (VIRTIO_NET_F_MQ through the control queue): each pair carried flows.
            assert.equal(p.queues.length, queues);
          }
        },
      );
    }
  } finally {
    await bed.close();
  }
});
