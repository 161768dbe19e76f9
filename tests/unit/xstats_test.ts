/**
 * Extended statistics: the per-frame classification (size bins at each boundary,
 * multicast vs broadcast, undersize) against DPDK's virtio_update_packet_stats, the
 * counting in RxQueue/TxQueue (a frame that spans buffers counted once, whole), and the
 * names against DPDK's rte_virtio_rxq_stat_strings / rte_virtio_txq_stat_strings.
 */

import assert from "node:assert/strict";
import { classifyFrames, sizeBin } from "../../src/net/frame_class.ts";
import {
  P_DROP_BAD_MERGE,
  P_DROP_BAD_OFFLOAD,
  P_DROP_RUNT,
  P_DROP_TOO_LONG,
  P_DROP_TX_OFFLOAD,
  P_RX_BROADCAST,
  P_RX_MULTICAST,
  P_RX_PACKETS,
  P_RX_SIZE_BINS,
  P_TX_BROADCAST,
  P_TX_MULTICAST,
  P_TX_PACKETS,
  P_TX_SIZE_BINS,
  PORT_SLOTS,
} from "../../src/net/queue_counters.ts";
import { HDR_NUM_BUFFERS, VIRTIO_NET_HDR_SIZE } from "../../src/net/header.ts";
import { RxQueue } from "../../src/net/rx_queue.ts";
import { TxQueue } from "../../src/net/tx_queue.ts";
import {
  addXstats,
  DPDK_VIRTIO_QUEUE_STATS,
  OWN_RXQ_STATS,
  OWN_TXQ_STATS,
  portXstats,
  XSTAT_HELP,
} from "../../src/engine/xstats.ts";
import { withRig } from "./rx_tx_fixture.ts";

const HDR = VIRTIO_NET_HDR_SIZE;
const BUF = 2048;

/** DPDK's bins as its older if/else chain wrote them (virtio_rxtx.c, before 2020). */
function dpdkBin(s: number): number {
  if (s === 64) return 1;
  if (s > 64 && s < 1024) return 32 - Math.clz32(s) - 5;
  if (s < 64) return 0;
  return s < 1519 ? 6 : 7;
}

Deno.test("sizeBin: every boundary of DPDK's bins, and the same bin as DPDK's code for 0–70,000", () => {
  const cases: [number, number][] = [
    [0, 0],
    [1, 0],
    [60, 0], // a minimum Ethernet frame without FCS: undersize, as DPDK counts it
    [63, 0],
    [64, 1],
    [65, 2],
    [127, 2],
    [128, 3],
    [255, 3],
    [256, 4],
    [511, 4],
    [512, 5],
    [1023, 5],
    [1024, 6],
    [1518, 6],
    [1519, 7],
    [9014, 7],
    [65_550, 7],
  ];
  for (const [len, bin] of cases) assert.equal(sizeBin(len), bin, `${len} bytes`);
  for (let s = 0; s <= 70_000; s++) assert.equal(sizeBin(s), dpdkBin(s), `${s} bytes`);
});

/** A pool-like view over one buffer per frame, each frame's destination `dst` (6 bytes). */
function framesPool(dsts: number[][]) {
  const data = new Uint8Array(BUF * dsts.length);
  dsts.forEach((d, i) => data.set(d, i * BUF + HDR));
  return { data, offset: (b: number) => b * BUF };
}

Deno.test("classifyFrames: unicast, multicast (01:00:5e, 33:33, ff…fe) and broadcast apart", () => {
  const dsts = [
    [0x02, 0, 0, 0, 0, 1], // unicast, locally administered
    [0x00, 0x11, 0x22, 0x33, 0x44, 0x55], // unicast
    [0x01, 0x00, 0x5e, 0x00, 0x00, 0x01], // IPv4 multicast
    [0x33, 0x33, 0x00, 0x00, 0x00, 0x01], // IPv6 multicast
    [0xff, 0xff, 0xff, 0xff, 0xff, 0xfe], // group bit set, not all ones: multicast
    [0xff, 0xff, 0xff, 0xff, 0xff, 0xff], // broadcast (and not multicast too)
    [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff], // group bit clear: unicast
  ];
  const pool = framesPool(dsts);
  const c = new Float64Array(10);
  const bufs = Uint32Array.from(dsts.keys()), lens = new Uint32Array(dsts.length).fill(100);
  classifyFrames(c, 0, pool, HDR, bufs, lens, dsts.length);
  assert.equal(c[0], 3, "multicast");
  assert.equal(c[1], 1, "broadcast");
  assert.equal(c[2 + 2], 7, "all 100 bytes: bin 65–127");
});

Deno.test("classifyFrames: a frame too short for a destination address is sized, not cast", () => {
  const pool = framesPool([[0xff, 0xff, 0xff, 0xff, 0xff, 0xff], [0x01, 0, 0x5e, 0, 0, 1]]);
  const c = new Float64Array(10);
  classifyFrames(c, 0, pool, HDR, Uint32Array.of(0, 1), Uint32Array.of(5, 6), 2);
  assert.deepEqual([c[0], c[1], c[2]], [1, 0, 2], "the 6-byte one is multicast; both undersize");
});

/** Writes `f` (its first 6 bytes the destination) as the device would into `ids`. */
function receive(
  r: Parameters<Parameters<typeof withRig>[2]>[0],
  ids: number[],
  f: Uint8Array,
): [number, number][] {
  const entries: [number, number][] = [];
  let at = 0;
  for (let k = 0; at < f.length; k++) {
    const b = r.nic.bytes(ids[k]);
    const skip = k === 0 ? HDR : 0;
    if (k === 0) b.fill(0, 0, HDR);
    const take = Math.min(BUF - skip, f.length - at);
    b.set(f.subarray(at, at + take), skip);
    at += take;
    entries.push([ids[k], skip + take]);
  }
  const h = r.nic.bytes(ids[0]);
  h[HDR_NUM_BUFFERS] = entries.length;
  h[HDR_NUM_BUFFERS + 1] = 0;
  return entries;
}

const frameTo = (dst: number[], len: number) => {
  const f = new Uint8Array(len).fill(0x5a);
  f.set(dst);
  return f;
};
const BCAST = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
const MCAST = [0x01, 0x00, 0x5e, 0x00, 0x00, 0x07];
const UCAST = [0x02, 0, 0, 0, 0, 1];

Deno.test("RxQueue counts each delivered frame once, a 9,014-byte one in five buffers by its whole length", () => {
  withRig(16, 64, (r) => {
    const c = new Float64Array(PORT_SLOTS);
    const rx = new RxQueue(r.vq, r.pool, HDR, c, 0, true);
    rx.refill();
    const ids = r.nic.takeAvail();
    const used = [
      ...receive(r, ids.slice(0, 5), frameTo(BCAST, 9014)),
      ...receive(r, ids.slice(5, 6), frameTo(UCAST, 60)),
      ...receive(r, ids.slice(6, 7), frameTo(MCAST, 64)),
      ...receive(r, ids.slice(7, 8), frameTo(UCAST, 1518)),
    ];
    r.nic.use(used);
    const bufs = new Uint32Array(8), lens = new Uint32Array(8);
    assert.equal(rx.rxBurst(bufs, lens, 8), 4);
    assert.equal(c[P_RX_PACKETS], 4);
    assert.equal(c[P_RX_BROADCAST], 1);
    assert.equal(c[P_RX_MULTICAST], 1);
    const bins = Array.from(c.subarray(P_RX_SIZE_BINS, P_RX_SIZE_BINS + 8));
    assert.deepEqual(bins, [1, 1, 0, 0, 0, 0, 1, 1]);
    assert.equal(rx.counters, c);
    assert.equal(rx.counterBase, 0);
    const x = portXstats([{ counters: c, base: 0 }]);
    assert.equal(x.rx_q0_good_packets, 4);
    assert.equal(x.rx_q0_good_bytes, 9014 + 60 + 64 + 1518);
    assert.equal(x.rx_q0_undersize_packets, 1);
    assert.equal(x.rx_q0_size_1519_max_packets, 1);
  }, BUF);
});

Deno.test("TxQueue counts each frame it queued once, a chain by its whole length, none it refused", () => {
  withRig(8, 64, (r) => {
    const c = new Float64Array(PORT_SLOTS);
    const tx = new TxQueue(r.vq, r.pool, HDR, c, 0);
    const pool = r.pool;
    const put = (dst: number[], len: number): number => {
      const b = pool.alloc();
      pool.data.set(frameTo(dst, Math.min(len, BUF - HDR)), pool.offset(b) + HDR);
      return b;
    };
    // A 5,000-byte frame in three linked buffers, then three in one buffer each.
    const big = put(BCAST, 5000), b2 = pool.alloc(), b3 = pool.alloc();
    pool.next[big] = b2;
    pool.next[b2] = b3;
    const bufs = Uint32Array.of(big, put(MCAST, 128), put(UCAST, 255), put(UCAST, 63));
    const lens = Uint32Array.of(5000, 128, 255, 63);
    assert.equal(tx.txBurst(bufs, lens, 4), 4);
    assert.equal(c[P_TX_PACKETS], 4);
    assert.equal(c[P_TX_BROADCAST], 1);
    assert.equal(c[P_TX_MULTICAST], 1);
    const bins = Array.from(c.subarray(P_TX_SIZE_BINS, P_TX_SIZE_BINS + 8));
    assert.deepEqual(bins, [1, 0, 0, 2, 0, 0, 0, 1]);
    // A ring with no room: nothing queued, nothing classified.
    const more = Uint32Array.of(put(BCAST, 64), put(BCAST, 64), put(BCAST, 64), put(BCAST, 64));
    const sent = tx.txBurst(more, new Uint32Array(4).fill(64), 4);
    assert.equal(c[P_TX_SIZE_BINS + 1], sent, "only the frames the ring took");
    assert.equal(c[P_TX_BROADCAST], 1 + sent);
    assert.ok(sent < 4, `a ring of 8 with a 3-slot chain in flight took ${sent} of 4`);
  }, BUF);
});

Deno.test("names: DPDK's per-queue list, in DPDK's order, rx queues first, then ours", () => {
  // drivers/net/virtio/virtio_ethdev.c: rte_virtio_rxq_stat_strings (the txq list is the same).
  assert.deepEqual(DPDK_VIRTIO_QUEUE_STATS, [
    "good_packets",
    "good_bytes",
    "errors",
    "multicast_packets",
    "broadcast_packets",
    "undersize_packets",
    "size_64_packets",
    "size_65_127_packets",
    "size_128_255_packets",
    "size_256_511_packets",
    "size_512_1023_packets",
    "size_1024_1518_packets",
    "size_1519_max_packets",
  ]);
  const block = () => ({ counters: new Float64Array(PORT_SLOTS), base: 0 });
  const names = Object.keys(portXstats([block(), block()]));
  const dpdk = (d: string, k: number) => DPDK_VIRTIO_QUEUE_STATS.map((s) => `${d}_q${k}_${s}`);
  const own = (d: string, k: number, l: readonly string[]) => l.map((s) => `${d}_q${k}_${s}`);
  assert.deepEqual(names, [
    ...dpdk("rx", 0),
    ...dpdk("rx", 1),
    ...dpdk("tx", 0),
    ...dpdk("tx", 1),
    ...own("rx", 0, OWN_RXQ_STATS),
    ...own("rx", 1, OWN_RXQ_STATS),
    ...own("tx", 0, OWN_TXQ_STATS),
    ...own("tx", 1, OWN_TXQ_STATS),
  ]);
  for (const n of names) {
    const key = n.replace(/_q\d+_/, "_");
    assert.ok(XSTAT_HELP[key], `help for ${key}`);
  }
});

Deno.test("errors: rx the device's undeliverable frames, tx the frames the queue could not send", () => {
  const c = new Float64Array(2 * PORT_SLOTS);
  const o = PORT_SLOTS; // a block that does not start at 0
  c[o + P_DROP_RUNT] = 1;
  c[o + P_DROP_BAD_MERGE] = 2;
  c[o + P_DROP_BAD_OFFLOAD] = 4;
  c[o + P_DROP_TOO_LONG] = 8;
  c[o + P_DROP_TX_OFFLOAD] = 16;
  const x = portXstats([{ counters: c, base: o }]);
  assert.equal(x.rx_q0_errors, 7);
  assert.equal(x.tx_q0_errors, 24);
  assert.equal(x.rx_q0_dropped_bad_merge, 2);
  assert.equal(x.tx_q0_dropped_offload, 16);
  assert.deepEqual(addXstats({ a: 1, b: 2 }, { b: 3, c: 4 }), { a: 1, b: 5, c: 4 });
});
