/**
 * l2fwd --reconnect in the vfio-user bed (issue 13, item 1): port 1's QEMU vfio-user server is
 * killed while l2fwd forwards. l2fwd reports it and resets and reopens both ports; QEMU's server
 * takes one client and exits when it leaves, so port 0's goes too, and the test starts both
 * again (port 1's first: l2fwd opens port 0 first, and a half-done open would end port 0's new
 * server once more). l2fwd must then forward again, every frame in flow order, with every
 * frame it received accounted for.
 *
 * Needs root and QEMU's vfio-user server (tools/build_bed_qemu.sh).
 * Run: `deno test --allow-all tests/reconnect_vfio_user_test.ts`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { udpFrames } from "./bed/frames.ts";
import { startHostL2fwd } from "./bed/host_l2fwd.ts";
import { sendFrames, startCapture } from "./bed/traffic.ts";
import { VfioUserBed } from "./bed/vfio_user_bed.ts";
import { assertSameFramesPerFlow, framesOf, summaryOf } from "./l2fwd_checks.ts";
import { assertEveryFrameAccounted } from "./link_checks.ts";

/** Frames before and after, at a rate QEMU's vfio-user server takes in full. */
const FRAMES = 2000, RATE = 5000;

/** Resolves once `ok()` holds; throws `what` after `timeoutMs`. */
async function until(ok: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!ok()) {
    if (performance.now() > deadline) throw new Error(`no ${what} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Sends `count` UDP frames into NIC 0 and checks NIC 1 sent each of them, in flow order. */
async function throughput(bed: VfioUserBed, seed: number, what: string): Promise<void> {
  const frames = udpFrames({ seed, count: FRAMES, flows: 64 });
  const cap = await startCapture(bed, 1, { count: FRAMES, timeoutMs: 30000, ethertype: 0x0800 });
  const sent = await sendFrames(bed, 0, frames, { rate: RATE });
  assert.equal(sent.dropped, 0, `the host dropped frames before NIC 0 (${what})`);
  assertSameFramesPerFlow(frames, await framesOf(cap), (f) => f, what);
}

Deno.test({
  name: "l2fwd --reconnect rides out a vfio-user server killed while forwarding and started again",
  ignore: Deno.uid() !== 0,
  async fn() {
    await using bed = await VfioUserBed.start({ ports: 2, queues: 1 });
    const run = await startHostL2fwd(bed, ["--reconnect", "60"]);
    const said = () => run.stdoutSoFar();
    try {
      await throughput(bed, 81, "before the server was killed");
      await bed.kill(1);
      await until(() => said().includes('"event":"reconnecting"'), 15000, "reconnecting event");
      await bed.restart(1);
      await bed.restart(0);
      await until(() => said().includes('"event":"reconnected"'), 60000, "reconnected event");
      await throughput(bed, 82, "after the reconnection");
      const r = await run.interrupt();
      assert.equal(r.code, 0, r.stderr);
      const s = summaryOf(r.stdout);
      const events = r.stdout.split("\n").filter((l) => l.startsWith('{"event":"reconnect'));
      console.log(`${events.join("; ")}; port 0 received ${s.ports[0].rxPackets}`);
      assert.equal(events.length, 2, events.join("\n"));
      assert.match(events[0], /closed the connection/);
      assert.match(s.faults?.[0]?.reason ?? "no fault in the summary", /closed the connection/);
      assert.equal(s.ports[0].rxPackets, 2 * FRAMES);
      assertEveryFrameAccounted(s as Parameters<typeof assertEveryFrameAccounted>[0]);
    } finally {
      try {
        run.child.kill("SIGKILL");
      } catch { /* exited */ }
    }
  },
});
