/**
 * Indirect descriptors (VIRTIO_F_INDIRECT_DESC, virtio 1.x §2.7.5.3 split, §2.8.19 packed;
 * docs/indirect.md) against QEMU's virtio-net, which offers them by default, through real
 * kernel VFIO in the VM bed: jumbo frames (up to 9,014 bytes, `host_mtu=9000`) in 2 KiB
 * mergeable buffers, each frame from the guest that spans buffers sent through one ring
 * slot naming a table of its pieces, both ways byte for byte; on a split ring with the
 * feature negotiated and with `--indirect off` (a descriptor chain a frame), and on a
 * packed ring (`packed=on`) with it negotiated.
 *
 * Run: `deno test --allow-all tests/indirect_vm_test.ts`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { testFrames } from "./bed/frames.ts";
import { assertExchanged, exchangeFrames } from "./bed/guest_run.ts";
import { VmBed } from "./bed/vm.ts";

const FRAMES = 1000;

Deno.test("indirect descriptors: jumbo frames in 2 KiB buffers byte for byte, split and packed rings, and with indirect off", async (t) => {
  const bed = await VmBed.start({
    nics: 2,
    nicProps: ["host_mtu=9000", "host_mtu=9000,packed=on"],
    hugepages: 64,
  });
  try {
    assert.equal((await bed.exec("modprobe vfio-pci")).code, 0);
    for (const i of [0, 1]) await bed.ns.exec(["ip", "link", "set", bed.tapName(i), "mtu", "9000"]);
    const runs = [
      { nic: 0, ring: "split", indirect: "auto", seed: 71 },
      { nic: 0, ring: "split", indirect: "off", seed: 73 },
      { nic: 1, ring: "packed", indirect: "auto", seed: 75 },
    ] as const;
    for (const { nic, ring, indirect, seed } of runs) {
      await t.step(`${ring} ring, --indirect ${indirect}`, async () => {
        const mac = bed.nicMac(nic);
        const toGuest = testFrames({ seed, count: FRAMES, dst: mac, maxSize: 9014 });
        const fromGuest = testFrames({ seed: seed + 1, count: FRAMES, src: mac, maxSize: 9014 });
        const x = await exchangeFrames(
          bed,
          nic,
          bed.nicAddress(nic),
          toGuest,
          fromGuest,
          120000,
          ["--indirect", indirect],
        );
        const done = assertExchanged(x, toGuest, fromGuest);
        const ready = JSON.parse(x.res.stdout.split("\n").find((l) => l.includes('"ready"'))!);
        assert.equal(done.ring, ring);
        assert.equal(ready.bufferSize, 2048);
        assert.ok(ready.negotiated.includes("VIRTIO_NET_F_MRG_RXBUF"));
        assert.equal(ready.negotiated.includes("VIRTIO_F_INDIRECT_DESC"), indirect === "auto");
        // Behind one slot: a frame of up to 16 pieces (9,014 bytes take five).
        assert.equal(done.txIndirectMax, indirect === "auto" ? 16 : 0);
        assert.ok(
          Number(done.txMultiBuffer) > FRAMES / 4,
          `${done.txMultiBuffer} frames spanned buffers`,
        );
        assert.equal(Math.max(...fromGuest.map((f) => f.length)), 9014);
        assert.equal(done.poolAvailable, 4096 - 256, "every buffer is back in the pool");
      });
    }
  } finally {
    await bed.close();
  }
});
