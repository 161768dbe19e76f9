/**
 * Offloads (virtio 1.x §5.1.6.2 transmit, §5.1.6.4 receive): which ones a port negotiated,
 * as a small bit mask, and the per-frame offload fields of a burst, in typed arrays built
 * once (docs/offloads.md). Which ones a port negotiated: offload_features.ts.
 *
 * @module
 */

/** Mask bit: the device completes partial checksums we send (VIRTIO_NET_F_CSUM). */
export const OFFLOAD_TX_CSUM = 1;
/** Mask bit: the device segments TCP/IPv4 super-frames we send (HOST_TSO4). */
export const OFFLOAD_TSO4 = 2;
/** Mask bit: the device segments TCP/IPv6 super-frames we send (HOST_TSO6). */
export const OFFLOAD_TSO6 = 4;
/** Mask bit: the device may mark frames checked or partial (VIRTIO_NET_F_GUEST_CSUM). */
export const OFFLOAD_RX_CSUM = 8;
/** Mask bit: the device may deliver TCP/IPv4 super-frames (GUEST_TSO4). */
export const OFFLOAD_LRO4 = 16;
/** Mask bit: the device may deliver TCP/IPv6 super-frames (GUEST_TSO6). */
export const OFFLOAD_LRO6 = 32;
/** The receive bits: a port with any of them validates offload fields on receive. */
export const OFFLOAD_RX_ANY = OFFLOAD_RX_CSUM | OFFLOAD_LRO4 | OFFLOAD_LRO6;

/** Per-frame checksum state: nothing known (the frame's checksums are as on the wire). */
export const CSUM_NONE = 0;
/** Per-frame checksum state: the device checked it (VIRTIO_NET_HDR_F_DATA_VALID). */
export const CSUM_VALID = 1;
/**
 * Per-frame checksum state: partial (VIRTIO_NET_HDR_F_NEEDS_CSUM): the 16-bit field at
 * csumStart + csumOffset holds the pseudo-header sum, the sum from csumStart on is due.
 */
export const CSUM_PARTIAL = 2;

/**
 * The offload fields of up to `capacity` frames of a burst, entry i for frame i: on
 * receive the validated copy of what the device wrote (rx_offload.ts), on transmit the
 * request (tx_offload.ts). Arrays built once, reused for every burst.
 *
 * @example
 * ```ts
 * import { CSUM_PARTIAL, FrameOffloads } from "./offloads.ts";
 * const f = new FrameOffloads(32);
 * f.csum[0] = CSUM_PARTIAL; // TCP/IPv4 behind a 14-byte Ethernet header:
 * f.csumStart[0] = 34;
 * f.csumOffset[0] = 16;
 * ```
 */
export class FrameOffloads {
  /** Entries per array. */
  readonly capacity: number;
  /** {@linkcode CSUM_NONE}, {@linkcode CSUM_VALID} or {@linkcode CSUM_PARTIAL}. */
  readonly csum: Uint8Array;
  /** Where the checksummed bytes start (from the frame's first byte), when partial. */
  readonly csumStart: Uint16Array;
  /** Where the checksum field is, from csumStart (16 for TCP, 6 for UDP), when partial. */
  readonly csumOffset: Uint16Array;
  /** VIRTIO_NET_HDR_GSO_NONE (0), _TCPV4 (1) or _TCPV6 (4). */
  readonly gsoType: Uint8Array;
  /** Payload bytes per segment (the MSS), with a GSO type. */
  readonly gsoSize: Uint16Array;
  /** Bytes of headers (Ethernet to TCP), with a GSO type. */
  readonly hdrLen: Uint16Array;

  /** Arrays of `capacity` entries. */
  constructor(capacity: number) {
    this.capacity = capacity;
    this.csum = new Uint8Array(capacity);
    this.csumStart = new Uint16Array(capacity);
    this.csumOffset = new Uint16Array(capacity);
    this.gsoType = new Uint8Array(capacity);
    this.gsoSize = new Uint16Array(capacity);
    this.hdrLen = new Uint16Array(capacity);
  }
}
