/**
 * The driver against DPDK's vhost-user back-end (tests/bed/vhost_user_bed.ts: testpmd with
 * net_vhost ports, no emulator): the same host program as in the other beds
 * (`tests/guest/rxtx.ts`, `--allow-ffi` only) receives 10,000 frames fed from a pcap and
 * sends 10,000 that testpmd writes into a pcap, byte for byte; port_info names the features;
 * two ports with two queue pairs move frames both ways through testpmd, every flow in
 * order; and what goes wrong (no back-end, a wrong path, a back-end killed mid-run, more
 * queue pairs than it has) is one sentence, with nothing left open.
 *
 * Needs root (huge pages) and the DPDK packages of tools/setup.sh.
 * Run: `deno test --allow-all tests/driver_vhost_user_test.ts`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { DriverError, NO_BUFFER, openPort, type VirtioNetPort } from "../mod.ts";
import { encodePcap, readPcapFrames } from "../src/pcap/pcap.ts";
import { parseUdpTestFrame, testFrames, udpFrames } from "./bed/frames.ts";
import { HostProgram } from "./bed/host_program.ts";
import { VhostUserBed } from "./bed/vhost_user_bed.ts";

const FRAMES = 10_000;
const isRoot = Deno.uid() === 0;

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Open file descriptors of this process. */
function fdCount(): number {
  return openFds().size;
}

/** The numbers of this process's open file descriptors. */
function openFds(): Set<string> {
  return new Set([...Deno.readDirSync("/proc/self/fd")].map((e) => e.name));
}

/** The DriverError `fn` throws, checked for `code` and for being one sentence. */
function driverError(fn: () => unknown, code: string): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof DriverError, `expected a DriverError, got ${e}`);
    assert.equal(e.code, code, e.message);
    assert.match(e.message, /^[^\n]+[.]$/, "one sentence");
    return e.message;
  }
  assert.fail(`expected ${code}`);
}

Deno.test({
  name: "vhost-user: port_info runs with --allow-ffi only and prints the features by name",
  ignore: !isRoot,
  async fn() {
    await using bed = await VhostUserBed.start({ vhostPorts: 1, queues: 2 });
    const prog = HostProgram.start("examples/port_info.ts", [
      `vhost-user:${bed.socket(0)}?mac=02:00:00:00:00:0a&queues=2`,
    ]);
    const code = await prog.finish();
    const out = prog.lines.join("\n");
    console.log(out);
    assert.equal(code, 0, await prog.stderr);
    assert.match(out, /negotiated .*VIRTIO_F_VERSION_1/);
    assert.match(out, /negotiated .*VIRTIO_NET_F_MQ/);
    assert.match(out, /negotiated .*VIRTIO_F_IN_ORDER/);
    assert.match(out, /02:00:00:00:00:0a/);
    assert.match(out, /max pairs +2/);
  },
});

Deno.test({
  name: `vhost-user: the driver receives ${FRAMES} frames and transmits ${FRAMES}, byte for byte`,
  ignore: !isRoot,
  async fn() {
    const toDriver = testFrames({ seed: 41, count: FRAMES });
    const fromDriver = testFrames({ seed: 42, count: FRAMES });
    await using bed = await VhostUserBed.start({ vhostPorts: 1, pcap: { in: [[toDriver]] } });
    const dir = await Deno.makeTempDir({ prefix: "vhrxtx-" });
    try {
      await Deno.writeFile(`${dir}/tx.pcap`, encodePcap(fromDriver));
      const prog = HostProgram.start("tests/guest/rxtx.ts", [
        "--port",
        `vhost-user:${bed.socket(0)}`,
        "--rx-count",
        String(FRAMES),
        "--rx-out",
        `${dir}/rx.pcap`,
        "--tx-in",
        `${dir}/tx.pcap`,
        "--timeout-ms",
        "60000",
      ]);
      await prog.waitForLine(/"event":"ready"/);
      await bed.startForwarding(); // pcap0 → vhost0 (the driver) → pcap0's output
      const doneLine = await prog.waitForLine(/"event":"done"/);
      const code = await prog.finish();
      console.log(`driver: ${doneLine}`);
      assert.equal(code, 0, `${prog.lines.join("\n")}\n${await prog.stderr}`);
      const received = readPcapFrames(await Deno.readFile(`${dir}/rx.pcap`));
      assert.equal(received.length, FRAMES);
      for (let i = 0; i < FRAMES; i++) assert.ok(equalBytes(received[i], toDriver[i]), `rx ${i}`);
      await bed.waitPcapTx(0, FRAMES, 30000);
      const [sent] = await bed.outputFrames(0);
      assert.equal(sent.length, FRAMES);
      for (let i = 0; i < FRAMES; i++) assert.ok(equalBytes(sent[i], fromDriver[i]), `tx ${i}`);
      for (const s of await bed.stats()) {
        assert.equal(s.fwdTxDropped + s.rxMissed + s.rxErrors, 0, `${s.name}: losses`);
      }
      const done = JSON.parse(doneLine);
      console.log(
        `notifications: ${done.txKicks + done.rxKicks} for ${2 * FRAMES} frames (suppressed: ${
          done.txKicksSuppressed + done.rxKicksSuppressed
        })`,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "vhost-user: a frame from the back-end signals the call eventfd and wakes waitRx; suppressed, nothing comes",
  ignore: !isRoot,
  async fn() {
    const [frame] = testFrames({ seed: 43, count: 1 });
    await using bed = await VhostUserBed.start({ vhostPorts: 1, pcap: { in: [[[frame]]] } });
    const port = openPort(`vhost-user:${bed.socket(0)}`);
    try {
      const irq = port.enableRxInterrupts(0);
      assert.equal(irq.vector, -1, "vhost-user has no vectors");
      const woke = irq.waitRxAsync(10000); // blocks in poll(2) on the call eventfd
      await bed.startForwarding(); // only now does testpmd read the pcap
      assert.equal(await woke, true);
      assert.equal(irq.wakeups + irq.alreadyPending, 1, "woken by the frame");
      const bufs = new Uint32Array(32), lens = new Uint32Array(32);
      assert.equal(port.rx(0).rxBurst(bufs, lens, 32), 1);
      const at = port.frameOffset(bufs[0]);
      assert.ok(equalBytes(port.pool.data.slice(at, at + lens[0]), frame), "the frame sent");
      port.pool.free(bufs[0]);
      port.rx(0).refill();
      // Nothing more comes: the wait ends at its timeout, and no signal arrived meanwhile.
      assert.equal(await irq.waitRxAsync(300), false);
      assert.equal(irq.timeouts, 1);
      irq.close();
    } finally {
      port.close();
    }
  },
});

/**
 * Sends `frames` from `from`'s queue pairs (flow f on pair f % pairs) while receiving on
 * `to`'s, until every frame arrived or `timeoutMs` passed; returns what arrived per pair.
 */
function exchange(
  from: VirtioNetPort,
  to: VirtioNetPort,
  frames: Uint8Array[],
  flows: number,
  timeoutMs: number,
): Uint8Array[][] {
  const pairs = from.queuePairs;
  const queued: Uint8Array[][] = Array.from({ length: pairs }, () => []);
  frames.forEach((f, i) => queued[(i % flows) % pairs].push(f));
  const next = new Array(pairs).fill(0);
  const got: Uint8Array[][] = Array.from({ length: pairs }, () => []);
  const bufs = new Uint32Array(32), lens = new Uint32Array(32);
  const deadline = performance.now() + timeoutMs;
  let arrived = 0;
  while (arrived < frames.length && performance.now() < deadline) {
    for (let q = 0; q < pairs; q++) {
      const tx = from.tx(q);
      tx.reclaim();
      let n = 0;
      while (n < 32 && next[q] < queued[q].length) {
        const b = from.pool.alloc();
        if (b === NO_BUFFER) break;
        const f = queued[q][next[q]];
        from.pool.data.set(f, from.frameOffset(b));
        bufs[n] = b;
        lens[n++] = f.length;
        next[q]++;
      }
      const sent = tx.txBurst(bufs, lens, n);
      for (let i = sent; i < n; i++) from.pool.free(bufs[i]);
      next[q] -= n - sent;
      const rx = to.rx(q);
      const m = rx.rxBurst(bufs, lens, 32);
      for (let i = 0; i < m; i++) {
        const at = to.frameOffset(bufs[i]);
        got[q].push(to.pool.data.slice(at, at + lens[i]));
        to.pool.free(bufs[i]);
      }
      arrived += m;
      rx.refill();
    }
  }
  return got;
}

Deno.test({
  name:
    "vhost-user: two ports × 2 queue pairs through testpmd, 10,000 frames each way, every flow in order",
  ignore: !isRoot,
  async fn() {
    await using bed = await VhostUserBed.start({ vhostPorts: 2, queues: 2 });
    const fds0 = fdCount(); // after the bed's own
    const a = openPort(`vhost-user:${bed.socket(0)}`, { queuePairs: 2 });
    const b = openPort(`vhost-user:${bed.socket(1)}`, { queuePairs: 2 });
    try {
      assert.equal(a.queuePairs, 2);
      assert.deepEqual([...a.config.mac].slice(0, 1), [0x02], "a locally administered MAC");
      assert.notDeepEqual(a.config.mac, b.config.mac, "each port its own default MAC");
      await bed.startForwarding();
      const flows = 16;
      for (const [from, to, seed] of [[a, b, 51], [b, a, 52]] as const) {
        const frames = udpFrames({ seed, count: FRAMES, flows });
        const got = exchange(from, to, frames, flows, 30000);
        assert.equal(got.flat().length, FRAMES, `${from.name} → ${to.name}`);
        // testpmd forwards queue q to queue q: each pair carries its own flows, in order.
        const bySeq = new Map(frames.map((f) => [parseUdpTestFrame(f)!.seq, f]));
        for (const [q, list] of got.entries()) {
          assert.ok(list.length > FRAMES / 4, `queue pair ${q} carried ${list.length}`);
          const last = new Map<number, number>();
          for (const f of list) {
            const info = parseUdpTestFrame(f);
            assert.ok(info, "an intact test frame");
            assert.ok(equalBytes(f, bySeq.get(info.seq)!), `frame ${info.seq} differs`);
            assert.ok(info.seq > (last.get(info.flow) ?? -1), `flow ${info.flow} reordered`);
            last.set(info.flow, info.seq);
            assert.equal(info.flow % 2, q, `flow ${info.flow} on its pair`);
          }
        }
      }
      for (const s of await bed.stats()) {
        assert.equal(s.fwdTxDropped + s.rxMissed + s.rxErrors, 0, `${s.name}: losses`);
      }
    } finally {
      a.close();
      b.close();
    }
    assert.equal(fdCount(), fds0, "closing both ports closed every fd they opened");
    assert.deepEqual(await bed.links(), [false, false], "the back-end saw both front-ends go");
  },
});

Deno.test({
  name:
    "vhost-user bad input: no back-end, wrong path, not a socket, more pairs than it has, killed mid-run",
  ignore: !isRoot,
  async fn() {
    await using bed = await VhostUserBed.start({ vhostPorts: 2, queues: 2 });
    const dir = await Deno.makeTempDir({ prefix: "vhbad-" });
    try {
      const fds0 = fdCount(); // after the bed's own (its pipes to testpmd)
      let msg = driverError(() => openPort(`vhost-user:${dir}/none.sock`), "TRANSPORT");
      console.log(msg);
      assert.match(msg, /none\.sock/);
      msg = driverError(() => openPort("vhost-user:relative.sock"), "BAD_ADDRESS");
      console.log(msg);
      await Deno.writeTextFile(`${dir}/file`, "");
      msg = driverError(() => openPort(`vhost-user:${dir}/file`), "TRANSPORT");
      console.log(msg);
      assert.equal(fdCount(), fds0, "failed opens leave no fd open");

      // DPDK 22.11 reports 128 queue pairs whatever it has: the name says how many.
      msg = driverError(
        () => openPort(`vhost-user:${bed.socket(0)}?queues=2`, { queuePairs: 4 }),
        "BAD_ARGUMENT",
      );
      console.log(msg);
      assert.match(msg, /max_virtqueue_pairs of 2/);
      assert.equal(fdCount(), fds0, "a refused open leaves no fd open");

      const before = openFds();
      const port = openPort(`vhost-user:${bed.socket(1)}`);
      const ours = [...openFds()].filter((fd) => !before.has(fd)); // socket, eventfds, memfd
      assert.ok(ours.length >= 5, `the port holds ${ours.length} fds`);
      port.checkHealthy();
      await bed.testpmd.kill(); // SIGKILL
      msg = driverError(() => port.checkHealthy(), "TRANSPORT");
      console.log(msg);
      assert.match(msg, /closed the connection/);
      port.close(); // a back-end that is gone: closing still releases everything
      const left = openFds();
      assert.deepEqual(ours.filter((fd) => left.has(fd)), [], "closing left no fd of the port");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
