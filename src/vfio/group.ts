/**
 * A VFIO group (/dev/vfio/N): the unit of isolation the IOMMU gives. A group is viable
 * only when every device in it is bound to vfio (or to no driver).
 *
 * @module
 */

import { exists, listDir } from "../../ffi/fs.ts";
import { cstr, libc, O_CLOEXEC, O_RDWR, SysError } from "../../ffi/libc.ts";
import {
  argszBuffer,
  SIZEOF_GROUP_STATUS,
  VFIO_GROUP_FLAGS_VIABLE,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_GET_STATUS,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_GROUP_UNSET_CONTAINER,
} from "../../ffi/vfio_uapi.ts";
import { DriverError } from "../errors.ts";
import { SysfsPciFunction } from "../pci/sysfs.ts";
import type { VfioContainer } from "./container.ts";

/** An open VFIO group. */
export class VfioGroup {
  /** The group fd. */
  readonly fd: number;
  /** The group number. */
  readonly group: number;
  #attached = false;
  #closed = false;

  /**
   * Opens /dev/vfio/`group`.
   *
   * @example
   * ```ts ignore
   * import { VfioGroup } from "./group.ts";
   * const g = VfioGroup.open(5);
   * g.close();
   * ```
   */
  static open(group: number): VfioGroup {
    const path = `/dev/vfio/${group}`;
    const fd = libc.open(cstr(path), O_RDWR | O_CLOEXEC, 0);
    if (fd < 0) {
      const e = new SysError("open", path);
      // No-IOMMU mode names the group noiommu-N: nothing would confine the device's DMA to
      // the driver's mappings, so it is refused, with no opt-in (docs/security.md).
      if (e.errno === 2 && exists(`/dev/vfio/noiommu-${group}`)) {
        throw new DriverError(
          "VFIO",
          `VFIO group ${group} is in no-IOMMU mode (/dev/vfio/noiommu-${group}), where nothing confines the device's DMA, and this driver refuses it: turn the IOMMU on (intel_iommu=on or amd_iommu=on) and load vfio without enable_unsafe_noiommu_mode.`,
          { cause: e },
        );
      }
      const fix = e.errno === 16
        ? "another process holds the group: stop it first."
        : e.errno === 2
        ? "bind the device to vfio-pci first."
        : "run as root or give your user access to /dev/vfio.";
      throw new DriverError(
        e.errno === 2 || e.errno === 16 ? "VFIO" : "PERMISSION",
        `Cannot open VFIO group ${path} (${e.message}): ${fix}`,
        { cause: e },
      );
    }
    return new VfioGroup(fd, group);
  }

  private constructor(fd: number, group: number) {
    this.fd = fd;
    this.group = group;
  }

  /** VFIO_GROUP_GET_STATUS flags. */
  statusFlags(): number {
    const b = argszBuffer(SIZEOF_GROUP_STATUS);
    if (libc.ioctl(this.fd, BigInt(VFIO_GROUP_GET_STATUS), b) < 0) {
      throw new SysError("ioctl VFIO_GROUP_GET_STATUS", `group ${this.group}`);
    }
    return new DataView(b.buffer).getUint32(4, true);
  }

  /**
   * Throws GROUP_NOT_VIABLE, naming the devices that hold the group, unless the group is
   * viable.
   */
  requireViable(): void {
    if (this.statusFlags() & VFIO_GROUP_FLAGS_VIABLE) return;
    const holders: string[] = [];
    for (const addr of listGroupDevices(this.group)) {
      let driver: string | null = null;
      try {
        driver = new SysfsPciFunction(addr).driver();
      } catch { /* not a PCI function: report it without a driver */ }
      if (driver !== "vfio-pci" && driver !== null) holders.push(`${addr} (${driver})`);
    }
    throw new DriverError(
      "GROUP_NOT_VIABLE",
      `IOMMU group ${this.group} is not viable because ${
        holders.join(", ") || "another device"
      } in it is bound to a kernel driver: bind every device of the group to vfio-pci, or unbind them.`,
    );
  }

  /** Attaches the group to `container`. */
  setContainer(container: VfioContainer): void {
    const arg = new Int32Array([container.fd]);
    if (libc.ioctl(this.fd, BigInt(VFIO_GROUP_SET_CONTAINER), new Uint8Array(arg.buffer)) < 0) {
      throw new SysError("ioctl VFIO_GROUP_SET_CONTAINER", `group ${this.group}`);
    }
    this.#attached = true;
  }

  /** Returns a device fd for `address` (VFIO_GROUP_GET_DEVICE_FD). */
  deviceFd(address: string): number {
    const fd = libc.ioctl(this.fd, BigInt(VFIO_GROUP_GET_DEVICE_FD), cstr(address));
    if (fd < 0) {
      const e = new SysError("ioctl VFIO_GROUP_GET_DEVICE_FD", address);
      throw new DriverError(
        "VFIO",
        `VFIO would not open ${address} (${e.message}): ${
          e.errno === 16 ? "another process is using it." : "check 'dmesg'."
        }`,
        { cause: e },
      );
    }
    return fd;
  }

  /** Detaches from the container and closes the group fd. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#attached) libc.ioctl(this.fd, BigInt(VFIO_GROUP_UNSET_CONTAINER), new Uint8Array(0));
    libc.close(this.fd);
  }
}

function listGroupDevices(group: number): string[] {
  try {
    return listDir(`/sys/kernel/iommu_groups/${group}/devices`);
  } catch {
    return [];
  }
}
