/**
 * A VFIO container (/dev/vfio/vfio): the IOMMU context that groups attach to, with the
 * type1v2 IOMMU model, its usable IOVA ranges, and DMA map/unmap.
 *
 * Linux Documentation/driver-api/vfio.rst, "VFIO Usage Example", is the sequence followed
 * here and in {@linkcode VfioGroup}.
 *
 * @module
 */

import { check, cstr, libc, O_CLOEXEC, O_RDWR, SysError } from "../../ffi/libc.ts";
import {
  argszBuffer,
  decodeIommuInfo,
  encodeDmaMap,
  encodeDmaUnmap,
  type IovaRange,
  SIZEOF_IOMMU_TYPE1_INFO,
  VFIO_API_VERSION,
  VFIO_CHECK_EXTENSION,
  VFIO_GET_API_VERSION,
  VFIO_IOMMU_GET_INFO,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_UNMAP_DMA,
  VFIO_SET_IOMMU,
  VFIO_TYPE1v2_IOMMU,
} from "../../ffi/vfio_uapi.ts";
import { DriverError } from "../errors.ts";

/** An open VFIO container. */
export class VfioContainer {
  /** The container fd. */
  readonly fd: number;
  #closed = false;

  /**
   * Opens /dev/vfio/vfio and checks the API version and type1v2 support.
   *
   * @example
   * ```ts ignore
   * import { VfioContainer } from "./container.ts";
   * const c = VfioContainer.open();
   * c.close();
   * ```
   */
  static open(): VfioContainer {
    const fd = libc.open(cstr("/dev/vfio/vfio"), O_RDWR | O_CLOEXEC, 0);
    if (fd < 0) {
      const e = new SysError("open", "/dev/vfio/vfio");
      throw new DriverError(
        e.errno === 2 ? "NO_VFIO_PCI" : "PERMISSION",
        e.errno === 2
          ? "/dev/vfio/vfio does not exist: load VFIO with 'modprobe vfio-pci' as root."
          : `Cannot open /dev/vfio/vfio (${e.message}): run as root or give your user access to /dev/vfio.`,
        { cause: e },
      );
    }
    const c = new VfioContainer(fd);
    try {
      const version = libc.ioctl_int(fd, BigInt(VFIO_GET_API_VERSION), 0n);
      if (version !== VFIO_API_VERSION) {
        throw new DriverError(
          "VFIO",
          `The kernel's VFIO API version is ${version}, not ${VFIO_API_VERSION}: this driver needs a Linux kernel with the standard VFIO uAPI.`,
        );
      }
      if (libc.ioctl_int(fd, BigInt(VFIO_CHECK_EXTENSION), BigInt(VFIO_TYPE1v2_IOMMU)) <= 0) {
        throw new DriverError(
          "VFIO",
          "The kernel's VFIO has no type1v2 IOMMU: load vfio_iommu_type1 ('modprobe vfio_iommu_type1').",
        );
      }
    } catch (e) {
      c.close();
      throw e;
    }
    return c;
  }

  private constructor(fd: number) {
    this.fd = fd;
  }

  /** Selects the type1v2 IOMMU; valid once a group is attached. */
  setIommu(): void {
    check(
      libc.ioctl_int(this.fd, BigInt(VFIO_SET_IOMMU), BigInt(VFIO_TYPE1v2_IOMMU)),
      "ioctl VFIO_SET_IOMMU",
    );
  }

  /** Usable IOVA ranges (VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE); one 4 GiB–256 GiB guess if absent. */
  iovaRanges(): IovaRange[] {
    let b = argszBuffer(SIZEOF_IOMMU_TYPE1_INFO);
    check(libc.ioctl(this.fd, BigInt(VFIO_IOMMU_GET_INFO), b), "ioctl VFIO_IOMMU_GET_INFO");
    let info = decodeIommuInfoChecked(b);
    if (info.argsz > b.length) {
      b = argszBuffer(info.argsz);
      check(libc.ioctl(this.fd, BigInt(VFIO_IOMMU_GET_INFO), b), "ioctl VFIO_IOMMU_GET_INFO");
      info = decodeIommuInfoChecked(b);
    }
    return info.iovaRanges ?? [{ start: 1n << 32n, end: (1n << 38n) - 1n }];
  }

  /** Maps `size` bytes at process address `vaddr` to `iova` (read and write). */
  mapDma(vaddr: bigint, iova: bigint, size: number): void {
    const b = encodeDmaMap(vaddr, iova, BigInt(size));
    if (libc.ioctl(this.fd, BigInt(VFIO_IOMMU_MAP_DMA), b) < 0) {
      const e = new SysError("ioctl VFIO_IOMMU_MAP_DMA", `iova 0x${iova.toString(16)}`);
      throw new DriverError(
        "DMA",
        `The IOMMU refused to map ${size} bytes of DMA memory at IOVA 0x${
          iova.toString(16)
        } (${e.message}): raise the locked-memory limit (ulimit -l) or run as root.`,
        { cause: e },
      );
    }
  }

  /** Unmaps an IOVA range. */
  unmapDma(iova: bigint, size: number): void {
    check(
      libc.ioctl(this.fd, BigInt(VFIO_IOMMU_UNMAP_DMA), encodeDmaUnmap(iova, BigInt(size))),
      "ioctl VFIO_IOMMU_UNMAP_DMA",
    );
  }

  /** Closes the container fd. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    libc.close(this.fd);
  }
}

/** decodeIommuInfo, its RangeError (a reply that breaks its own layout) as one sentence. */
function decodeIommuInfoChecked(b: Uint8Array): ReturnType<typeof decodeIommuInfo> {
  try {
    return decodeIommuInfo(b);
  } catch (e) {
    if (!(e instanceof RangeError)) throw e;
    throw new DriverError(
      "DEVICE_MISBEHAVED",
      `The kernel's VFIO_IOMMU_GET_INFO reply is inconsistent (${e.message}): check the IOMMU driver (vfio_iommu_type1) and reload it.`,
    );
  }
}
