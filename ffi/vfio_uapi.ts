/**
 * The kernel VFIO uAPI (Linux `include/uapi/linux/vfio.h`): ioctl numbers, flags and the
 * struct layouts, encoded and decoded over typed arrays.
 *
 * Every struct here is little-endian with natural alignment, as on x86-64. The layouts are
 * checked against the C header by `tests/unit/vfio_uapi_test.ts`.
 *
 * Info replies (region, IOMMU) are checked before anyone sizes a buffer, maps memory or
 * picks addresses from them: argsz, capability offsets, sparse-mmap areas and IOVA ranges.
 * A reply that fails is a RangeError naming the field.
 *
 * @module
 */

import {
  capabilityChain,
  checkArgsz,
  checkRegionEnd,
  checkSparseAreas,
  hex,
  needBytes as need,
} from "./vfio_info_checks.ts";

export { capabilityChain, MAX_INFO_ARGSZ } from "./vfio_info_checks.ts";

/** `VFIO_TYPE`, the ioctl type byte `';'`. */
export const VFIO_TYPE = 0x3b;
/** `VFIO_BASE`, the first ioctl number of VFIO. */
export const VFIO_BASE = 100;
/** `VFIO_API_VERSION` returned by VFIO_GET_API_VERSION. */
export const VFIO_API_VERSION = 0;
/** `VFIO_TYPE1v2_IOMMU`, the IOMMU model this driver uses. */
export const VFIO_TYPE1v2_IOMMU = 3;

/**
 * `_IO(VFIO_TYPE, VFIO_BASE + n)`: VFIO ioctls carry no size or direction bits.
 *
 * @example
 * ```ts
 * import { vfioIo } from "./vfio_uapi.ts";
 * vfioIo(0).toString(16); // "3b64" (VFIO_GET_API_VERSION)
 * ```
 */
export function vfioIo(n: number): number {
  return (VFIO_TYPE << 8) | (VFIO_BASE + n);
}

// Container ioctls (fd of /dev/vfio/vfio).
/** Returns VFIO_API_VERSION. */
export const VFIO_GET_API_VERSION = vfioIo(0);
/** Returns > 0 when the container supports the IOMMU model in the argument. */
export const VFIO_CHECK_EXTENSION = vfioIo(1);
/** Selects the IOMMU model for a container that has a group. */
export const VFIO_SET_IOMMU = vfioIo(2);
// Group ioctls (fd of /dev/vfio/N).
/** Fills struct vfio_group_status. */
export const VFIO_GROUP_GET_STATUS = vfioIo(3);
/** Adds the group to the container whose fd is pointed to by the argument. */
export const VFIO_GROUP_SET_CONTAINER = vfioIo(4);
/** Removes the group from its container. */
export const VFIO_GROUP_UNSET_CONTAINER = vfioIo(5);
/** Returns a device fd for the device named by the (C string) argument. */
export const VFIO_GROUP_GET_DEVICE_FD = vfioIo(6);
// Device ioctls (device fd).
/** Fills struct vfio_device_info. */
export const VFIO_DEVICE_GET_INFO = vfioIo(7);
/** Fills struct vfio_region_info (and its capability chain). */
export const VFIO_DEVICE_GET_REGION_INFO = vfioIo(8);
/** Fills struct vfio_irq_info. */
export const VFIO_DEVICE_GET_IRQ_INFO = vfioIo(9);
/** Sets up IRQ signalling from struct vfio_irq_set. */
export const VFIO_DEVICE_SET_IRQS = vfioIo(10);
/** Resets the device (function-level reset or equivalent). */
export const VFIO_DEVICE_RESET = vfioIo(11);
// IOMMU ioctls (container fd, type1).
/** Fills struct vfio_iommu_type1_info. */
export const VFIO_IOMMU_GET_INFO = vfioIo(12);
/** Maps process memory at an IOVA for device DMA. */
export const VFIO_IOMMU_MAP_DMA = vfioIo(13);
/** Unmaps an IOVA range. */
export const VFIO_IOMMU_UNMAP_DMA = vfioIo(14);

/** Group status flag: every device of the group is bound to vfio (or no driver). */
export const VFIO_GROUP_FLAGS_VIABLE = 1 << 0;
/** Group status flag: the group is attached to a container. */
export const VFIO_GROUP_FLAGS_CONTAINER_SET = 1 << 1;
/** Device info flag: VFIO_DEVICE_RESET is supported. */
export const VFIO_DEVICE_FLAGS_RESET = 1 << 0;
/** Device info flag: this is a vfio-pci device. */
export const VFIO_DEVICE_FLAGS_PCI = 1 << 1;
/** Region flag: read(2)/pread(2) allowed. */
export const VFIO_REGION_INFO_FLAG_READ = 1 << 0;
/** Region flag: write(2)/pwrite(2) allowed. */
export const VFIO_REGION_INFO_FLAG_WRITE = 1 << 1;
/** Region flag: mmap(2) allowed (maybe only the sparse areas). */
export const VFIO_REGION_INFO_FLAG_MMAP = 1 << 2;
/** Region flag: the info has a capability chain. */
export const VFIO_REGION_INFO_FLAG_CAPS = 1 << 3;
/** Region capability id: the list of mmap-able areas. */
export const VFIO_REGION_INFO_CAP_SPARSE_MMAP = 1;
/** IOMMU info flag: iova_pgsizes is valid. */
export const VFIO_IOMMU_INFO_PGSIZES = 1 << 0;
/** IOMMU info flag: the info has a capability chain. */
export const VFIO_IOMMU_INFO_CAPS = 1 << 1;
/** IOMMU capability id: the usable IOVA ranges. */
export const VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE = 1;
/** DMA map flag: the device may read. */
export const VFIO_DMA_MAP_FLAG_READ = 1 << 0;
/** DMA map flag: the device may write. */
export const VFIO_DMA_MAP_FLAG_WRITE = 1 << 1;
/** IRQ info flag: the IRQ can be signalled through an eventfd. */
export const VFIO_IRQ_INFO_EVENTFD = 1 << 0;
/** IRQ info flag: MASK/UNMASK are supported. */
export const VFIO_IRQ_INFO_MASKABLE = 1 << 1;
/** IRQ info flag: the IRQ masks itself after firing (INTx). */
export const VFIO_IRQ_INFO_AUTOMASKED = 1 << 2;
/** IRQ info flag: vectors are set up as a set; more need the whole type disabled first. */
export const VFIO_IRQ_INFO_NORESIZE = 1 << 3;
/** IRQ set flag: no data follows. */
export const VFIO_IRQ_SET_DATA_NONE = 1 << 0;
/** IRQ set flag: data is one eventfd (s32) per vector. */
export const VFIO_IRQ_SET_DATA_EVENTFD = 1 << 2;
/** IRQ set action: trigger. */
export const VFIO_IRQ_SET_ACTION_TRIGGER = 1 << 5;

/** `VFIO_PCI_BAR0_REGION_INDEX`; BAR n is region n. */
export const VFIO_PCI_BAR0_REGION_INDEX = 0;
/** `VFIO_PCI_ROM_REGION_INDEX`. */
export const VFIO_PCI_ROM_REGION_INDEX = 6;
/** `VFIO_PCI_CONFIG_REGION_INDEX`: PCI configuration space. */
export const VFIO_PCI_CONFIG_REGION_INDEX = 7;
/** `VFIO_PCI_INTX_IRQ_INDEX`. */
export const VFIO_PCI_INTX_IRQ_INDEX = 0;
/** `VFIO_PCI_MSI_IRQ_INDEX`. */
export const VFIO_PCI_MSI_IRQ_INDEX = 1;
/** `VFIO_PCI_MSIX_IRQ_INDEX`. */
export const VFIO_PCI_MSIX_IRQ_INDEX = 2;

/** sizeof(struct vfio_group_status). */
export const SIZEOF_GROUP_STATUS = 8;
/** sizeof(struct vfio_device_info) in Linux 6.1 (with cap_offset). */
export const SIZEOF_DEVICE_INFO = 20;
/** sizeof(struct vfio_region_info). */
export const SIZEOF_REGION_INFO = 32;
/** sizeof(struct vfio_irq_info). */
export const SIZEOF_IRQ_INFO = 16;
/** sizeof(struct vfio_irq_set) without its data. */
export const SIZEOF_IRQ_SET = 20;
/** sizeof(struct vfio_iommu_type1_info). */
export const SIZEOF_IOMMU_TYPE1_INFO = 24;
/** sizeof(struct vfio_iommu_type1_dma_map). */
export const SIZEOF_DMA_MAP = 32;
/** sizeof(struct vfio_iommu_type1_dma_unmap). */
export const SIZEOF_DMA_UNMAP = 24;

function dv(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/**
 * A zeroed struct buffer whose first u32 (`argsz`) is its own size, as every VFIO struct
 * with `argsz` expects.
 *
 * @example
 * ```ts
 * import { argszBuffer, SIZEOF_GROUP_STATUS } from "./vfio_uapi.ts";
 * argszBuffer(SIZEOF_GROUP_STATUS)[0]; // 8
 * ```
 */
export function argszBuffer(size: number): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(size);
  dv(b).setUint32(0, size, true);
  return b;
}

/** Decoded struct vfio_device_info. */
export interface DeviceInfo {
  /** VFIO_DEVICE_FLAGS_*. */
  flags: number;
  /** Max region index + 1. */
  numRegions: number;
  /** Max IRQ index + 1. */
  numIrqs: number;
}

/**
 * Decodes struct vfio_device_info.
 *
 * @example
 * ```ts
 * import { decodeDeviceInfo, SIZEOF_DEVICE_INFO } from "./vfio_uapi.ts";
 * decodeDeviceInfo(new Uint8Array(SIZEOF_DEVICE_INFO)).numRegions; // 0
 * ```
 */
export function decodeDeviceInfo(b: Uint8Array): DeviceInfo {
  const v = dv(b);
  return {
    flags: v.getUint32(4, true),
    numRegions: v.getUint32(8, true),
    numIrqs: v.getUint32(12, true),
  };
}

/** One mmap-able area of a region (struct vfio_region_sparse_mmap_area). */
export interface SparseArea {
  /** Offset of the area within the region. */
  offset: number;
  /** Size of the area. */
  size: number;
}

/** Decoded struct vfio_region_info with its sparse-mmap capability, when present. */
export interface RegionInfo {
  /** Region index. */
  index: number;
  /** VFIO_REGION_INFO_FLAG_*. */
  flags: number;
  /** Region size in bytes. */
  size: number;
  /** Offset of the region within the device fd (for pread/pwrite/mmap). */
  offset: bigint;
  /** argsz the kernel asks for (larger than the struct when capabilities follow). */
  argsz: number;
  /** mmap-able areas from VFIO_REGION_INFO_CAP_SPARSE_MMAP; undefined when absent. */
  sparseAreas?: SparseArea[];
}

/**
 * Encodes a VFIO_DEVICE_GET_REGION_INFO request of `argsz` bytes for region `index`.
 *
 * @example
 * ```ts
 * import { encodeRegionInfoRequest } from "./vfio_uapi.ts";
 * encodeRegionInfoRequest(7).length; // 32
 * ```
 */
export function encodeRegionInfoRequest(
  index: number,
  argsz = SIZEOF_REGION_INFO,
): Uint8Array<ArrayBuffer> {
  const b = argszBuffer(argsz);
  dv(b).setUint32(8, index, true);
  return b;
}

/**
 * Decodes struct vfio_region_info and its sparse-mmap capability. The capability chain is
 * read only when `b` holds all argsz bytes, and only within them (the kernel writes no
 * more). Throws RangeError for a reply the driver must not act on: shorter than the
 * struct, argsz below the struct or beyond {@linkcode MAX_INFO_ARGSZ}, a size beyond
 * 2^53, a region ending past 2^63 (the largest file offset), a broken capability chain,
 * or sparse areas that end past the region or overlap.
 *
 * @example
 * ```ts
 * import { decodeRegionInfo, encodeRegionInfoRequest } from "./vfio_uapi.ts";
 * decodeRegionInfo(encodeRegionInfoRequest(4)).index; // 4
 * ```
 */
export function decodeRegionInfo(b: Uint8Array): RegionInfo {
  need(b, SIZEOF_REGION_INFO, "struct vfio_region_info");
  const v = dv(b);
  const argsz = v.getUint32(0, true);
  const index = v.getUint32(8, true);
  checkArgsz(argsz, SIZEOF_REGION_INFO, `region ${index} info`);
  const size = v.getBigUint64(16, true);
  const offset = v.getBigUint64(24, true);
  checkRegionEnd(index, offset, size);
  const info: RegionInfo = {
    argsz,
    flags: v.getUint32(4, true),
    index,
    size: Number(size),
    offset,
  };
  const capOffset = v.getUint32(12, true);
  if ((info.flags & VFIO_REGION_INFO_FLAG_CAPS) && capOffset && argsz <= b.length) {
    const reply = b.subarray(0, argsz);
    for (const cap of capabilityChain(reply, capOffset, SIZEOF_REGION_INFO)) {
      if (cap.id !== VFIO_REGION_INFO_CAP_SPARSE_MMAP) continue;
      need(reply, cap.offset + 16, `the sparse mmap capability at offset ${cap.offset}`);
      const n = v.getUint32(cap.offset + 8, true);
      need(reply, cap.offset + 16 + 16 * n, `the list of ${n} sparse mmap areas`);
      const raw: { offset: bigint; size: bigint }[] = [];
      for (let i = 0; i < n; i++) {
        const a = cap.offset + 16 + i * 16;
        raw.push({ offset: v.getBigUint64(a, true), size: v.getBigUint64(a + 8, true) });
      }
      info.sparseAreas = checkSparseAreas(raw, size);
    }
  }
  return info;
}

/** A usable IOVA range [start, end] (inclusive), from the type1 IOVA-range capability. */
export interface IovaRange {
  /** First usable IOVA. */
  start: bigint;
  /** Last usable IOVA (inclusive). */
  end: bigint;
}

/** Decoded struct vfio_iommu_type1_info. */
export interface IommuInfo {
  /** VFIO_IOMMU_INFO_*. */
  flags: number;
  /** Bitmap of supported IOMMU page sizes. */
  iovaPgsizes: bigint;
  /** argsz the kernel asks for. */
  argsz: number;
  /** Usable IOVA ranges; undefined when the kernel does not report them. */
  iovaRanges?: IovaRange[];
}

/**
 * Decodes struct vfio_iommu_type1_info and its IOVA-range capability, read as the region
 * info's chain is (within argsz bytes). Throws RangeError for argsz below the struct or
 * beyond {@linkcode MAX_INFO_ARGSZ}, a broken capability chain, or a range that ends
 * before it starts.
 *
 * @example
 * ```ts
 * import { argszBuffer, decodeIommuInfo, SIZEOF_IOMMU_TYPE1_INFO } from "./vfio_uapi.ts";
 * decodeIommuInfo(argszBuffer(SIZEOF_IOMMU_TYPE1_INFO)).argsz; // 24
 * ```
 */
export function decodeIommuInfo(b: Uint8Array): IommuInfo {
  need(b, SIZEOF_IOMMU_TYPE1_INFO, "struct vfio_iommu_type1_info");
  const v = dv(b);
  const info: IommuInfo = {
    argsz: v.getUint32(0, true),
    flags: v.getUint32(4, true),
    iovaPgsizes: v.getBigUint64(8, true),
  };
  checkArgsz(info.argsz, SIZEOF_IOMMU_TYPE1_INFO, "IOMMU info");
  const capOffset = v.getUint32(16, true);
  if ((info.flags & VFIO_IOMMU_INFO_CAPS) && capOffset && info.argsz <= b.length) {
    const reply = b.subarray(0, info.argsz);
    for (const cap of capabilityChain(reply, capOffset, SIZEOF_IOMMU_TYPE1_INFO)) {
      if (cap.id !== VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE) continue;
      need(reply, cap.offset + 16, `the IOVA range capability at offset ${cap.offset}`);
      const n = v.getUint32(cap.offset + 8, true);
      need(reply, cap.offset + 16 + 16 * n, `the list of ${n} IOVA ranges`);
      const ranges: IovaRange[] = [];
      for (let i = 0; i < n; i++) {
        const a = cap.offset + 16 + i * 16;
        const start = v.getBigUint64(a, true), end = v.getBigUint64(a + 8, true);
        if (end < start) {
          throw new RangeError(
            `IOVA range ${i} (${hex(start)}–${hex(end)}) ends before it starts`,
          );
        }
        ranges.push({ start, end });
      }
      info.iovaRanges = ranges;
    }
  }
  return info;
}

/**
 * Encodes struct vfio_iommu_type1_dma_map (read and write allowed).
 *
 * @example
 * ```ts
 * import { encodeDmaMap } from "./vfio_uapi.ts";
 * encodeDmaMap(0x7f0000000000n, 0x100000000n, 2097152n).length; // 32
 * ```
 */
export function encodeDmaMap(vaddr: bigint, iova: bigint, size: bigint): Uint8Array<ArrayBuffer> {
  const b = argszBuffer(SIZEOF_DMA_MAP);
  const v = dv(b);
  v.setUint32(4, VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE, true);
  v.setBigUint64(8, vaddr, true);
  v.setBigUint64(16, iova, true);
  v.setBigUint64(24, size, true);
  return b;
}

/**
 * Encodes struct vfio_iommu_type1_dma_unmap.
 *
 * @example
 * ```ts
 * import { encodeDmaUnmap } from "./vfio_uapi.ts";
 * encodeDmaUnmap(0x100000000n, 2097152n).length; // 24
 * ```
 */
export function encodeDmaUnmap(iova: bigint, size: bigint): Uint8Array<ArrayBuffer> {
  const b = argszBuffer(SIZEOF_DMA_UNMAP);
  const v = dv(b);
  v.setBigUint64(8, iova, true);
  v.setBigUint64(16, size, true);
  return b;
}

/** Decoded struct vfio_irq_info. */
export interface IrqInfo {
  /** VFIO_IRQ_INFO_*. */
  flags: number;
  /** IRQ type index (VFIO_PCI_*_IRQ_INDEX). */
  index: number;
  /** Number of interrupts of the type (the MSI-X table size for MSI-X; 0: none). */
  count: number;
}

/**
 * Encodes a VFIO_DEVICE_GET_IRQ_INFO request for IRQ type `index`.
 *
 * @example
 * ```ts
 * import { encodeIrqInfoRequest, VFIO_PCI_MSIX_IRQ_INDEX } from "./vfio_uapi.ts";
 * encodeIrqInfoRequest(VFIO_PCI_MSIX_IRQ_INDEX)[8]; // 2
 * ```
 */
export function encodeIrqInfoRequest(index: number): Uint8Array<ArrayBuffer> {
  const b = argszBuffer(SIZEOF_IRQ_INFO);
  dv(b).setUint32(8, index, true);
  return b;
}

/**
 * Decodes struct vfio_irq_info.
 *
 * @example
 * ```ts
 * import { decodeIrqInfo, encodeIrqInfoRequest } from "./vfio_uapi.ts";
 * decodeIrqInfo(encodeIrqInfoRequest(2)).index; // 2
 * ```
 */
export function decodeIrqInfo(b: Uint8Array): IrqInfo {
  const v = dv(b);
  return {
    flags: v.getUint32(4, true),
    index: v.getUint32(8, true),
    count: v.getUint32(12, true),
  };
}

/**
 * Encodes struct vfio_irq_set with one eventfd per vector (or none, to disable).
 *
 * @example
 * ```ts
 * import { encodeIrqSetEventfds, VFIO_PCI_MSIX_IRQ_INDEX } from "./vfio_uapi.ts";
 * encodeIrqSetEventfds(VFIO_PCI_MSIX_IRQ_INDEX, 0, [5, 6]).length; // 28
 * ```
 */
export function encodeIrqSetEventfds(
  index: number,
  start: number,
  fds: number[],
): Uint8Array<ArrayBuffer> {
  const b = argszBuffer(SIZEOF_IRQ_SET + 4 * fds.length);
  const v = dv(b);
  const data = fds.length ? VFIO_IRQ_SET_DATA_EVENTFD : VFIO_IRQ_SET_DATA_NONE;
  v.setUint32(4, data | VFIO_IRQ_SET_ACTION_TRIGGER, true);
  v.setUint32(8, index, true);
  v.setUint32(12, start, true);
  v.setUint32(16, fds.length, true);
  fds.forEach((fd, i) => v.setInt32(20 + 4 * i, fd, true));
  return b;
}
