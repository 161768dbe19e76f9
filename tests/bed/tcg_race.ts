/**
 * Shows QEMU 7.2's TCG memory-map race (tests/bed/README.md, "The bed's QEMU"): boots the
 * VM bed with two NICs, then one guest CPU toggles NIC 0's memory-space enable bit (every
 * toggle maps or unmaps its BARs: a new memory map) while the other reads and writes NIC 1's
 * BAR (MMIO through the TLB) and checks that a read-only register always reads the same.
 * Debian's QEMU 7.2 sends some of those accesses to the wrong MemoryRegion, and sooner or
 * later segfaults in memory_region_dispatch_write; the bed's patched QEMU does neither.
 *
 *     deno run --allow-all tests/bed/tcg_race.ts [--qemu PATH] [--seconds N]
 *
 * `--qemu /usr/bin/qemu-system-x86_64` runs Debian's binary (the default is the bed's).
 * Prints how long QEMU ran, the toggles, the MMIO accesses and the misdirected reads; exit
 * status 1 if QEMU died or a read was misdirected.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { VmBed } from "./vm.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { qemu: { type: "string" }, seconds: { type: "string", default: "180" } },
});
if (values.qemu) Deno.env.set("BED_QEMU", values.qemu);
const secs = Number(values.seconds);
if (!(secs > 0)) {
  console.error(`tcg_race: --seconds must be a positive number, not "${values.seconds}".`);
  Deno.exit(2);
}

await using bed = await VmBed.start({ nics: 2 });
const [a0, a1] = [bed.nicAddress(0), bed.nicAddress(1)];
// NIC 1 leaves virtio-pci: a driver's BARs cannot be mmap'd through sysfs (IO_STRICT_DEVMEM).
await bed.exec(`echo ${a1} > /sys/bus/pci/devices/${a1}/driver/unbind`);
const toggle = `python3 -c '
import os, time
os.sched_setaffinity(0, {0})
fd = os.open("/sys/bus/pci/devices/${a0}/config", os.O_RDWR)
cmd = int.from_bytes(os.pread(fd, 2, 4), "little")
n, t = 0, time.time()
while time.time() - t < ${secs}:
    os.pwrite(fd, (cmd & ~2).to_bytes(2, "little"), 4)
    os.pwrite(fd, cmd.to_bytes(2, "little"), 4)
    n += 1
print(n)
'`;
// num_queues (read-only) must read the same every time: a different value is an access that
// QEMU sent to the wrong MemoryRegion.
const mmio = `python3 -c '
import os, time, mmap
os.sched_setaffinity(0, {1})
m = mmap.mmap(os.open("/sys/bus/pci/devices/${a1}/resource4", os.O_RDWR), 0x4000)
want = m[0x12:0x14]
n, bad, t = 0, 0, time.time()
while time.time() - t < ${secs}:
    for _ in range(1000):
        m[0x16:0x18] = bytes(2)  # queue_select
        if m[0x12:0x14] != want:  # num_queues
            bad += 1
    n += 1000
print(n, bad)
'`;
const t0 = performance.now();
const jobs = await Promise.all([bed.spawn(toggle), bed.spawn(mmio)]);
try {
  const [t, m] = await Promise.all(jobs.map((j) => j.wait((secs + 60) * 1000)));
  const ran = ((performance.now() - t0) / 1000).toFixed(0);
  const [pairs, wrong] = m.stdout.trim().split(" ");
  console.log(
    `QEMU ran ${ran} s: ${t.stdout.trim()} BAR toggles on NIC 0, ${pairs} MMIO write+read ` +
      `pairs on NIC 1, ${wrong} reads answered by the wrong region`,
  );
  if (wrong !== "0") Deno.exitCode = 1;
} catch (e) {
  const ran = ((performance.now() - t0) / 1000).toFixed(0);
  console.log(`QEMU died after ${ran} s of toggling: ${(e as Error).message.split("\n")[0]}`);
  Deno.exitCode = 1;
}
