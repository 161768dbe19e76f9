/**
 * Receive interrupts in the vfio-user bed: the same guest program as in the VM bed
 * (`tests/guest/rx_irq.ts`, `--allow-ffi` only) runs on the host against QEMU's
 * virtio-net served over a vfio-user socket. MSI-X vector 1 of the function is routed to an
 * eventfd with VFIO_USER_DEVICE_SET_IRQS (the fd as SCM_RIGHTS) and receiveq1 mapped to
 * it; a frame sent into the tap wakes the program blocked in waitRx(), with notifications
 * suppressed none comes within 1 s although a frame sits in the ring, and the host send →
 * driver wake-up latency is measured on one clock (both run on this kernel), next to the
 * same measurement with a busy-polling driver.
 *
 * Needs root and QEMU's vfio-user server (tools/build_bed_qemu.sh).
 * Run: `deno test --allow-all tests/irq_vfio_user_test.ts`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { echoTimes, summary } from "./bed/echo_timer.ts";
import { testFrames } from "./bed/frames.ts";
import { HostProgram } from "./bed/host_program.ts";
import { sendFrames } from "./bed/traffic.ts";
import { VfioUserBed } from "./bed/vfio_user_bed.ts";

const isRoot = Deno.uid() === 0;
const ROUNDS = 200;
/** MAC of port 0 in the vfio-user bed (52:54:00:12:34:56 + nic). */
const MAC = "52:54:00:12:34:56";

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

Deno.test({
  name:
    "vfio-user: a frame sent into the tap signals the eventfd and wakes waitRx(); suppressed, none comes in 1 s",
  ignore: !isRoot,
  async fn() {
    await using bed = await VfioUserBed.start({ ports: 1, queues: 1 });
    const prog = HostProgram.start("tests/guest/rx_irq.ts", [
      "--port",
      bed.portName(0),
      "--rounds",
      String(ROUNDS),
      "--poll-rounds",
      String(ROUNDS),
      "--extra-vector",
      "3",
      "--timeout-ms",
      "120000",
    ]);
    try {
      const ready = JSON.parse(await prog.waitForLine(/"event":"ready"/));
      console.log(`driver: ${JSON.stringify(ready)}`);
      assert.equal(ready.vector, 1, "receiveq1 (virtqueue 0) gets vector 1");
      assert.equal(ready.queueVector, ready.vector, "queue_msix_vector reads back the vector");

      await prog.waitForLine(/"phase":"wake"/);
      await sleep(300); // the program is blocked in waitRx() by now
      await sendFrames(bed, 0, testFrames({ seed: 41, count: 1, dst: MAC }));
      const woke = JSON.parse(await prog.waitForLine(/"event":"woke"/));
      console.log(`wake: ${JSON.stringify(woke)}`);
      assert.equal(woke.how, "signal", "the eventfd ended the wait");
      assert.ok(woke.blockedMs >= 250, `blocked ${woke.blockedMs} ms before the frame came`);
      assert.equal(woke.test, 1, "rxBurst returned the frame");

      await prog.waitForLine(/"phase":"quiet"/);
      await sendFrames(bed, 0, testFrames({ seed: 42, count: 1, dst: MAC }));
      const quiet = JSON.parse(await prog.waitForLine(/"event":"quiet"/));
      console.log(`quiet: ${JSON.stringify(quiet)}`);
      assert.equal(quiet.frameInRing, true, "the frame sat in the ring during the second");
      assert.equal(quiet.signals, 0, "no signal within 1 s with notifications suppressed");
      assert.equal(quiet.test, 1, "rxBurst then returned the frame");

      await prog.waitForLine(/"phase":"latency"/);
      await sleep(100);
      const echo = await echoTimes(bed, 0, MAC, ROUNDS, { gapMs: 10 });
      await prog.waitForLine(/"phase":"poll"/);
      await sleep(100);
      const polled = await echoTimes(bed, 0, MAC, ROUNDS, { gapMs: 10 });
      const done = JSON.parse(await prog.waitForLine(/"event":"done"/));
      const code = await prog.finish();
      console.log(`done: ${JSON.stringify(done)}`);
      assert.equal(code, 0, `${prog.lines.join("\n")}\n${await prog.stderr}`);
      assert.equal(echo.lost + polled.lost, 0, "every probe came back");
      const signalled = echo.samples.filter((s) => s.how === "signal");
      assert.ok(signalled.length >= ROUNDS * 0.9, `${signalled.length} of ${ROUNDS} by signal`);
      const wake = summary(signalled.map((s) => s.wakeUs));
      const rtt = summary(signalled.map((s) => s.rttUs));
      const pollWake = summary(polled.samples.map((s) => s.wakeUs));
      const pollRtt = summary(polled.samples.map((s) => s.rttUs));
      console.log(
        `host send -> driver wake-up, interrupt (µs, one clock): ${JSON.stringify(wake)}`,
      );
      console.log(
        `host send -> frame seen, busy polling (µs, one clock): ${JSON.stringify(pollWake)}`,
      );
      console.log(`round trip through the echo, interrupt (µs): ${JSON.stringify(rtt)}`);
      console.log(`round trip through the echo, polling (µs): ${JSON.stringify(pollRtt)}`);
      const bound = summary(signalled.map((s) => s.rttUs - s.turnUs));
      console.log(`round trip less the driver's turnaround (µs): ${JSON.stringify(bound)}`);
      assert.ok(wake.p50 > 0 && wake.p50 < rtt.p50, "the wake-up lies inside the round trip");
      assert.ok(wake.p50 <= bound.p50, "and within the round trip less the turnaround");
    } finally {
      prog.kill();
    }
  },
});
