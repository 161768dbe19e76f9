/**
 * Makes QEMU refuse a descriptor, so that it sets DEVICE_NEEDS_RESET (its virtio_error(),
 * "Guest says index 65535 is available"), under a running l2fwd: for the VM bed's
 * reset-recovery step (tests/reset_checks.ts, run by tests/l2fwd_vm_test.ts). Runs in the guest as root:
 *
 *     deno run --allow-all tests/guest/spoil_avail_ring.ts PID [RING_SIZE]
 *
 * (Deno asks for --allow-all to read and write /proc/PID files.)
 *
 * Every DMA region of process PID but the largest (the shared packet pool) is a port's
 * own region, which starts with receiveq1's ring (src/net/port.ts): its available ring's
 * slots (virtio 1.x §2.7.6, at byte 4 of the 64-byte aligned ring after RING_SIZE
 * 16-byte descriptors; default 256) are all set to 0xffff, a descriptor index no ring
 * has: every port's, so whichever NIC next receives a frame fails first. The driver writes
 * slots only when it posts buffers, so the next frame the device takes for that queue reads
 * a spoilt slot. Prints the regions it changed.
 *
 * @module
 */

const [pid, sizeArg] = Deno.args;
const size = Number(sizeArg ?? 256);
if (!/^\d+$/.test(pid ?? "") || !(size >= 1 && (size & (size - 1)) === 0)) {
  console.error("usage: spoil_avail_ring.ts PID [RING_SIZE]");
  Deno.exit(2);
}
const regions = Deno.readTextFileSync(`/proc/${pid}/maps`).split("\n")
  .filter((l) => l.includes("virtio-net-dma"))
  .map((l) => {
    const [start, end] = l.split(" ")[0].split("-").map((h) => BigInt(`0x${h}`));
    return { start, bytes: Number(end - start) };
  });
const largest = Math.max(...regions.map((r) => r.bytes));
const ports = regions.filter((r) => r.bytes < largest);
if (ports.length === 0) {
  console.error(`process ${pid} maps no port region (${regions.length} DMA regions)`);
  Deno.exit(1);
}
const availOffset = Math.ceil((16 * size) / 64) * 64;
const mem = Deno.openSync(`/proc/${pid}/mem`, { read: true, write: true });
try {
  for (const r of ports) {
    mem.seekSync(r.start + BigInt(availOffset + 4), Deno.SeekMode.Start);
    mem.writeSync(new Uint8Array(2 * size).fill(0xff));
    console.log(`spoilt receiveq1's available ring at 0x${r.start.toString(16)} + ${availOffset}`);
  }
} finally {
  mem.close();
}
