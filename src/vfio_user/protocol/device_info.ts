/**
 * Device, region and IRQ information payloads and DEVICE_SET_IRQS (vfio-user.rst
 * "VFIO_USER_DEVICE_GET_INFO", "VFIO_USER_DEVICE_GET_REGION_INFO" with its capabilities,
 * "VFIO_USER_DEVICE_GET_IRQ_INFO", "VFIO_USER_DEVICE_SET_IRQS").
 *
 * @module
 */

import {
  capabilityChain,
  checkArgsz,
  checkRegionEnd,
  checkSparseAreas,
} from "../../../ffi/vfio_info_checks.ts";
import { dv, need } from "./bytes.ts";

/** Size of struct vfio_user_device_info. */
export const DEVICE_INFO_SIZE = 16;
/** Device flag bit 0: DEVICE_RESET is supported. */
export const DEVICE_FLAGS_RESET = 1 << 0;
/** Device flag bit 1: a PCI device. */
export const DEVICE_FLAGS_PCI = 1 << 1;

/** A DEVICE_GET_INFO reply. */
export interface DeviceInfo {
  /** Size the full reply needs (offset 0). */
  argsz: number;
  /** DEVICE_FLAGS_* (offset 4). */
  flags: number;
  /** Number of regions (offset 8). */
  numRegions: number;
  /** Number of IRQ types (offset 12). */
  numIrqs: number;
}

/**
 * Encodes a DEVICE_GET_INFO request: argsz = largest reply accepted, all else zero.
 *
 * @example
 * ```ts
 * import { encodeDeviceInfoRequest } from "./device_info.ts";
 * encodeDeviceInfoRequest()[0]; // 16
 * ```
 */
export function encodeDeviceInfoRequest(argsz = DEVICE_INFO_SIZE): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(DEVICE_INFO_SIZE);
  dv(b).setUint32(0, argsz, true);
  return b;
}

/**
 * Decodes a DEVICE_GET_INFO reply.
 *
 * @example
 * ```ts
 * import { decodeDeviceInfo } from "./device_info.ts";
 * decodeDeviceInfo(new Uint8Array([16, 0, 0, 0, 3, 0, 0, 0, 10, 0, 0, 0, 5, 0, 0, 0])).numRegions; // 10
 * ```
 */
export function decodeDeviceInfo(b: Uint8Array): DeviceInfo {
  need(b, DEVICE_INFO_SIZE, "a DEVICE_GET_INFO reply");
  const d = dv(b);
  return {
    argsz: d.getUint32(0, true),
    flags: d.getUint32(4, true),
    numRegions: d.getUint32(8, true),
    numIrqs: d.getUint32(12, true),
  };
}

// ---------------------------------------------------------------------------------------
// "VFIO_USER_DEVICE_GET_REGION_INFO"

/** Size of struct vfio_region_info without capabilities. */
export const REGION_INFO_SIZE = 32;
/** Region flag bit 0: readable. */
export const REGION_INFO_FLAG_READ = 1 << 0;
/** Region flag bit 1: writeable. */
export const REGION_INFO_FLAG_WRITE = 1 << 1;
/** Region flag bit 2: mmap-able; the reply carries an fd. */
export const REGION_INFO_FLAG_MMAP = 1 << 2;
/** Region flag bit 3: a capability list follows. */
export const REGION_INFO_FLAG_CAPS = 1 << 3;
/** Capability id of the sparse mmap list ("VFIO sparse mmap cap header"). */
export const REGION_INFO_CAP_SPARSE_MMAP = 1;
/** Capability id of the region type ("VFIO region type cap header"). */
export const REGION_INFO_CAP_TYPE = 2;

/** One mmap-able area of a region ("VFIO region info cap sparse mmap": offset, size). */
export interface SparseArea {
  /** Offset of the area within the region (added to the region's mmap offset). */
  offset: number;
  /** Size of the area. */
  size: number;
}

/** A DEVICE_GET_REGION_INFO reply. */
export interface RegionInfo {
  /** Size the full reply needs, capabilities included (offset 0). */
  argsz: number;
  /** REGION_INFO_FLAG_* (offset 4). */
  flags: number;
  /** Region index (offset 8). */
  index: number;
  /** Offset of the first capability from the start of the structure (offset 12). */
  capOffset: number;
  /** Region size (offset 16, u64). */
  size: number;
  /** mmap offset in the fd, base of sparse areas (offset 24, u64). */
  offset: bigint;
  /** mmap-able areas (offsets within the region), when the sparse cap is present. */
  sparseAreas?: SparseArea[];
  /** Region type and subtype, when the type cap is present. */
  type?: { type: number; subtype: number };
}

/**
 * Encodes a DEVICE_GET_REGION_INFO request for `index`; `argsz` is the largest reply
 * accepted (at least 32; more leaves room for capabilities).
 *
 * @example
 * ```ts
 * import { encodeRegionInfoRequest } from "./device_info.ts";
 * encodeRegionInfoRequest(7, 256)[8]; // 7
 * ```
 */
export function encodeRegionInfoRequest(
  index: number,
  argsz = REGION_INFO_SIZE,
): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(REGION_INFO_SIZE);
  const d = dv(b);
  d.setUint32(0, argsz, true);
  d.setUint32(8, index, true);
  return b;
}

/**
 * Decodes a DEVICE_GET_REGION_INFO reply with its capability list ("VFIO region
 * capabilities": each header is id u16, version u16, next u32, offsets from the start of
 * the structure; sparse mmap: nr_areas u32, reserved u32, then offset/size u64 pairs).
 * Capabilities are read only when the reply holds all `argsz` bytes. Throws RangeError
 * for a reply this driver must not act on: too short, argsz below the struct or beyond 64
 * KiB, a broken capability chain, a region size beyond 2^53 or ending past 2^63, or sparse
 * areas that end past the region or overlap ("Sparse Regions": each area is a part of
 * the region to mmap).
 *
 * @example
 * ```ts
 * import { decodeRegionInfo, encodeRegionInfoRequest } from "./device_info.ts";
 * decodeRegionInfo(encodeRegionInfoRequest(4)).index; // 4
 * ```
 */
export function decodeRegionInfo(b: Uint8Array): RegionInfo {
  need(b, REGION_INFO_SIZE, "a DEVICE_GET_REGION_INFO reply");
  const d = dv(b);
  const argsz = d.getUint32(0, true);
  const index = d.getUint32(8, true);
  // The same checks as kernel VFIO's reply (ffi/vfio_uapi.ts): the client asks again with
  // argsz bytes, and mmaps the region's fd at `offset`.
  checkArgsz(argsz, REGION_INFO_SIZE, `region ${index} info`);
  const size = d.getBigUint64(16, true);
  const offset = d.getBigUint64(24, true);
  checkRegionEnd(index, offset, size);
  const info: RegionInfo = {
    argsz,
    flags: d.getUint32(4, true),
    index,
    capOffset: d.getUint32(12, true),
    size: Number(size),
    offset,
  };
  if (!(info.flags & REGION_INFO_FLAG_CAPS) || !info.capOffset || info.argsz > b.length) {
    return info;
  }
  for (const cap of capabilityChain(b.subarray(0, info.argsz), info.capOffset, REGION_INFO_SIZE)) {
    if (cap.id === REGION_INFO_CAP_SPARSE_MMAP) {
      need(b, cap.offset + 16, "a sparse mmap capability");
      const n = d.getUint32(cap.offset + 8, true);
      need(b, cap.offset + 16 + n * 16, `${n} sparse mmap areas`);
      const raw: { offset: bigint; size: bigint }[] = [];
      for (let i = 0; i < n; i++) {
        const a = cap.offset + 16 + i * 16;
        raw.push({ offset: d.getBigUint64(a, true), size: d.getBigUint64(a + 8, true) });
      }
      info.sparseAreas = checkSparseAreas(raw, size);
    } else if (cap.id === REGION_INFO_CAP_TYPE) {
      need(b, cap.offset + 16, "a region type capability");
      info.type = {
        type: d.getUint32(cap.offset + 8, true),
        subtype: d.getUint32(cap.offset + 12, true),
      };
    }
  }
  return info;
}

// ---------------------------------------------------------------------------------------
// "VFIO_USER_DEVICE_GET_IRQ_INFO" / "VFIO_USER_DEVICE_SET_IRQS"

/** Size of struct vfio_irq_info. */
export const IRQ_INFO_SIZE = 16;
/** IRQ info flag bit 0: eventfd signalling supported. */
export const IRQ_INFO_EVENTFD = 1 << 0;
/** IRQ info flag bit 1: MASK/UNMASK supported. */
export const IRQ_INFO_MASKABLE = 1 << 1;
/** IRQ info flag bit 2: masks itself after triggering. */
export const IRQ_INFO_AUTOMASKED = 1 << 2;
/** IRQ info flag bit 3: vectors are set up as a set. */
export const IRQ_INFO_NORESIZE = 1 << 3;
/** SET_IRQS flag bit 0: no data. */
export const IRQ_SET_DATA_NONE = 1 << 0;
/** SET_IRQS flag bit 1: data is one bool byte per vector. */
export const IRQ_SET_DATA_BOOL = 1 << 1;
/** SET_IRQS flag bit 2: eventfds travel as SCM_RIGHTS. */
export const IRQ_SET_DATA_EVENTFD = 1 << 2;
/** SET_IRQS flag bit 3: mask. */
export const IRQ_SET_ACTION_MASK = 1 << 3;
/** SET_IRQS flag bit 4: unmask. */
export const IRQ_SET_ACTION_UNMASK = 1 << 4;
/** SET_IRQS flag bit 5: trigger. */
export const IRQ_SET_ACTION_TRIGGER = 1 << 5;
/** Size of struct vfio_irq_set without data. */
export const IRQ_SET_SIZE = 20;

/** A DEVICE_GET_IRQ_INFO reply. */
export interface IrqInfo {
  /** Size the full reply needs (offset 0). */
  argsz: number;
  /** IRQ_INFO_* (offset 4). */
  flags: number;
  /** IRQ type index, e.g. 2 = MSI-X (offset 8). */
  index: number;
  /** Number of interrupts of the type (offset 12). */
  count: number;
}

/**
 * Encodes a DEVICE_GET_IRQ_INFO request for IRQ type `index`.
 *
 * @example
 * ```ts
 * import { encodeIrqInfoRequest } from "./device_info.ts";
 * encodeIrqInfoRequest(2)[8]; // 2
 * ```
 */
export function encodeIrqInfoRequest(index: number): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(IRQ_INFO_SIZE);
  const d = dv(b);
  d.setUint32(0, IRQ_INFO_SIZE, true);
  d.setUint32(8, index, true);
  return b;
}

/**
 * Decodes a DEVICE_GET_IRQ_INFO reply.
 *
 * @example
 * ```ts
 * import { decodeIrqInfo } from "./device_info.ts";
 * decodeIrqInfo(new Uint8Array([16, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0])).count; // 4
 * ```
 */
export function decodeIrqInfo(b: Uint8Array): IrqInfo {
  need(b, IRQ_INFO_SIZE, "a DEVICE_GET_IRQ_INFO reply");
  const d = dv(b);
  return {
    argsz: d.getUint32(0, true),
    flags: d.getUint32(4, true),
    index: d.getUint32(8, true),
    count: d.getUint32(12, true),
  };
}

/** A DEVICE_SET_IRQS request. */
export interface IrqSet {
  /** IRQ_SET_DATA_* | IRQ_SET_ACTION_*. */
  flags: number;
  /** IRQ type index (offset 8). */
  index: number;
  /** First sub-index (offset 12). */
  start: number;
  /** Number of sub-indexes (offset 16); 0 with DATA_NONE disables the type. */
  count: number;
  /** One bool byte per vector, with IRQ_SET_DATA_BOOL (offset 20). */
  bools?: Uint8Array;
}

/**
 * Encodes a DEVICE_SET_IRQS payload; argsz is the payload's own size, data included
 * ("VFIO_USER_DEVICE_SET_IRQS"). Eventfds are not in the payload: they travel as
 * SCM_RIGHTS with the message.
 *
 * @example
 * ```ts
 * import { encodeIrqSet, IRQ_SET_ACTION_TRIGGER, IRQ_SET_DATA_NONE } from "./device_info.ts";
 * encodeIrqSet({ flags: IRQ_SET_DATA_NONE | IRQ_SET_ACTION_TRIGGER, index: 2, start: 0, count: 0 }).length; // 20
 * ```
 */
export function encodeIrqSet(s: IrqSet): Uint8Array<ArrayBuffer> {
  const data = s.bools ?? new Uint8Array(0);
  const b = new Uint8Array(IRQ_SET_SIZE + data.length);
  const d = dv(b);
  d.setUint32(0, b.length, true);
  d.setUint32(4, s.flags, true);
  d.setUint32(8, s.index, true);
  d.setUint32(12, s.start, true);
  d.setUint32(16, s.count, true);
  b.set(data, IRQ_SET_SIZE);
  return b;
}

/** One DEVICE_SET_IRQS message: its payload and the eventfds that go with it. */
export interface IrqSetMessage {
  /** The vfio_irq_set payload. */
  payload: Uint8Array<ArrayBuffer>;
  /** Eventfds to send as SCM_RIGHTS with it (one per vector, in order). */
  fds: number[];
}

/**
 * The DEVICE_SET_IRQS messages that route vectors `start`… of IRQ type `index` to `fds`
 * with ACTION_TRIGGER ("VFIO_USER_DEVICE_SET_IRQS"): the eventfds travel as SCM_RIGHTS,
 * one per vector, so `count` equals the number of fds of each message, and no message
 * carries more than `maxMsgFds` of them (the server's max_msg_fds from
 * "VFIO_USER_VERSION"; libvfio-user: 8). A run of -1 entries becomes DATA_EVENTFD with no
 * fds, which de-assigns those vectors. An empty `fds` turns the whole type off: DATA_NONE
 * with start and count 0.
 *
 * @example
 * ```ts
 * import { irqSetMessages } from "./device_info.ts";
 * const m = irqSetMessages(2, 0, [10, 11, 12], 2);
 * m.map((x) => x.fds); // [[10, 11], [12]]
 * ```
 */
export function irqSetMessages(
  index: number,
  start: number,
  fds: readonly number[],
  maxMsgFds: number,
): IrqSetMessage[] {
  if (fds.length === 0) {
    return [{
      payload: encodeIrqSet({
        flags: IRQ_SET_DATA_NONE | IRQ_SET_ACTION_TRIGGER,
        index,
        start: 0,
        count: 0,
      }),
      fds: [],
    }];
  }
  const per = Math.max(1, Math.floor(maxMsgFds));
  const out: IrqSetMessage[] = [];
  for (let i = 0; i < fds.length;) {
    const none = fds[i] < 0;
    let j = i + 1;
    while (j < fds.length && (fds[j] < 0) === none && (none || j - i < per)) j++;
    out.push({
      payload: encodeIrqSet({
        flags: IRQ_SET_DATA_EVENTFD | IRQ_SET_ACTION_TRIGGER,
        index,
        start: start + i,
        count: j - i,
      }),
      fds: none ? [] : fds.slice(i, j),
    });
    i = j;
  }
  return out;
}
