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
import { encodePcap, readPcapFrames } from "../src/pcap/pcap.ts";
import { TEST_ETHERTYPE, testFrames } from "./bed/frames.ts";
import { sendFrames, startCapture } from "./bed/traffic.ts";
import { shellQuote, VmBed } from "./bed/vm.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const FRAMES = 1000;

Deno.test("MTU 9000: frames up to 9,014 bytes are received and transmitted byte for byte", async () => {
  const bed = await VmBed.start({ nics: 1, nicProps: "host_mtu=9000", hugepages: 64 });
  try {
    assert.equal((await bed.exec("modprobe vfio-pci")).code, 0);
    await bed.ns.exec(["ip", "link", "set", bed.tapName(0), "mtu", "9000"]);
    const nic = bed.nicAddress(0), mac = bed.nicMac(0);
    const toGuest = testFrames({ seed: 51, count: FRAMES, dst: mac, maxSize: 9014 });
    const fromGuest = testFrames({ seed: 52, count: FRAMES, src: mac, maxSize: 9014 });
    Deno.writeFileSync(`${bed.shareDir}/tx.pcap`, encodePcap(fromGuest));
    const args = [
      "--bind",
      "--port",
      nic,
      "--rx-count",
      String(FRAMES),
      "--rx-out",
      bed.guestPath(`${bed.shareDir}/rx.pcap`),
      "--tx-in",
      bed.guestPath(`${bed.shareDir}/tx.pcap`),
    ];
    const guest = await bed.spawn(
      `deno run --quiet --allow-ffi ${shellQuote(`${ROOT}/tests/guest/rxtx.ts`)} ${
        args.map(shellQuote).join(" ")
      }`,
    );
    try {
      await guest.waitForOutput(/"event":"ready"/, 60000);
      const capture = await startCapture(bed, 0, {
        count: FRAMES,
        timeoutMs: 120000,
        ethertype: TEST_ETHERTYPE,
      });
      assert.equal((await sendFrames(bed, 0, toGuest)).sent, FRAMES);
      const res = await guest.wait(120000);
      assert.equal(res.code, 0, `${res.stdout}\n${res.stderr}`);
      assert.match(res.stdout, /VIRTIO_NET_F_MTU/);
      const received = readPcapFrames(Deno.readFileSync(`${bed.shareDir}/rx.pcap`));
      assert.equal(received.length, FRAMES);
      assert.equal(Math.max(...received.map((f) => f.length)), 9014);
      for (let i = 0; i < FRAMES; i++) assert.deepEqual(received[i], toGuest[i], `rx ${i}`);
      const captured = await capture.done();
      assert.equal(captured.length, FRAMES);
      for (let i = 0; i < FRAMES; i++) assert.deepEqual(captured[i], fromGuest[i], `tx ${i}`);
    } finally {
      await guest.kill();
    }
  } finally {
    await bed.close();
  }
});
