/**
 * Multiqueue and steering in the vfio-user bed: the same programs as in the VM bed
 * (`tests/guest/steering.ts`, `tests/guest/rss.ts`, `--allow-ffi` only) run on the host
 * against QEMU's virtio-net (`rss=on,hash=on`, 4 queue pairs) served over vfio-user.
 * QEMU's vfio-user server takes one client and exits when it leaves: each step restarts it.
 *
 * Run: `deno test --allow-all tests/steering_vfio_user_test.ts`.
 *
 * @module
 */

import { MIN_SWITCHES } from "./bed/guest_run.ts";
import assert from "node:assert/strict";
import { testFrames, udpFrames, udpReply } from "./bed/frames.ts";
import { HostProgram } from "./bed/host_program.ts";
import { sendFrames, startCapture } from "./bed/traffic.ts";
import { VfioUserBed } from "./bed/vfio_user_bed.ts";
import { assertFramesAccounted, KernelDropTrace } from "./bed/kernel_drops.ts";

const isRoot = Deno.uid() === 0;

Deno.test({
  name: "vfio-user: automatic steering, RSS predictions and run-time switching without reordering",
  ignore: !isRoot,
  async fn(t) {
    await using bed = await VfioUserBed.start({
      ports: 1,
      queues: 4,
      nicProps: "rss=on,hash=on,rx_queue_size=1024",
    });
    const port = bed.portName(0);

    await t.step(
      "automatic steering: replies arrive on the pair their flow was sent on",
      async () => {
        const flows = 64, perFlow = 4;
        const prog = HostProgram.start("tests/guest/steering.ts", [
          "auto-share",
          "--port",
          port,
          "--pairs",
          "4",
          "--flows",
          String(flows),
        ]);
        try {
          await prog.waitForLine(/"event":"ready"/);
          const capture = await startCapture(bed, 0, {
            count: flows * perFlow,
            timeoutMs: 60000,
            ethertype: 0x0800,
          });
          await sendFrames(bed, 0, testFrames({ seed: 1, count: 1 })); // the go signal
          await prog.waitForLine(/"event":"sent"/);
          await sendFrames(bed, 0, (await capture.done()).map(udpReply));
          const code = await prog.finish();
          const done = prog.lastJson();
          console.log(`auto steering: ${JSON.stringify(done)}`);
          assert.equal(code, 0, await prog.stderr);
          assert.equal(done.received, flows * perFlow);
          assert.ok((done.share as number) >= 0.9, `share ${done.share}`);
        } finally {
          prog.kill();
        }
      },
    );

    await t.step(
      "4 pairs with RSS: every packet of 1,024 flows on the predicted queue, hash as reported",
      async () => {
        await bed.restart(0);
        const count = 2048;
        const prog = HostProgram.start("tests/guest/rss.ts", [
          "predict",
          "--port",
          port,
          "--pairs",
          "4",
          "--count",
          String(count),
        ]);
        try {
          await prog.waitForLine(/"event":"ready"/);
          await sendFrames(bed, 0, udpFrames({ seed: 9, count, flows: 1024 }), { rate: 20000 });
          const code = await prog.finish();
          const done = prog.lastJson();
          console.log(`rss: ${JSON.stringify(done)}`);
          assert.equal(code, 0, await prog.stderr);
          assert.equal(done.distinctFlows, 1024);
          assert.equal(done.queueOk, count);
          assert.equal(done.hashReported, true);
          assert.equal(done.hashOk, count);
          assert.equal(done.reportOk, count);
        } finally {
          prog.kill();
        }
      },
    );

    for (
      const [name, extra] of [["RSS tables", ["--rss-only"]], ["pair counts and RSS tables", [
        "--rss",
      ]]]
    ) {
      await t.step(`${name} switched every 100 ms under traffic: no flow reordered`, async () => {
        await bed.restart(0);
        const qemuPid = bed.pid(0)!;
        const prog = HostProgram.start("tests/guest/steering.ts", [
          "switch",
          ...extra,
          "--port",
          port,
          "--pairs",
          "4",
          "--seconds",
          "6",
          "--rx-queue-size",
          "1024",
        ]);
        try {
          await prog.waitForLine(/"capabilities"/);
          const frames = udpFrames({ seed: 12, count: 30000, flows: 256 });
          const trace = KernelDropTrace.start();
          const sent = await sendFrames(bed, 0, frames, { rate: 8000 });
          const code = await prog.finish();
          const purged = trace.stop().tunPurged(qemuPid);
          const done = prog.lastJson();
          console.log(`${name}: sent ${JSON.stringify(sent)} driver ${JSON.stringify(done)}`);
          assert.equal(code, 0, await prog.stderr);
          assert.equal(done.reorders, 0);
          assert.ok((done.switches as number) >= MIN_SWITCHES, `only ${done.switches} switches`);
          // Every frame received: RSS never changes max_tx_vq, so no tap queue is detached.
          assert.equal(purged, 0, "no queue detached, none purged");
          assertFramesAccounted(String(name), sent, done.received as number, purged);
        } finally {
          prog.kill();
        }
      });
    }
  },
});
