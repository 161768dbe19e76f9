/**
 * l2fwd --reconnect against DPDK's vhost-user back-end (issue 13, item 1): the back-end is
 * killed mid-traffic and started again on the same sockets, as a crashed back-end that is
 * restarted is; l2fwd reports it, resets and reopens both ports, forwards the back-end's
 * second run of traffic in full, and accounts for every frame it received across both
 * sessions (sent, or dropped with a reason, "dropsReset" for those lost to the reset).
 *
 * Needs root (huge pages) and the DPDK packages of tools/setup.sh.
 * Run: `deno test --allow-all tests/reconnect_vhost_user_test.ts`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { udpFrames } from "./bed/frames.ts";
import { startHostL2fwd } from "./bed/host_l2fwd.ts";
import { VhostUserBed } from "./bed/vhost_user_bed.ts";
import { assertEveryFrameAccounted } from "./link_checks.ts";
import { summaryOf } from "./l2fwd_checks.ts";

/** Frames the back-end sends into port 0 each time it starts (its pcap input). */
const N = 200_000;

/** l2fwd's JSON event lines of one kind. */
function events(stdout: string, name: string): Record<string, unknown>[] {
  return stdout.split("\n").filter((l) => l.startsWith(`{"event":"${name}"`)).map((l) =>
    JSON.parse(l)
  );
}

Deno.test({
  name: "l2fwd --reconnect rides out a vhost-user back-end killed mid-traffic and restarted",
  ignore: Deno.uid() !== 0,
  async fn() {
    await using bed = await VhostUserBed.start({
      vhostPorts: 2,
      pcap: { in: [[udpFrames({ seed: 71, count: N, flows: 64 })]] },
    });
    const ports = { portName: (i: number) => `vhost-user:${bed.socket(i)}` };
    const run = await startHostL2fwd(ports, ["--reconnect", "30"]);
    try {
      await bed.startForwarding();
      await bed.waitPcapTx(1, N / 4, 60000); // mid-traffic
      await bed.restartBackEnd();
      // l2fwd reconnects by itself; the new back-end sends its N frames once both links are up.
      await bed.startForwarding({ linkTimeoutMs: 40000 });
      await bed.waitPcapTx(1, N, 60000);
      const r = await run.interrupt();
      assert.equal(r.code, 0, r.stderr);
      const s = summaryOf(r.stdout);
      const [gone] = events(r.stdout, "reconnecting"), back = events(r.stdout, "reconnected");
      console.log(
        `reconnecting: ${JSON.stringify(gone)}; reconnected: ${JSON.stringify(back)}; port 0 ` +
          `received ${s.ports[0].rxPackets}, port 1 sent ${s.ports[1].txPackets}, lost to the ` +
          `reset ${s.ports[1].dropsReset}; drops ${
            JSON.stringify(s.ports.map((p) =>
              Object.fromEntries(
                Object.entries(p).filter(([k, v]) => k.startsWith("drops") && v),
              )
            ))
          }`,
      );
      assert.equal(events(r.stdout, "reconnecting").length, 1, "one reconnection");
      assert.match(String(gone.reason), /closed the connection|connection/i);
      // The summary names the fault (the event joins the sentences of every failing part).
      const first = s.faults?.[0]?.reason;
      assert.ok(first && String(gone.reason).startsWith(first), JSON.stringify(s.faults));
      assert.equal(back.length, 1);
      assert.ok(Number(back[0].downMs) >= 0);
      // Both sessions' counters: all of the second run, and at least the quarter of the first.
      assert.ok(s.ports[0].rxPackets >= N + N / 4, `port 0 received ${s.ports[0].rxPackets}`);
      assertEveryFrameAccounted(s as Parameters<typeof assertEveryFrameAccounted>[0]);
      // What the reset lost is at most what a worker holds: a ring and two bursts a port.
      const lost = s.ports.reduce(
        (n, p) => n + p.dropsReset,
        0,
      );
      assert.ok(lost <= 2 * (256 + 64), `${lost} frames lost to the reset`);
      assert.ok(s.workers.every((w) => w.state === "done"), JSON.stringify(s.workers));
    } finally {
      try {
        run.child.kill("SIGKILL");
      } catch { /* exited */ }
    }
  },
});
