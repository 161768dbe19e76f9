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

/**
 * 10 frames each to a foreign unicast MAC, a multicast group, `own` and the MAC the filter
 * table gets; then 10 each tagged with VLAN 10 and VLAN 20 to the MAC the port takes
 * (02:00:00:00:00:99, from phase 4 on).
 */
function mix(own: string): Uint8Array[] {
  const frames: Uint8Array[] = [];
  for (const dst of ["02:00:00:00:00:99", "01:00:5e:01:02:03", own, "02:00:00:00:00:77"]) {
    frames.push(...testFrames({ seed: 40, count: 10, dst }));
  }
  for (const vid of [10, 20]) {
    for (const f of testFrames({ seed: 42, count: 10, dst: "02:00:00:00:00:99" })) {
      // 802.1Q: TPID 0x8100 and the tag (priority 0) after the MAC addresses.
      const t = new Uint8Array(f.length + 4);
      t.set(f.subarray(0, 12));
      t.set([0x81, 0, vid >> 8, vid & 0xff], 12);
      t.set(f.subarray(12), 16);
      frames.push(t);
    }
  }
  return frames;
}

Deno.test("control queue in a QEMU guest: receive filtering, MAC address, announcements", async (t) => {
  const bed = await VmBed.start({ nics: 1 });
  try {
    assert.equal((await bed.exec("modprobe vfio-pci")).code, 0);
    const nic = bed.nicAddress(0), own = bed.nicMac(0);

    await t.step(
      "promiscuous, all-multicast, MAC address, MAC filter table and VLAN filter change what is delivered",
      async () => {
        const guest = await bed.spawn(guestCmd(["filter", "--port", nic]));
        try {
          const end = testFrames({ seed: 41, count: 1 }); // broadcast 0x88b5: ends a phase
          const seen: Record<string, number>[] = [];
          for (let p = 1; p <= 6; p++) {
            await guest.waitForOutput(new RegExp(`"phase":${p},"ready"`), 60000);
            await sendFrames(bed, 0, [...mix(own), ...end]);
            const m = await guest.waitForOutput(
              new RegExp(`\\{"phase":${p},"foreign".*\\}`),
              60000,
            );
            seen.push(JSON.parse(m[0]));
          }
          console.log(seen.map((s) => JSON.stringify(s)).join("\n"));
          // [foreign (…:99), multicast, own, table (…:77), VLAN 10, VLAN 20]
          const pick = (s: Record<string, number>) => [
            s.foreign,
            s.multicast,
            s.own,
            s.table,
            s.vlan10,
            s.vlan20,
          ];
          assert.deepEqual(pick(seen[0]), [10, 10, 10, 10, 10, 10], "promiscuous: everything");
          assert.deepEqual(pick(seen[1]), [0, 0, 10, 0, 0, 0], "not promiscuous: own MAC only");
          assert.deepEqual(pick(seen[2]), [0, 10, 10, 0, 0, 0], "all-multicast: multicast too");
          assert.deepEqual(
            pick(seen[3]),
            [10, 10, 0, 0, 0, 0],
            "new MAC 02:..:99 replaces the old one; tagged frames of no VLAN added are dropped",
          );
          assert.deepEqual(pick(seen[4]), [10, 10, 0, 10, 0, 0], "the filter table adds …:77");
          assert.deepEqual(pick(seen[5]), [10, 10, 0, 10, 10, 0], "VLAN 10 added, VLAN 20 not");
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
