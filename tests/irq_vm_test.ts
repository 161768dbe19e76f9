/**
 * Receive interrupts through real kernel VFIO, in the VM bed: tests/guest/rx_irq.ts runs
 * inside the QEMU guest with `--allow-ffi` only, routes MSI-X vector 1 of the NIC to an
 * eventfd with VFIO_DEVICE_SET_IRQS and maps receiveq1 to it, then routes vector 3 too (the
 * guest's Linux 6.1 cannot grow an enabled MSI-X set, so the driver enables it anew with
 * both, and vector 1 must survive that). A frame sent into the tap
 * wakes the program blocked in waitRx(); with notifications suppressed none comes within
 * 1 s although a frame sits in the ring; and round trips host → guest wake-up → echo →
 * host are timed with the guest waiting on the interrupt and, for comparison, busy-polling.
 * The guest's clock is not the host's, so only round trips are measured here (the
 * vfio-user bed measures the one-way wake-up on one clock).
 *
 * Needs root, QEMU, a Debian kernel (tools/setup.sh installs them).
 * Run: `deno test --allow-all tests/irq_vm_test.ts`.
 *
 * @module
 */

import { checkRxInterrupts } from "./irq_checks.ts";
import { VmBed } from "./bed/vm.ts";

Deno.test("kernel VFIO in a QEMU guest: a frame sent into the tap signals the eventfd and wakes waitRx(); suppressed, none comes in 1 s", async () => {
  const bed = await VmBed.start({ nics: 1 });
  try {
    await checkRxInterrupts(bed, 0, 4);
  } finally {
    await bed.close();
  }
});
