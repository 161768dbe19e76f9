/**
 * Overload in the vhost-user bed (issue 13, item 3): DPDK's testpmd generates frames into
 * both ports as fast as its core can (`flowgen`) without retrying, so what l2fwd has no
 * receive buffer for, testpmd drops, for 60 s under `deno task soak` (5 s in CI). l2fwd
 * must keep running and its memory, account for every frame (what testpmd put into a port
 * was received by l2fwd and then transmitted or dropped with a reason, and everything it
 * transmitted reached testpmd), and once testpmd retries instead of dropping (vhost-user's
 * lossless use: the load is what l2fwd takes) no frame may be lost anywhere.
 *
 * Needs root (huge pages) and the DPDK packages of tools/setup.sh.
 *
 * @module
 */

import assert from "node:assert/strict";
import { startHostL2fwd } from "../bed/host_l2fwd.ts";
import { VhostUserBed } from "../bed/vhost_user_bed.ts";
import { summaryOf } from "../l2fwd_checks.ts";
import {
  assertForwardedOrDropped,
  assertMemoryHeld,
  dropsOf,
  lastStats,
  memoryReport,
  quiet,
  rss,
} from "./overload_checks.ts";
import { soakLength } from "./soak_length.ts";

const OVERLOAD_S = soakLength(60, 5);
/** How long testpmd generates with retries after the overload. */
const CALM_S = 3;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test({
  name:
    "l2fwd overloaded in the vhost-user bed keeps forwarding and its memory, counts every frame, and loses none once the back-end retries",
  ignore: Deno.uid() !== 0,
  async fn() {
    await using bed = await VhostUserBed.start({ vhostPorts: 2 });
    const run = await startHostL2fwd({ portName: (i) => `vhost-user:${bed.socket(i)}` }, []);
    const pid = run.child.pid;
    /** Runs testpmd commands, each answer checked against `ok`. */
    const testpmd = async (...lines: [string, RegExp][]) => {
      for (const [line, ok] of lines) {
        const a = await bed.command(line);
        assert.match(a, ok, `testpmd "${line}" answered: ${a}`);
      }
    };
    try {
      for (const i of [0, 1]) await bed.waitLinkUp(i);
      await bed.clearStats();
      // Overload: flowgen sends 64-byte frames into both ports, dropping what does not fit.
      // Memory is measured from the end of the first second (warm-up) to the end.
      await testpmd(
        ["set txpkts 64", /^\s*$|64/],
        ["set fwd flowgen", /flowgen/],
        ["start", /flow-gen|flowgen/i],
      );
      await sleep(1000);
      const rssBefore = rss(pid);
      await sleep(OVERLOAD_S * 1000);
      const rssAfter = rss(pid);
      await bed.stopForwarding();
      const overload = await bed.stats();
      await quiet(run.stdoutSoFar);
      const afterOverload = lastStats(run.stdoutSoFar())!;

      // Calm: testpmd retries until l2fwd takes each burst; nothing may be lost.
      await testpmd(
        ["set fwd flowgen retry", /flowgen.*retry|retry/i],
        ["set burst tx delay 10 retry 100000", /^\s*$|retry/i],
        ["start", /flow-gen|flowgen/i],
      );
      await sleep(CALM_S * 1000);
      await bed.stopForwarding();
      const calm = await bed.stats();

      // Drain: testpmd only receives, so whatever l2fwd still holds reaches it.
      await testpmd(["set fwd rxonly", /rxonly/], ["start", /rxonly/i]);
      await quiet(run.stdoutSoFar);
      await bed.stopForwarding();
      const t = await bed.stats();
      const r = await run.interrupt();
      assert.equal(r.code, 0, `l2fwd ended with ${r.code}: ${r.stderr}`);
      const s = summaryOf(r.stdout);
      const v = [bed.vhostPort(0), bed.vhostPort(1)];

      const refused = overload[v[0]].fwdTxDropped + overload[v[1]].fwdTxDropped;
      const calmRx = s.ports.reduce(
        (n, p, i) => n + p.rxPackets - afterOverload.ports[i].rxPackets,
        0,
      );
      console.log(
        `overload ${OVERLOAD_S} s: testpmd put ${overload[v[0]].fwdTxPackets} + ` +
          `${overload[v[1]].fwdTxPackets} frames into ports 0 + 1 and dropped ${refused} for ` +
          `want of receive buffers; calm ${CALM_S} s: l2fwd received ${calmRx}, testpmd dropped ` +
          `${calm[v[0]].fwdTxDropped + calm[v[1]].fwdTxDropped}; in all l2fwd rx ${
            s.ports.map((p) => p.rxPackets).join(" + ")
          }, tx ${s.ports.map((p) => p.txPackets).join(" + ")}, drops ${
            JSON.stringify(s.ports.map(dropsOf))
          }; ${memoryReport(s, rssBefore, rssAfter)}`,
      );
      // It was overloaded: testpmd found the ports without receive buffers.
      assert.ok(refused > 0, "testpmd dropped nothing: no overload happened");
      for (const [inn, out] of [[0, 1], [1, 0]]) {
        // What testpmd put into a port, l2fwd received; it left by the other or was dropped;
        // what left reached testpmd.
        assert.equal(t[v[inn]].txPackets, s.ports[inn].rxPackets, `port ${inn}: testpmd's tx ≠ rx`);
        assertForwardedOrDropped(s, inn, out);
        assert.equal(t[v[out]].rxPackets, s.ports[out].txPackets, `port ${out}: tx ≠ testpmd's rx`);
      }
      assertMemoryHeld(s, rssBefore, rssAfter);
      // Calm: l2fwd forwarded, testpmd lost nothing into it, l2fwd dropped nothing more.
      assert.ok(calmRx > 0, "l2fwd received nothing while calm");
      assert.equal(
        calm[v[0]].fwdTxDropped + calm[v[1]].fwdTxDropped,
        0,
        "testpmd dropped while calm",
      );
      for (const [i, p] of s.ports.entries()) {
        assert.deepEqual(
          dropsOf(p),
          dropsOf(afterOverload.ports[i]),
          `port ${i} dropped while calm`,
        );
      }
    } finally {
      try {
        run.child.kill("SIGKILL");
      } catch { /* exited */ }
    }
  },
});
