/**
 * virtio-net feature bits (virtio 1.x §5.1.3), registered with their spec names so that
 * every negotiated bit prints by name.
 *
 * @module
 */

import { registerFeatureNames } from "../virtio/features.ts";

/** Device handles packets with partial checksum. */
export const VIRTIO_NET_F_CSUM = 0;
/** Driver handles packets with partial checksum. */
export const VIRTIO_NET_F_GUEST_CSUM = 1;
/** Control channel offloads reconfiguration. */
export const VIRTIO_NET_F_CTRL_GUEST_OFFLOADS = 2;
/** Device reports its maximum MTU in config. */
export const VIRTIO_NET_F_MTU = 3;
/** Device has a given MAC address in config. */
export const VIRTIO_NET_F_MAC = 5;
/** Driver can receive TSOv4. */
export const VIRTIO_NET_F_GUEST_TSO4 = 7;
/** Driver can receive TSOv6. */
export const VIRTIO_NET_F_GUEST_TSO6 = 8;
/** Driver can receive TSO with ECN. */
export const VIRTIO_NET_F_GUEST_ECN = 9;
/** Driver can receive UFO. */
export const VIRTIO_NET_F_GUEST_UFO = 10;
/** Device can receive TSOv4. */
export const VIRTIO_NET_F_HOST_TSO4 = 11;
/** Device can receive TSOv6. */
export const VIRTIO_NET_F_HOST_TSO6 = 12;
/** Device can receive TSO with ECN. */
export const VIRTIO_NET_F_HOST_ECN = 13;
/** Device can receive UFO. */
export const VIRTIO_NET_F_HOST_UFO = 14;
/** Driver can merge receive buffers. */
export const VIRTIO_NET_F_MRG_RXBUF = 15;
/** Config status field is available. */
export const VIRTIO_NET_F_STATUS = 16;
/** Control virtqueue is available. */
export const VIRTIO_NET_F_CTRL_VQ = 17;
/** Control channel RX mode support. */
export const VIRTIO_NET_F_CTRL_RX = 18;
/** Control channel VLAN filtering. */
export const VIRTIO_NET_F_CTRL_VLAN = 19;
/** Extra RX mode control support. */
export const VIRTIO_NET_F_CTRL_RX_EXTRA = 20;
/** Driver can send gratuitous packets. */
export const VIRTIO_NET_F_GUEST_ANNOUNCE = 21;
/** Device supports multiqueue with automatic receive steering. */
export const VIRTIO_NET_F_MQ = 22;
/** Set MAC address through the control channel. */
export const VIRTIO_NET_F_CTRL_MAC_ADDR = 23;
/** Device can report per-queue statistics. */
export const VIRTIO_NET_F_DEVICE_STATS = 50;
/** Device supports per-virtqueue notification coalescing. */
export const VIRTIO_NET_F_VQ_NOTF_COAL = 52;
/** Device supports notification coalescing. */
export const VIRTIO_NET_F_NOTF_COAL = 53;
/** Device can report the packet's hash value and type. */
export const VIRTIO_NET_F_HASH_REPORT = 57;
/** Driver provides the exact header length value. */
export const VIRTIO_NET_F_GUEST_HDRLEN = 59;
/** Device supports RSS (receive-side scaling). */
export const VIRTIO_NET_F_RSS = 60;
/** Device can process duplicated ACKs and report the number of coalesced segments. */
export const VIRTIO_NET_F_RSC_EXT = 61;
/** Device may act as a standby for a primary device with the same MAC. */
export const VIRTIO_NET_F_STANDBY = 62;
/** Device reports speed and duplex. */
export const VIRTIO_NET_F_SPEED_DUPLEX = 63;

registerFeatureNames([
  [VIRTIO_NET_F_CSUM, "VIRTIO_NET_F_CSUM"],
  [VIRTIO_NET_F_GUEST_CSUM, "VIRTIO_NET_F_GUEST_CSUM"],
  [VIRTIO_NET_F_CTRL_GUEST_OFFLOADS, "VIRTIO_NET_F_CTRL_GUEST_OFFLOADS"],
  [VIRTIO_NET_F_MTU, "VIRTIO_NET_F_MTU"],
  [VIRTIO_NET_F_MAC, "VIRTIO_NET_F_MAC"],
  [6, "VIRTIO_NET_F_GSO"],
  [VIRTIO_NET_F_GUEST_TSO4, "VIRTIO_NET_F_GUEST_TSO4"],
  [VIRTIO_NET_F_GUEST_TSO6, "VIRTIO_NET_F_GUEST_TSO6"],
  [VIRTIO_NET_F_GUEST_ECN, "VIRTIO_NET_F_GUEST_ECN"],
  [VIRTIO_NET_F_GUEST_UFO, "VIRTIO_NET_F_GUEST_UFO"],
  [VIRTIO_NET_F_HOST_TSO4, "VIRTIO_NET_F_HOST_TSO4"],
  [VIRTIO_NET_F_HOST_TSO6, "VIRTIO_NET_F_HOST_TSO6"],
  [VIRTIO_NET_F_HOST_ECN, "VIRTIO_NET_F_HOST_ECN"],
  [VIRTIO_NET_F_HOST_UFO, "VIRTIO_NET_F_HOST_UFO"],
  [VIRTIO_NET_F_MRG_RXBUF, "VIRTIO_NET_F_MRG_RXBUF"],
  [VIRTIO_NET_F_STATUS, "VIRTIO_NET_F_STATUS"],
  [VIRTIO_NET_F_CTRL_VQ, "VIRTIO_NET_F_CTRL_VQ"],
  [VIRTIO_NET_F_CTRL_RX, "VIRTIO_NET_F_CTRL_RX"],
  [VIRTIO_NET_F_CTRL_VLAN, "VIRTIO_NET_F_CTRL_VLAN"],
  [VIRTIO_NET_F_CTRL_RX_EXTRA, "VIRTIO_NET_F_CTRL_RX_EXTRA"],
  [VIRTIO_NET_F_GUEST_ANNOUNCE, "VIRTIO_NET_F_GUEST_ANNOUNCE"],
  [VIRTIO_NET_F_MQ, "VIRTIO_NET_F_MQ"],
  [VIRTIO_NET_F_CTRL_MAC_ADDR, "VIRTIO_NET_F_CTRL_MAC_ADDR"],
  [VIRTIO_NET_F_DEVICE_STATS, "VIRTIO_NET_F_DEVICE_STATS"],
  [51, "VIRTIO_NET_F_HASH_TUNNEL"],
  [VIRTIO_NET_F_VQ_NOTF_COAL, "VIRTIO_NET_F_VQ_NOTF_COAL"],
  [VIRTIO_NET_F_NOTF_COAL, "VIRTIO_NET_F_NOTF_COAL"],
  [54, "VIRTIO_NET_F_GUEST_USO4"],
  [55, "VIRTIO_NET_F_GUEST_USO6"],
  [56, "VIRTIO_NET_F_HOST_USO"],
  [VIRTIO_NET_F_HASH_REPORT, "VIRTIO_NET_F_HASH_REPORT"],
  [58, "VIRTIO_NET_F_GUEST_HDRLEN_RESERVED"],
  [VIRTIO_NET_F_GUEST_HDRLEN, "VIRTIO_NET_F_GUEST_HDRLEN"],
  [VIRTIO_NET_F_RSS, "VIRTIO_NET_F_RSS"],
  [VIRTIO_NET_F_RSC_EXT, "VIRTIO_NET_F_RSC_EXT"],
  [VIRTIO_NET_F_STANDBY, "VIRTIO_NET_F_STANDBY"],
  [VIRTIO_NET_F_SPEED_DUPLEX, "VIRTIO_NET_F_SPEED_DUPLEX"],
]);
