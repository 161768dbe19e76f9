/**
 * Resets the virtio-pci functions a process drives through VFIO, behind its back: for the
 * VM bed's "reset under the driver" recovery step (tests/reset_checks.ts, run by
 * tests/l2fwd_vm_test.ts). Runs in the guest as root:
 *
 *     deno run --allow-all tests/guest/reset_device.ts PID
 *
 * For each VFIO device fd of process PID it takes a copy (pidfd_getfd(2), as a debugger
 * would), finds the common configuration structure from the function's virtio capability
 * list (virtio 1.x §4.1.4.3, read through the fd's config-space region) and writes 0 to
 * its device_status: a device reset (§2.1.2, §4.1.4.3.1), which QEMU carries out at once.
 * The driver is not told; it finds out when it next reads device_status. Prints the
 * functions it reset.
 *
 * @module
 */

const [pid] = Deno.args;
if (!/^\d+$/.test(pid ?? "")) {
  console.error("usage: reset_device.ts PID");
  Deno.exit(2);
}

const libc = Deno.dlopen("libc.so.6", {
  pidfd_open: { parameters: ["i32", "u32"], result: "i32" },
  pidfd_getfd: { parameters: ["i32", "i32", "u32"], result: "i32" },
  pread: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize" },
  pwrite: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
}).symbols;

/** VFIO_PCI_INDEX_TO_OFFSET (vfio-pci's region layout): region index << 40. */
const region = (index: number) => BigInt(index) << 40n;
const CONFIG_REGION = 7; // VFIO_PCI_CONFIG_REGION_INDEX
const VIRTIO_PCI_CAP_COMMON_CFG = 1;
const DEVICE_STATUS = 20; // offset in struct virtio_pci_common_cfg

const deviceFds = [...Deno.readDirSync(`/proc/${pid}/fd`)].map((e) => Number(e.name))
  .filter((fd) => {
    try {
      return Deno.readLinkSync(`/proc/${pid}/fd/${fd}`) === "anon_inode:[vfio-device]";
    } catch {
      return false;
    }
  });
if (deviceFds.length === 0) {
  console.error(`process ${pid} holds no VFIO device fd`);
  Deno.exit(1);
}
const pidfd = libc.pidfd_open(Number(pid), 0);
if (pidfd < 0) throw new Error(`pidfd_open(${pid}) failed`);
for (const target of deviceFds) {
  const fd = libc.pidfd_getfd(pidfd, target, 0);
  if (fd < 0) throw new Error(`pidfd_getfd(${pid}, ${target}) failed`);
  try {
    const cfg = new Uint8Array(256);
    if (Number(libc.pread(fd, cfg, 256n, region(CONFIG_REGION))) !== 256) {
      throw new Error(`reading the config space of fd ${target} failed`);
    }
    const v = new DataView(cfg.buffer);
    let common: { bar: number; offset: number } | null = null;
    // Capability list (status bit 4), vendor-specific capabilities (0x09) of virtio.
    for (let at = cfg[0x34] & 0xfc, n = 0; at !== 0 && n < 48; at = cfg[at + 1] & 0xfc, n++) {
      if (cfg[at] === 0x09 && cfg[at + 3] === VIRTIO_PCI_CAP_COMMON_CFG) {
        common = { bar: cfg[at + 4], offset: v.getUint32(at + 8, true) };
        break;
      }
    }
    if (!common) throw new Error(`fd ${target}: no virtio common configuration capability`);
    const at = region(common.bar) + BigInt(common.offset + DEVICE_STATUS);
    if (Number(libc.pwrite(fd, new Uint8Array([0]), 1n, at)) !== 1) {
      throw new Error(`writing device_status through fd ${target} failed`);
    }
    const status = new Uint8Array(1);
    libc.pread(fd, status, 1n, at);
    console.log(
      `reset the function of fd ${target} (common configuration in BAR ${common.bar} at ` +
        `0x${common.offset.toString(16)}; device_status now ${status[0]})`,
    );
  } finally {
    libc.close(fd);
  }
}
libc.close(pidfd);
