/**
 * Leak soak through kernel VFIO, in the VM bed (tests/bed/vm.ts): inside the guest, where
 * VFIO and the IOMMU are, a port with two queue pairs is opened and closed 200 times
 * (`deno task soak`; 10 otherwise) with `--bind --restore-driver`, so each cycle takes the
 * function from virtio-pci, maps its DMA memory through the IOMMU, transmits frames, routes
 * receive interrupts (MSI-X → eventfd) every other cycle, and hands it back. The guest
 * process holds the same after as before: no container, group or device fd, no memory
 * pinned for the IOMMU (VmLck), and the function is on virtio-pci again.
 *
 * Needs root, QEMU and a Debian kernel (tools/setup.sh installs them).
 * Run: `deno test --allow-all tests/soak/port_cycles_vm_test.ts`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { lastJson } from "../bed/guest_run.ts";
import { shellQuote, VmBed } from "../bed/vm.ts";
import { assertNoLeak, type CycleReport, printReport } from "./cycle_report.ts";
import { formatResources, readResources } from "./process_resources.ts";
import { cycleProgramArgs } from "./run_cycles.ts";
import { soakLength } from "./soak_length.ts";

const CYCLES = soakLength(200, 10);
const WARMUP = 10;

Deno.test({
  name:
    `kernel VFIO in a QEMU guest: ${CYCLES} bind/open/close/restore cycles leave no VFIO fd, IOMMU pinning, memfd, eventfd, DMA mapping or memory behind, and the function back on virtio-pci`,
  ignore: Deno.uid() !== 0,
  async fn() {
    await using bed = await VmBed.start({ nics: 1, queuePairs: 2 });
    const nic = bed.nicAddress(0);
    const driver = async () =>
      (await bed.exec(`readlink /sys/bus/pci/devices/${nic}/driver`)).stdout.trim();
    assert.match(await driver(), /virtio-pci$/);
    const mod = await bed.exec("modprobe vfio-pci && modprobe vfio_iommu_type1");
    assert.equal(mod.code, 0, mod.stderr);

    const qemuBefore = readResources(bed.qemuPid);
    const args = [
      ...["--port", nic, "--bind", "--restore-driver", "--queues", "2"],
      ...["--cycles", String(CYCLES), "--warmup", String(WARMUP), "--frames", "64"],
    ];
    const cmd = ["deno", ...cycleProgramArgs(args)].map(shellQuote).join(" ");
    const r = await bed.exec(cmd, { timeoutMs: 120000 + CYCLES * 5000 });
    assert.equal(r.code, 0, `${r.stderr}\n${r.stdout.slice(-2000)}`);
    const report = lastJson(r.stdout) as unknown as CycleReport;
    printReport("kernel VFIO (guest)", report);
    const qemuAfter = readResources(bed.qemuPid);
    // Not compared: QEMU's RSS grows as the guest first touches its RAM.
    console.log(`  QEMU before ${formatResources(qemuBefore)}`);
    console.log(`  QEMU after  ${formatResources(qemuAfter)} (guest RAM touched: not compared)`);

    assertNoLeak(report);
    // The readings see VFIO: container, group and device fds and pinned DMA memory while
    // the port is open, none of them after.
    assert.ok(report.open.vfioFds >= 3, `${report.open.vfioFds} VFIO fds while open`);
    assert.ok(report.open.lockedKiB >= 8 * 1024, `${report.open.lockedKiB} KiB pinned while open`);
    assert.equal(report.after.vfioFds, 0, "no VFIO container, group or device fd left");
    assert.equal(report.after.lockedKiB, 0, "nothing left pinned for the IOMMU");
    // --restore-driver: every cycle's bind was undone, the last one too.
    assert.deepEqual(report.driversBefore, ["virtio-pci"]);
    assert.deepEqual(report.driversAfter, ["virtio-pci"]);
    assert.match(await driver(), /virtio-pci$/);
  },
});
