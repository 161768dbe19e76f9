/**
 * The counters of one queue pair of a port, as `RxQueue` and `TxQueue` (rx_queue.ts, tx_queue.ts)
 * keep them: slots of a Float64Array, so that a forwarding worker's queues can count into
 * shared memory the main thread reads (src/engine/counters.ts puts one such block per port
 * in each worker's array) while a port's own queues count into a private block.
 *
 * Slot names start with P_ (a port's block in a worker's array); the drops are counted by
 * reason.
 *
 * @module
 */

/** Frames received. */
export const P_RX_PACKETS = 0;
/** Bytes of frames received (virtio-net header excluded). */
export const P_RX_BYTES = 1;
/** Frames handed to the device for transmission. */
export const P_TX_PACKETS = 2;
/** Bytes of frames transmitted. */
export const P_TX_BYTES = 3;
/** Frames dropped because the transmit ring was full (the forwarding engine's txFull "drop"). */
export const P_DROP_TX_RING_FULL = 4;
/** Receive descriptors left empty because no buffer was free. */
export const P_DROP_NO_BUFFER = 5;
/** Frames received here that a forwarding script dropped. */
export const P_DROP_SCRIPT = 6;
/** Buffers the device returned without a frame. */
export const P_DROP_RUNT = 7;
/** Frames too long for a buffer (a script lengthened them). */
export const P_DROP_TOO_LONG = 8;
/** Notifications sent on the receive queue (refills). */
export const P_RX_KICKS = 9;
/** Notifications sent on the transmit queue. */
export const P_TX_KICKS = 10;
/** Receive-queue publications the device asked not to be notified of. */
export const P_RX_KICKS_SUPPRESSED = 11;
/** Receive bursts that brought at least one frame. */
export const P_RX_BURSTS = 12;
/** Transmit-queue publications the device asked not to be notified of. */
export const P_TX_KICKS_SUPPRESSED = 13;
/** Transmit bursts the ring could not take whole (the rest waited: backpressure). */
export const P_TX_RING_FULL_WAITS = 14;
/** Notifications sent to the port's other receive queues after this one ran dry. */
export const P_RX_SIBLING_WAKES = 15;
/** Refills that left receive descriptors empty because no buffer was free. */
export const P_RX_REFILL_FAILURES = 16;
/** Frames txBurst handed back because the ring was full (the caller kept them). */
export const P_TX_REFUSED_RING_FULL = 17;
/**
 * Frames dropped because their mergeable receive buffers broke §5.1.6.4's rules
 * (num_buffers 0 or more than the ring holds, a buffer before the last not filled).
 */
export const P_DROP_BAD_MERGE = 18;
/**
 * Frames dropped because the device wrote offload fields that break §5.1.6.4.1's rules
 * (flags, gso_type, gso_size, csum_start/csum_offset, hdr_len; src/net/rx_offload.ts).
 */
export const P_DROP_BAD_OFFLOAD = 19;
/**
 * Frames to go out of this port whose offload request it cannot honour: not negotiated,
 * or fields outside the frame (src/net/tx_offload.ts).
 */
export const P_DROP_TX_OFFLOAD = 20;
/** Frames received with VIRTIO_NET_HDR_F_DATA_VALID: the device checked the checksum. */
export const P_RX_CSUM_VALID = 21;
/** Frames received with VIRTIO_NET_HDR_F_NEEDS_CSUM: the checksum is partial. */
export const P_RX_CSUM_PARTIAL = 22;
/** Frames received as a GSO super-frame (GUEST_TSO4/6: large receive). */
export const P_RX_GSO = 23;
/** Frames sent with an offload request (partial checksum, TSO). */
export const P_TX_OFFLOADED = 24;
/**
 * Frames received here that the engine's forwarding mode left unanswered and freed
 * (icmpecho: neither an ARP request nor an ICMPv4 echo request; src/engine/fwd_modes/).
 */
export const P_DROP_MODE = 25;
// Extended statistics as DPDK's virtio PMD keeps them per queue (struct virtnet_stats:
// multicast, broadcast, size_bins[8]; src/net/frame_class.ts classifies, src/engine/xstats.ts
// names them). From slot 32 on, so slots 25–31 stay free for other per-queue counters.
/** Frames received with a group destination address other than broadcast (DPDK `multicast`). */
export const P_RX_MULTICAST = 32;
/** Frames received to ff:ff:ff:ff:ff:ff (DPDK `broadcast`). */
export const P_RX_BROADCAST = 33;
/**
 * First of 8 slots: frames received by length (header excluded), DPDK's `size_bins`:
 * <64, 64, 65–127, 128–255, 256–511, 512–1023, 1024–1518, ≥1519 (frame_class.ts).
 */
export const P_RX_SIZE_BINS = 34;
/** Frames transmitted with a group destination address other than broadcast. */
export const P_TX_MULTICAST = 42;
/** Frames transmitted to ff:ff:ff:ff:ff:ff. */
export const P_TX_BROADCAST = 43;
/** First of 8 slots: frames transmitted by length, as {@linkcode P_RX_SIZE_BINS}. */
export const P_TX_SIZE_BINS = 44;
/** Number of size bins (DPDK's `size_bins[8]`). */
export const SIZE_BINS = 8;
/** Size of a block. */
export const PORT_SLOTS = 64;
