/**
 * Jumbo frames: a QEMU virtio-net device with `host_mtu=9000` (VIRTIO_NET_F_MTU) through
 * kernel VFIO in the VM bed, frames of 60 to 9,014 bytes both ways byte for byte, twice:
 * with mergeable receive buffers (VIRTIO_NET_F_MRG_RXBUF, the default) in 2 KiB buffers,
 * a frame spanning up to five of them on receive and going out as a descriptor chain
 * (docs/mergeable.md); and without them, when the port sizes its buffers from the MTU.
 * Then l2fwd forwards jumbo frames in 2 KiB buffers between two such NICs, every flow in
 * order (sent through indirect descriptors, VIRTIO_F_INDIRECT_DESC, which QEMU offers), and
 * its capture file holds them whole.
 *
 * Run: `deno test --allow-all tests/mtu_vm_test.ts`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { testFrames } from "./bed/frames.ts";
import { udpFrames } from "./bed/frames.ts";
import { exchangeFrames } from "./bed/guest_run.ts";
import { l2fwdCmd, startL2fwd } from "./bed/l2fwd_guest.ts";
import { sendFrames, startCapture } from "./bed/traffic.ts";
import { VmBed } from "./bed/vm.ts";
import { readPcap } from "../src/pcap/pcap.ts";
import { assertCaptured, assertSameFramesPerFlow, framesOf, summaryOf } from "./l2fwd_checks.ts";

const FRAMES = 1000;

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

Deno.test("MTU 9000: frames up to 9,014 bytes byte for byte, in 2 KiB mergeable buffers and in MTU-sized ones", async (t) => {
  const bed = await VmBed.start({ nics: 2, nicProps: "host_mtu=9000", hugepages: 64 });
  try {
    assert.equal((await bed.exec("modprobe vfio-pci")).code, 0);
    for (const i of [0, 1]) await bed.ns.exec(["ip", "link", "set", bed.tapName(i), "mtu", "9000"]);
    const nic = bed.nicAddress(0), mac = bed.nicMac(0);
    for (const [mode, seed] of [["auto", 51], ["off", 53]] as const) {
      const name = mode === "auto"
        ? "mergeable buffers of 2 KiB: frames span up to five"
        : "without mergeable buffers: one MTU-sized buffer a frame";
      await t.step(name, async () => {
        const toGuest = testFrames({ seed, count: FRAMES, dst: mac, maxSize: 9014 });
        const fromGuest = testFrames({ seed: seed + 1, count: FRAMES, src: mac, maxSize: 9014 });
        const { res, done, sent, received, captured } = await exchangeFrames(
          bed,
          0,
          nic,
          toGuest,
          fromGuest,
          120000,
          ["--mergeable", mode],
        );
        assert.equal(sent.sent, FRAMES);
        assert.equal(res.code, 0, `${res.stdout}\n${res.stderr}`);
        const ready = JSON.parse(res.stdout.split("\n").find((l) => l.includes('"ready"'))!);
        console.log(`${mode}: buffers of ${ready.bufferSize} bytes; ${JSON.stringify(done)}`);
        assert.ok(ready.negotiated.includes("VIRTIO_NET_F_MTU"));
        assert.equal(ready.negotiated.includes("VIRTIO_NET_F_MRG_RXBUF"), mode === "auto");
        if (mode === "auto") assert.equal(ready.bufferSize, 2048);
        else assert.ok(ready.bufferSize >= 9014 + 12, `buffers of ${ready.bufferSize} bytes`);
        assert.equal(received.length, FRAMES);
        assert.equal(Math.max(...received.map((f) => f.length)), 9014);
        for (let i = 0; i < FRAMES; i++) assert.deepEqual(received[i], toGuest[i], `rx ${i}`);
        assert.equal(captured.length, FRAMES);
        for (let i = 0; i < FRAMES; i++) assert.deepEqual(captured[i], fromGuest[i], `tx ${i}`);
        assert.equal(done.rxDropsRunt, 0);
      });
    }

    await t.step(
      "l2fwd forwards jumbo frames in 2 KiB buffers, every flow in order, and captures them whole",
      async () => {
        const count = 2000, pcap = `${bed.shareDir}/jumbo.pcap`;
        const frames = udpFrames({ seed: 55, count, flows: 64, dst: bed.nicMac(0), maxSize: 9014 });
        const run = await startL2fwd(
          bed,
          l2fwdCmd(
            bed,
            ["--pcap", bed.guestPath(pcap), "--pcap-port", "1", "--pcap-direction", "tx"],
            [`--allow-write=${bed.guestPath(pcap)}`],
          ),
        );
        const cap = await startCapture(bed, 1, { count, timeoutMs: 60000, ethertype: 0x0800 });
        const sent = await sendFrames(bed, 0, frames, { rate: 2000 });
        const out = await framesOf(cap);
        const r = await run.interrupt();
        assert.equal(r.code, 0, r.stderr);
        const s = summaryOf(r.stdout);
        assertCaptured([["NIC 1", out.length]], count, s, r.stderr, [
          `host drops before NIC 0: ${JSON.stringify(sent.drops)}`,
        ]);
        assert.equal(Math.max(...out.map((f) => f.length)), 9014);
        assert.equal(assertSameFramesPerFlow(frames, out, (f) => f, "NIC 1"), 64);
        assert.ok(s.ports[0].features?.includes("VIRTIO_NET_F_MRG_RXBUF"));
        // QEMU offers indirect descriptors: NIC 1's workers send each jumbo frame through one
        // ring slot naming a table of its pieces (docs/indirect.md).
        assert.ok(s.ports[1].features?.includes("VIRTIO_F_INDIRECT_DESC"));
        assert.equal(s.ports[0].rxPackets, count);
        assert.equal(s.ports[1].txPackets, count);
        // l2fwd's capture of what left NIC 1: every frame captured whole, in order, or counted
        // dropped (its side buffer full while the file is written through the guest's 9p).
        const pc = s.pcap!;
        console.log(`l2fwd's capture: ${JSON.stringify(pc)}`);
        assert.equal(pc.captured + pc.dropped, count, "every frame captured or counted dropped");
        const captured = readPcap(await Deno.readFile(pcap)).map((p) => p.data);
        assert.equal(captured.length, pc.written);
        assert.equal(pc.written, pc.captured);
        assert.ok(captured.length >= count / 2, `only ${captured.length} captured`);
        let j = 0;
        for (const [i, f] of captured.entries()) {
          while (j < out.length && !equalBytes(out[j], f)) j++;
          assert.ok(j < out.length, `captured frame ${i} is not one that left NIC 1, in order`);
          j++;
        }
      },
    );
  } finally {
    await bed.close();
  }
});
