/**
 * l2fwd on the forwarding engine against DPDK's vhost-user back-end (tests/bed/
 * vhost_user_bed.ts): testpmd feeds pcaps into its vhost ports, l2fwd forwards between
 * them, and testpmd writes what comes back into pcaps. Two ports × two queue pairs, every
 * frame back byte for byte and per flow in order; the example scripts and l2fwd's own capture;
 * SIGINT; a back-end that is missing or killed mid-run ending l2fwd with one sentence.
 * With `--allow-ffi` as the only permission l2fwd needs for it.
 *
 * Needs root (huge pages) and the DPDK packages of tools/setup.sh.
 * Run: `deno test --allow-all tests/l2fwd_vhost_user_test.ts`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { readPcap } from "../src/pcap/pcap.ts";
import { udpFlow, udpFrames } from "./bed/frames.ts";
import { startHostL2fwd } from "./bed/host_l2fwd.ts";
import { type PcapInput, VhostUserBed } from "./bed/vhost_user_bed.ts";
import { assertSameFramesPerFlow, summaryOf } from "./l2fwd_checks.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const isRoot = Deno.uid() === 0;

/** The bed's vhost ports as l2fwd names them. */
function ports(bed: VhostUserBed) {
  return { portName: (i: number) => `vhost-user:${bed.socket(i)}` };
}

/** `frames` split over `queues` pcap inputs, flow f (of `flows`) on queue f % queues. */
function perQueue(frames: Uint8Array[], flows: number, queues: number): PcapInput {
  const q: Uint8Array[][] = Array.from({ length: queues }, () => []);
  frames.forEach((f, i) => q[(i % flows) % queues].push(f));
  return q;
}

// Packed rings when testpmd offers them (--ring auto, the default), and split ones.
for (const ring of ["packed", "split"] as const) {
  Deno.test({
    name:
      `l2fwd in the vhost-user bed: 2 ports × 2 queue pairs, ${ring} rings, 20,000 frames each way, every flow in order`,
    ignore: !isRoot,
    fn: () => forwardBothWays(ring),
  });
}

async function forwardBothWays(ring: "packed" | "split"): Promise<void> {
  const N = 20_000, FLOWS = 64;
  const a = udpFrames({ seed: 61, count: N, flows: FLOWS });
  const b = udpFrames({ seed: 62, count: N, flows: FLOWS });
  await using bed = await VhostUserBed.start({
    vhostPorts: 2,
    queues: 2,
    pcap: { in: [perQueue(a, FLOWS, 2), perQueue(b, FLOWS, 2)] },
  });
  const ringArgs = ring === "split" ? ["--ring", "split"] : [];
  const run = await startHostL2fwd(ports(bed), ["--queues", "2", ...ringArgs]);
  await bed.startForwarding();
  const t0 = performance.now();
  await bed.waitPcapTx(1, N, 60000);
  await bed.waitPcapTx(0, N, 60000);
  const secs = (performance.now() - t0) / 1000;
  const r = await run.interrupt();
  console.log(
    `forwarded ${2 * N} frames in ${secs.toFixed(2)} s; stopped ${
      r.stopMs.toFixed(0)
    } ms after SIGINT`,
  );
  assert.equal(r.code, 0, r.stderr);
  const s = summaryOf(r.stdout);
  for (const p of s.ports) {
    assert.equal(p.ring, ring);
    // DPDK's vhost back-end offers VIRTIO_F_IN_ORDER, and l2fwd takes it (--in-order auto).
    assert.ok(p.features?.includes("VIRTIO_F_IN_ORDER"), `features ${p.features}`);
    // It offers VIRTIO_F_INDIRECT_DESC too, and l2fwd takes it (--indirect auto).
    assert.ok(p.features?.includes("VIRTIO_F_INDIRECT_DESC"), `features ${p.features}`);
    assert.equal(p.rxPackets, N, `port ${p.port} received`);
    assert.equal(p.txPackets, N, `port ${p.port} sent`);
    assert.equal(p.dropsTxRingFull + p.dropsNoBuffer, 0);
    for (const q of p.queues) assert.ok(q.rxPackets > N / 4, "both queue pairs in use");
  }
  // Each worker warmed on 200,000 synthetic frames (the default) before the ports opened.
  for (const w of s.workers) assert.ok(w.prewarmFrames >= 200_000, `worker ${w.queue} warm-up`);
  const out1 = (await bed.outputFrames(1)).flat(), out0 = (await bed.outputFrames(0)).flat();
  assert.equal(assertSameFramesPerFlow(a, out1, (f) => f, "IN0 → l2fwd → OUT1"), FLOWS);
  assert.equal(assertSameFramesPerFlow(b, out0, (f) => f, "IN1 → l2fwd → OUT0"), FLOWS);
  for (const st of await bed.stats()) {
    assert.equal(st.fwdTxDropped + st.rxMissed + st.rxErrors, 0, `${st.name}: losses`);
  }
  // testpmd notices a front-end's disconnect from its own event thread, soon after.
  const vhost = async () => (await bed.links()).slice(1, 3);
  let links = await vhost();
  for (let i = 0; i < 40 && links.some((up) => up); i++) {
    await new Promise((r) => setTimeout(r, 50));
    links = await vhost();
  }
  assert.deepEqual(links, [false, false], "l2fwd let go of both vhost ports");
}

Deno.test({
  name:
    "l2fwd in the vhost-user bed: mac_swap.ts swaps every frame's MACs; l2fwd's tx pcap of port 1 holds them as sent",
  ignore: !isRoot,
  async fn() {
    const N = 2000;
    const frames = udpFrames({ seed: 63, count: N, flows: 16 });
    await using bed = await VhostUserBed.start({ vhostPorts: 2, pcap: { in: [[frames]] } });
    const dir = await Deno.makeTempDir({ prefix: "vhl2fwd-" });
    try {
      const script = `${ROOT}/examples/scripts/mac_swap.ts`, pcap = `${dir}/tx1.pcap`;
      const run = await startHostL2fwd(
        ports(bed),
        ["--script", script, "--pcap", pcap, "--pcap-port", "1", "--pcap-direction", "tx"],
        [`--allow-read=${script}`, `--allow-write=${pcap}`],
      );
      await bed.startForwarding();
      await bed.waitPcapTx(1, N, 30000);
      const r = await run.interrupt();
      assert.equal(r.code, 0, r.stderr);
      const out = (await bed.outputFrames(1)).flat();
      assertSameFramesPerFlow(frames, out, (f) => {
        const g = f.slice();
        g.set(f.subarray(6, 12), 0);
        g.set(f.subarray(0, 6), 6);
        return g;
      });
      const s = summaryOf(r.stdout);
      assert.equal(s.script?.counters.swapped, N);
      assert.deepEqual(readPcap(await Deno.readFile(pcap)).map((p) => p.data), out);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "l2fwd in the vhost-user bed: drop_filter.ts drops one UDP port, flow_counters.ts counts every flow",
  ignore: !isRoot,
  async fn(t) {
    const script = (name: string) => `${ROOT}/examples/scripts/${name}`;
    await t.step(
      "drop_filter.ts: the other flows pass in order, the dropped ones are counted",
      async () => {
        const frames = udpFrames({ seed: 64, count: 2000, flows: 16 });
        await using bed = await VhostUserBed.start({ vhostPorts: 2, pcap: { in: [[frames]] } });
        const run = await startHostL2fwd(
          ports(bed),
          ["--script", script("drop_filter.ts"), "--script-arg", `udp-port=${udpFlow(5).dstPort}`],
          [`--allow-read=${script("drop_filter.ts")}`],
        );
        await bed.startForwarding();
        await bed.waitPcapTx(1, 2000 - 125, 30000);
        await new Promise((r) => setTimeout(r, 300)); // nothing more comes
        const r = await run.interrupt();
        assert.equal(r.code, 0, r.stderr);
        const out = (await bed.outputFrames(1)).flat();
        assertSameFramesPerFlow(frames.filter((_, i) => i % 16 !== 5), out);
        const s = summaryOf(r.stdout);
        assert.equal(s.script?.counters.droppedUdpPort, 125);
        assert.equal(s.ports[0].dropsScript, 125);
      },
    );
    await t.step("flow_counters.ts reports every flow with its packets", async () => {
      const frames = udpFrames({ seed: 65, count: 3000, flows: 100 });
      await using bed = await VhostUserBed.start({ vhostPorts: 2, pcap: { in: [[frames]] } });
      const run = await startHostL2fwd(
        ports(bed),
        ["--script", script("flow_counters.ts")],
        [`--allow-read=${script("flow_counters.ts")}`],
      );
      await bed.startForwarding();
      await bed.waitPcapTx(1, 3000, 30000);
      const r = await run.interrupt();
      assert.equal(r.code, 0, r.stderr);
      const report = summaryOf(r.stdout).script?.report as { flows: number; packets: number };
      assert.equal(report.flows, 100);
      assert.equal(report.packets, 3000);
      assertSameFramesPerFlow(frames, (await bed.outputFrames(1)).flat());
    });
  },
});

/** Runs l2fwd to its end with `args`; returns its status and stderr. */
async function l2fwdFails(args: string[]): Promise<{ code: number; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", "--allow-ffi", `${ROOT}/examples/l2fwd.ts`, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

Deno.test({
  name: "l2fwd with a vhost-user back-end that is missing or killed mid-run: one sentence, exit 1",
  ignore: !isRoot,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "vhl2fwd-" });
    try {
      const missing = await l2fwdFails([`vhost-user:${dir}/a.sock`, `vhost-user:${dir}/b.sock`]);
      console.log(missing.stderr.trim());
      assert.equal(missing.code, 1);
      assert.match(missing.stderr.trim(), /^[^\n]*a\.sock[^\n]*\.$/, "one sentence naming it");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }

    await using bed = await VhostUserBed.start({ vhostPorts: 2 });
    const run = await startHostL2fwd(ports(bed), []);
    await bed.startForwarding();
    await bed.testpmd.kill(); // SIGKILL: the back-end vanishes under l2fwd
    const r = await run.exited();
    const stderr = r.stderr;
    console.log(
      `l2fwd said: ${stderr.trim().split("\n").at(-1)} (${r.stopMs.toFixed(0)} ms after)`,
    );
    assert.equal(r.code, 1, stderr);
    assert.match(stderr, /closed the connection/);
    assert.doesNotMatch(stderr, /^\s+at /m, "no stack trace");
  },
});
