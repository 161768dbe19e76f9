/**
 * l2fwd start/SIGINT soak in the vhost-user bed (tests/bed/vhost_user_bed.ts): examples/
 * l2fwd.ts started 50 times (`deno task soak`; 5 otherwise) on two vhost-user ports, each
 * time stopped with SIGINT once it printed its port lines. Every run exits 0 with its
 * summary; afterwards no l2fwd process is left, testpmd holds what it held (fds, the
 * memfds it maps while a front-end is connected, memory), no file is left behind in
 * /dev/shm, /dev/hugepages, the bed's directory or l2fwd's TMPDIR, and the back-end still
 * forwards: a last l2fwd moves 1,000 frames through it.
 *
 * Needs root (huge pages) and the DPDK packages of tools/setup.sh.
 * Run: `deno test --allow-all tests/soak/l2fwd_cycles_test.ts`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { udpFrames } from "../bed/frames.ts";
import { startHostL2fwd } from "../bed/host_l2fwd.ts";
import { HUGEPAGE_DIR, VhostUserBed } from "../bed/vhost_user_bed.ts";
import { summaryOf } from "../l2fwd_checks.ts";
import { RSS_TOLERANCE_KIB } from "./cycle_report.ts";
import { formatResources, readResources, type Resources } from "./process_resources.ts";
import { soakLength } from "./soak_length.ts";

const CYCLES = soakLength(50, 5);
/** The first run is not compared: testpmd allocates for its first front-end once. */
const WARMUP = 1;
const FRAMES = 1000;

/** Waits until testpmd saw both front-ends go (it notices on its own event thread). */
async function waitLinksDown(bed: VhostUserBed): Promise<void> {
  const deadline = performance.now() + 5000;
  const vhost = [bed.vhostPort(0), bed.vhostPort(1)];
  for (;;) {
    const links = await bed.links();
    if (!vhost.some((p) => links[p])) return;
    if (performance.now() > deadline) throw new Error("testpmd still sees l2fwd after 5 s");
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The entries of `dir`, sorted ("" for a directory that does not exist). */
function entries(dir: string): string[] {
  try {
    return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
  } catch {
    return [];
  }
}

/** PIDs of processes whose command line names l2fwd and `marker` (this bed's directory). */
function l2fwdProcesses(marker: string): number[] {
  const pids: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const cmd = Deno.readTextFileSync(`/proc/${e.name}/cmdline`);
      if (cmd.includes("examples/l2fwd.ts") && cmd.includes(marker)) pids.push(Number(e.name));
    } catch { /* exited meanwhile */ }
  }
  return pids;
}

Deno.test({
  name:
    `l2fwd in the vhost-user bed: ${CYCLES} start/SIGINT cycles each exit 0 with a summary, leave no process, file or testpmd resource behind, and the back-end still forwards`,
  ignore: Deno.uid() !== 0,
  async fn() {
    const frames = udpFrames({ seed: 71, count: FRAMES, flows: 8 });
    await using bed = await VhostUserBed.start({ vhostPorts: 2, pcap: { in: [[frames]] } });
    const ports = { portName: (i: number) => `vhost-user:${bed.socket(i)}` };
    const tmp = await Deno.makeTempDir({ prefix: "l2fwd-soak-" });
    try {
      const watched = ["/dev/shm", HUGEPAGE_DIR, bed.dir, tmp];
      const filesBefore = watched.map(entries);
      let backendWarm: Resources | null = null;
      let startMs = 0, stopMs = 0;
      const t0 = performance.now();
      for (let i = 0; i < WARMUP + CYCLES; i++) {
        if (i === WARMUP) backendWarm = readResources(bed.testpmd.pid);
        const t = performance.now();
        // Resolves once l2fwd printed its port lines: it forwards from then on.
        const run = await startHostL2fwd(ports, [], [], "", { TMPDIR: tmp });
        if (i >= WARMUP) startMs += performance.now() - t;
        const r = await run.interrupt();
        if (i >= WARMUP) stopMs += r.stopMs;
        assert.equal(r.code, 0, `run ${i}: ${r.stderr}`);
        assert.doesNotMatch(r.stderr, /error/i, `run ${i}`);
        assert.match(r.stderr, /port 0: .*\nport 1: /, `run ${i}: its port lines`);
        const s = summaryOf(r.stdout);
        assert.deepEqual(s.ports.map((p) => p.port), [0, 1], `run ${i}: the summary's ports`);
        await waitLinksDown(bed);
      }
      const secs = (performance.now() - t0) / 1000;
      const backendAfter = readResources(bed.testpmd.pid);
      console.log(
        `l2fwd: ${CYCLES} start/SIGINT cycles after ${WARMUP} warm-up in ${secs.toFixed(1)} s; ` +
          `start to port lines ${(startMs / CYCLES).toFixed(0)} ms, SIGINT to exit ${
            (stopMs / CYCLES).toFixed(0)
          } ms on average`,
      );
      console.log(`  testpmd warm  ${formatResources(backendWarm!)}`);
      console.log(`  testpmd after ${formatResources(backendAfter)}`);

      assert.deepEqual(l2fwdProcesses(bed.dir), [], "no l2fwd process left");
      for (
        const f of ["fds", "memfds", "eventfds", "sockets", "driverMaps", "hugetlbKiB"] as const
      ) {
        assert.equal(backendAfter[f], backendWarm![f], `testpmd's ${f}`);
      }
      assert.ok(backendAfter.rssKiB - backendWarm!.rssKiB <= RSS_TOLERANCE_KIB, "testpmd's RSS");
      const filesAfter = watched.map(entries);
      for (const [k, dir] of watched.entries()) {
        assert.deepEqual(filesAfter[k], filesBefore[k], `files in ${dir}`);
      }
      console.log(`  files: ${watched.map((d, k) => `${d} ${filesAfter[k].length}`).join(", ")}`);

      // The back-end still works: a last l2fwd forwards pcap0 → vhost0 → vhost1 → pcap1.
      const run = await startHostL2fwd(ports, [], [], "", { TMPDIR: tmp });
      await bed.startForwarding();
      await bed.waitPcapTx(1, FRAMES, 30000);
      const r = await run.interrupt();
      assert.equal(r.code, 0, r.stderr);
      const s = summaryOf(r.stdout);
      assert.equal(s.ports[0].rxPackets, FRAMES, "the last l2fwd received every frame");
      assert.equal(s.ports[1].txPackets, FRAMES, "and sent every one");
      assert.equal((await bed.outputFrames(1)).flat().length, FRAMES);
      console.log(`  last run forwarded ${FRAMES} of ${FRAMES} frames`);
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
