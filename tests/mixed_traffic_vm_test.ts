/**
 * Mixed traffic through l2fwd in the VM bed (kernel VFIO), with DPDK's testpmd on the same
 * NICs as the reference (issue 10): two NICs with 4 queue pairs and RSS, and for 1, 2 and
 * 4 queue pairs 3,000 mixed frames (untagged and 802.1Q-tagged IPv4 UDP/TCP, IPv6, ARP,
 * 60–1514 B, 600 flows) sent at 2,000/s into NIC 0 and captured out of NIC 1, through
 * testpmd (io forwarding), l2fwd (default steering) and, with several pairs, l2fwd with
 * `--steering rss`: every frame must come out of l2fwd byte for byte, and no flow
 * reordered of a kind testpmd kept in order with the same frames; reorders testpmd shows
 * too are printed as the host's. Each forwarder run prints one `MIXED {json}` line with
 * its counts (tools/mixed_runs.sh adds them up over runs; MIXED_RUN numbers the run and
 * picks the frames).
 *
 * Needs root, QEMU, a Debian kernel and DPDK (tools/setup.sh installs them).
 * Run: `deno test --allow-all tests/mixed_traffic_vm_test.ts`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { mixedFrames } from "./bed/mixed_frames.ts";
import { startTestpmd } from "./bed/testpmd.ts";
import { shellQuote, VmBed } from "./bed/vm.ts";
import { summaryOf } from "./l2fwd_checks.ts";
import {
  countMixed,
  type MixedCount,
  mixedLine,
  type MixedPass,
  mixedPlan,
  reordersNotInReference,
  sendMixed,
} from "./mixed_checks.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const { run: RUN, count: COUNT, flows: FLOWS, rate: RATE, queues: QUEUES } = mixedPlan();
const isRoot = Deno.uid() === 0;

/** Starts l2fwd in the guest; resolves once both ports are up. */
async function startL2fwd(bed: VmBed, args: string[]) {
  const cmd = [
    "deno run --quiet --allow-ffi",
    shellQuote(`${ROOT}/examples/l2fwd.ts`),
    "--bind --stats json",
    ...args.map(shellQuote),
    bed.nicAddress(0),
    bed.nicAddress(1),
  ].join(" ");
  const p = await bed.spawn(`${cmd} & pid=$!; echo "l2fwd pid $pid" >&2; wait $pid`);
  await p.waitForOutput(/port 1: /, 120000, "stderr");
  const pid = (await p.stderr()).match(/l2fwd pid (\d+)/)![1];
  return {
    async stop() {
      await bed.exec(`kill -INT ${pid}`);
      const r = await p.wait(30000);
      assert.equal(r.code, 0, `l2fwd exited ${r.code}: ${r.stderr.trim().slice(-1500)}`);
      return summaryOf(r.stdout);
    },
  };
}

/** A rejection handler that stops `fwd` (ignoring how that goes) and rethrows. */
function stopAnd(fwd: { stop(): Promise<unknown> }): (e: unknown) => Promise<never> {
  return async (e) => {
    await fwd.stop().catch(() => {});
    throw e;
  };
}

/** Counts one pass, prints its line and returns the counts. */
function report(
  forwarder: string,
  queues: number,
  frames: Uint8Array[],
  pass: MixedPass,
  perQueue: number[],
): MixedCount {
  const c = countMixed(frames, pass.out);
  console.log(mixedLine({
    bed: "vm",
    run: RUN,
    forwarder,
    queues,
    ...c,
    hostDrops: pass.sent.dropped,
    captureDrops: pass.captureDrops,
    perQueue,
  }));
  if (pass.captureEnd) console.log(`  capture: ${pass.captureEnd}`);
  return c;
}

/** What a product run must show against the reference run of the same frames. */
function assertProduct(name: string, c: MixedCount, pass: MixedPass, ref: MixedCount): void {
  assert.equal(pass.sent.dropped, 0, `the host dropped frames on their way to NIC 0`);
  assert.equal(c.identical, COUNT, `${name}: ${c.identical} of ${COUNT} frames byte for byte`);
  assert.equal(c.missing + c.differing + c.duplicated + c.foreign, 0, JSON.stringify(c));
  const own = reordersNotInReference(c.reorderedByKind, ref.reorderedByKind);
  assert.deepEqual(
    own,
    [],
    `${name} reordered flows of kinds testpmd kept in order (${own.join(", ")}): ${
      c.examples.join("; ")
    }`,
  );
  if (c.reordered > 0) {
    console.log(
      `  ${name}: ${c.reordered} reordered, of kinds testpmd reordered too with the same ` +
        `frames (${ref.reordered}): the host's, not the driver's`,
    );
  }
}

Deno.test({
  name: "mixed traffic through l2fwd and DPDK testpmd, 1, 2 and 4 queue pairs, VM bed",
  ignore: !isRoot,
  async fn(t) {
    // 256 huge pages: testpmd's pool (in-memory, memfd); l2fwd takes what is left or
    // ordinary pages. rss=on: testpmd and `--steering rss` spread flows by Toeplitz hash.
    const bed = await VmBed.start({ nics: 2, queuePairs: 4, hugepages: 256, nicProps: "rss=on" });
    try {
      const mod = await bed.exec("modprobe vfio-pci && modprobe vfio_iommu_type1");
      assert.equal(mod.code, 0, mod.stderr);
      for (const q of QUEUES) {
        await t.step(`--queues ${q}: every frame byte for byte, no flow reordered`, async () => {
          const frames = mixedFrames({
            seed: 1000 * RUN + q,
            count: COUNT,
            flows: FLOWS,
            dst: bed.nicMac(0),
          });
          const tp = await startTestpmd(bed, {
            ports: [bed.nicAddress(0), bed.nicAddress(1)],
            queues: q,
          });
          // Stopped whatever happens: a running testpmd holds the NICs.
          const tpPass = await sendMixed(bed, frames, RATE).catch(stopAnd(tp));
          const { stats } = await tp.stop();
          const tpQueues = q === 1
            ? [stats.ports[0].rxPackets]
            : stats.streams.filter((s) => s.rxPort === 0).map((s) => s.rxPackets);
          const ref = report("testpmd", q, frames, tpPass, tpQueues);

          const modes: [string, string[]][] = [["l2fwd", []]];
          if (q > 1) modes.push(["l2fwd-rss", ["--steering", "rss"]]);
          for (const [name, extra] of modes) {
            const l2 = await startL2fwd(bed, ["--queues", String(q), ...extra]);
            const pass = await sendMixed(bed, frames, RATE).catch(stopAnd(l2));
            const s = await l2.stop();
            const c = report(name, q, frames, pass, s.ports[0].queues.map((x) => x.rxPackets));
            assertProduct(name, c, pass, ref);
            assert.equal(s.ports[0].rxPackets, COUNT, `${name} received ${s.ports[0].rxPackets}`);
            assert.equal(s.ports[1].txPackets, COUNT, `${name} sent ${s.ports[1].txPackets}`);
          }
        });
      }
    } finally {
      await bed.close();
    }
  },
});
