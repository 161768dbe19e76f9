/**
 * struct virtio_net_hdr (virtio 1.x §5.1.6), which precedes every packet on the rings.
 *
 * With VIRTIO_F_VERSION_1 the header always has num_buffers: 12 bytes; with
 * VIRTIO_NET_F_HASH_REPORT it grows by hash_value, hash_report and padding to 20 bytes.
 * A legacy device has num_buffers only with VIRTIO_NET_F_MRG_RXBUF: 10 bytes without it
 * (§5.1.6.1 legacy note).
 *
 * @module
 */

/** Offset of flags (u8). */
export const HDR_FLAGS = 0;
/** Offset of gso_type (u8). */
export const HDR_GSO_TYPE = 1;
/** Offset of hdr_len (le16). */
export const HDR_HDR_LEN = 2;
/** Offset of gso_size (le16). */
export const HDR_GSO_SIZE = 4;
/** Offset of csum_start (le16). */
export const HDR_CSUM_START = 6;
/** Offset of csum_offset (le16). */
export const HDR_CSUM_OFFSET = 8;
/** Offset of num_buffers (le16). */
export const HDR_NUM_BUFFERS = 10;
/** Offset of hash_value (le32, HASH_REPORT only). */
export const HDR_HASH_VALUE = 12;
/** Offset of hash_report (le16, HASH_REPORT only). */
export const HDR_HASH_REPORT = 16;

/** Header size with VERSION_1. */
export const VIRTIO_NET_HDR_SIZE = 12;
/** Header size of a legacy device without MRG_RXBUF (no num_buffers). */
export const VIRTIO_NET_LEGACY_HDR_SIZE = 10;
/** Header size with VERSION_1 and HASH_REPORT. */
export const VIRTIO_NET_HDR_HASH_SIZE = 20;
/** flags: the checksum at csum_start + csum_offset is partial. */
export const VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
/** flags: the checksum is valid. */
export const VIRTIO_NET_HDR_F_DATA_VALID = 2;
/** flags: rsc_info is in csum_start/csum_offset (VIRTIO_NET_F_RSC_EXT; never negotiated here). */
export const VIRTIO_NET_HDR_F_RSC_INFO = 4;
/** gso_type: not a GSO frame. */
export const VIRTIO_NET_HDR_GSO_NONE = 0;
/** gso_type: TCP over IPv4 segmentation (TSO4). */
export const VIRTIO_NET_HDR_GSO_TCPV4 = 1;
/** gso_type: UDP fragmentation (UFO; never negotiated here). */
export const VIRTIO_NET_HDR_GSO_UDP = 3;
/** gso_type: TCP over IPv6 segmentation (TSO6). */
export const VIRTIO_NET_HDR_GSO_TCPV6 = 4;
/** gso_type bit: the TCP segment has ECN/CWR set (GUEST_ECN/HOST_ECN; never negotiated here). */
export const VIRTIO_NET_HDR_GSO_ECN = 0x80;

/**
 * The header size for the negotiated features: `hashReport` (HASH_REPORT), and for a
 * legacy device `numBuffers` (MRG_RXBUF; always there with VERSION_1).
 *
 * @example
 * ```ts
 * import { netHeaderSize } from "./header.ts";
 * netHeaderSize(false); // 12
 * netHeaderSize(false, false); // 10: legacy without MRG_RXBUF
 * ```
 */
export function netHeaderSize(hashReport: boolean, numBuffers = true): number {
  if (hashReport) return VIRTIO_NET_HDR_HASH_SIZE;
  return numBuffers ? VIRTIO_NET_HDR_SIZE : VIRTIO_NET_LEGACY_HDR_SIZE;
}
