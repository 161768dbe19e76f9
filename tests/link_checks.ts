/**
 * A link pulled while l2fwd forwards (issue 13, recovery): NIC 1's link taken down and up
 * from QEMU's monitor while l2fwd forwards host → NIC 0 → NIC 1 → host. l2fwd must report
 * each change (an event line, then "link" in its stats), keep forwarding throughout, and
 * account for every frame it received. The VM bed's l2fwd test runs it on its own boot.
 *
 * @module
 */

import assert from "node:assert/strict";
import { testFrames, udpFrames } from "./bed/frames.ts";
import { setLink } from "./bed/qemu_link.ts";
import { CaptureError, sendFrames, type SendResult, startCapture } from "./bed/traffic.ts";
import type { GuestProcess, VmBed } from "./bed/vm.ts";
import {
  assertQueuesAddUp,
  assertSameFramesPerFlow,
  framesOf,
  type PortLine,
  type Summary,
  summaryOf,
} from "./l2fwd_checks.ts";

/** A running l2fwd with `--stats json`, as tests/l2fwd_vm_test.ts starts it. */
export interface L2fwdRun {
  /** The guest shell that runs it. */
  p: GuestProcess;
  /** Sends SIGINT and waits: its exit status and output. */
  interrupt(): Promise<{ code: number; stdout: string; stderr: string }>;
}

/** A port of l2fwd's stats and summary lines, with the fields this check reads. */
type Port = PortLine & { name: string; link: string; dropsTooLong: number; dropsReset: number };

/** One JSON line of l2fwd: stats, summary or an event. */
export interface Line {
  event: string;
  port?: number;
  name?: string;
  link?: string;
  elapsedS: number;
  ports?: Port[];
}

/** Frames per second from the host: what the TCG guest forwards without loss. */
const RATE = 5000;
/** Frames before the link goes down, while it is down, and after it is back. */
const BEFORE = 2000, WHILE_DOWN = 1000, AFTER = 2000;

/** l2fwd's complete JSON lines so far (a line still being written is left for later). */
async function jsonLines(p: GuestProcess): Promise<Line[]> {
  const text = await p.stdout();
  return text.slice(0, text.lastIndexOf("\n") + 1).split("\n")
    .filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
}

/** Waits for the first JSON line from index `from` on that `pred` accepts. */
export async function nextLine(
  run: L2fwdRun,
  from: number,
  what: string,
  pred: (l: Line) => boolean,
  timeoutMs = 10000,
): Promise<{ index: number; line: Line }> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const lines = await jsonLines(run.p);
    const index = lines.findIndex((l, i) => i >= from && pred(l));
    if (index >= 0) return { index, line: lines[index] };
    const ended = await run.p.poll();
    if (ended || performance.now() > deadline) {
      throw new Error(
        `l2fwd: no ${what} ${
          ended ? `before it exited (${ended.code})` : `within ${timeoutMs} ms`
        }` +
          `\n--- stdout (end) ---\n${(await run.p.stdout()).slice(-3000)}` +
          `\n--- stderr ---\n${(await run.p.stderr()).slice(-2000)}`,
      );
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

const linkEvent = (port: number, link: string) => (l: Line) =>
  l.event === "link" && l.port === port && l.link === link;
const stats = (pred: (ports: NonNullable<Line["ports"]>) => boolean) => (l: Line) =>
  l.event === "stats" && pred(l.ports!);

/** Sends `frames` into NIC 0 at {@linkcode RATE}; the host must lose none on the way. */
export async function send(bed: VmBed, frames: Uint8Array[]): Promise<SendResult> {
  const r = await sendFrames(bed, 0, frames, { rate: RATE });
  assert.equal(r.dropped, 0, `the host dropped frames before NIC 0: ${JSON.stringify(r.drops)}`);
  return r;
}

/**
 * Every frame a port received went out of the other port or was dropped with a reason:
 * what a device then does with a transmitted frame (QEMU drops it while the link is down)
 * the driver cannot see.
 */
export function assertEveryFrameAccounted(s: Summary): void {
  const ports = s.ports as Port[];
  for (const [from, to] of [[0, 1], [1, 0]]) {
    const rx = ports[from], tx = ports[to];
    assert.equal(
      tx.txPackets + tx.dropsTxRingFull + tx.dropsTooLong + tx.dropsReset + rx.dropsScript,
      rx.rxPackets,
      `port ${from} received ${rx.rxPackets} frames; port ${to} sent ${tx.txPackets}, dropped ` +
        `${tx.dropsTxRingFull} (ring full) + ${tx.dropsTooLong} (too long) + ${tx.dropsReset} ` +
        `(lost to a reset); the script dropped ${rx.dropsScript}`,
    );
  }
}

/**
 * Runs l2fwd (`start`) and, while it forwards UDP frames to `dst` (NIC 0's MAC) from NIC 0
 * to NIC 1: frames with the link up, `set_link` off for NIC 1, the link-down event and a
 * stats line with port 1 "down", frames while it is down (l2fwd still receives them all),
 * `set_link` on, the link-up event, frames after it (every one captured, in flow order),
 * SIGINT: exit 0, summary link "up", every received frame accounted for. Prints how long
 * l2fwd took to report each change.
 */
export async function checkLinkDownUp(
  bed: VmBed,
  start: () => Promise<L2fwdRun>,
  dst: string,
): Promise<void> {
  const run = await start();
  let down = false, stopped = false;
  try {
    const a = udpFrames({ seed: 41, count: BEFORE, flows: 64, dst });
    const capA = await startCapture(bed, 1, { count: BEFORE, timeoutMs: 30000, ethertype: 0x0800 });
    await send(bed, a);
    const outA = await framesOf(capA);
    assertSameFramesPerFlow(a, outA, (f) => f, "link up, before");

    // Down: reported once seen (l2fwd reads the link once a second).
    let seen = (await jsonLines(run.p)).length;
    const t0 = performance.now();
    down = true;
    const netdev = await setLink(bed, 1, false);
    const downEvent = await nextLine(run, seen, "link-down event of port 1", linkEvent(1, "down"));
    const downMs = performance.now() - t0;
    const downStats = await nextLine(
      run,
      downEvent.index + 1,
      'stats line with port 1 "down"',
      stats((p) => p[1].link === "down" && p[0].link === "up"),
    );

    // While down: raw test frames (EtherType 0x88b5), captured apart from the UDP ones. QEMU
    // drops what NIC 1 sends, so their capture runs until its timeout, before the link is up.
    const b = testFrames({ seed: 42, count: WHILE_DOWN, dst });
    const capB = await startCapture(bed, 1, {
      count: WHILE_DOWN,
      timeoutMs: (WHILE_DOWN / RATE) * 1000 + 2000,
      ethertype: 0x88b5,
    });
    await send(bed, b);
    const during = await nextLine(
      run,
      downStats.index + 1,
      `stats line with port 0 at ${BEFORE + WHILE_DOWN} frames received and port 1 still down`,
      stats((p) => p[0].rxPackets >= BEFORE + WHILE_DOWN && p[1].link === "down"),
    );
    // Its timeout is expected: nothing or a few frames, so no "ended early" note.
    const outB = await capB.done().catch((e) => {
      if (e instanceof CaptureError) return e.frames;
      throw e;
    });
    const tx1Down = during.line.ports![1].txPackets;

    // Up: reported, and forwarding resumes.
    const c = udpFrames({ seed: 43, count: AFTER, flows: 64, dst });
    const capC = await startCapture(bed, 1, { count: AFTER, timeoutMs: 30000, ethertype: 0x0800 });
    seen = during.index + 1;
    const t1 = performance.now();
    await setLink(bed, 1, true);
    down = false;
    const upEvent = await nextLine(run, seen, "link-up event of port 1", linkEvent(1, "up"));
    const upMs = performance.now() - t1;
    await nextLine(
      run,
      upEvent.index + 1,
      'stats line with port 1 "up"',
      stats((p) => p[1].link === "up"),
    );
    await send(bed, c);
    const outC = await framesOf(capC);

    stopped = true;
    const r = await run.interrupt();
    assert.equal(r.code, 0, r.stderr);
    const s = summaryOf(r.stdout);
    const lines = r.stdout.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
    const events = lines.filter((l) => l.event === "link");
    const [p0, p1] = s.ports as Port[];
    console.log(
      `set_link ${netdev} off: l2fwd reported it after ${
        downMs.toFixed(0)
      } ms (at ${downEvent.line.elapsedS} s), on: after ${
        upMs.toFixed(0)
      } ms (at ${upEvent.line.elapsedS} s); ` +
        `while down l2fwd sent ${tx1Down - BEFORE} of ${WHILE_DOWN} out of port 1, ` +
        `the host captured ${outB.length}; after: ${outC.length} of ${AFTER}; ` +
        `summary: port 0 rx ${p0.rxPackets}, port 1 tx ${p1.txPackets} ` +
        `(ring full ${p1.dropsTxRingFull}, waits ${p1.txRingFullWaits}), ` +
        `lost by the device ${p1.txPackets - outA.length - outB.length - outC.length}`,
    );
    // Forwarding resumed: every frame sent after the link came back, byte for byte, in order.
    assertSameFramesPerFlow(c, outC, (f) => f, "link up again, after");
    // One event per change, on the port that changed, named as in the stats.
    assert.deepEqual(
      events.map((e) => [e.port, e.link, e.name]),
      [[1, "down", p1.name], [1, "up", p1.name]],
    );
    assert.ok(downEvent.line.elapsedS < upEvent.line.elapsedS);
    assert.deepEqual([p0.link, p1.link], ["up", "up"]);
    // l2fwd received everything the host sent, also while port 1 was down, and accounts for
    // every frame; the host can only have captured what l2fwd sent.
    assert.equal(p0.rxPackets, BEFORE + WHILE_DOWN + AFTER);
    assert.equal(p1.rxPackets, 0);
    assertEveryFrameAccounted(s);
    assertQueuesAddUp(s);
    assert.ok(outB.length <= WHILE_DOWN);
    assert.ok(outA.length + outB.length + outC.length <= p1.txPackets);
    assert.ok(s.workers.every((w) => w.state === "done"), "every worker drained and exited");
  } finally {
    if (down) await setLink(bed, 1, true).catch(() => {});
    // A failed check leaves l2fwd running: stop it so that the next step can take the NICs.
    if (!stopped) await run.p.kill("INT", 5000).catch(() => {});
  }
}
