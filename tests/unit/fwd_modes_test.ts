/**
 * The engine's built-in forwarding modes (src/engine/fwd_modes/), on frames built in a
 * packet pool: macswap, 5tswap over untagged, 802.1Q and 802.1ad+802.1Q frames of IPv4
 * and IPv6 TCP/UDP (byte for byte what the reverse flow's frame is, checksums still
 * valid), non-IP and short frames, icmpecho's ARP and echo replies (checksums checked)
 * and what it leaves unanswered, and the forwarder running each mode: where frames go,
 * what is counted, a frame that spans buffers handled by its first.
 */

import assert from "node:assert/strict";
import { BufferPool } from "../../src/dma/buffer_pool.ts";
import { DmaRegion } from "../../src/dma/memory.ts";
import { P_DROP_MODE, portBase, WORKER_SLOTS } from "../../src/engine/counters.ts";
import { Forwarder, type TxPort } from "../../src/engine/forwarder.ts";
import { applyMode } from "../../src/engine/fwd_modes/apply_mode.ts";
import { fiveTupleSwap } from "../../src/engine/fwd_modes/five_tuple_swap.ts";
import { icmpEcho } from "../../src/engine/fwd_modes/icmp_echo.ts";
import { l2HeaderLength } from "../../src/engine/fwd_modes/l2_header.ts";
import {
  type ForwardMode,
  MODE_BOUNCE,
  MODE_CONSUME,
  MODE_DROP,
  MODE_FORWARD,
  MODE_MACSWAP,
  MODE_RXONLY,
  modeNumber,
} from "../../src/engine/fwd_modes/modes.ts";
import { PORT_SLOTS } from "../../src/net/queue_counters.ts";
import {
  arpRequest,
  eth,
  ipv4,
  ipv4ChecksumsValid,
  ipv6,
  ipv6ChecksumValid,
} from "./fwd_modes_frames.ts";
import { FakeRx } from "./fake_rx_port.ts";
import { TX_FIRST_FRAME } from "../../src/engine/tx_first.ts";
import { ipv4Checksum } from "../../src/engine/gen_frame.ts";

const HDR = 12, BUF = 2048;
const A = [0x02, 0, 0, 0, 0, 0xaa], B = [0x02, 0, 0, 0, 0, 0xbb];
const PM = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
const PORT_MAC = Uint8Array.from(PM);
const IP_A = [10, 1, 0, 1], IP_B = [10, 1, 0, 2];
const IP6_A = [0x20, 1, 0xd, 0xb8, ...new Array(11).fill(0), 1];
const IP6_B = [0x20, 1, 0xd, 0xb8, ...new Array(11).fill(0), 2];
const TAGS: [string, number[][]][] = [
  ["untagged", []],
  ["802.1Q", [[0x8100, 0x0064]]],
  ["802.1ad + 802.1Q", [[0x88a8, 0x0010], [0x8100, 0x0064]]],
];

/** A pool of 64 buffers; `put` writes a frame into a new buffer after the header. */
function pool() {
  const region = DmaRegion.allocate(64 * BUF, { hugePages: false });
  const p = new BufferPool(region, 0, 64, BUF);
  const put = (bytes: number[]): { buf: number; off: number; len: number } => {
    const buf = p.alloc();
    const off = p.offset(buf) + HDR;
    p.data.fill(0xee, p.offset(buf), p.offset(buf) + BUF);
    p.data.set(bytes, off);
    return { buf, off, len: bytes.length };
  };
  const bytes = (f: { off: number; len: number }) => [...p.data.subarray(f.off, f.off + f.len)];
  return { region, pool: p, put, bytes };
}

Deno.test("fwd modes: l2HeaderLength skips up to two VLAN tags and refuses a header that does not fit", () => {
  for (const [name, tags] of TAGS) {
    const f = Uint8Array.from(eth(A, B, 0x0800, tags));
    assert.equal(l2HeaderLength(f, 0, f.length), 14 + 4 * tags.length, name);
    assert.equal(l2HeaderLength(f, 0, f.length - 1), -1, `${name}, one byte short`);
  }
  const three = Uint8Array.from(eth(A, B, 0x0800, [[0x88a8, 1], [0x8100, 2], [0x8100, 3]]));
  assert.equal(l2HeaderLength(three, 0, three.length), 22, "a third tag is not skipped");
});

Deno.test("fwd modes: macswap swaps the MACs and nothing else; a frame under 12 bytes stays as it is", () => {
  const r = pool();
  try {
    const payload = ipv4(17, IP_A, IP_B);
    const f = r.put([...eth(A, B, 0x0800), ...payload]);
    assert.equal(applyMode(MODE_MACSWAP, r.pool.data, f.off, f.len, PORT_MAC), MODE_FORWARD);
    assert.deepEqual(r.bytes(f), [...eth(B, A, 0x0800), ...payload]);
    const short = r.put([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    applyMode(MODE_MACSWAP, r.pool.data, short.off, short.len, PORT_MAC);
    assert.deepEqual(r.bytes(short), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
  } finally {
    r.region.free();
  }
});

Deno.test("fwd modes: 5tswap turns each IPv4/IPv6 TCP/UDP frame, tagged or not, into the reverse flow's, checksums valid", () => {
  const r = pool();
  try {
    for (const [name, tags] of TAGS) {
      const l2 = 14 + 4 * tags.length;
      for (const proto of [6, 17]) {
        const v4 = r.put([...eth(A, B, 0x0800, tags), ...ipv4(proto, IP_A, IP_B, [1111, 2222])]);
        fiveTupleSwap(r.pool.data, v4.off, v4.len);
        assert.deepEqual(
          r.bytes(v4),
          [...eth(B, A, 0x0800, tags), ...ipv4(proto, IP_B, IP_A, [2222, 1111])],
          `IPv4 ${proto} ${name}`,
        );
        assert.ok(ipv4ChecksumsValid(r.pool.data, v4.off + l2), `IPv4 ${proto} ${name} sums`);
        const v6 = r.put([...eth(A, B, 0x86dd, tags), ...ipv6(proto, IP6_A, IP6_B, [1111, 2222])]);
        fiveTupleSwap(r.pool.data, v6.off, v6.len);
        assert.deepEqual(
          r.bytes(v6),
          [...eth(B, A, 0x86dd, tags), ...ipv6(proto, IP6_B, IP6_A, [2222, 1111])],
          `IPv6 ${proto} ${name}`,
        );
        assert.ok(ipv6ChecksumValid(r.pool.data, v6.off + l2), `IPv6 ${proto} ${name} sum`);
      }
    }
  } finally {
    r.region.free();
  }
});

Deno.test("fwd modes: 5tswap of non-IP, ICMP, a later fragment, and short frames swaps what is there", () => {
  const r = pool();
  try {
    const arp = arpRequest(A, IP_A, IP_B);
    const f = r.put([...eth(A, B, 0x0806), ...arp]);
    fiveTupleSwap(r.pool.data, f.off, f.len);
    assert.deepEqual(r.bytes(f), [...eth(B, A, 0x0806), ...arp], "ARP: MACs only");
    const icmp = r.put([...eth(A, B, 0x0800), ...ipv4(1, IP_A, IP_B)]);
    fiveTupleSwap(r.pool.data, icmp.off, icmp.len);
    assert.deepEqual(r.bytes(icmp), [...eth(B, A, 0x0800), ...ipv4(1, IP_B, IP_A)], "ICMP");
    // Offset 100 (in 8-byte units): the ports' place holds payload.
    const frag = r.put([...eth(A, B, 0x0800), ...ipv4(17, IP_A, IP_B, [1, 2], 18, 100)]);
    fiveTupleSwap(r.pool.data, frag.off, frag.len);
    assert.deepEqual(
      r.bytes(frag),
      [...eth(B, A, 0x0800), ...ipv4(17, IP_B, IP_A, [1, 2], 18, 100)],
      "later fragment: addresses, not ports",
    );
    // Cut inside the IPv4 header: MACs only; cut inside the UDP ports: addresses too.
    const whole = [...eth(A, B, 0x0800), ...ipv4(17, IP_A, IP_B, [1, 2])];
    const cut = r.put(whole.slice(0, 30));
    fiveTupleSwap(r.pool.data, cut.off, cut.len);
    assert.deepEqual(r.bytes(cut), [...eth(B, A, 0x0800), ...whole.slice(14, 30)]);
    const cut2 = r.put(whole.slice(0, 36));
    fiveTupleSwap(r.pool.data, cut2.off, cut2.len);
    const swapped = [...eth(B, A, 0x0800), ...ipv4(17, IP_B, IP_A, [1, 2])];
    assert.deepEqual(r.bytes(cut2), swapped.slice(0, 36));
    const tiny = r.put([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    fiveTupleSwap(r.pool.data, tiny.off, tiny.len);
    assert.deepEqual(r.bytes(tiny), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  } finally {
    r.region.free();
  }
});

Deno.test("fwd modes: icmpecho answers an ARP request from the port's MAC, tagged or not", () => {
  const r = pool();
  try {
    for (const [name, tags] of TAGS) {
      const f = r.put([
        ...eth([255, 255, 255, 255, 255, 255], A, 0x0806, tags),
        ...arpRequest(A, IP_A, IP_B),
        ...new Array(18).fill(0),
      ]);
      assert.equal(icmpEcho(r.pool.data, f.off, f.len, PORT_MAC), MODE_BOUNCE, name);
      const mac = [...PORT_MAC];
      assert.deepEqual(r.bytes(f), [
        ...eth(A, mac, 0x0806, tags),
        ...[0, 1, 0x08, 0, 6, 4, 0, 2, ...mac, ...IP_B, ...A, ...IP_A],
        ...new Array(18).fill(0),
      ], name);
    }
  } finally {
    r.region.free();
  }
});

Deno.test("fwd modes: icmpecho answers an ICMPv4 echo request with a reply whose checksums are valid", () => {
  const r = pool();
  try {
    for (const [name, tags] of TAGS) {
      const l2 = 14 + 4 * tags.length;
      // Payload sizes and bytes vary the checksum, RFC 1624's 0x0000/0xffff cases among them.
      for (let payload = 0; payload < 300; payload++) {
        const req = [...eth(PM, A, 0x0800, tags), ...ipv4(1, IP_A, IP_B, [0, 0], payload)];
        req[l2 + 20 + 8 + (payload > 0 ? payload - 1 : 0)] ^= payload > 0 ? payload * 13 : 0;
        const f = r.put(req);
        // Fix the ICMP checksum after the edit above, as a sender would have it.
        const t = r.pool.data.subarray(f.off + l2 + 20, f.off + f.len);
        t[2] = t[3] = 0;
        let s = 0;
        for (let i = 0; i + 1 < t.length; i += 2) s += (t[i] << 8) | t[i + 1];
        if (t.length & 1) s += t[t.length - 1] << 8;
        while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
        t[2] = (~s >> 8) & 0xff;
        t[3] = ~s & 0xff;
        const before = r.bytes(f);
        assert.equal(icmpEcho(r.pool.data, f.off, f.len, PORT_MAC), MODE_BOUNCE);
        const after = r.bytes(f);
        assert.deepEqual(after.slice(0, 6), A, `${name}: to the requester`);
        assert.deepEqual(after.slice(6, 12), [...PORT_MAC], `${name}: from the port`);
        assert.deepEqual(after.slice(l2 + 12, l2 + 16), IP_B, "source: the asked address");
        assert.deepEqual(after.slice(l2 + 16, l2 + 20), IP_A);
        assert.equal(after[l2 + 20], 0, "echo reply");
        assert.deepEqual(after.slice(l2 + 24), before.slice(l2 + 24), "identifier, sequence, data");
        assert.ok(ipv4ChecksumsValid(r.pool.data, f.off + l2), `${name}, ${payload} bytes`);
        r.pool.free(f.buf);
      }
    }
  } finally {
    r.region.free();
  }
});

Deno.test("fwd modes: icmpecho leaves everything else unanswered and unchanged", () => {
  const r = pool();
  try {
    const cases: [string, number[]][] = [
      ["UDP", [...eth(PM, A, 0x0800), ...ipv4(17, IP_A, IP_B)]],
      [
        "an echo reply",
        (() => {
          const f = [...eth(B, A, 0x0800), ...ipv4(1, IP_A, IP_B)];
          f[34] = 0;
          return f;
        })(),
      ],
      ["an echo request to a multicast address", [
        ...eth(B, A, 0x0800),
        ...ipv4(1, IP_A, [224, 0, 0, 1]),
      ]],
      ["a fragment", [...eth(B, A, 0x0800), ...ipv4(1, IP_A, IP_B, [0, 0], 18, 0x2000)]],
      ["an ARP reply", [...eth(B, A, 0x0806), ...arpRequest(A, IP_A, IP_B, 2)]],
      ["an ARP request cut short", [
        ...eth(B, A, 0x0806),
        ...arpRequest(A, IP_A, IP_B).slice(0, 27),
      ]],
      [
        "an echo request cut in its ICMP header",
        [...eth(B, A, 0x0800), ...ipv4(1, IP_A, IP_B)].slice(0, 41),
      ],
      ["IPv6", [...eth(B, A, 0x86dd), ...ipv6(17, IP6_A, IP6_B)]],
      ["a test ethertype", [...eth(B, A, 0x88b5), ...new Array(46).fill(1)]],
      ["13 bytes", [...eth(B, A, 0x0800)].slice(0, 13)],
    ];
    for (const [name, bytes] of cases) {
      const f = r.put(bytes);
      assert.equal(icmpEcho(r.pool.data, f.off, f.len, PORT_MAC), MODE_DROP, name);
      assert.deepEqual(r.bytes(f), bytes, `${name}: unchanged`);
    }
  } finally {
    r.region.free();
  }
});

/** A transmit port that keeps what it is given. */
class FakeTx implements TxPort {
  sent: [buf: number, len: number][] = [];
  stoppedTooLong = 0;
  readonly vq = { inFlight: 0, publishedIdx: 0, deviceUsedIdx: () => 0 };
  txBurst(bufs: Uint32Array, lens: Uint32Array, count: number): number {
    for (let i = 0; i < count; i++) this.sent.push([bufs[i], lens[i]]);
    return count;
  }
  reclaim(): number {
    return 0;
  }
}

/** A forwarder in `mode` over a pool, with fake queues on both ports. */
function rig(mode: ForwardMode) {
  const r = pool();
  const rx = [new FakeRx(), new FakeRx()], tx = [new FakeTx(), new FakeTx()];
  const c = new Float64Array(WORKER_SLOTS + 2 * PORT_SLOTS);
  const macs = [PORT_MAC, Uint8Array.from(B)];
  const fwd = new Forwarder(rx, tx, r.pool, c, {
    queue: 0,
    burst: 8,
    drainMs: 0,
    headerSizes: [HDR, HDR],
    macRewrite: false,
    mode,
    macs,
    script: null,
    clock: new Float64Array(1),
    capture: null,
  });
  const receive = (port: number, bytes: number[], len = bytes.length) => {
    const f = r.put(bytes);
    rx[port].bufs.push(f.buf);
    rx[port].lens.push(len);
    return f;
  };
  return { ...r, rx, tx, c, fwd, receive };
}

Deno.test("fwd modes: the forwarder in rxonly frees every frame, sends nothing and counts no drop", () => {
  const r = rig("rxonly");
  try {
    const free = r.pool.available;
    for (let i = 0; i < 5; i++) r.receive(i & 1, [...eth(A, B, 0x0800), ...ipv4(17, IP_A, IP_B)]);
    r.fwd.poll();
    r.fwd.poll();
    assert.equal(r.pool.available, free);
    assert.deepEqual([r.tx[0].sent, r.tx[1].sent], [[], []]);
    assert.equal(r.c[portBase(0) + P_DROP_MODE] + r.c[portBase(1) + P_DROP_MODE], 0);
    assert.equal(applyMode(MODE_RXONLY, r.pool.data, 0, 0, PORT_MAC), MODE_CONSUME);
  } finally {
    r.region.free();
  }
});

Deno.test("fwd modes: the forwarder in icmpecho bounces replies out of the input port and counts the rest dropped there", () => {
  const r = rig("icmpecho");
  try {
    const echo = r.receive(0, [...eth(PM, A, 0x0800), ...ipv4(1, IP_A, IP_B)]);
    const arp = r.receive(0, [
      ...eth([255, 255, 255, 255, 255, 255], A, 0x0806),
      ...arpRequest(A, IP_A, IP_B),
    ]);
    r.receive(0, [...eth(PM, A, 0x0800), ...ipv4(17, IP_A, IP_B)]);
    const free = r.pool.available;
    r.fwd.poll();
    assert.deepEqual(r.tx[0].sent, [[echo.buf, echo.len], [arp.buf, arp.len]]);
    assert.deepEqual(r.tx[1].sent, []);
    assert.equal(r.c[portBase(0) + P_DROP_MODE], 1);
    assert.equal(r.pool.available, free + 1, "the unanswered frame is freed");
    assert.equal(r.pool.data[echo.off + 14 + 20], 0, "an echo reply");
  } finally {
    r.region.free();
  }
});

Deno.test("fwd modes: the forwarder in macswap and 5tswap forwards to the other port; a frame that spans buffers is handled by its first", () => {
  for (const mode of ["macswap", "5tswap"] as const) {
    const r = rig(mode);
    try {
      const bytes = [...eth(A, B, 0x0800), ...ipv4(17, IP_A, IP_B, [7, 9], 1400)];
      // 3000 bytes received: the frame goes on in a second buffer the mode never reads.
      const f = r.receive(1, bytes, 3000);
      const second = r.pool.alloc();
      r.pool.next[f.buf] = second;
      r.fwd.poll();
      assert.deepEqual(r.tx[0].sent, [[f.buf, 3000]], mode);
      const want = mode === "macswap"
        ? [...eth(B, A, 0x0800), ...ipv4(17, IP_A, IP_B, [7, 9], 1400)]
        : [...eth(B, A, 0x0800), ...ipv4(17, IP_B, IP_A, [9, 7], 1400)];
      assert.deepEqual(r.bytes(f), want, mode);
    } finally {
      r.region.free();
    }
  }
  assert.equal(modeNumber("io"), 0);
});

Deno.test("tx_first: the forwarder sends the asked bursts of 64-byte UDP frames out of each port, fewer when the pool runs dry", () => {
  const r = rig("io");
  try {
    assert.equal(r.fwd.txFirst(0), 0);
    assert.equal(r.fwd.txFirst(3), 2 * 3 * 8);
    const macs = [PM, B];
    for (const p of [0, 1]) {
      assert.equal(r.tx[p].sent.length, 3 * 8);
      for (const [buf, len] of r.tx[p].sent) {
        assert.equal(len, TX_FIRST_FRAME);
        const f = r.pool.data.subarray(r.pool.offset(buf) + HDR, r.pool.offset(buf) + HDR + len);
        assert.deepEqual([...f.subarray(0, 12)], [2, 0, 0, 0, 0, p, ...macs[p]], `port ${p}`);
        assert.deepEqual([f[12], f[13], f[14], f[23]], [0x08, 0x00, 0x45, 17], "UDP/IPv4");
        assert.equal(ipv4Checksum(f, 14), (f[24] << 8) | f[25], "the IPv4 header checksum");
        assert.ok(f.subarray(42 + 2).every((x) => x === 0), "a zero payload after the flow");
      }
    }
    // 48 of the 64 buffers are held by the fake transmit queues: 16 more go out, no more.
    assert.equal(r.fwd.txFirst(2), 16);
    assert.equal(r.pool.available, 0);
  } finally {
    r.region.free();
  }
});
