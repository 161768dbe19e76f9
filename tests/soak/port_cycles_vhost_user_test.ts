/**
 * Leak soak in the vhost-user bed (tests/bed/vhost_user_bed.ts): two ports × two queue
 * pairs opened and closed 200 times (`deno task soak`; 20 otherwise), frames forwarded
 * through testpmd from one to the other in every cycle and receive interrupts routed in
 * every other one. The driver's process and testpmd's hold the same after as before.
 *
 * Needs root (huge pages) and the DPDK packages of tools/setup.sh.
 * Run: `deno test --allow-all tests/soak/port_cycles_vhost_user_test.ts`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { VhostUserBed } from "../bed/vhost_user_bed.ts";
import { assertNoLeak, printReport, RSS_TOLERANCE_KIB } from "./cycle_report.ts";
import { formatResources, readResources, type Resources } from "./process_resources.ts";
import { runCycles } from "./run_cycles.ts";
import { soakLength } from "./soak_length.ts";

const CYCLES = soakLength(200, 20);
const WARMUP = 10;

/** Waits until testpmd saw both front-ends go (it notices on its own event thread). */
async function waitLinksDown(bed: VhostUserBed): Promise<void> {
  const deadline = performance.now() + 5000;
  while ((await bed.links()).some((up) => up)) {
    if (performance.now() > deadline) throw new Error("testpmd still sees a front-end after 5 s");
    await new Promise((r) => setTimeout(r, 20));
  }
}

Deno.test({
  name:
    `vhost-user: ${CYCLES} open/close cycles of two ports leave fds, memfds, eventfds, DMA mappings, IOVAs and memory as they were, in the driver and in testpmd`,
  ignore: Deno.uid() !== 0,
  async fn() {
    await using bed = await VhostUserBed.start({ vhostPorts: 2, queues: 2 });
    // Forwarding runs throughout: each cycle's frames go through as soon as both links are up.
    await bed.startForwarding({ linkTimeoutMs: 0 });
    let backendWarm: Resources | null = null;
    const report = await runCycles([
      ...[0, 1].flatMap((i) => ["--port", `vhost-user:${bed.socket(i)}?queues=2`]),
      "--queues",
      "2",
      "--cycles",
      String(CYCLES),
      "--warmup",
      String(WARMUP),
      "--frames",
      "64",
    ], async (cycle) => {
      if (cycle !== WARMUP) return;
      await waitLinksDown(bed);
      backendWarm = readResources(bed.testpmd.pid);
    });
    printReport("vhost-user", report);
    assertNoLeak(report);

    await waitLinksDown(bed);
    const before = backendWarm!, after = readResources(bed.testpmd.pid);
    console.log(`  testpmd warm  ${formatResources(before)}`);
    console.log(`  testpmd after ${formatResources(after)}`);
    // The back-end maps each front-end's memfds while it is connected: all unmapped again.
    for (const f of ["fds", "memfds", "eventfds", "sockets", "driverMaps", "hugetlbKiB"] as const) {
      assert.equal(after[f], before[f], `testpmd's ${f}`);
    }
    assert.ok(after.rssKiB - before.rssKiB <= RSS_TOLERANCE_KIB, "testpmd's RSS");
    const s = await bed.stats();
    assert.ok(s[1].txPackets >= 64 * (CYCLES + WARMUP), "testpmd forwarded every cycle's frames");
  },
});
