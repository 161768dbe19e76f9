/**
 * Transmit offloads (virtio 1.x §5.1.6.2): writes a frame's virtio_net_hdr from an
 * offload request (partial checksum, TSO) and marks its buffer so that TxQueue.txBurst
 * sends that header as is instead of zeroing it (`PacketBuffers.txHeader`). A request the
 * port did not negotiate, or whose fields fall outside the frame, is refused: the caller
 * drops the frame and counts it (P_DROP_TX_OFFLOAD).
 *
 * @module
 */

import type { PacketBuffers } from "../dma/packet_buffers.ts";
import {
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_GSO_NONE,
  VIRTIO_NET_HDR_GSO_TCPV4,
  VIRTIO_NET_HDR_GSO_TCPV6,
} from "./header.ts";
import {
  CSUM_PARTIAL,
  type FrameOffloads,
  OFFLOAD_TSO4,
  OFFLOAD_TSO6,
  OFFLOAD_TX_CSUM,
} from "./offloads.ts";

/** What {@linkcode requestTxOffload} needs of a pool. */
export type TxHeaderPool = Pick<PacketBuffers, "bufferSize" | "words" | "txHeader" | "offset">;

/**
 * Asks the device to finish frame `b` (`len` bytes behind a `headerSize`-byte header) as
 * entry `i` of `req` says, on a port that negotiated `mask` (offloads.ts): with
 * `csum[i]` CSUM_PARTIAL, complete the checksum from csumStart on into the field at
 * csumStart + csumOffset (which holds the pseudo-header sum); with `gsoType[i]` TCPV4 or
 * TCPV6, also cut the frame into segments of gsoSize payload bytes behind hdrLen bytes
 * of headers. Returns false, writing nothing, when the port cannot: the feature is not
 * negotiated (VIRTIO_NET_F_CSUM, HOST_TSO4/6), GSO without a partial checksum, gsoSize
 * 0, the checksum field outside the buffer's first bytes or the frame, hdrLen past the
 * frame. Returns true at once when nothing is asked.
 *
 * @example
 * ```ts ignore
 * req.csum[0] = CSUM_PARTIAL; req.csumStart[0] = 34; req.csumOffset[0] = 16;
 * if (requestTxOffload(pool, b, 12, len, OFFLOAD_TX_CSUM, req, 0)) port.tx(0).txBurst(bufs, lens, 1);
 * ```
 */
export function requestTxOffload(
  pool: TxHeaderPool,
  b: number,
  headerSize: number,
  len: number,
  mask: number,
  req: FrameOffloads,
  i: number,
): boolean {
  const partial = req.csum[i] === CSUM_PARTIAL, gso = req.gsoType[i];
  if (!partial && gso === VIRTIO_NET_HDR_GSO_NONE) return true;
  if (!partial || (mask & OFFLOAD_TX_CSUM) === 0) return false;
  const start = req.csumStart[i], offset = req.csumOffset[i];
  const first = pool.bufferSize - headerSize;
  if (start + offset + 2 > (len < first ? len : first)) return false;
  let size = 0, hdrLen = 0;
  if (gso !== VIRTIO_NET_HDR_GSO_NONE) {
    const want = gso === VIRTIO_NET_HDR_GSO_TCPV4
      ? OFFLOAD_TSO4
      : gso === VIRTIO_NET_HDR_GSO_TCPV6
      ? OFFLOAD_TSO6
      : 0;
    size = req.gsoSize[i];
    hdrLen = req.hdrLen[i];
    if ((mask & want) === 0 || size === 0 || hdrLen > len) return false;
  }
  // Little-endian fields (§5.1.6) as words: x86-64 is little-endian too. num_buffers and
  // any hash-report bytes stay 0 (§5.1.6.2).
  const w = pool.offset(b) >> 2, words = pool.words;
  words[w] = VIRTIO_NET_HDR_F_NEEDS_CSUM | (gso << 8) | (hdrLen << 16);
  words[w + 1] = size | (start << 16);
  words[w + 2] = offset;
  for (let k = 3; k < headerSize >> 2; k++) words[w + k] = 0;
  pool.txHeader[b] = 1;
  return true;
}
