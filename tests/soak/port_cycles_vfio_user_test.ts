/**
 * Leak soak in the vfio-user bed (tests/bed/vfio_user_bed.ts): a port with two queue
 * pairs opened and closed 200 times (`deno task soak`; 20 otherwise), each time against a
 * fresh QEMU server (it serves one client and exits when it leaves), transmitting frames
 * in every cycle and routing receive interrupts (MSI-X → eventfd) in every other one. The
 * driver's process holds the same after as before: the memfds it shared with DMA_MAP and
 * the eventfds it passed with SET_IRQS are closed with the port.
 *
 * Needs root and QEMU's vfio-user server (tools/build_bed_qemu.sh).
 * Run: `deno test --allow-all tests/soak/port_cycles_vfio_user_test.ts`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { VfioUserBed } from "../bed/vfio_user_bed.ts";
import { assertNoLeak, printReport } from "./cycle_report.ts";
import { runCycles } from "./run_cycles.ts";
import { soakLength } from "./soak_length.ts";

const CYCLES = soakLength(200, 20);
const WARMUP = 10;

Deno.test({
  name:
    `vfio-user: ${CYCLES} open/close cycles of a port, each against a fresh server, leave fds, memfds, eventfds, DMA mappings, IOVAs and memory as they were`,
  ignore: Deno.uid() !== 0,
  async fn() {
    await using bed = await VfioUserBed.start({ ports: 1, queues: 2 });
    let restarts = 0;
    const report = await runCycles([
      "--port",
      bed.portName(0),
      "--queues",
      "2",
      "--cycles",
      String(CYCLES),
      "--warmup",
      String(WARMUP),
      "--frames",
      "64",
    ], async (cycle) => {
      if (cycle === 0) return; // start() started the first server
      // The previous client left: its server exits by itself, having unmapped its DMA.
      assert.ok(await bed.waitExit(0, 10000), `server of cycle ${cycle - 1} still runs`);
      await bed.restart(0);
      restarts++;
    });
    printReport("vfio-user", report);
    assertNoLeak(report);
    assert.ok(await bed.waitExit(0, 10000), "the last server exited once the port closed");
    assert.equal(restarts, CYCLES + WARMUP - 1);
  },
});
