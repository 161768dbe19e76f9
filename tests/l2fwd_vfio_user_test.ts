/**
 * l2fwd on the forwarding engine in the vfio-user bed (QEMU's vfio-user server, driver on
 * the host): two ports with two queue pairs each, 100,000 UDP frames of 1,024 flows each
 * way with MAC rewrite, everything captured equal to what was sent; per-queue counters
 * adding up; each example script; a capture read back with
 * `tcpdump -r`; SIGINT mid-traffic ending l2fwd with status 0 within 2 s and the servers
 * released. Also measures what a queue notification costs a worker here (a posted
 * VFIO_USER_REGION_WRITE it sends itself) against an acknowledged one.
 *
 * Needs root and QEMU's vfio-user server (tools/build_bed_qemu.sh).
 * Run: `deno test --allow-all tests/l2fwd_vfio_user_test.ts`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { openPort } from "../mod.ts";
import { createSharedPool } from "../src/dma/buffer_pool.ts";
import { notifySpec } from "../src/engine/handoff.ts";
import { makeNotifier } from "../src/engine/notifier.ts";
import type { RegionNotifier, VirtioPciTransport } from "../src/virtio/pci_transport.ts";
import { readPcap } from "../src/pcap/pcap.ts";
import { udpFlow, udpFrames } from "./bed/frames.ts";
import { sendFrames, startCapture } from "./bed/traffic.ts";
import { VfioUserBed } from "./bed/vfio_user_bed.ts";
import { startHostL2fwd } from "./bed/host_l2fwd.ts";
import {
  assertCaptured,
  assertQueuesAddUp,
  assertSameFramesPerFlow,
  checkMacSwapTxPcap,
  checkRebalancing,
  framesOf,
  rewritten,
  summaryOf,
} from "./l2fwd_checks.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
/**
 * Frames each way. The engine's heap is audited in the VM bed (400,000 frames there:
 * l2fwd_vm_test.ts); here, the vfio-user server taking 5,000 frames/s, a shorter run
 * checks forwarding, and overload_vfio_user_test.ts that no GC comes after warm-up.
 */
const FRAMES = 100_000;
const FLOWS = 1024;
/** Frames per second offered on each port: what QEMU's vfio-user server takes in full. */
const RATE = 5000;
const isRoot = Deno.uid() === 0;
/** The MACs QEMU gives the bed's NICs (l2fwd prints them too). */
const MACS = ["52:54:00:12:34:56", "52:54:00:12:34:57"];

/** What each port's QEMU printed so far, for a failure message. */
function qemuSaid(bed: VfioUserBed): string[] {
  return Array.from(
    { length: bed.ports },
    (_, n) => `QEMU port ${n}: ${bed.serverLog(n) || "(nothing printed)"}`,
  );
}

/** Fresh servers: QEMU's vfio-user server takes one client and exits when it leaves. */
async function freshServers(bed: VfioUserBed): Promise<void> {
  await bed.restart(0);
  await bed.restart(1);
}

Deno.test({
  name: "l2fwd in the vfio-user bed: 2 ports × 2 queue pairs, one worker each",
  ignore: !isRoot,
  async fn(t) {
    // rss=on: the rebalancing step switches RSS tables while forwarding (QEMU offers
    // VIRTIO_NET_F_RSS then; the other steps use automatic steering as before).
    await using bed = await VfioUserBed.start({ ports: 2, queues: 2, nicProps: "rss=on" });

    await t.step(
      `${FRAMES} frames of ${FLOWS} flows each way with MAC rewrite: the host captures what it sent`,
      async () => {
        const run = await startHostL2fwd(bed, ["--queues", "2", "--mac-rewrite"], []);
        const a = udpFrames({ seed: 31, count: FRAMES, flows: FLOWS });
        const b = udpFrames({ seed: 32, count: FRAMES, flows: FLOWS });
        const timeoutMs = (FRAMES / RATE) * 1000 + 30000;
        const cap1 = await startCapture(bed, 1, { count: FRAMES, timeoutMs, ethertype: 0x0800 });
        const cap0 = await startCapture(bed, 0, { count: FRAMES, timeoutMs, ethertype: 0x0800 });
        const t0 = performance.now();
        const [s0, s1] = await Promise.all([
          sendFrames(bed, 0, a, { rate: RATE }),
          sendFrames(bed, 1, b, { rate: RATE }),
        ]);
        const [out1, out0] = await Promise.all([framesOf(cap1), framesOf(cap0)]);
        const secs = (performance.now() - t0) / 1000;
        const r = await run.interrupt();
        assert.equal(r.code, 0, r.stderr);
        const s = summaryOf(r.stdout);
        console.log(
          `sent ${s0.sent} + ${s1.sent} (tap drops ${s0.dropped} + ${s1.dropped}); captured ${out1.length} + ${out0.length} in ${
            secs.toFixed(1)
          } s = ${Math.round((out0.length + out1.length) / secs)} frames/s forwarded`,
        );
        for (const p of s.ports) {
          console.log(
            `port ${p.port}: rx ${p.rxPackets} tx ${p.txPackets} kicks ${p.kicks} (${
              (1000 * p.kicks / p.txPackets).toFixed(1)
            } per 1,000 sent) waits ${p.txRingFullWaits} queues ${
              p.queues.map((q) => `${q.queue}:${q.rxPackets}/${q.txPackets}`).join(" ")
            }`,
          );
        }
        console.log(`stopped ${r.stopMs.toFixed(0)} ms after SIGINT`);
        assertCaptured(
          [["port 1", out1.length], ["port 0", out0.length]],
          FRAMES,
          s,
          r.stderr,
          [
            ...qemuSaid(bed),
            `host drops before the ports: ${JSON.stringify(s0.drops)} + ${
              JSON.stringify(s1.drops)
            }`,
          ],
        );
        assert.equal(
          assertSameFramesPerFlow(a, out1, (f) => rewritten(f, 1, MACS[1]), "port 1"),
          FLOWS,
        );
        assert.equal(
          assertSameFramesPerFlow(b, out0, (f) => rewritten(f, 0, MACS[0]), "port 0"),
          FLOWS,
        );
        // Every frame sent arrived, byte for byte (a host drop of one would have failed the
        // checks above, naming it): a drop the taps counted meanwhile was of another frame.
        const hostDrops = s0.dropped + s1.dropped;
        if (hostDrops) console.log(`taps counted ${hostDrops} drops, none of them a test frame`);
        assertQueuesAddUp(s);
        for (const p of s.ports) {
          assert.equal(p.rxPackets, FRAMES);
          assert.equal(p.txPackets, FRAMES);
          assert.equal(p.dropsTxRingFull + p.dropsNoBuffer, 0);
          for (const q of p.queues) assert.ok(q.rxPackets > FRAMES / 10, "both queues in use");
        }
      },
    );

    /** Runs l2fwd with `args`, sends `frames` into port 0, captures `expect` out of port 1. */
    const oneWay = async (
      args: string[],
      perms: string[],
      frames: Uint8Array[],
      expect: number,
    ) => {
      await freshServers(bed);
      const run = await startHostL2fwd(bed, args, perms);
      const cap = await startCapture(bed, 1, { count: expect, timeoutMs: 20000 });
      const sent = await sendFrames(bed, 0, frames, { rate: RATE });
      assert.equal(sent.dropped, 0);
      const out = await framesOf(cap);
      await new Promise((r) => setTimeout(r, 300));
      const r = await run.interrupt();
      assert.equal(r.code, 0, r.stderr);
      const summary = summaryOf(r.stdout);
      assertCaptured([["port 1", out.length]], expect, summary, r.stderr, qemuSaid(bed));
      return { out, summary, stderr: r.stderr };
    };
    const script = (name: string) => `${ROOT}/examples/scripts/${name}`;

    await t.step(
      "RSS tables rotated every 100 ms while the workers forward: every frame, no flow reordered",
      () => checkRebalancing(oneWay, 37, MACS[0]),
    );

    await t.step(
      "mac_swap.ts swaps the MAC addresses of every forwarded frame; a tx pcap of port 1 holds them as sent",
      async () => {
        const dir = await Deno.makeTempDir({ prefix: "vdl2fwd-" });
        const pcap = `${dir}/tx1.pcap`;
        try {
          await checkMacSwapTxPcap(
            oneWay,
            script("mac_swap.ts"),
            { l2fwd: pcap, host: pcap },
            34,
            MACS[0],
          );
        } finally {
          await Deno.remove(dir, { recursive: true });
        }
      },
    );

    await t.step(
      "drop_filter.ts drops one UDP port; l2fwd's pcap of port 0 reads back with tcpdump -r",
      async () => {
        const frames = udpFrames({ seed: 35, count: 2000, flows: 16 });
        const dir = await Deno.makeTempDir({ prefix: "vdl2fwd-" });
        const pcap = `${dir}/rx0.pcap`;
        try {
          const { out, summary } = await oneWay(
            [
              "--script",
              script("drop_filter.ts"),
              "--script-arg",
              `udp-port=${udpFlow(5).dstPort}`,
              "--pcap",
              pcap,
            ],
            [`--allow-read=${script("drop_filter.ts")}`, `--allow-write=${pcap}`],
            frames,
            2000 - 125,
          );
          assertSameFramesPerFlow(frames.filter((_, i) => i % 16 !== 5), out);
          assert.equal(summary.script?.counters.droppedUdpPort, 125);
          assert.equal(summary.ports[0].dropsScript, 125);
          assert.equal(summary.pcap?.written, 2000);
          assert.deepEqual(readPcap(await Deno.readFile(pcap)).map((r) => r.data), frames);
          const td = await new Deno.Command("tcpdump", { args: ["-nr", pcap], stdout: "piped" })
            .output();
          assert.ok(td.success);
          assert.equal(new TextDecoder().decode(td.stdout).trim().split("\n").length, 2000);
        } finally {
          await Deno.remove(dir, { recursive: true });
        }
      },
    );

    await t.step("flow_counters.ts reports every flow with its packets", async () => {
      const frames = udpFrames({ seed: 36, count: 3000, flows: 100 });
      const { out, summary } = await oneWay(
        ["--script", script("flow_counters.ts")],
        [`--allow-read=${script("flow_counters.ts")}`],
        frames,
        3000,
      );
      assert.equal(out.length, 3000);
      const report = summary.script?.report as { flows: number; packets: number };
      assert.equal(report.flows, 100);
      assert.equal(report.packets, 3000);
    });

    await t.step("what a worker's queue notification costs: posted vs acknowledged", async () => {
      await freshServers(bed);
      const pool = createSharedPool(4096, 2048, { hugePages: false });
      const port = openPort(bed.portName(0), { pool, hashReport: false });
      try {
        const spec = notifySpec(port, 1); // transmitq1: nothing is queued, nothing is sent
        assert.equal(spec.kind, "message");
        const notifier = makeNotifier(spec, "transmitq1");
        const N = 20000;
        for (let i = 0; i < 1000; i++) notifier.notify();
        let t0 = performance.now();
        for (let i = 0; i < N; i++) notifier.notify();
        const postedUs = (performance.now() - t0) * 1000 / N;
        // The server handles messages in order: this answer comes after it ran them all.
        port.readConfig();
        // The same register, written with an acknowledged REGION_WRITE each time.
        const t = port.transport as VirtioPciTransport;
        const bar = t.pci.bar(t.notifyLocation.bar);
        const offset = t.notifyLocation.offset + (port.tx(0).vq.notifier as RegionNotifier).offset;
        const M = 2000;
        t0 = performance.now();
        for (let i = 0; i < M; i++) bar.write16(offset, 1);
        const ackedUs = (performance.now() - t0) * 1000 / M;
        console.log(
          `notification over vfio-user: posted REGION_WRITE sent by the worker ${
            postedUs.toFixed(2)
          } µs each; acknowledged REGION_WRITE round trip ${ackedUs.toFixed(1)} µs`,
        );
        assert.ok(postedUs < ackedUs, "a posted notification costs the worker less");
      } finally {
        port.close();
        pool.region.free();
      }
    });

    await t.step(
      "SIGINT in the middle of traffic: exit 0 within 2 s, servers released",
      async () => {
        await freshServers(bed);
        const run = await startHostL2fwd(bed, ["--queues", "2"]);
        const sending = sendFrames(bed, 0, udpFrames({ seed: 37, count: 20000, flows: FLOWS }), {
          rate: RATE,
        });
        await new Promise((r) => setTimeout(r, 1500));
        const r = await run.interrupt();
        await sending;
        console.log(`stopped ${r.stopMs.toFixed(0)} ms after SIGINT, status ${r.code}`);
        assert.equal(r.code, 0, r.stderr);
        const s = summaryOf(r.stdout);
        assert.ok(s.ports[0].rxPackets > 0, "it was forwarding");
        assert.ok(s.workers.every((w) => w.state === "done"), "every worker drained and exited");
        // The servers exit once their client is gone: the connections were closed.
        assert.ok(await bed.waitExit(0, 2000), "server 0 still has a client");
        assert.ok(await bed.waitExit(1, 2000), "server 1 still has a client");
      },
    );
  },
});
