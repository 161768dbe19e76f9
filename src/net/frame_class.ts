/**
 * Per-frame classification for the extended statistics, as DPDK's virtio PMD does it in
 * `virtio_update_packet_stats` (DPDK drivers/net/virtio/virtio_rxtx.c; newer releases have
 * the same logic as an inline in virtio_rxtx.h): a size bin by the frame's length (virtio-net header
 * excluded, no FCS: a 60-byte minimum Ethernet frame is "undersize", as in DPDK), and
 * multicast or broadcast by the destination address (a group address, I/G bit set, is
 * multicast unless it is ff:ff:ff:ff:ff:ff, which is broadcast only).
 *
 * Bins (RFC 2819's etherStatsPkts…, DPDK's `size_bins[8]`): 0 undersize (< 64 bytes),
 * 1 exactly 64, 2 65–127, 3 128–255, 4 256–511, 5 512–1023, 6 1024–1518, 7 1519 and more.
 *
 * Hot path: {@linkcode classifyFrames} runs once per burst in RxQueue.rxBurst and
 * TxQueue.txBurst over the frames they deliver or send, allocates nothing, and takes no
 * branch of its own per frame (selects, not ifs: code first reached late costs V8 a
 * recompile, src/engine/worker.ts). Measured (bench/micro/forwarding_bench.ts, 64-byte
 * frames, each classified on receive and on send): ~12 ns more per forwarded frame, about
 * 7 of them the size bins (one float increment a frame), 3 the address, 2 the calls;
 * reading the address as two words, or counting bins in two integer histograms first,
 * measured no better.
 *
 * @module
 */

import type { PacketBuffers } from "../dma/packet_buffers.ts";

/**
 * DPDK's size bin of a frame of `len` bytes (header excluded): 0 … 7, see the module doc.
 *
 * @example
 * ```ts
 * import { sizeBin } from "./frame_class.ts";
 * sizeBin(60); // 0 (undersize)
 * sizeBin(64); // 1
 * sizeBin(1518); // 6
 * sizeBin(1519); // 7
 * ```
 */
export function sizeBin(len: number): number {
  // As DPDK: ≤ 64 by a shift, 65–1023 by the highest set bit (2^(k) ≤ len < 2^(k+1) → k-4).
  return len >= 1024 ? (len > 1518 ? 7 : 6) : len <= 64 ? len >> 6 : 27 - Math.clz32(len);
}

/** A burst's size bins, counted in integers and added to the counters once a burst. */
const KEPT = new Int32Array(8);

/**
 * Counts `n` frames into `c` from slot `at`: multicast at `at`, broadcast at `at + 1`, the
 * 8 size bins from `at + 2` (queue_counters.ts: P_RX_MULTICAST or P_TX_MULTICAST). Frame
 * i is `lens[i]` bytes at `pool.offset(bufs[i]) + hdr`; one that spans buffers is counted
 * whole by its first buffer (which holds its addresses). A frame shorter than 6 bytes has
 * no destination address and counts in neither multicast nor broadcast.
 *
 * @example
 * ```ts
 * import { classifyFrames } from "./frame_class.ts";
 * const data = new Uint8Array(2048).fill(0xff); // one broadcast frame in buffer 0
 * const pool = { data, offset: (b: number) => b * 2048 };
 * const c = new Float64Array(10);
 * classifyFrames(c, 0, pool, 12, Uint32Array.of(0), Uint32Array.of(64), 1);
 * c[1]; // 1 (broadcast)
 * c[2 + 1]; // 1 (64 bytes)
 * ```
 */
export function classifyFrames(
  c: Float64Array,
  at: number,
  pool: Pick<PacketBuffers, "data" | "offset">,
  hdr: number,
  bufs: Uint32Array,
  lens: Uint32Array,
  n: number,
): void {
  const d = pool.data, bins = at + 2, k = KEPT;
  let mc = 0, bc = 0;
  for (let i = 0; i < n; i++) {
    const len = lens[i];
    k[sizeBin(len)]++;
    // I/G bit of the destination address; broadcast when all 48 bits are set. Unicast,
    // the common case, reads one byte.
    const off = pool.offset(bufs[i]) + hdr, first = d[off];
    if ((first & 1) !== 0 && len >= 6) {
      const b = (first & d[off + 1] & d[off + 2] & d[off + 3] & d[off + 4] & d[off + 5]) === 0xff
        ? 1
        : 0;
      mc += 1 - b;
      bc += b;
    }
  }
  c[at] += mc;
  c[at + 1] += bc;
  for (let b = 0; b < 8; b++) {
    c[bins + b] += k[b];
    k[b] = 0;
  }
}
