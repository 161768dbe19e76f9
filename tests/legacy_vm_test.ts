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
import { testFrames, udpFrames } from "./bed/frames.ts";
import { exchangeFrames, guestDeno, lastJson } from "./bed/guest_run.ts";
import { l2fwdCmd, startL2fwd } from "./bed/l2fwd_guest.ts";
import { sendFrames, startCapture } from "./bed/traffic.ts";
import { VmBed } from "./bed/vm.ts";
import {
  assertCaptured,
  assertQueuesAddUp,
  assertSameFramesPerFlow,
  framesOf,
  rewritten,
  summaryOf,
} from "./l2fwd_checks.ts";

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
      const { res, done, received, captured } = await exchangeFrames(
        bed,
        0,
        bed.nicAddress(0),
        toGuest,
        fromGuest,
        240000,
      );
      console.log(`guest: ${JSON.stringify(done)}`);
      assert.equal(res.code, 0, `${res.stdout}\n${res.stderr}`);
      assert.equal(received.length, FRAMES);
      for (let i = 0; i < FRAMES; i++) {
        assert.deepEqual(received[i], toGuest[i], `received frame ${i} differs`);
      }
      assert.equal(captured.length, FRAMES);
      for (let i = 0; i < FRAMES; i++) {
        assert.deepEqual(captured[i], fromGuest[i], `transmitted frame ${i} differs`);
      }
      assert.equal(done.rxDropsRunt, 0);
    });

    for (const [queues, seed] of [[1, 73], [2, 75]]) {
      await t.step(
        `l2fwd between two legacy NICs, ${queues} queue pair(s): ${L2FWD_FRAMES} frames of ${FLOWS} flows each way with MAC rewrite, every flow in order`,
        async () => {
          const run = await startL2fwd(
            bed,
            l2fwdCmd(bed, ["--physical-pool", "--mac-rewrite", "--queues", String(queues)]),
          );
          const a = udpFrames({ seed, count: L2FWD_FRAMES, flows: FLOWS, dst: mac[0] });
          const b = udpFrames({ seed: seed + 1, count: L2FWD_FRAMES, flows: FLOWS, dst: mac[1] });
          const timeoutMs = (L2FWD_FRAMES / RATE) * 1000 + 60000;
          const opts = { count: L2FWD_FRAMES, timeoutMs, ethertype: 0x0800 };
          const cap1 = await startCapture(bed, 1, opts);
          const cap0 = await startCapture(bed, 0, opts);
          const [s0, s1] = await Promise.all([
            sendFrames(bed, 0, a, { rate: RATE }),
            sendFrames(bed, 1, b, { rate: RATE }),
          ]);
          const [out1, out0] = await Promise.all([framesOf(cap1), framesOf(cap0)]);
          const r = await run.interrupt();
          assert.equal(r.code, 0, r.stderr);
          const s = summaryOf(r.stdout);
          assertCaptured(
            [["NIC 1", out1.length], ["NIC 0", out0.length]],
            L2FWD_FRAMES,
            s,
            r.stderr,
            [
              `host drops before the NICs: ${JSON.stringify(s0.drops)} + ${
                JSON.stringify(s1.drops)
              }`,
            ],
          );
          assert.equal(
            assertSameFramesPerFlow(a, out1, (f) => rewritten(f, 1, mac[1]), "NIC 1"),
            FLOWS,
          );
          assert.equal(
            assertSameFramesPerFlow(b, out0, (f) => rewritten(f, 0, mac[0]), "NIC 0"),
            FLOWS,
          );
          assertQueuesAddUp(s);
          for (const p of s.ports) {
            assert.equal(p.ring, "split");
            assert.ok(!p.features?.includes("VIRTIO_F_VERSION_1"), `features ${p.features}`);
            assert.equal(p.rxPackets, L2FWD_FRAMES);
            assert.equal(p.txPackets, L2FWD_FRAMES);
            assert.equal(p.dropsTxRingFull + p.dropsNoBuffer, 0);
            assert.equal(p.queues.length, queues);
            // Multiqueue (VIRTIO_NET_F_MQ through the control queue): both pairs carry flows.
            for (const q of p.queues) {
              assert.ok(q.rxPackets > L2FWD_FRAMES / 10, `queue rx ${q.rxPackets}`);
            }
          }
        },
      );
    }
  } finally {
    await bed.close();
  }
});
