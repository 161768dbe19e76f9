/**
 * The foundation's driver tests in the vfio-user bed: the same guest program as in the VM
 * bed (`tests/guest/rxtx.ts`, `--allow-ffi` only) runs on the host against QEMU's
 * virtio-net served over a vfio-user socket, and l2fwd forwards between two such ports
 * with the notifications it needed counted (each one is a REGION_WRITE round trip here).
 *
 * Needs root and QEMU's vfio-user server (tools/build_bed_qemu.sh).
 * Run: `deno test --allow-all tests/driver_vfio_user_test.ts`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { DriverError, openPort, splitRingLayout } from "../low_level.ts";
import { encodePcap, readPcapFrames } from "../src/pcap/pcap.ts";
import { TEST_ETHERTYPE, testFrames, udpFrames } from "./bed/frames.ts";
import { KernelDropTrace } from "./bed/kernel_drops.ts";
import { sendFrames, startCapture } from "./bed/traffic.ts";
import { HostProgram } from "./bed/host_program.ts";
import { VfioUserBed } from "./bed/vfio_user_bed.ts";

const FRAMES = 10_000;
const isRoot = Deno.uid() === 0;

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

Deno.test({
  name: "vfio-user: port_info runs with --allow-ffi only and prints the features by name",
  ignore: !isRoot,
  async fn() {
    await using bed = await VfioUserBed.start({ ports: 1, queues: 2 });
    const prog = HostProgram.start("examples/port_info.ts", [bed.portName(0)]);
    const code = await prog.finish();
    const out = prog.lines.join("\n");
    console.log(out);
    assert.equal(code, 0, await prog.stderr);
    assert.match(out, /negotiated .*VIRTIO_NET_F_MQ/);
    assert.match(out, /negotiated .*VIRTIO_F_VERSION_1/);
    assert.match(out, /negotiated .*VIRTIO_F_ACCESS_PLATFORM/);
    assert.match(out, /max pairs +2/);
  },
});

Deno.test({
  name: `vfio-user: the driver receives ${FRAMES} frames and transmits ${FRAMES}, byte for byte`,
  ignore: !isRoot,
  async fn() {
    await using bed = await VfioUserBed.start({ ports: 1, queues: 1 });
    const dir = await Deno.makeTempDir({ prefix: "vdrxtx-" });
    let trace: KernelDropTrace | null = null;
    try {
      const toDriver = testFrames({ seed: 31, count: FRAMES });
      const fromDriver = testFrames({ seed: 32, count: FRAMES });
      await Deno.writeFile(`${dir}/tx.pcap`, encodePcap(fromDriver));
      const prog = HostProgram.start("tests/guest/rxtx.ts", [
        "--port",
        bed.portName(0),
        "--rx-count",
        String(FRAMES),
        "--rx-out",
        `${dir}/rx.pcap`,
        "--tx-in",
        `${dir}/tx.pcap`,
        "--timeout-ms",
        "120000",
      ]);
      await prog.waitForLine(/"event":"ready"/);
      const capture = await startCapture(bed, 0, {
        count: FRAMES,
        timeoutMs: 120000,
        ethertype: TEST_ETHERTYPE,
      });
      // Where the host lost what the driver sent, should the capture come up short.
      trace = KernelDropTrace.start(["CPU_BACKLOG", "SOCKET_RCVBUFF", "FULL_RING"]);
      const sent = await sendFrames(bed, 0, toDriver);
      assert.equal(sent.sent, FRAMES);
      const doneLine = await prog.waitForLine(/"event":"done"/);
      const code = await prog.finish();
      const done = JSON.parse(doneLine);
      console.log(`driver: ${doneLine}`);
      assert.equal(code, 0, `${prog.lines.join("\n")}\n${await prog.stderr}`);
      const received = readPcapFrames(await Deno.readFile(`${dir}/rx.pcap`));
      assert.equal(received.length, FRAMES);
      for (let i = 0; i < FRAMES; i++) assert.deepEqual(received[i], toDriver[i], `rx ${i}`);
      const t = trace;
      const captured = await capture.done().catch((e) => {
        throw new Error(`${e.message}; host drops: ${JSON.stringify(t.stop().drops)}`);
      });
      assert.equal(captured.length, FRAMES, `host drops: ${JSON.stringify(t.stop().drops)}`);
      for (let i = 0; i < FRAMES; i++) assert.deepEqual(captured[i], fromDriver[i], `tx ${i}`);
      const kicks = done.txKicks + done.rxKicks;
      console.log(
        `notifications: ${kicks} for ${2 * FRAMES} frames = ${
          (1000 * kicks / (2 * FRAMES)).toFixed(1)
        } per 1,000 (suppressed: ${done.txKicksSuppressed + done.rxKicksSuppressed})`,
      );
      assert.ok(kicks < 2 * FRAMES / 10, "notification suppression keeps kicks rare");
    } finally {
      trace?.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "vfio-user: l2fwd forwards between two ports; kicks per 1,000 packets forwarded",
  ignore: !isRoot,
  async fn() {
    await using bed = await VfioUserBed.start({ ports: 2, queues: 1 });
    const count = 20_000;
    // Partial transmit bursts go out after 1 ms: at 10 kpps about 10 frames share a kick.
    const prog = HostProgram.start("examples/l2fwd.ts", [
      "--tx-drain-us",
      "1000",
      "--stats",
      "json",
      "--duration",
      "10",
      bed.portName(0),
      bed.portName(1),
    ]);
    await prog.waitForLine(/"event":"stats"/);
    // The capture ends when every frame arrived or 15 s after l2fwd started forwarding.
    const capture = await startCapture(bed, 1, { count, timeoutMs: 15000, ethertype: 0x0800 });
    const frames = udpFrames({ seed: 3, count, flows: 1024 });
    // 10 kpps offered: within what QEMU's vfio-user transmit path usually forwards without
    // loss here. Under overload l2fwd drops and counts ("tx ring full"), like DPDK's.
    const sent = await sendFrames(bed, 0, frames, { rate: 10000 });
    const captured = await capture.done().catch((e: { frames?: Uint8Array[] }) => {
      if (!e.frames) throw e;
      return e.frames;
    });
    const summaryLine = await prog.waitForLine(/"event":"summary"/);
    assert.equal(await prog.finish(), 0, await prog.stderr);
    const summary = JSON.parse(summaryLine);
    console.log(`l2fwd: ${summaryLine}`);
    assert.equal(sent.sent, count);
    const p0 = summary.ports[0], p1 = summary.ports[1];
    // Every frame is accounted for: the tap dropped it, or l2fwd received it; and every
    // frame received was sent on or counted as dropped with its reason.
    assert.equal(p0.rxPackets + sent.dropped, count);
    assert.equal(p1.txPackets + p1.dropsTxRingFull + p0.dropsTxRingFull, p0.rxPackets);
    assert.equal(captured.length, p1.txPackets);
    // What came out is what went in, byte for byte and in order (less counted drops).
    let j = 0;
    for (const c of captured) {
      while (j < count && !equalBytes(c, frames[j])) j++;
      assert.ok(j < count, "a forwarded frame is not one of the sent frames, in order");
      j++;
    }
    console.log(`forwarded ${captured.length} of ${count}; dropped ${count - captured.length}`);
    assert.ok(captured.length >= count * 0.99, `forwarded only ${captured.length}`);
    const kicks = p0.kicks + p1.kicks;
    console.log(
      `kicks: ${kicks} for ${count} forwarded = ${(1000 * kicks / count).toFixed(1)} per 1,000`,
    );
    // Without suppression and batching there would be one per frame and one per refill.
    assert.ok(kicks < count / 5, "notification suppression keeps kicks rare");
  },
});

Deno.test({
  name: "vfio-user bad input on the command line: a wrong socket path exits 1 with one sentence",
  ignore: !isRoot,
  async fn() {
    const prog = HostProgram.start("examples/port_info.ts", ["vfio-user:/nonexistent/net0.sock"]);
    assert.equal(await prog.finish(), 1);
    const err = (await prog.stderr).trim();
    console.log(err);
    assert.match(err, /^error: No vfio-user server listens on \/nonexistent\/net0\.sock[^\n]*\.$/);
  },
});

Deno.test({
  name: "vfio-user: l2fwd exits non-zero with one sentence when a server is killed mid-run",
  ignore: !isRoot,
  async fn() {
    await using bed = await VfioUserBed.start({ ports: 2, queues: 1 });
    const prog = HostProgram.start("examples/l2fwd.ts", [
      "--stats",
      "json",
      "--duration",
      "60",
      bed.portName(0),
      bed.portName(1),
    ]);
    try {
      await prog.waitForLine(/"event":"stats"/);
      await bed.kill(0);
      const t0 = Date.now();
      const code = await prog.finish();
      const err = (await prog.stderr).trim();
      console.log(`exit ${code} after ${Date.now() - t0} ms: ${err}`);
      assert.notEqual(code, 0);
      assert.doesNotMatch(err, /Uncaught|\n\s+at /, "a sentence, not a stack trace");
      assert.match(
        err.split("\n").at(-1)!,
        /^error: The vfio-user server .* closed the connection .*\.$/,
      );
      assert.ok(Date.now() - t0 < 10000, "noticed within 10 s");
    } finally {
      prog.kill();
    }
  },
});

Deno.test({
  name:
    "vfio-user: checkHealthy() says DEVICE_NEEDS_RESET once QEMU refused a ring, and close() still releases the port",
  ignore: !isRoot,
  async fn() {
    await using bed = await VfioUserBed.start({ ports: 1, queues: 1 });
    const port = openPort(bed.portName(0));
    let closed = false;
    try {
      port.checkHealthy(); // a fresh port is healthy
      // A driver bug, made on purpose: avail->idx moved past more entries than the ring has
      // (§2.7.13 "Supplying Buffers to The Device"), over descriptors it never filled. QEMU
      // calls virtio_error() (7.2 says "virtio: zero sized buffers are not allowed") and sets
      // DEVICE_NEEDS_RESET.
      const vq = port.tx(0).vq;
      const layout = splitRingLayout(vq.size);
      const avail = new Uint16Array(vq.ringMemory, vq.ringOffset + layout.availOffset, 2);
      Atomics.store(avail, 1, (vq.publishedIdx + vq.size + 1) & 0xffff);
      vq.kick();
      let err: unknown = null;
      for (let i = 0; i < 100 && err === null; i++) {
        try {
          port.checkHealthy();
          await new Promise((r) => setTimeout(r, 20));
        } catch (e) {
          err = e;
        }
      }
      assert.ok(err instanceof DriverError, "the device never reported the broken ring");
      // QEMU's error message comes through a pipe: give it a moment.
      for (let i = 0; i < 100 && bed.serverLog(0) === ""; i++) {
        await new Promise((r) => setTimeout(r, 20));
      }
      console.log(`${err.message} | QEMU: ${bed.serverLog(0)}`);
      assert.equal(err.code, "DEVICE_MISBEHAVED");
      assert.match(err.message, /^vfio-user:.* reports DEVICE_NEEDS_RESET: restart the port/);
      assert.match(bed.serverLog(0), /virtio: /, "QEMU said why");
      port.close(); // resets the device and releases the connection
      closed = true;
      assert.ok(await bed.waitExit(0), "the server saw its client leave");
    } finally {
      if (!closed) port.close();
    }
  },
});
