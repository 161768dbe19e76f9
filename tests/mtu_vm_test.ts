/**
 * Jumbo frames: a QEMU virtio-net device with `host_mtu=9000` (VIRTIO_NET_F_MTU) through
 * kernel VFIO in the VM bed. Without mergeable receive buffers every frame must fit one
 * buffer, so the port sizes its buffers from the MTU; frames of 60 to 9,014 bytes cross
 * both ways byte for byte.
 *
 * Run: `deno test --allow-all tests/mtu_vm_test.ts`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { testFrames } from "./bed/frames.ts";
import { exchangeFrames } from "./bed/guest_run.ts";
import { VmBed } from "./bed/vm.ts";

const FRAMES = 1000;

Deno.test("MTU 9000: frames up to 9,014 bytes are received and transmitted byte for byte", async () => {
  const bed = await VmBed.start({ nics: 1, nicProps: "host_mtu=9000", hugepages: 64 });
  try {
    assert.equal((await bed.exec("modprobe vfio-pci")).code, 0);
    await bed.ns.exec(["ip", "link", "set", bed.tapName(0), "mtu", "9000"]);
    const nic = bed.nicAddress(0), mac = bed.nicMac(0);
    const toGuest = testFrames({ seed: 51, count: FRAMES, dst: mac, maxSize: 9014 });
    const fromGuest = testFrames({ seed: 52, count: FRAMES, src: mac, maxSize: 9014 });
    const { res, sent, received, captured } = await exchangeFrames(
      bed,
      0,
      nic,
      toGuest,
      fromGuest,
      120000,
    );
    assert.equal(sent.sent, FRAMES);
    assert.equal(res.code, 0, `${res.stdout}\n${res.stderr}`);
    assert.match(res.stdout, /VIRTIO_NET_F_MTU/);
    assert.equal(received.length, FRAMES);
    assert.equal(Math.max(...received.map((f) => f.length)), 9014);
    for (let i = 0; i < FRAMES; i++) assert.deepEqual(received[i], toGuest[i], `rx ${i}`);
    assert.equal(captured.length, FRAMES);
    for (let i = 0; i < FRAMES; i++) assert.deepEqual(captured[i], fromGuest[i], `tx ${i}`);
  } finally {
    await bed.close();
  }
});
