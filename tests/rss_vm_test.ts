/**
 * RSS and hash reports against QEMU's virtio-net (`rss=on,hash=on`) through kernel VFIO in
 * the VM bed: every packet of 1,024 flows lands on the queue the driver predicts with its
 * own Toeplitz hash and indirection table, the reported hash equals the computed one,
 * malformed rules and missing modes are refused with the device's steering unchanged, and
 * RSS tables switched every 100 ms under traffic reorder nothing and lose nothing.
 *
 * Run: `deno test --allow-all tests/rss_vm_test.ts`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { udpFrames } from "./bed/frames.ts";
import { sendFrames } from "./bed/traffic.ts";
import { guestDeno, lastJson, MIN_SWITCHES, switchingRun } from "./bed/guest_run.ts";
import { VmBed } from "./bed/vm.ts";
import { assertFramesAccounted } from "./bed/kernel_drops.ts";

function guestCmd(file: string, args: string[]): string {
  return guestDeno(`tests/guest/${file}`, args);
}

Deno.test("RSS in a QEMU guest: predicted queues and hashes, refused rules, switching tables", async (t) => {
  const bed = await VmBed.start({
    nics: 2,
    queuePairs: [4, 2],
    // rx_queue_size=1024 on the switching NIC: a guest under TCG on a busy host can stall
    // for tens of milliseconds; with QEMU's default 256 entries its receive rings run dry,
    // and QEMU then parks frames and delivers them late or drops them on a queue detach.
    nicProps: ["rss=on,hash=on,rx_queue_size=1024", "hash=on"],
    hugepages: 64,
  });
  try {
    assert.equal((await bed.exec("modprobe vfio-pci")).code, 0);
    const nic = bed.nicAddress(0);
    const flows = 1024, count = 2 * flows;

    await t.step(
      "4 pairs with RSS: every packet of 1,024 flows on the predicted queue, hash as reported",
      async () => {
        const guest = await bed.spawn(
          guestCmd("rss.ts", ["predict", "--port", nic, "--pairs", "4", "--count", String(count)]),
        );
        try {
          await guest.waitForOutput(/"event":"ready"/, 60000);
          const sent = await sendFrames(bed, 0, udpFrames({ seed: 9, count, flows }), {
            rate: 5000,
          });
          assert.equal(sent.sent, count);
          const res = await guest.wait(120000);
          const done = lastJson(res.stdout);
          console.log(`rss: ${JSON.stringify(done)}`);
          assert.equal(res.code, 0, `${res.stdout}\n${res.stderr}`);
          assert.equal(done.received, count);
          assert.equal(done.distinctFlows, flows);
          assert.equal(done.queueOk, count, "every packet on the predicted queue");
          assert.equal(done.hashReported, true, "VIRTIO_NET_F_HASH_REPORT negotiated");
          assert.equal(done.hashOk, count, "every reported hash equals the computed one");
          assert.equal(done.reportOk, count, "every hash type reported as computed");
          for (const n of done.perQueue as number[]) {
            assert.ok(n > count / 8, "spread over 4 queues");
          }
        } finally {
          await guest.kill();
        }
      },
    );

    await t.step(
      "too many pairs, malformed tables and keys are refused; the rule in force stays",
      async () => {
        const guest = await bed.spawn(
          guestCmd("rss.ts", ["predict", "--bad", "--port", nic, "--pairs", "4", "--count", "512"]),
        );
        try {
          const ready = await guest.waitForOutput(/^\{"event":"ready".*$/m, 60000);
          const info = JSON.parse(ready[0]);
          console.log(`refusals:\n${(info.errors as string[]).join("\n")}`);
          assert.equal(info.errors.length, 7);
          for (const m of info.errors as string[]) assert.match(m, /^[^\n]+\.$/);
          assert.match(await guest.stdout(), /"event":"too-many-pairs".*max_virtqueue_pairs/);
          // The device still steers by the rule set before the refusals: 100% predicted.
          await sendFrames(bed, 0, udpFrames({ seed: 10, count: 512, flows: 256 }), {
            rate: 5000,
          });
          const res = await guest.wait(120000);
          const done = lastJson(res.stdout);
          assert.equal(res.code, 0, `${res.stdout}\n${res.stderr}`);
          assert.equal(done.queueOk, 512);
        } finally {
          await guest.kill();
        }
      },
    );

    await t.step(
      "a device without RSS refuses the mode with UNSUPPORTED and keeps its rule",
      async () => {
        const r = await bed.exec(
          guestCmd("rss.ts", ["lacks", "--port", bed.nicAddress(1), "--pairs", "2"]),
          { timeoutMs: 60000 },
        );
        assert.equal(r.code, 0, r.stderr);
        const done = lastJson(r.stdout);
        assert.match(done.message as string, /does not offer VIRTIO_NET_F_RSS/);
        assert.deepEqual(done.current, { mode: "auto", pairs: 2 });
      },
    );

    await t.step(
      "hash reports without RSS (HASH_CONFIG) under automatic steering equal the computed hashes",
      async () => {
        const count = 1024;
        const guest = await bed.spawn(
          guestCmd("rss.ts", [
            "hash",
            "--port",
            bed.nicAddress(1),
            "--pairs",
            "2",
            "--count",
            String(count),
          ]),
        );
        try {
          await guest.waitForOutput(/"event":"ready"/, 60000);
          await sendFrames(bed, 1, udpFrames({ seed: 14, count, flows: 512 }), { rate: 5000 });
          const res = await guest.wait(120000);
          const done = lastJson(res.stdout);
          console.log(`hash reports: ${JSON.stringify(done)}`);
          assert.equal(res.code, 0, `${res.stdout}\n${res.stderr}`);
          assert.equal(done.received, count);
          assert.equal(done.hashReported, true);
          assert.equal(done.hashOk, count, "every reported hash equals the computed one");
          assert.equal(done.reportOk, count, "every hash type reported as computed");
        } finally {
          await guest.kill();
        }
      },
    );

    // RSS tables alone, then pair counts by RSS tables ("single" is a one-entry table): the
    // port keeps max_tx_vq at its 4 pairs, so QEMU detaches no tap queue and none is purged.
    for (
      const [name, flag] of [["RSS tables", "--rss-only"], ["pair counts and RSS tables", "--rss"]]
    ) {
      await t.step(`${name} switched every 100 ms under traffic: no flow reordered`, async () => {
        const { res, done, sent, purged } = await switchingRun(bed, 0, [flag], 12, name);
        assert.equal(res.code, 0, `${res.stdout}\n${res.stderr}`);
        assert.equal(done.reorders, 0);
        assert.ok((done.switches as number) >= MIN_SWITCHES, `only ${done.switches} switches`);
        // Every frame received: RSS never changes max_tx_vq, so no tap queue is detached.
        assert.equal(purged, 0, "no queue detached, none purged");
        assertFramesAccounted(name, sent, done.received as number, purged);
      });
    }
  } finally {
    await bed.close();
  }
});
