/**
 * Proves the vhost-user bed without our driver: DPDK's own virtio-user front-end (a second
 * testpmd) connects to both vhost ports and forwards port A ⇄ port B, so the frames of the
 * bed's input pcap 0 come back in its output pcap 1 and those of input 1 in output 0.
 * Needs root (huge pages), the DPDK packages of tools/setup.sh and two CPUs.
 *
 * @module
 */

import assert from "node:assert/strict";
import { HUGEPAGE_DIR, type TestpmdSession, VhostUserBed } from "./vhost_user_bed.ts";
import { startDpdkFrontEnd } from "./dpdk_front_end.ts";
import { parseUdpTestFrame, udpFrames } from "./frames.ts";

const FRAMES = 10_000;
const isRoot = Deno.uid() === 0;
const FLOWS = 8;

/** DPDK's front-end in io forwarding with the same retry as the bed (lossless). */
async function startFrontEnd(bed: VhostUserBed): Promise<TestpmdSession> {
  const fe = await startDpdkFrontEnd(bed, { mode: "io retry" });
  const a = fe.output;
  assert.match(a, /io packet forwarding with retry/);
  return fe;
}

/** The frames of one direction: UDP flows, flow f on queue f % queues. */
function directionFrames(seed: number, queues: number): Uint8Array[][] {
  const all = udpFrames({ seed, count: FRAMES, flows: FLOWS });
  const perQueue: Uint8Array[][] = Array.from({ length: queues }, () => []);
  all.forEach((f, i) => perQueue[(i % FLOWS) % queues].push(f));
  return perQueue;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Sequence numbers per flow, in the order of `frames` (every frame must be a test frame). */
function seqsByFlow(frames: Uint8Array[]): Map<number, number[]> {
  const m = new Map<number, number[]>();
  for (const f of frames) {
    const info = parseUdpTestFrame(f);
    assert.ok(info, `a frame of ${f.length} bytes is not an intact UDP test frame`);
    const list = m.get(info.flow) ?? [];
    list.push(info.seq);
    m.set(info.flow, list);
  }
  return m;
}

function assertSameFrames(got: Uint8Array[][], sent: Uint8Array[][], what: string): void {
  assert.deepEqual(
    got.map((q) => q.length),
    sent.map((q) => q.length),
    `${what}: frames per queue`,
  );
  assert.deepEqual(seqsByFlow(got.flat()), seqsByFlow(sent.flat()), `${what}: per flow in order`);
  for (let q = 0; q < sent.length; q++) {
    for (let i = 0; i < sent[q].length; i++) {
      assert.ok(sameBytes(got[q][i], sent[q][i]), `${what}: queue ${q} frame ${i} differs`);
    }
  }
}

function alive(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

async function roundTrip(queues: number): Promise<void> {
  const in0 = directionFrames(1, queues), in1 = directionFrames(2, queues);
  const bed = await VhostUserBed.start({ vhostPorts: 2, queues, pcap: { in: [in0, in1] } });
  const pids = [bed.testpmd.pid];
  const prefixes = [bed.filePrefix];
  let fe: TestpmdSession | undefined;
  let feStatus: Deno.CommandStatus | undefined, beStatus: Deno.CommandStatus;
  try {
    assert.deepEqual(bed.portNames, ["pcap0", "vhost0", "vhost1", "pcap1"]);
    fe = await startFrontEnd(bed);
    pids.push(fe.pid);
    prefixes.push(/--file-prefix=(\S+)/.exec(fe.argv.join(" "))![1]);
    await bed.startForwarding();
    await bed.waitPcapTx(1, FRAMES, 30000);
    const stats = await bed.waitPcapTx(0, FRAMES, 30000);
    for (const s of stats) {
      assert.equal(s.fwdTxDropped, 0, `${s.name}: frames dropped after retries`);
      assert.equal(s.rxMissed + s.rxErrors + s.rxNoMbuf, 0, `${s.name}: receive losses`);
    }
    assert.equal(stats[bed.vhostPort(0)].txPackets, FRAMES, "vhost0 sent IN0 to the front-end");
    assert.equal(stats[bed.vhostPort(1)].rxPackets, FRAMES, "vhost1 got IN0 back");
    assertSameFrames(await bed.outputFrames(1), in0, "IN0 → vhost0 → front-end → vhost1 → OUT1");
    assertSameFrames(await bed.outputFrames(0), in1, "IN1 → vhost1 → front-end → vhost0 → OUT0");
  } finally {
    feStatus = await fe?.close();
    beStatus = await bed.close();
  }
  // After the try, so that a failure inside it is the one reported.
  assert.equal(beStatus.code, 0, `back-end exit: ${bed.testpmd.stderrTail()}`);
  if (feStatus) assert.equal(feStatus.code, 0, `front-end exit: ${fe!.stderrTail()}`);
  // Nothing left behind.
  for (const pid of pids) assert.ok(!alive(pid), `process ${pid} still runs`);
  assert.throws(() => Deno.statSync(bed.dir), Deno.errors.NotFound, "bed directory left");
  const pages = [...Deno.readDirSync(HUGEPAGE_DIR)].map((e) => e.name);
  for (const p of prefixes) {
    assert.deepEqual(pages.filter((n) => n.startsWith(p)), [], `huge page files of ${p}`);
    assert.throws(() => Deno.statSync(`/var/run/dpdk/${p}`), Deno.errors.NotFound);
  }
}

Deno.test({
  name:
    "vhost-user bed: 10,000 frames each way come back through DPDK's virtio-user front-end, every flow in order (1 queue)",
  ignore: !isRoot,
}, async () => {
  await roundTrip(1);
});

Deno.test({
  name:
    "vhost-user bed: 10,000 frames each way come back through DPDK's virtio-user front-end, every flow in order (2 queues)",
  ignore: !isRoot,
}, async () => {
  await roundTrip(2);
});

Deno.test({
  name:
    "vhost-user bed: ports are numbered pcap0, vhost0, vhost1, pcap1 and vhost links are down until a front-end connects",
  ignore: !isRoot,
}, async () => {
  await using bed = await VhostUserBed.start({ vhostPorts: 2, pcap: {} });
  assert.deepEqual(
    [bed.pcapPort(0), bed.vhostPort(0), bed.vhostPort(1), bed.pcapPort(1)],
    [0, 1, 2, 3],
  );
  assert.deepEqual(await bed.links(), [true, false, false, true]);
  await assert.rejects(bed.waitLinkUp(0, 200), /link not up/);
});

Deno.test({
  name: "vhost-user bed: a testpmd that fails to start is reported with its stderr",
  ignore: !isRoot,
}, async () => {
  await assert.rejects(
    VhostUserBed.start({ vhostPorts: 1, pcap: { in: ["/nonexistent/in.pcap"] } }),
    /testpmd has ports \[net_vhost0\], expected \[net_pcap0,net_vhost0\][\s\S]*Couldn't open \/nonexistent\/in\.pcap/,
  );
});
