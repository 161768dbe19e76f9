/**
 * Mixed traffic through l2fwd in the vhost-user bed (DPDK's testpmd as the back-end,
 * tests/bed/vhost_user_bed.ts): for 1, 2 and 4 queue pairs, the same 3,000 mixed frames as
 * in the other beds (untagged and 802.1Q-tagged IPv4 UDP/TCP, IPv6, ARP, 60–1514 B, 600
 * flows) fed from a pcap into port 0 (flow f on queue f mod N: testpmd forwards queue q to
 * queue q, it does no steering) and written out of port 1: every frame byte for byte, no
 * flow reordered. Prints one `MIXED {json}` line per pass (tools/mixed_runs.sh).
 *
 * Needs root (huge pages) and the DPDK packages of tools/setup.sh.
 * Run: `deno test --allow-all tests/mixed_traffic_vhost_user_test.ts`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { mixedFrames, parseMixedFrame } from "./bed/mixed_frames.ts";
import { startHostL2fwd } from "./bed/host_l2fwd.ts";
import { VhostUserBed } from "./bed/vhost_user_bed.ts";
import { summaryOf } from "./l2fwd_checks.ts";
import { countMixed, mixedLine, mixedPlan } from "./mixed_checks.ts";

const { run: RUN, count: COUNT, flows: FLOWS, queues: QUEUES } = mixedPlan();
const isRoot = Deno.uid() === 0;

Deno.test({
  name: "mixed traffic through l2fwd, 1, 2 and 4 queue pairs, vhost-user bed",
  ignore: !isRoot,
  async fn(t) {
    for (const q of QUEUES) {
      await t.step(`--queues ${q}: every frame byte for byte, no flow reordered`, async () => {
        const frames = mixedFrames({
          seed: 3000 * RUN + q,
          count: COUNT,
          flows: FLOWS,
          dst: "02:00:00:00:00:01",
        });
        const perQueue: Uint8Array[][] = Array.from({ length: q }, () => []);
        for (const f of frames) perQueue[parseMixedFrame(f)!.flow % q].push(f);
        await using bed = await VhostUserBed.start({
          vhostPorts: 2,
          queues: q,
          pcap: { in: [perQueue] },
        });
        const run = await startHostL2fwd(
          { portName: (i) => `vhost-user:${bed.socket(i)}?queues=${q}` },
          ["--queues", String(q)],
        );
        await bed.startForwarding();
        await bed.waitPcapTx(1, COUNT, 30000).catch(async (e) => {
          await run.interrupt().catch(() => {});
          throw e;
        });
        const r = await run.interrupt();
        assert.equal(r.code, 0, `l2fwd exited ${r.code}: ${r.stderr.trim().slice(-1500)}`);
        const s = summaryOf(r.stdout);
        const c = countMixed(frames, (await bed.outputFrames(1)).flat());
        console.log(mixedLine({
          bed: "vhost-user",
          run: RUN,
          forwarder: "l2fwd",
          queues: q,
          ...c,
          hostDrops: 0,
          captureDrops: 0,
          perQueue: s.ports[0].queues.map((x) => x.rxPackets),
        }));
        assert.equal(c.identical, COUNT, JSON.stringify(c));
        assert.equal(c.missing + c.differing + c.duplicated + c.foreign, 0, JSON.stringify(c));
        assert.equal(c.reordered, 0, `reordered: ${c.examples.join("; ")}`);
        assert.equal(s.ports[0].rxPackets, COUNT);
        assert.equal(s.ports[1].txPackets, COUNT);
      });
    }
  },
});
