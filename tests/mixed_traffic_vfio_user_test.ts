/**
 * Mixed traffic through l2fwd in the vfio-user bed (QEMU's vfio-user server, driver on the
 * host; issue 10): two ports with 4 queue pairs and RSS, and for 1, 2 and 4 queue pairs
 * 3,000 mixed frames (untagged and 802.1Q-tagged IPv4 UDP/TCP, IPv6, ARP, 60–1514 B, 600
 * flows) sent at 2,000/s into port 0 and captured out of port 1, through l2fwd with its
 * default steering and, with several pairs, `--steering rss`: every frame byte for byte,
 * no flow reordered. DPDK has no vfio-user client, so this bed has no testpmd reference:
 * the VM bed's test (tests/mixed_traffic_vm_test.ts) compares with it; here any reorder
 * fails. Each run prints one `MIXED {json}` line (tools/mixed_runs.sh adds them up;
 * MIXED_RUN numbers the run and picks the frames).
 *
 * Needs root and QEMU's vfio-user server (tools/build_bed_qemu.sh).
 * Run: `deno test --allow-all tests/mixed_traffic_vfio_user_test.ts`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { mixedFrames } from "./bed/mixed_frames.ts";
import { VfioUserBed } from "./bed/vfio_user_bed.ts";
import { startHostL2fwd } from "./bed/host_l2fwd.ts";
import { summaryOf } from "./l2fwd_checks.ts";
import { countMixed, mixedLine, mixedPlan, sendMixed } from "./mixed_checks.ts";

const { run: RUN, count: COUNT, flows: FLOWS, rate: RATE, queues: QUEUES } = mixedPlan();
/** The MAC QEMU gives the bed's port 0. */
const MAC0 = "52:54:00:12:34:56";
const isRoot = Deno.uid() === 0;

/** l2fwd on the host with `--allow-ffi` only; resolves once both ports are up. */
async function startL2fwd(bed: VfioUserBed, args: string[]) {
  const run = await startHostL2fwd(bed, args);
  return {
    async stop() {
      const r = await run.interrupt();
      assert.equal(r.code, 0, `l2fwd exited ${r.code}: ${r.stderr.trim().slice(-1500)}`);
      return summaryOf(r.stdout);
    },
  };
}

Deno.test({
  name: "mixed traffic through l2fwd, 1, 2 and 4 queue pairs, vfio-user bed",
  ignore: !isRoot,
  async fn(t) {
    await using bed = await VfioUserBed.start({ ports: 2, queues: 4, nicProps: "rss=on" });
    for (const q of QUEUES) {
      await t.step(`--queues ${q}: every frame byte for byte, no flow reordered`, async () => {
        const frames = mixedFrames({ seed: 2000 * RUN + q, count: COUNT, flows: FLOWS, dst: MAC0 });
        const modes: [string, string[]][] = [["l2fwd", []]];
        if (q > 1) modes.push(["l2fwd-rss", ["--steering", "rss"]]);
        for (const [name, extra] of modes) {
          // QEMU's vfio-user server takes one client and exits when it leaves.
          await bed.restart(0);
          await bed.restart(1);
          const l2 = await startL2fwd(bed, ["--queues", String(q), ...extra]);
          const pass = await sendMixed(bed, frames, RATE).catch(async (e) => {
            await l2.stop().catch(() => {}); // l2fwd holds the servers
            throw e;
          });
          const s = await l2.stop();
          const c = countMixed(frames, pass.out);
          console.log(mixedLine({
            bed: "vfio-user",
            run: RUN,
            forwarder: name,
            queues: q,
            ...c,
            hostDrops: pass.sent.dropped,
            captureDrops: pass.captureDrops,
            perQueue: s.ports[0].queues.map((x) => x.rxPackets),
          }));
          if (pass.captureEnd) console.log(`  capture: ${pass.captureEnd}`);
          const qemu = [0, 1].map((n) => bed.serverLog(n)).filter((l) => l).join("\n");
          assert.equal(pass.sent.dropped, 0, "the host dropped frames on their way to port 0");
          assert.equal(
            c.identical,
            COUNT,
            `${name}: ${c.identical} of ${COUNT} frames byte for byte; l2fwd: port 0 rx ${
              s.ports[0].rxPackets
            }, port 1 tx ${s.ports[1].txPackets}${qemu ? `; QEMU: ${qemu}` : ""}`,
          );
          assert.equal(c.missing + c.differing + c.duplicated + c.foreign, 0, JSON.stringify(c));
          assert.equal(c.reordered, 0, `${name} reordered: ${c.examples.join("; ")}`);
          assert.equal(s.ports[0].rxPackets, COUNT);
          assert.equal(s.ports[1].txPackets, COUNT);
        }
      });
    }
  },
});
