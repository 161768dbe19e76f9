/**
 * Receive offloads (virtio 1.x §5.1.6.4, §5.1.6.4.1): the device-written offload fields of
 * each received frame's virtio_net_hdr, validated once into a {@linkcode FrameOffloads};
 * a frame whose fields break the rules is dropped and counted (P_DROP_BAD_OFFLOAD).
 * Every later use reads the validated copy, never the device's memory again.
 *
 * @module
 */

import type { PacketBuffers } from "../dma/packet_buffers.ts";
import {
  HDR_CSUM_OFFSET,
  HDR_CSUM_START,
  HDR_GSO_SIZE,
  HDR_HDR_LEN,
  VIRTIO_NET_HDR_F_DATA_VALID,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_GSO_NONE,
  VIRTIO_NET_HDR_GSO_TCPV4,
  VIRTIO_NET_HDR_GSO_TCPV6,
} from "./header.ts";
import {
  CSUM_NONE,
  CSUM_PARTIAL,
  CSUM_VALID,
  type FrameOffloads,
  OFFLOAD_LRO4,
  OFFLOAD_LRO6,
  OFFLOAD_RX_CSUM,
} from "./offloads.ts";
import {
  P_DROP_BAD_OFFLOAD,
  P_RX_BYTES,
  P_RX_CSUM_PARTIAL,
  P_RX_CSUM_VALID,
  P_RX_GSO,
} from "./queue_counters.ts";

/**
 * Validates the offload fields of the header at `data[h…]` of a received frame of `len`
 * bytes, `first` of them in its first buffer, against the negotiated `mask`
 * (offloads.ts), into entry `i` of `out`. Returns false when they break §5.1.6.4.1:
 * flags other than NEEDS_CSUM/DATA_VALID (or any without GUEST_CSUM), both at once, a
 * checksum field outside the first buffer's bytes of the frame, a gso_type not
 * negotiated (UDP, ECN, TSO4/6 without GUEST_TSO4/6), GSO without NEEDS_CSUM, gso_size 0,
 * hdr_len past the frame.
 *
 * @example
 * ```ts
 * import { FrameOffloads, OFFLOAD_RX_CSUM } from "./offloads.ts";
 * import { readRxOffload } from "./rx_offload.ts";
 * const hdr = new Uint8Array(12);
 * hdr[0] = 2; // DATA_VALID
 * const f = new FrameOffloads(1);
 * readRxOffload(hdr, 0, 60, 60, OFFLOAD_RX_CSUM, f, 0); // true; f.csum[0] === CSUM_VALID
 * readRxOffload(hdr, 0, 60, 60, 0, f, 0); // false: GUEST_CSUM not negotiated
 * ```
 */
export function readRxOffload(
  data: Uint8Array,
  h: number,
  len: number,
  first: number,
  mask: number,
  out: FrameOffloads,
  i: number,
): boolean {
  const flags = data[h], gso = data[h + 1];
  const allowed = (mask & OFFLOAD_RX_CSUM) !== 0
    ? VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID
    : 0;
  if ((flags & ~allowed) !== 0) return false;
  if ((flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) !== 0) {
    if ((flags & VIRTIO_NET_HDR_F_DATA_VALID) !== 0) return false; // partial and valid?
    const start = data[h + HDR_CSUM_START] | (data[h + HDR_CSUM_START + 1] << 8);
    const offset = data[h + HDR_CSUM_OFFSET] | (data[h + HDR_CSUM_OFFSET + 1] << 8);
    // The field must lie in the frame's bytes a script can see (its first buffer).
    if (start + offset + 2 > (len < first ? len : first)) return false;
    out.csum[i] = CSUM_PARTIAL;
    out.csumStart[i] = start;
    out.csumOffset[i] = offset;
  } else {
    out.csum[i] = flags === 0 ? CSUM_NONE : CSUM_VALID;
    out.csumStart[i] = 0;
    out.csumOffset[i] = 0;
  }
  if (gso === VIRTIO_NET_HDR_GSO_NONE) {
    out.gsoType[i] = 0;
    out.gsoSize[i] = 0;
    out.hdrLen[i] = 0;
    return true;
  }
  const want = gso === VIRTIO_NET_HDR_GSO_TCPV4
    ? OFFLOAD_LRO4
    : gso === VIRTIO_NET_HDR_GSO_TCPV6
    ? OFFLOAD_LRO6
    : 0;
  if ((mask & want) === 0 || out.csum[i] !== CSUM_PARTIAL) return false;
  const size = data[h + HDR_GSO_SIZE] | (data[h + HDR_GSO_SIZE + 1] << 8);
  const hdrLen = data[h + HDR_HDR_LEN] | (data[h + HDR_HDR_LEN + 1] << 8);
  if (size === 0 || hdrLen > len) return false;
  out.gsoType[i] = gso;
  out.gsoSize[i] = size;
  out.hdrLen[i] = hdrLen;
  return true;
}

/**
 * Validates the offload fields of `n` received frames (`bufs`/`lens`, header of
 * `headerSize` bytes at each buffer's start) into `out`, entry i for the frame that ends
 * up at `bufs[i]`: frames whose fields break the rules are freed and counted in
 * `c[o + P_DROP_BAD_OFFLOAD]` (their bytes taken off `c[o + P_RX_BYTES]`), the rest
 * closed up. Counts checked, partial and GSO frames. Returns the frames left.
 *
 * @example
 * ```ts ignore
 * n = takeRxOffloads(pool, bufs, lens, n, 12, mask, frames, counters, 0);
 * ```
 */
export function takeRxOffloads(
  pool: PacketBuffers,
  bufs: Uint32Array,
  lens: Uint32Array,
  n: number,
  headerSize: number,
  mask: number,
  out: FrameOffloads,
  c: Float64Array,
  o: number,
): number {
  const data = pool.data, first = pool.bufferSize - headerSize;
  let k = 0, valid = 0, partial = 0, gso = 0, bad = 0, badBytes = 0;
  for (let i = 0; i < n; i++) {
    const b = bufs[i], len = lens[i];
    if (!readRxOffload(data, pool.offset(b), len, first, mask, out, k)) {
      bad++;
      badBytes += len;
      pool.free(b);
      continue;
    }
    valid += out.csum[k] === CSUM_VALID ? 1 : 0;
    partial += out.csum[k] === CSUM_PARTIAL ? 1 : 0;
    gso += out.gsoType[k] !== 0 ? 1 : 0;
    bufs[k] = b;
    lens[k] = len;
    k++;
  }
  c[o + P_DROP_BAD_OFFLOAD] += bad;
  c[o + P_RX_BYTES] -= badBytes;
  c[o + P_RX_CSUM_VALID] += valid;
  c[o + P_RX_CSUM_PARTIAL] += partial;
  c[o + P_RX_GSO] += gso;
  return k;
}
