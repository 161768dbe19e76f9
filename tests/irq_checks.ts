/**
 * The receive-interrupt checks of the VM bed, for any NIC: tests/guest/rx_irq.ts in the
 * guest routes MSI-X vector 1 to an eventfd (then vector 3 too), a frame sent into the tap
 * wakes waitRx(), none comes within 1 s while notifications are suppressed, and round
 * trips are timed waiting on the interrupt and busy-polling (irq_vm_test.ts says more).
 *
 * @module
 */

import assert from "node:assert/strict";
import { echoTimes, summary } from "./bed/echo_timer.ts";
import { testFrames } from "./bed/frames.ts";
import { sendFrames } from "./bed/traffic.ts";
import { shellQuote, type VmBed } from "./bed/vm.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const ROUNDS = 100;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The last stdout line of `out` that matches `re`, parsed as JSON. */
function lastJson(out: string, re: RegExp): Record<string, unknown> {
  const line = out.trim().split("\n").filter((l) => re.test(l)).at(-1);
  assert.ok(line, `no line matching ${re} in:\n${out}`);
  return JSON.parse(line);
}

/**
 * Runs the checks on NIC `i` of `bed` (vfio-pci loaded), which has `vectors` MSI-X
 * vectors (2 × queue pairs + 2) and negotiates `ring`.
 */
export async function checkRxInterrupts(
  bed: VmBed,
  i: number,
  vectors: number,
  ring: "split" | "packed" = "split",
): Promise<void> {
  const nic = bed.nicAddress(i), mac = bed.nicMac(i);
  const mod = await bed.exec("modprobe vfio-pci && modprobe vfio_iommu_type1");
  assert.equal(mod.code, 0, mod.stderr);
  const cmd = `deno run --quiet --allow-ffi ${shellQuote(`${ROOT}/tests/guest/rx_irq.ts`)} ` +
    `--port ${nic} --bind --rounds ${ROUNDS} --poll-rounds ${ROUNDS} --extra-vector 3 --timeout-ms 240000`;
  const guest = await bed.spawn(cmd);
  try {
    await guest.waitForOutput(/"event":"ready"/, 90000);
    const ready = lastJson(await guest.stdout(), /"event":"ready"/);
    console.log(`guest: ${JSON.stringify(ready)}`);
    assert.equal(ready.ring, ring, "the ring format negotiated");
    assert.equal(ready.vector, 1, "receiveq1 (virtqueue 0) gets vector 1");
    assert.equal(ready.queueVector, ready.vector, "queue_msix_vector reads back the vector");
    assert.equal(ready.msixVectors, vectors, `VFIO_DEVICE_GET_IRQ_INFO: vectors=${vectors}`);

    await guest.waitForOutput(/"phase":"wake"/, 30000);
    await sleep(500); // the program is blocked in waitRx() by now
    await sendFrames(bed, i, testFrames({ seed: 51, count: 1, dst: mac }));
    await guest.waitForOutput(/"event":"woke"/, 30000);
    const woke = lastJson(await guest.stdout(), /"event":"woke"/);
    console.log(`wake: ${JSON.stringify(woke)}`);
    assert.equal(woke.how, "signal", "the eventfd ended the wait");
    assert.ok((woke.blockedMs as number) >= 400, `blocked ${woke.blockedMs} ms`);
    assert.equal(woke.test, 1, "rxBurst returned the frame");

    await guest.waitForOutput(/"phase":"quiet"/, 30000);
    await sendFrames(bed, i, testFrames({ seed: 52, count: 1, dst: mac }));
    await guest.waitForOutput(/"event":"quiet"/, 30000);
    const quiet = lastJson(await guest.stdout(), /"event":"quiet"/);
    console.log(`quiet: ${JSON.stringify(quiet)}`);
    assert.equal(quiet.frameInRing, true, "the frame sat in the ring during the second");
    assert.equal(quiet.signals, 0, "no signal within 1 s with notifications suppressed");
    assert.equal(quiet.test, 1, "rxBurst then returned the frame");

    await guest.waitForOutput(/"phase":"latency"/, 30000);
    await sleep(200);
    const echo = await echoTimes(bed, i, mac, ROUNDS, { gapMs: 30, timeoutMs: 5000 });
    await guest.waitForOutput(/"phase":"poll"/, 30000);
    await sleep(200);
    const polled = await echoTimes(bed, i, mac, ROUNDS, { gapMs: 30, timeoutMs: 5000 });
    const res = await guest.wait(60000);
    const done = lastJson(res.stdout, /"event":"done"/);
    console.log(`done: ${JSON.stringify(done)}`);
    assert.equal(res.code, 0, `${res.stdout}\n${res.stderr}`);
    assert.equal(echo.lost + polled.lost, 0, "every probe came back");
    const signalled = echo.samples.filter((s) => s.how === "signal");
    assert.ok(signalled.length >= ROUNDS * 0.9, `${signalled.length} of ${ROUNDS} by signal`);
    const rtt = summary(signalled.map((s) => s.rttUs));
    const pollRtt = summary(polled.samples.map((s) => s.rttUs));
    // Round trip less the guest's turnaround: host → guest wake-up plus the echo's way
    // back (guest transmit → host), an upper bound on the wake-up latency.
    const bound = summary(signalled.map((s) => s.rttUs - s.turnUs));
    const pollBound = summary(polled.samples.map((s) => s.rttUs - s.turnUs));
    const turn = summary(signalled.map((s) => s.turnUs));
    console.log(`round trip, guest waiting on the interrupt (µs): ${JSON.stringify(rtt)}`);
    console.log(`round trip, guest busy-polling (µs): ${JSON.stringify(pollRtt)}`);
    console.log(`guest turnaround wake-up -> echo ready (µs): ${JSON.stringify(turn)}`);
    console.log(
      `host send -> guest wake-up, interrupt: at most ${bound.p50} µs (p50; p90 ${bound.p90}); ` +
        `polling: at most ${pollBound.p50} µs; about ${
          (bound.p50 - pollBound.p50 / 2).toFixed(0)
        } µs if the polling round trip splits evenly`,
    );
    assert.ok(turn.p50 < rtt.p50, "the turnaround lies inside the round trip");
  } finally {
    if (!(await guest.poll())) await guest.kill("KILL", 1000).catch(() => {});
  }
}
