/**
 * VFIO_USER_DMA_MAP and VFIO_USER_DMA_UNMAP payloads (vfio-user.rst sections of those
 * names): client memory made available to the server, and withdrawn.
 *
 * @module
 */

import { dv, need } from "./bytes.ts";

/** DMA_MAP flag bit 0: the region is readable by the server. */
export const DMA_REGION_READ = 1 << 0;
/** DMA_MAP flag bit 1: the region is writeable by the server. */
export const DMA_REGION_WRITE = 1 << 1;
/** DMA_UNMAP flag bit 0: return a dirty page bitmap. */
export const DMA_UNMAP_GET_DIRTY_BITMAP = 1 << 0;
/** DMA_UNMAP flag bit 1: unmap every region (address and size 0). */
export const DMA_UNMAP_ALL = 1 << 1;
/** Size of the DMA_MAP request payload. */
export const DMA_MAP_SIZE = 32;
/** Size of the DMA_UNMAP request payload without a bitmap. */
export const DMA_UNMAP_SIZE = 24;

/** A DMA_MAP request. */
export interface DmaMapRequest {
  /** DMA_REGION_READ | DMA_REGION_WRITE. */
  flags: number;
  /** Offset of the region within the fd sent with the message (offset 8). */
  offset: bigint;
  /** Base DMA address (IOVA) of the region (offset 16). */
  address: bigint;
  /** Size of the region (offset 24). */
  size: bigint;
}

/**
 * Encodes a DMA_MAP payload; argsz is the structure's size, 32 ("VFIO_USER_DMA_MAP").
 *
 * @example
 * ```ts
 * import { DMA_REGION_READ, DMA_REGION_WRITE, encodeDmaMap } from "./dma.ts";
 * encodeDmaMap({ flags: DMA_REGION_READ | DMA_REGION_WRITE, offset: 0n, address: 1n << 32n, size: 4096n }).length; // 32
 * ```
 */
export function encodeDmaMap(r: DmaMapRequest): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(DMA_MAP_SIZE);
  const d = dv(b);
  d.setUint32(0, DMA_MAP_SIZE, true);
  d.setUint32(4, r.flags, true);
  d.setBigUint64(8, r.offset, true);
  d.setBigUint64(16, r.address, true);
  d.setBigUint64(24, r.size, true);
  return b;
}

/**
 * Decodes a DMA_MAP payload (the server's view; used by tests).
 *
 * @example
 * ```ts
 * import { decodeDmaMap, encodeDmaMap } from "./dma.ts";
 * decodeDmaMap(encodeDmaMap({ flags: 3, offset: 0n, address: 4096n, size: 4096n })).address; // 4096n
 * ```
 */
export function decodeDmaMap(b: Uint8Array): DmaMapRequest & { argsz: number } {
  need(b, DMA_MAP_SIZE, "a DMA_MAP payload");
  const d = dv(b);
  return {
    argsz: d.getUint32(0, true),
    flags: d.getUint32(4, true),
    offset: d.getBigUint64(8, true),
    address: d.getBigUint64(16, true),
    size: d.getBigUint64(24, true),
  };
}

/** A DMA_UNMAP request or reply (without the dirty bitmap). */
export interface DmaUnmap {
  /** argsz: in a request the largest reply payload accepted (24 without a bitmap). */
  argsz: number;
  /** DMA_UNMAP_* flags. */
  flags: number;
  /** Base DMA address of a region mapped before (offset 8). */
  address: bigint;
  /** Its size; must match the mapping exactly (offset 16). */
  size: bigint;
}

/**
 * Encodes a DMA_UNMAP payload (no dirty bitmap: 24 bytes, "VFIO_USER_DMA_UNMAP").
 *
 * @example
 * ```ts
 * import { encodeDmaUnmap } from "./dma.ts";
 * encodeDmaUnmap({ flags: 0, address: 1n << 32n, size: 4096n }).length; // 24
 * ```
 */
export function encodeDmaUnmap(r: Omit<DmaUnmap, "argsz">): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(DMA_UNMAP_SIZE);
  const d = dv(b);
  d.setUint32(0, DMA_UNMAP_SIZE, true);
  d.setUint32(4, r.flags, true);
  d.setBigUint64(8, r.address, true);
  d.setBigUint64(16, r.size, true);
  return b;
}

/**
 * Decodes a DMA_UNMAP payload (the reply echoes the request's entry).
 *
 * @example
 * ```ts
 * import { decodeDmaUnmap, encodeDmaUnmap } from "./dma.ts";
 * decodeDmaUnmap(encodeDmaUnmap({ flags: 0, address: 8192n, size: 4096n })).size; // 4096n
 * ```
 */
export function decodeDmaUnmap(b: Uint8Array): DmaUnmap {
  need(b, DMA_UNMAP_SIZE, "a DMA_UNMAP payload");
  const d = dv(b);
  return {
    argsz: d.getUint32(0, true),
    flags: d.getUint32(4, true),
    address: d.getBigUint64(8, true),
    size: d.getBigUint64(16, true),
  };
}
