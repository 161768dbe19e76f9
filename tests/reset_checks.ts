/**
 * A device that needs a reset, or is reset, while l2fwd forwards (issue 13, recovery), in
 * the VM bed with a real QEMU device:
 *
 * - "needs-reset": QEMU is made to refuse a descriptor of NIC 0, the only NIC the host
 *   sends to (tests/guest/spoil_avail_ring.ts spoils both NICs' receive rings), so it sets
 *   DEVICE_NEEDS_RESET and stops using its queues;
 * - "reset": both functions are reset behind l2fwd's back (tests/guest/reset_device.ts
 *   writes 0 to their device_status through copies of l2fwd's VFIO fds).
 *
 * l2fwd with `--reconnect` must report it, reset and reopen both ports (renegotiating,
 * setting up its queues and steering again), forward again, and account for every frame
 * it received. The VM bed's l2fwd test runs both on its own boot.
 *
 * @module
 */

import assert from "node:assert/strict";
import { testFrames, udpFrames } from "./bed/frames.ts";
import { startCapture } from "./bed/traffic.ts";
import type { VmBed } from "./bed/vm.ts";
import { assertEveryFrameAccounted, type L2fwdRun, nextLine, send } from "./link_checks.ts";
import { assertSameFramesPerFlow, framesOf, summaryOf } from "./l2fwd_checks.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
/** Frames before the fault, sent into it, and after the recovery. */
const BEFORE = 2000, INTO_FAULT = 100, AFTER = 2000;

/** How the device fails under l2fwd (see the module comment). */
export type FaultKind = "needs-reset" | "reset";

/** The guest program that causes each fault, and the reason l2fwd must give. */
const FAULTS: Record<FaultKind, { program: string; reason: RegExp }> = {
  "needs-reset": { program: "spoil_avail_ring.ts", reason: /DEVICE_NEEDS_RESET/ },
  "reset": { program: "reset_device.ts", reason: /reset under the driver/ },
};

/**
 * Runs l2fwd (`start`, with `--reconnect`), forwards UDP frames to `dst` (NIC 0's MAC)
 * from NIC 0 to NIC 1, causes `fault`, and checks the "reconnecting" and "reconnected"
 * events, that every frame sent afterwards is forwarded in flow order, and the summary's
 * accounting.
 */
export async function checkResetRecovery(
  bed: VmBed,
  start: () => Promise<L2fwdRun & { pid: string }>,
  dst: string,
  fault: FaultKind,
): Promise<void> {
  const { program, reason: why } = FAULTS[fault];
  const run = await start();
  let stopped = false;
  try {
    const a = udpFrames({ seed: 51, count: BEFORE, flows: 64, dst });
    const capA = await startCapture(bed, 1, { count: BEFORE, timeoutMs: 30000, ethertype: 0x0800 });
    await send(bed, a);
    assertSameFramesPerFlow(a, await framesOf(capA), (f) => f, "before the fault");

    const cause = await bed.exec(
      `deno run --quiet --allow-all ${ROOT}/tests/guest/${program} ${run.pid}`,
    );
    assert.equal(cause.code, 0, cause.stderr);
    const t0 = performance.now();
    // Not UDP: those QEMU still holds in the tap come out after the reset, apart from `c`.
    await send(bed, testFrames({ seed: 52, count: INTO_FAULT, dst }));
    const gone = await nextLine(
      run,
      0,
      '"reconnecting" event',
      (l) => l.event === "reconnecting",
      20000,
    );
    const back = await nextLine(
      run,
      gone.index + 1,
      '"reconnected" event',
      (l) => l.event === "reconnected",
      60000,
    );
    const recoveredMs = performance.now() - t0;

    const c = udpFrames({ seed: 53, count: AFTER, flows: 64, dst });
    const capC = await startCapture(bed, 1, { count: AFTER, timeoutMs: 30000, ethertype: 0x0800 });
    await send(bed, c);
    const outC = await framesOf(capC);

    stopped = true;
    const r = await run.interrupt();
    assert.equal(r.code, 0, r.stderr);
    const s = summaryOf(r.stdout);
    const events = r.stdout.split("\n").filter((l) => l.startsWith('{"event":"reconnect'));
    const [p0, p1] = s.ports;
    const reason = (gone.line as unknown as { reason: string }).reason;
    console.log(
      `${cause.stdout.trim().replaceAll("\n", "; ")}; l2fwd: ${reason} — reconnected after ` +
        `${(back.line as unknown as { downMs: number }).downMs} ms down, ` +
        `${recoveredMs.toFixed(0)} ms after the frames that met the fault; ` +
        `port 0 received ${p0.rxPackets}, lost to the reset ${p0.dropsReset + p1.dropsReset}; ` +
        `after: ${outC.length} of ${AFTER}`,
    );
    assert.match(reason, why);
    // The summary names the fault too.
    const faults = s.faults ?? [];
    assert.ok(faults.some((f) => why.test(f.reason)), `faults: ${JSON.stringify(faults)}`);
    assert.equal(events.length, 2, events.join("\n"));
    // Forwarding resumed: every frame sent after the recovery, byte for byte, in order.
    assertSameFramesPerFlow(c, outC, (f) => f, "after the recovery");
    // Both sessions counted: what came before and after, and at most the frames sent into
    // the fault (the device dropped those it no longer took).
    assert.ok(p0.rxPackets >= BEFORE + AFTER && p0.rxPackets <= BEFORE + INTO_FAULT + AFTER);
    assertEveryFrameAccounted(s);
    // What the reset lost is at most what a worker holds: a ring and two bursts a port.
    assert.ok(p0.dropsReset + p1.dropsReset <= 2 * (256 + 64), "too many frames lost to the reset");
    assert.ok(s.workers.every((w) => w.state === "done"), "every worker drained and exited");
  } finally {
    if (!stopped) await run.p.kill("INT", 5000).catch(() => {});
  }
}
