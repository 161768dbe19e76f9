/**
 * Control-queue commands against QEMU's virtio-net through kernel VFIO in the VM bed:
 * promiscuous and all-multicast modes and the MAC address change what the device
 * delivers, and an announcement the device asks for (QEMU's announce_self) is answered
 * with a RARP from the port's MAC and acknowledged.
 *
 * Run: `deno test --allow-all tests/control_vm_test.ts`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { parseMac, testFrames } from "./bed/frames.ts";
import { sendFrames, startCapture } from "./bed/traffic.ts";
import { guestDeno } from "./bed/guest_run.ts";
import { VmBed } from "./bed/vm.ts";

function guestCmd(args: string[]): string {
  return guestDeno("tests/guest/control.ts", args);
}

/** 10 frames each to a foreign unicast MAC, a multicast group and `own`. */
function mix(own: string): Uint8Array[] {
  const frames: Uint8Array[] = [];
  for (const dst of ["02:00:00:00:00:99", "01:00:5e:01:02:03", own]) {
    frames.push(...testFrames({ seed: 40, count: 10, dst }));
  }
  return frames;
}

Deno.test("control queue in a QEMU guest: receive filtering, MAC address, announcements", async (t) => {
  const bed = await VmBed.start({ nics: 1 });
  try {
    assert.equal((await bed.exec("modprobe vfio-pci")).code, 0);
    const nic = bed.nicAddress(0), own = bed.nicMac(0);

    await t.step(
      "promiscuous, all-multicast and MAC address change what is delivered",
      async () => {
        const guest = await bed.spawn(guestCmd(["filter", "--port", nic]));
        try {
          const end = testFrames({ seed: 41, count: 1 }); // broadcast 0x88b5: ends a phase
          const seen: Record<string, number>[] = [];
          for (let p = 1; p <= 4; p++) {
            await guest.waitForOutput(new RegExp(`"phase":${p},"ready"`), 60000);
            await sendFrames(bed, 0, [...mix(own), ...end]);
            const m = await guest.waitForOutput(
              new RegExp(`\\{"phase":${p},"foreign".*\\}`),
              60000,
            );
            seen.push(JSON.parse(m[0]));
          }
          console.log(seen.map((s) => JSON.stringify(s)).join("\n"));
          const pick = (s: Record<string, number>) => [s.foreign, s.multicast, s.own];
          assert.deepEqual(pick(seen[0]), [10, 10, 10], "promiscuous: everything");
          assert.deepEqual(pick(seen[1]), [0, 0, 10], "not promiscuous: own MAC only");
          assert.deepEqual(pick(seen[2]), [0, 10, 10], "all-multicast: multicast too");
          assert.deepEqual(pick(seen[3]), [10, 10, 0], "new MAC 02:..:99 replaces the old one");
          const res = await guest.wait(30000);
          assert.equal(res.code, 0, res.stderr);
          assert.match(res.stdout, /"mac":"02:00:00:00:00:99"/);
        } finally {
          await guest.kill();
        }
      },
    );

    await t.step(
      "an announcement the device asks for is sent as RARP and acknowledged",
      async () => {
        const guest = await bed.spawn(guestCmd(["announce", "--port", nic, "--seconds", "60"]));
        try {
          await guest.waitForOutput(/"ready":true/, 60000);
          // QEMU's announce_self sends one RARP itself and, for a driver that negotiated
          // VIRTIO_NET_F_GUEST_ANNOUNCE, also asks the driver: with one round, two RARPs
          // from the port's MAC arrive only if the driver sent its own.
          const rounds = await bed.monitor("migrate_set_parameter announce-rounds 1");
          assert.doesNotMatch(rounds, /rror/);
          const capture = await startCapture(bed, 0, {
            count: 2,
            timeoutMs: 30000,
            ethertype: 0x8035,
          });
          await bed.monitor("announce_self");
          const res = await guest.wait(60000);
          assert.equal(res.code, 0, `${res.stdout}\n${res.stderr}`);
          const done = JSON.parse(res.stdout.trim().split("\n").at(-1)!);
          assert.equal(done.announced, 1);
          assert.equal(done.statusAfterAck, false, "ANNOUNCE_ACK cleared VIRTIO_NET_S_ANNOUNCE");
          const rarps = await capture.done();
          assert.equal(rarps.length, 2);
          for (const rarp of rarps) {
            assert.deepEqual(rarp.subarray(6, 12), parseMac(own), "RARP from the port's MAC");
            assert.deepEqual(rarp.subarray(0, 6), parseMac("ff:ff:ff:ff:ff:ff"));
          }
        } finally {
          await guest.kill();
        }
      },
    );
  } finally {
    await bed.close();
  }
});
