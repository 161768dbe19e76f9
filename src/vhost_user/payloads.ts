/**
 * vhost-user payloads (QEMU docs/interop/vhost-user.rst, "Payload"), little-endian as the
 * machine is: a single u64 ("A single 64-bit integer"), a vring state ("index u32, num
 * u32"), a vring address (the spec's table lists index, flags, size, descriptor, used,
 * available, log; the C struct vhost_vring_addr that QEMU and DPDK send is index u32,
 * flags u32, then four u64, no size) and the memory table ("num regions u32, padding
 * u32", then regions of four u64). Encoding and decoding only, no I/O.
 *
 * @module
 */

/** The most memory regions one SET_MEM_TABLE carries (VHOST_MEMORY_MAX_NREGIONS). */
export const MAX_MEMORY_REGIONS = 8;
/** Bytes of one memory region description (guest address, size, user address, mmap offset). */
export const MEMORY_REGION_SIZE = 32;
/** Bytes of a vring address payload (struct vhost_vring_addr). */
export const VRING_ADDR_SIZE = 40;
/** Bytes of a vring state payload (struct vhost_vring_state). */
export const VRING_STATE_SIZE = 8;
/** Bytes of a u64 payload. */
export const U64_SIZE = 8;
/** SET_VRING_KICK / CALL / ERR u64 payload: bits 0–7 are the vring index. */
export const VRING_IDX_MASK = 0xff;
/** SET_VRING_KICK / CALL / ERR u64 payload bit 8: no fd travels with the message. */
export const VRING_NOFD_MASK = 0x100;

/**
 * A u64 payload.
 *
 * @example
 * ```ts
 * import { encodeU64 } from "./payloads.ts";
 * encodeU64(1n << 30n); // [0, 0, 0, 0x40, 0, 0, 0, 0]
 * ```
 */
export function encodeU64(value: bigint): Uint8Array {
  if (value < 0n || value >= 1n << 64n) throw new RangeError(`${value} is not a u64`);
  const out = new Uint8Array(U64_SIZE);
  new DataView(out.buffer).setBigUint64(0, value, true);
  return out;
}

/**
 * Decodes a u64 payload (exactly 8 bytes).
 *
 * @example
 * ```ts
 * import { decodeU64, encodeU64 } from "./payloads.ts";
 * decodeU64(encodeU64(42n)); // 42n
 * ```
 */
export function decodeU64(bytes: Uint8Array): bigint {
  if (bytes.length !== U64_SIZE) {
    throw new RangeError(`a u64 payload is 8 bytes, got ${bytes.length}`);
  }
  return new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
}

/** A vring state: `index` of the vring, `num` (a size, a base index, or 0/1 for enable). */
export interface VringState {
  /** Vring index. */
  index: number;
  /** The number. */
  num: number;
}

/**
 * A vring state payload (SET_VRING_NUM, SET_VRING_BASE, GET_VRING_BASE, SET_VRING_ENABLE).
 *
 * @example
 * ```ts
 * import { encodeVringState } from "./payloads.ts";
 * encodeVringState({ index: 1, num: 256 }); // [1, 0, 0, 0, 0, 1, 0, 0]
 * ```
 */
export function encodeVringState(s: VringState): Uint8Array {
  const out = new Uint8Array(VRING_STATE_SIZE);
  const v = new DataView(out.buffer);
  v.setUint32(0, s.index, true);
  v.setUint32(4, s.num, true);
  return out;
}

/**
 * Where a vring's processing stands: what SET_VRING_BASE sets and GET_VRING_BASE reports.
 * On the wire (a vring state's `num`) a split ring's base is its next available index; a
 * packed ring's (virtio 1.x §2.8) carries the slot of the next available descriptor in
 * bits 0–14 and the device's avail wrap counter in bit 15 (DPDK lib/vhost/vhost_user.c,
 * vhost_user_set_vring_base and vhost_user_get_vring_base; the back-end knows the format
 * from VIRTIO_F_RING_PACKED in SET_FEATURES).
 */
export interface VringBase {
  /** Split: the available index (free-running, 0 … 65535). Packed: the slot (0 … 32767). */
  avail: number;
  /** Packed: the avail wrap counter (true for 1). Always false for a split ring. */
  wrap: boolean;
}

/**
 * The base of a ring nothing was made available on yet: index 0, and for a packed ring
 * the wrap counter at 1 (§2.8.1), which SET_VRING_BASE carries as 0x8000.
 *
 * @example
 * ```ts
 * import { encodeVringBase, freshVringBase } from "./payloads.ts";
 * encodeVringBase(freshVringBase(true), true); // 0x8000
 * encodeVringBase(freshVringBase(false), false); // 0
 * ```
 */
export function freshVringBase(packed: boolean): VringBase {
  return { avail: 0, wrap: packed };
}

/**
 * A vring base as SET_VRING_BASE's `num` for the ring's format; RangeError when it does
 * not fit it (a split index above 65535 or with a wrap counter, a packed slot above 32767).
 *
 * @example
 * ```ts
 * import { encodeVringBase } from "./payloads.ts";
 * encodeVringBase({ avail: 5, wrap: true }, true); // 0x8005
 * encodeVringBase({ avail: 65535, wrap: false }, false); // 65535
 * ```
 */
export function encodeVringBase(base: VringBase, packed: boolean): number {
  const max = packed ? 0x7fff : 0xffff;
  if (!Number.isInteger(base.avail) || base.avail < 0 || base.avail > max) {
    throw new RangeError(`vring base ${base.avail} is not a whole number up to ${max}`);
  }
  if (!packed && base.wrap) throw new RangeError("a split ring has no wrap counter");
  return base.avail | (packed && base.wrap ? 0x8000 : 0);
}

/**
 * GET_VRING_BASE's `num` (at most 0xffff) read for the ring's format.
 *
 * @example
 * ```ts
 * import { decodeVringBase } from "./payloads.ts";
 * decodeVringBase(0x8003, true); // { avail: 3, wrap: true }
 * decodeVringBase(0x8003, false); // { avail: 32771, wrap: false }
 * ```
 */
export function decodeVringBase(num: number, packed: boolean): VringBase {
  return packed ? { avail: num & 0x7fff, wrap: (num & 0x8000) !== 0 } : { avail: num, wrap: false };
}

/**
 * Decodes a vring state payload (exactly 8 bytes).
 *
 * @example
 * ```ts
 * import { decodeVringState, encodeVringState } from "./payloads.ts";
 * decodeVringState(encodeVringState({ index: 3, num: 7 })); // { index: 3, num: 7 }
 * ```
 */
export function decodeVringState(bytes: Uint8Array): VringState {
  if (bytes.length !== VRING_STATE_SIZE) {
    throw new RangeError(`a vring state payload is 8 bytes, got ${bytes.length}`);
  }
  const v = new DataView(bytes.buffer, bytes.byteOffset, 8);
  return { index: v.getUint32(0, true), num: v.getUint32(4, true) };
}

/**
 * Where a vring lives, as SET_VRING_ADDR carries it. Without VIRTIO_F_IOMMU_PLATFORM the
 * three ring addresses are front-end *user* (process) addresses, translated through the
 * regions' user addresses ("Memory access"; "Note that a ring address is an IOVA if
 * VIRTIO_F_IOMMU_PLATFORM has been negotiated. Otherwise it is a user address").
 */
export interface VringAddr {
  /** Vring index. */
  index: number;
  /** Flags (bit 0: VHOST_VRING_F_LOG; 0 here). */
  flags: number;
  /** Descriptor table. */
  desc: bigint;
  /** Used ring. */
  used: bigint;
  /** Available ring. */
  avail: bigint;
  /** Log address (0: no logging). */
  log: bigint;
}

/**
 * A vring address payload: index u32, flags u32, desc u64, used u64, avail u64, log u64
 * (struct vhost_vring_addr; the spec's table lists a "size" that the struct does not have).
 *
 * @example
 * ```ts
 * import { encodeVringAddr } from "./payloads.ts";
 * encodeVringAddr({ index: 0, flags: 0, desc: 0x1000n, used: 0x3000n, avail: 0x2000n, log: 0n }).length; // 40
 * ```
 */
export function encodeVringAddr(a: VringAddr): Uint8Array {
  const out = new Uint8Array(VRING_ADDR_SIZE);
  const v = new DataView(out.buffer);
  v.setUint32(0, a.index, true);
  v.setUint32(4, a.flags, true);
  v.setBigUint64(8, a.desc, true);
  v.setBigUint64(16, a.used, true);
  v.setBigUint64(24, a.avail, true);
  v.setBigUint64(32, a.log, true);
  return out;
}

/** One memory region of SET_MEM_TABLE ("Memory regions description"). */
export interface MemoryRegion {
  /** Guest (here: IO virtual) address of the first byte: descriptors carry these. */
  guestPhysAddr: bigint;
  /** Size in bytes. */
  size: bigint;
  /** Front-end process address of the first byte: ring addresses carry these. */
  userspaceAddr: bigint;
  /** Offset of the first byte within the region's fd. */
  mmapOffset: bigint;
}

/**
 * A memory table payload: nregions u32, padding u32, then the regions; as QEMU sends it
 * (hw/virtio/vhost-user.c, vhost_user_fill_set_mem_table_msg: the size counts only the
 * regions used). The fds go alongside, one per region, in the same order.
 *
 * @example
 * ```ts
 * import { encodeMemoryTable } from "./payloads.ts";
 * const t = encodeMemoryTable([{ guestPhysAddr: 1n << 32n, size: 2097152n, userspaceAddr: 0x7f0000000000n, mmapOffset: 0n }]);
 * t.length; // 40
 * ```
 */
export function encodeMemoryTable(regions: readonly MemoryRegion[]): Uint8Array {
  if (regions.length > MAX_MEMORY_REGIONS) {
    throw new RangeError(`a memory table holds at most ${MAX_MEMORY_REGIONS} regions`);
  }
  const out = new Uint8Array(8 + regions.length * MEMORY_REGION_SIZE);
  const v = new DataView(out.buffer);
  v.setUint32(0, regions.length, true);
  regions.forEach((r, i) => {
    const o = 8 + i * MEMORY_REGION_SIZE;
    v.setBigUint64(o, r.guestPhysAddr, true);
    v.setBigUint64(o + 8, r.size, true);
    v.setBigUint64(o + 16, r.userspaceAddr, true);
    v.setBigUint64(o + 24, r.mmapOffset, true);
  });
  return out;
}

/**
 * Decodes a memory table payload (for tests and diagnostics); validates the count.
 *
 * @example
 * ```ts
 * import { decodeMemoryTable, encodeMemoryTable } from "./payloads.ts";
 * decodeMemoryTable(encodeMemoryTable([])); // []
 * ```
 */
export function decodeMemoryTable(bytes: Uint8Array): MemoryRegion[] {
  if (bytes.length < 8) throw new RangeError("a memory table payload is at least 8 bytes");
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const n = v.getUint32(0, true);
  if (n > MAX_MEMORY_REGIONS || 8 + n * MEMORY_REGION_SIZE > bytes.length) {
    throw new RangeError(`a memory table of ${bytes.length} bytes cannot hold ${n} regions`);
  }
  return Array.from({ length: n }, (_, i) => {
    const o = 8 + i * MEMORY_REGION_SIZE;
    return {
      guestPhysAddr: v.getBigUint64(o, true),
      size: v.getBigUint64(o + 8, true),
      userspaceAddr: v.getBigUint64(o + 16, true),
      mmapOffset: v.getBigUint64(o + 24, true),
    };
  });
}

/**
 * The u64 payload of SET_VRING_KICK / SET_VRING_CALL: the vring index, plus the "invalid
 * FD" bit 8 when no fd goes along.
 *
 * @example
 * ```ts
 * import { vringFdPayload } from "./payloads.ts";
 * vringFdPayload(3, true); // 3n
 * vringFdPayload(3, false); // 0x103n
 * ```
 */
export function vringFdPayload(index: number, withFd: boolean): bigint {
  if (!Number.isInteger(index) || index < 0 || index > VRING_IDX_MASK) {
    throw new RangeError(`vring index ${index} does not fit the 8-bit field`);
  }
  return BigInt(withFd ? index : index | VRING_NOFD_MASK);
}
