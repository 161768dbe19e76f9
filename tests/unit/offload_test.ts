/**
 * Offloads (docs/offloads.md): which are negotiated, the validation of every
 * device-written receive field with hostile values (each dropped with a named reason),
 * and the transmit header written from a request and kept by TxQueue. The test plays the
 * device (tests/unit/rx_tx_fixture.ts).
 */

import assert from "node:assert/strict";
import { selectFeatures } from "../../src/net/negotiate.ts";
import { bit, hasFeature } from "../../src/virtio/features.ts";
import {
  VIRTIO_NET_F_CSUM,
  VIRTIO_NET_F_GUEST_CSUM,
  VIRTIO_NET_F_GUEST_TSO4,
  VIRTIO_NET_F_GUEST_TSO6,
  VIRTIO_NET_F_HOST_TSO4,
  VIRTIO_NET_F_HOST_TSO6,
  VIRTIO_NET_F_MRG_RXBUF,
} from "../../src/net/features.ts";
import {
  CSUM_NONE,
  CSUM_PARTIAL,
  CSUM_VALID,
  FrameOffloads,
  OFFLOAD_LRO4,
  OFFLOAD_RX_CSUM,
  OFFLOAD_TSO4,
  OFFLOAD_TX_CSUM,
} from "../../src/net/offloads.ts";
import { offloadsOf } from "../../src/net/offload_features.ts";
import { readRxOffload } from "../../src/net/rx_offload.ts";
import { requestTxOffload } from "../../src/net/tx_offload.ts";
import { RxQueue } from "../../src/net/rx_queue.ts";
import { TxQueue } from "../../src/net/tx_queue.ts";
import { VIRTIO_NET_HDR_SIZE } from "../../src/net/header.ts";
import {
  P_DROP_BAD_OFFLOAD,
  P_RX_CSUM_PARTIAL,
  P_TX_OFFLOADED,
} from "../../src/net/queue_counters.ts";
import { PORT_SLOTS } from "../../src/net/queue_counters.ts";
import { frame, withRig } from "./rx_tx_fixture.ts";

const HDR = VIRTIO_NET_HDR_SIZE;
const ALL_RX = OFFLOAD_RX_CSUM | OFFLOAD_LRO4;

const offered = [
  32,
  33,
  VIRTIO_NET_F_CSUM,
  VIRTIO_NET_F_HOST_TSO4,
  VIRTIO_NET_F_HOST_TSO6,
  VIRTIO_NET_F_GUEST_CSUM,
  VIRTIO_NET_F_GUEST_TSO4,
  VIRTIO_NET_F_GUEST_TSO6,
  VIRTIO_NET_F_MRG_RXBUF,
].reduce((a, f) => a | bit(f), 0n);

Deno.test("transmit offloads are taken when offered, receive ones when asked, each with its dependencies (§5.1.3.1)", () => {
  const rx = { rxChecksum: true, lro: true };
  const all = selectFeatures("p", offered, rx);
  for (
    const f of [
      VIRTIO_NET_F_CSUM,
      VIRTIO_NET_F_HOST_TSO4,
      VIRTIO_NET_F_HOST_TSO6,
      VIRTIO_NET_F_GUEST_CSUM,
      VIRTIO_NET_F_GUEST_TSO4,
      VIRTIO_NET_F_GUEST_TSO6,
    ]
  ) assert.ok(hasFeature(all, f), `${f}`);
  assert.equal(offloadsOf(all), 63);
  // By default the transmit ones only: a receiver passing frames on unchanged stays right.
  assert.equal(offloadsOf(selectFeatures("p", offered)), 7);
  // TSO needs CSUM; large receive needs GUEST_CSUM and mergeable buffers.
  assert.equal(offloadsOf(selectFeatures("p", offered, { txChecksum: false })) & 7, 0);
  assert.equal(offloadsOf(selectFeatures("p", offered, { tso: false })) & 7, OFFLOAD_TX_CSUM);
  assert.equal(offloadsOf(selectFeatures("p", offered, { lro: true })) & 56, 0);
  assert.equal(
    offloadsOf(selectFeatures("p", offered, { rxChecksum: true })) & 56,
    OFFLOAD_RX_CSUM,
  );
  assert.equal(
    offloadsOf(selectFeatures("p", offered, { ...rx, mergeable: false })) & 56,
    OFFLOAD_RX_CSUM,
  );
  // Nothing offered, nothing taken.
  assert.equal(offloadsOf(selectFeatures("p", bit(32) | bit(33))), 0);
});

/** A 12-byte header with the given fields (little-endian). */
function header(
  f: { flags?: number; gso?: number; hdrLen?: number; size?: number; start?: number; off?: number },
): Uint8Array {
  const h = new Uint8Array(HDR), v = new DataView(h.buffer);
  h[0] = f.flags ?? 0;
  h[1] = f.gso ?? 0;
  v.setUint16(2, f.hdrLen ?? 0, true);
  v.setUint16(4, f.size ?? 0, true);
  v.setUint16(6, f.start ?? 0, true);
  v.setUint16(8, f.off ?? 0, true);
  return h;
}

Deno.test("receive: valid offload fields are copied and reported per frame", () => {
  const f = new FrameOffloads(4);
  assert.ok(readRxOffload(header({}), 0, 60, 2036, ALL_RX, f, 0));
  assert.equal(f.csum[0], CSUM_NONE);
  assert.ok(readRxOffload(header({ flags: 2 }), 0, 60, 2036, ALL_RX, f, 1));
  assert.equal(f.csum[1], CSUM_VALID);
  assert.ok(readRxOffload(header({ flags: 1, start: 34, off: 16 }), 0, 60, 2036, ALL_RX, f, 2));
  assert.deepEqual([f.csum[2], f.csumStart[2], f.csumOffset[2]], [CSUM_PARTIAL, 34, 16]);
  const lro = header({ flags: 1, gso: 1, hdrLen: 66, size: 1448, start: 34, off: 16 });
  assert.ok(readRxOffload(lro, 0, 65000, 2036, ALL_RX, f, 3));
  assert.deepEqual([f.gsoType[3], f.gsoSize[3], f.hdrLen[3]], [1, 1448, 66]);
  // gso_size and hdr_len of a frame that is no GSO frame mean nothing: reported as 0.
  assert.ok(readRxOffload(header({ size: 999, hdrLen: 9999 }), 0, 60, 2036, ALL_RX, f, 0));
  assert.deepEqual([f.gsoSize[0], f.hdrLen[0]], [0, 0]);
});

Deno.test("receive: hostile offload fields are refused (§5.1.6.4.1)", () => {
  const f = new FrameOffloads(1);
  const bad: [string, Uint8Array, number, number][] = [
    ["a flag without GUEST_CSUM", header({ flags: 2 }), 60, 0],
    ["an unknown flag", header({ flags: 8 }), 60, ALL_RX],
    ["RSC_INFO (never negotiated)", header({ flags: 4 }), 60, ALL_RX],
    ["partial and valid at once", header({ flags: 3, start: 34, off: 16 }), 60, ALL_RX],
    ["a checksum field past the frame", header({ flags: 1, start: 50, off: 16 }), 60, ALL_RX],
    [
      "a checksum field past the first buffer",
      header({ flags: 1, start: 2030, off: 6 }),
      9000,
      ALL_RX,
    ],
    ["csum_start 0xffff", header({ flags: 1, start: 0xffff, off: 0xffff }), 60, ALL_RX],
    [
      "TSO4 not negotiated",
      header({ flags: 1, gso: 1, size: 1448, start: 34, off: 16 }),
      9000,
      OFFLOAD_RX_CSUM,
    ],
    [
      "TSO6 not negotiated",
      header({ flags: 1, gso: 4, size: 1448, start: 54, off: 16 }),
      9000,
      ALL_RX,
    ],
    ["UDP GSO", header({ flags: 1, gso: 3, size: 1448, start: 34, off: 6 }), 9000, ALL_RX],
    ["ECN", header({ flags: 1, gso: 0x81, size: 1448, start: 34, off: 16 }), 9000, ALL_RX],
    [
      "an unknown gso_type",
      header({ flags: 1, gso: 0x7f, size: 1, start: 34, off: 16 }),
      9000,
      ALL_RX,
    ],
    ["GSO without a partial checksum", header({ gso: 1, size: 1448 }), 9000, ALL_RX],
    ["GSO with gso_size 0", header({ flags: 1, gso: 1, start: 34, off: 16 }), 9000, ALL_RX],
    [
      "hdr_len past the frame",
      header({ flags: 1, gso: 1, size: 1448, hdrLen: 9001, start: 34, off: 16 }),
      9000,
      ALL_RX,
    ],
  ];
  for (const [what, h, len, mask] of bad) {
    assert.equal(readRxOffload(h, 0, len, 2036, mask, f, 0), false, what);
  }
});

Deno.test("RxQueue drops a frame with hostile offload fields, counted, and delivers the others with theirs", () => {
  withRig(8, 32, (r) => {
    const c = new Float64Array(PORT_SLOTS);
    const rx = new RxQueue(r.vq, r.pool, HDR, c, 0);
    const f = new FrameOffloads(8);
    rx.enableOffloads(f, ALL_RX);
    rx.refill();
    const ids = r.nic.takeAvail();
    const hdrs = [
      header({ flags: 1, start: 34, off: 16 }),
      header({ flags: 0x40 }),
      header({ flags: 2 }),
    ];
    for (let i = 0; i < 3; i++) {
      const b = r.nic.bytes(ids[i]);
      b.set(hdrs[i]);
      b.set(frame(100, i), HDR);
    }
    r.nic.use([[ids[0], HDR + 100], [ids[1], HDR + 100], [ids[2], HDR + 100]]);
    const bufs = new Uint32Array(8), lens = new Uint32Array(8);
    assert.equal(rx.rxBurst(bufs, lens, 8), 2);
    assert.deepEqual([f.csum[0], f.csum[1]], [CSUM_PARTIAL, CSUM_VALID]);
    assert.equal(rx.dropsBadOffload, 1);
    assert.equal(c[P_DROP_BAD_OFFLOAD], 1);
    assert.equal(c[P_RX_CSUM_PARTIAL], 1);
    assert.equal(rx.packets, 2);
    assert.equal(rx.bytes, 200);
    assert.equal(r.pool.available, 32 - 8 - 2, "the dropped frame's buffer went back");
  });
});

Deno.test("transmit: a request is written into the header and kept by txBurst; without one it is zeroed", () => {
  withRig(8, 32, (r) => {
    const c = new Float64Array(PORT_SLOTS);
    const tx = new TxQueue(r.vq, r.pool, HDR, c);
    const req = new FrameOffloads(2);
    const a = r.pool.alloc(), b = r.pool.alloc();
    r.pool.data.fill(0xee, r.pool.offset(a), r.pool.offset(a) + 2048);
    r.pool.data.fill(0xee, r.pool.offset(b), r.pool.offset(b) + 2048);
    req.csum[0] = CSUM_PARTIAL;
    req.csumStart[0] = 34;
    req.csumOffset[0] = 16;
    req.gsoType[0] = 1;
    req.gsoSize[0] = 1448;
    req.hdrLen[0] = 66;
    assert.ok(requestTxOffload(r.pool, a, HDR, 1000, OFFLOAD_TX_CSUM | OFFLOAD_TSO4, req, 0));
    assert.ok(
      requestTxOffload(r.pool, b, HDR, 1000, 0, req, 1),
      "nothing asked: nothing to refuse",
    );
    assert.equal(r.pool.txHeader[b], 0);
    assert.equal(tx.txBurst(Uint32Array.of(a, b), Uint32Array.of(1000, 1000), 2), 2);
    const ids = r.nic.takeAvail();
    const ha = new DataView(r.nic.bytes(ids[0]).slice(0, HDR).buffer);
    assert.deepEqual(
      [ha.getUint8(0), ha.getUint8(1), ha.getUint16(2, true), ha.getUint16(4, true)],
      [1, 1, 66, 1448],
    );
    assert.deepEqual([ha.getUint16(6, true), ha.getUint16(8, true), ha.getUint16(10, true)], [
      34,
      16,
      0,
    ]);
    assert.deepEqual([...r.nic.bytes(ids[1]).subarray(0, HDR)], new Array(HDR).fill(0));
    assert.equal(r.pool.txHeader[a], 0, "the mark is cleared once sent");
    assert.equal(c[P_TX_OFFLOADED], 1);
  });
});

Deno.test("transmit: requests the port cannot honour are refused, the header untouched", () => {
  withRig(8, 8, (r) => {
    const b = r.pool.alloc(), req = new FrameOffloads(1);
    const ask = (csum: number, start: number, off: number, gso = 0, size = 0, hdrLen = 0) => {
      req.csum[0] = csum;
      req.csumStart[0] = start;
      req.csumOffset[0] = off;
      req.gsoType[0] = gso;
      req.gsoSize[0] = size;
      req.hdrLen[0] = hdrLen;
    };
    const all = OFFLOAD_TX_CSUM | OFFLOAD_TSO4;
    const cases: [string, () => void, number, number][] = [
      ["CSUM not negotiated", () => ask(CSUM_PARTIAL, 34, 16), 100, OFFLOAD_TSO4],
      ["a checksum field past the frame", () => ask(CSUM_PARTIAL, 34, 16), 40, all],
      ["a checksum field past the first buffer", () => ask(CSUM_PARTIAL, 2030, 16), 9000, all],
      ["TSO without a partial checksum", () => ask(CSUM_NONE, 0, 0, 1, 1448, 54), 9000, all],
      ["TSO4 not negotiated", () => ask(CSUM_PARTIAL, 34, 16, 1, 1448, 54), 9000, OFFLOAD_TX_CSUM],
      ["TSO6 not negotiated", () => ask(CSUM_PARTIAL, 54, 16, 4, 1428, 74), 9000, all],
      ["UDP GSO", () => ask(CSUM_PARTIAL, 34, 6, 3, 1448, 42), 9000, all],
      ["gso_size 0", () => ask(CSUM_PARTIAL, 34, 16, 1, 0, 54), 9000, all],
      ["hdr_len past the frame", () => ask(CSUM_PARTIAL, 34, 16, 1, 1448, 9001), 9000, all],
    ];
    for (const [what, set, len, mask] of cases) {
      set();
      assert.equal(requestTxOffload(r.pool, b, HDR, len, mask, req, 0), false, what);
      assert.equal(r.pool.txHeader[b], 0, what);
    }
    r.pool.free(b);
  });
});

Deno.test("a freed buffer loses its transmit mark", () => {
  withRig(8, 8, (r) => {
    const b = r.pool.alloc(), req = new FrameOffloads(1);
    req.csum[0] = CSUM_PARTIAL;
    req.csumStart[0] = 34;
    req.csumOffset[0] = 16;
    assert.ok(requestTxOffload(r.pool, b, HDR, 100, OFFLOAD_TX_CSUM, req, 0));
    assert.equal(r.pool.txHeader[b], 1);
    r.pool.free(b);
    assert.equal(r.pool.txHeader[b], 0);
  });
});

Deno.test("RxQueue with mergeable buffers: a large receive over three buffers keeps its GSO fields; one with a hostile hdr_len is dropped whole", () => {
  withRig(16, 64, (r) => {
    const c = new Float64Array(PORT_SLOTS);
    const rx = new RxQueue(r.vq, r.pool, HDR, c, 0, true);
    const f = new FrameOffloads(16);
    rx.enableOffloads(f, ALL_RX);
    rx.refill();
    const ids = r.nic.takeAvail();
    const len = 5000, used: [number, number][] = [];
    // Two frames of three buffers each: header (num_buffers 3) in the first, all but the
    // last buffer full (§5.1.6.4).
    for (const [k, hdrLen] of [[0, 54], [3, 5001]]) {
      const h = header({ flags: 1, gso: 1, hdrLen, size: 1448, start: 34, off: 16 });
      h[10] = 3;
      r.nic.bytes(ids[k]).set(h);
      used.push([ids[k], 2048], [ids[k + 1], 2048], [ids[k + 2], len + HDR - 4096]);
    }
    r.nic.use(used);
    const before = r.pool.available;
    const bufs = new Uint32Array(16), lens = new Uint32Array(16);
    assert.equal(rx.rxBurst(bufs, lens, 16), 1);
    assert.equal(lens[0], len);
    assert.deepEqual([f.csum[0], f.gsoType[0], f.gsoSize[0], f.hdrLen[0]], [
      CSUM_PARTIAL,
      1,
      1448,
      54,
    ]);
    assert.equal(rx.dropsBadOffload, 1);
    assert.equal(c[P_DROP_BAD_OFFLOAD], 1);
    assert.equal(rx.bytes, len);
    // The dropped frame's three buffers went back (and the ring took six fresh ones).
    assert.equal(r.pool.available, before + 3 - 6);
  });
});

Deno.test("TxQueue sends a TSO super-frame that spans buffers as one chain, its header kept", () => {
  withRig(16, 16, (r) => {
    const c = new Float64Array(PORT_SLOTS);
    const tx = new TxQueue(r.vq, r.pool, HDR, c);
    const a = r.pool.alloc(), b = r.pool.alloc(), d = r.pool.alloc();
    r.pool.next[a] = b;
    r.pool.next[b] = d;
    const req = new FrameOffloads(1);
    req.csum[0] = CSUM_PARTIAL;
    req.csumStart[0] = 34;
    req.csumOffset[0] = 16;
    req.gsoType[0] = 1;
    req.gsoSize[0] = 1000;
    req.hdrLen[0] = 54;
    assert.ok(requestTxOffload(r.pool, a, HDR, 5000, OFFLOAD_TX_CSUM | OFFLOAD_TSO4, req, 0));
    assert.equal(tx.txBurst(Uint32Array.of(a), Uint32Array.of(5000), 1), 1);
    const ids = r.nic.takeAvail();
    const h = new DataView(r.nic.bytes(ids[0]).slice(0, HDR).buffer);
    assert.deepEqual([h.getUint8(0), h.getUint8(1), h.getUint16(4, true)], [1, 1, 1000]);
    assert.equal(r.pool.txHeader[a], 0);
    assert.equal(c[P_TX_OFFLOADED], 1);
  });
});
