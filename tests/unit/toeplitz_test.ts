/**
 * Toeplitz hash (src/steering/toeplitz.ts) against Microsoft's RSS verification suite, and
 * RSS hash input / queue prediction (src/steering/hash_types.ts) on built frames, checked
 * against virtio 1.2 §5.1.6.4.3 and QEMU 7.2's software RSS (hw/net/virtio-net.c,
 * net/eth.c, hw/net/net_rx_pkt.c).
 */

import assert from "node:assert/strict";
import {
  microsoftRssKey,
  RSS_KEY_LENGTH,
  toeplitzHash,
  ToeplitzHasher,
} from "../../src/steering/toeplitz.ts";
import * as H from "../../src/steering/hash_types.ts";
import {
  formatHashTypes,
  hashInputLength,
  hashReportName,
  predictRss,
  RSS_HASH_INPUT_MAX_LENGTH,
  type RssFlavor,
  rssHashInput,
  type RssPrediction,
} from "../../src/steering/hash_types.ts";

// ---------------------------------------------------------------------------------------
// Microsoft "Verifying the RSS Hash Calculation" (also DPDK app/test/test_thash.c, from the
// 82599 datasheet §7.1.2.8.3): destination, source, IP-only hash, IP+TCP hash. The input
// is source address, destination address, source port, destination port.

const KEY = microsoftRssKey();

const V4: [string, number, string, number, number, number][] = [
  ["161.142.100.80", 1766, "66.9.149.187", 2794, 0x323e8fc2, 0x51ccc178],
  ["65.69.140.83", 4739, "199.92.111.2", 14230, 0xd718262a, 0xc626b0ea],
  ["12.22.207.184", 38024, "24.19.198.95", 12898, 0xd2d0a5de, 0x5c2b394a],
  ["209.142.163.6", 2217, "38.27.205.30", 48228, 0x82989176, 0xafc7327f],
  ["202.188.127.2", 1303, "153.39.163.191", 44251, 0x5d1809c5, 0x10e828a2],
];

const V6: [string, number, string, number, number, number][] = [
  ["3ffe:2501:200:3::1", 1766, "3ffe:2501:200:1fff::7", 2794, 0x2cc18cd5, 0x40207d3d],
  ["ff02::1", 4739, "3ffe:501:8::260:97ff:fe40:efab", 14230, 0x0f0c461c, 0xdde51bbf],
  [
    "fe80::200:f8ff:fe21:67cf",
    38024,
    "3ffe:1900:4545:3:200:f8ff:fe21:67cf",
    44251,
    0x4b61e985,
    0x02d1feef,
  ],
];

function v4(s: string): number[] {
  return s.split(".").map(Number);
}

function v6(s: string): number[] {
  const [head, tail] = s.includes("::") ? s.split("::") : [s, ""];
  const words = (p: string) => (p ? p.split(":").map((w) => parseInt(w, 16)) : []);
  const h = words(head), t = words(tail);
  const all = [...h, ...new Array(8 - h.length - t.length).fill(0), ...t];
  return all.flatMap((w) => [w >> 8, w & 0xff]);
}

function port(p: number): number[] {
  return [p >> 8, p & 0xff];
}

const hex = (n: number) => `0x${n.toString(16).padStart(8, "0")}`;

Deno.test("toeplitzHash() and ToeplitzHasher give Microsoft's IPv4 verification hashes", () => {
  assert.equal(KEY.length, RSS_KEY_LENGTH);
  assert.equal(
    Array.from(KEY, (b) => b.toString(16).padStart(2, "0")).join(""),
    "6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da38030f20c6a42b73bbeac01fa",
  );
  const hasher = new ToeplitzHasher(KEY);
  for (const [dst, dport, src, sport, ip, ipTcp] of V4) {
    const input = new Uint8Array([...v4(src), ...v4(dst), ...port(sport), ...port(dport)]);
    assert.equal(hex(toeplitzHash(KEY, input, 8)), hex(ip), `${src} → ${dst}`);
    assert.equal(hex(toeplitzHash(KEY, input)), hex(ipTcp), `${src}:${sport} → ${dst}:${dport}`);
    assert.equal(hex(hasher.hash(input, 0, 8)), hex(ip));
    assert.equal(hex(hasher.hash(input)), hex(ipTcp));
  }
});

Deno.test("toeplitzHash() and ToeplitzHasher give Microsoft's IPv6 verification hashes", () => {
  const hasher = new ToeplitzHasher(KEY);
  for (const [dst, dport, src, sport, ip, ipTcp] of V6) {
    const input = new Uint8Array([...v6(src), ...v6(dst), ...port(sport), ...port(dport)]);
    assert.equal(input.length, 36);
    assert.equal(hex(toeplitzHash(KEY, input, 32)), hex(ip), `${src} → ${dst}`);
    assert.equal(hex(toeplitzHash(KEY, input)), hex(ipTcp), `[${src}]:${sport} → ${dst}`);
    assert.equal(hex(hasher.hash(input, 0, 32)), hex(ip));
    assert.equal(hex(hasher.hash(input, 0, 36)), hex(ipTcp));
  }
});

/** mulberry32: a small seeded generator, so failures reproduce. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The textbook definition, bit by bit over a BigInt key: the reference for both. */
function referenceToeplitz(key: Uint8Array, input: Uint8Array): number {
  let k = 0n;
  const bits = BigInt(8 * Math.max(key.length, input.length + 4));
  for (let i = 0; i < Number(bits) / 8; i++) k = (k << 8n) | BigInt(key[i] ?? 0);
  let result = 0n;
  for (let i = 0; i < input.length * 8; i++) {
    if ((input[i >> 3] >> (7 - (i & 7))) & 1) {
      result ^= (k >> (bits - 32n - BigInt(i))) & 0xffffffffn;
    }
  }
  return Number(result);
}

Deno.test("ToeplitzHasher, toeplitzHash() and the textbook definition agree on random inputs", () => {
  const rand = rng(0x5eed);
  const byte = () => Math.floor(rand() * 256);
  for (let round = 0; round < 300; round++) {
    const keyLength = [0, 3, 4, 17, 40, 40, 40, 52][round % 8];
    const key = Uint8Array.from({ length: keyLength }, byte);
    const hasher = new ToeplitzHasher(key);
    for (let j = 0; j < 10; j++) {
      const len = Math.floor(rand() * 37);
      const offset = Math.floor(rand() * 8);
      const buf = Uint8Array.from({ length: offset + len + Math.floor(rand() * 4) }, byte);
      const input = buf.slice(offset, offset + len);
      const want = referenceToeplitz(key, input);
      assert.equal(toeplitzHash(key, buf, len, offset), want, `round ${round}.${j}`);
      assert.equal(hasher.hash(buf, offset, len), want, `round ${round}.${j} (table)`);
    }
  }
});

Deno.test("Toeplitz hashing: results are unsigned, zero input hashes to 0, ranges are checked", () => {
  const ones = new Uint8Array(36).fill(0xff);
  const h = toeplitzHash(KEY, ones);
  assert.ok(h >= 0 && h <= 0xffffffff && Number.isInteger(h));
  assert.equal(new ToeplitzHasher(KEY).hash(ones), h);
  assert.equal(toeplitzHash(KEY, new Uint8Array(36)), 0);
  assert.equal(toeplitzHash(KEY, ones, 0), 0);
  assert.throws(() => toeplitzHash(KEY, ones, 37), RangeError);
  assert.throws(() => toeplitzHash(KEY, ones, 4, 33), RangeError);
  const hasher = new ToeplitzHasher(KEY, 12);
  assert.equal(hasher.maxInputLength, 12);
  assert.equal(hasher.keyLength, 40);
  assert.throws(() => hasher.hash(ones, 0, 13), /larger maxInputLength/);
  assert.throws(() => hasher.hash(ones, 30, 8), RangeError);
  assert.throws(() => new ToeplitzHasher(KEY, -1), RangeError);
});

Deno.test("ToeplitzHasher copies its key", () => {
  const key = microsoftRssKey();
  const hasher = new ToeplitzHasher(key);
  key.fill(0);
  const input = new Uint8Array([...v4("66.9.149.187"), ...v4("161.142.100.80")]);
  assert.equal(hasher.hash(input), 0x323e8fc2);
  assert.notEqual(microsoftRssKey(), microsoftRssKey(), "a fresh copy each call");
});

// ---------------------------------------------------------------------------------------
// Frames.

interface FrameOptions {
  /** 802.1Q/802.1ad tags: [TPID, TCI] pairs, outermost first. */
  tags?: [number, number][];
  /** Pad to the 60-byte Ethernet minimum (default true). */
  pad?: boolean;
}

function ether(type: number, payload: number[], opts: FrameOptions = {}): Uint8Array {
  const b = [0x52, 0x54, 0, 0x12, 0x34, 0x56, 0x52, 0x54, 0, 0xab, 0xcd, 0xef];
  for (const [tpid, tci] of opts.tags ?? []) b.push(...port(tpid), ...port(tci));
  b.push(...port(type), ...payload);
  while ((opts.pad ?? true) && b.length < 60) b.push(0);
  return new Uint8Array(b);
}

interface Ipv4Options {
  /** The 16-bit flags/fragment-offset field (DF 0x4000, MF 0x2000, offset in 8-byte units). */
  fragField?: number;
  /** Extra option words (IHL = 5 + this). */
  optionWords?: number;
  /** Version nibble (default 4). */
  version?: number;
}

function ipv4(src: string, dst: string, proto: number, l4: number[], o: Ipv4Options = {}) {
  const opt = o.optionWords ?? 0;
  const hdr = 20 + 4 * opt;
  const b = [((o.version ?? 4) << 4) | (5 + opt), 0, ...port(hdr + l4.length), 0x12, 0x34];
  b.push(...port(o.fragField ?? 0), 64, proto, 0, 0, ...v4(src), ...v4(dst));
  return [...b, ...new Array(4 * opt).fill(1), ...l4]; // NOP options
}

function ipv6(src: string, dst: string, next: number, payload: number[]): number[] {
  return [0x60, 0, 0, 0, ...port(payload.length), next, 64, ...v6(src), ...v6(dst), ...payload];
}

function tcp(sport: number, dport: number): number[] {
  const seqAck = [0, 0, 0, 1, 0, 0, 0, 0];
  return [...port(sport), ...port(dport), ...seqAck, 0x50, 0x10, 0xff, 0xff, 0, 0, 0, 0];
}

function udp(sport: number, dport: number, data = 4): number[] {
  return [...port(sport), ...port(dport), ...port(8 + data), 0, 0, ...new Array(data).fill(0x61)];
}

/** Hop-by-hop options header of 8 bytes (one PadN option). */
function hopByHop(next: number): number[] {
  return [next, 0, 1, 4, 0, 0, 0, 0];
}

/** Destination options with a home-address option (RFC 6275 §6.3: at 8n + 6). */
function destHome(next: number, home: string): number[] {
  return [next, 2, 1, 2, 0, 0, 0xc9, 16, ...v6(home)];
}

/** Type-2 routing header (RFC 6275 §6.4): one address, segments left 1. */
function routing2(next: number, addr: string): number[] {
  return [next, 2, 2, 1, 0, 0, 0, 0, ...v6(addr)];
}

function fragment6(next: number, offsetUnits: number, more: boolean): number[] {
  return [next, 0, offsetUnits >> 5, ((offsetUnits & 0x1f) << 3) | (more ? 1 : 0), 0, 0, 0, 7];
}

const TCP = 6, UDP = 17;
const [D4, DP4, S4, SP4, IP4_HASH, TCP4_HASH] = V4[0];
const [D6, DP6, S6, SP6, IP6_HASH, TCP6_HASH] = V6[0];

function input(frame: Uint8Array, types: number, flavor?: RssFlavor, offset = 0, len?: number) {
  const out = new Uint8Array(RSS_HASH_INPUT_MAX_LENGTH).fill(0xee);
  const report = rssHashInput(frame, offset, len ?? frame.length - offset, types, out, flavor);
  const n = hashInputLength(report);
  assert.ok(out.subarray(n).every((b) => b === 0xee), "nothing written past the input");
  return { report, bytes: Array.from(out.subarray(0, n)), hash: toeplitzHash(KEY, out, n) };
}

const ALL = H.VIRTIO_NET_RSS_HASH_TYPES_ALL;
const tcp4Frame = ether(0x0800, ipv4(S4, D4, TCP, tcp(SP4, DP4)));
const udp4Frame = ether(0x0800, ipv4(S4, D4, UDP, udp(SP4, DP4)));
const v4Addrs = [...v4(S4), ...v4(D4)];
const v4Tuple = [...v4Addrs, ...port(SP4), ...port(DP4)];

Deno.test("rssHashInput(): TCP over IPv4 hashes addresses and ports (§5.1.6.4.3.2)", () => {
  let r = input(tcp4Frame, ALL);
  assert.equal(r.report, H.VIRTIO_NET_HASH_REPORT_TCPv4);
  assert.deepEqual(r.bytes, v4Tuple);
  assert.equal(hex(r.hash), hex(TCP4_HASH));
  r = input(tcp4Frame, H.VIRTIO_NET_RSS_HASH_TYPE_TCPv4);
  assert.equal(r.report, H.VIRTIO_NET_HASH_REPORT_TCPv4);
  r = input(tcp4Frame, H.VIRTIO_NET_RSS_HASH_TYPE_IPv4 | H.VIRTIO_NET_RSS_HASH_TYPE_UDPv4);
  assert.equal(r.report, H.VIRTIO_NET_HASH_REPORT_IPv4, "TCPv4 off: addresses only");
  assert.deepEqual(r.bytes, v4Addrs);
  assert.equal(hex(r.hash), hex(IP4_HASH));
  r = input(tcp4Frame, H.VIRTIO_NET_RSS_HASH_TYPE_UDPv4 | H.VIRTIO_NET_RSS_HASH_TYPE_IPv6);
  assert.equal(r.report, H.VIRTIO_NET_HASH_REPORT_NONE);
  assert.deepEqual(r.bytes, []);
});

Deno.test("rssHashInput(): UDP over IPv4 (§5.1.6.4.3.2)", () => {
  let r = input(udp4Frame, ALL);
  assert.equal(r.report, H.VIRTIO_NET_HASH_REPORT_UDPv4);
  assert.deepEqual(r.bytes, v4Tuple);
  assert.equal(hex(r.hash), hex(TCP4_HASH), "same tuple, same hash");
  r = input(udp4Frame, H.VIRTIO_NET_RSS_HASH_TYPE_TCPv4 | H.VIRTIO_NET_RSS_HASH_TYPE_IPv4);
  assert.equal(r.report, H.VIRTIO_NET_HASH_REPORT_IPv4);
  assert.equal(input(udp4Frame, H.VIRTIO_NET_RSS_HASH_TYPE_TCPv4).report, 0);
  // Other protocols (ICMP) hash as IPv4 only.
  const icmp = ether(0x0800, ipv4(S4, D4, 1, [8, 0, 0, 0, 0, 1, 0, 1]));
  assert.equal(input(icmp, ALL).report, H.VIRTIO_NET_HASH_REPORT_IPv4);
  assert.equal(input(icmp, H.VIRTIO_NET_RSS_HASH_TYPE_TCPv4).report, 0);
});

Deno.test("rssHashInput(): IPv4 fragments never hash ports; DF alone is no fragment", () => {
  for (const fragField of [0x2000, 0x0001 | 0x2000, 0x00b9, 0x4000 | 0x00b9]) {
    const f = ether(0x0800, ipv4(S4, D4, TCP, tcp(SP4, DP4), { fragField }));
    const r = input(f, ALL);
    assert.equal(
      r.report,
      H.VIRTIO_NET_HASH_REPORT_IPv4,
      `fragment field 0x${fragField.toString(16)}`,
    );
    assert.deepEqual(r.bytes, v4Addrs);
    assert.equal(input(f, H.VIRTIO_NET_RSS_HASH_TYPE_TCPv4).report, 0);
    const u = ether(0x0800, ipv4(S4, D4, UDP, udp(SP4, DP4), { fragField }));
    assert.equal(input(u, ALL).report, H.VIRTIO_NET_HASH_REPORT_IPv4);
  }
  const df = ether(0x0800, ipv4(S4, D4, TCP, tcp(SP4, DP4), { fragField: 0x4000 }));
  assert.equal(input(df, ALL).report, H.VIRTIO_NET_HASH_REPORT_TCPv4);
});

Deno.test("rssHashInput(): IPv4 options move the ports; version and truncation as QEMU", () => {
  const opts = ether(0x0800, ipv4(S4, D4, TCP, tcp(SP4, DP4), { optionWords: 3 }));
  assert.deepEqual(input(opts, ALL).bytes, v4Tuple);
  // Ethertype IPv4 with version 6: QEMU hashes it as IPv4 but looks for no ports.
  const v6in4 = ether(0x0800, ipv4(S4, D4, TCP, tcp(SP4, DP4), { version: 6 }));
  assert.equal(input(v6in4, ALL).report, H.VIRTIO_NET_HASH_REPORT_IPv4);
  // A TCP header cut short: no ports. QEMU measures against the frame, padding included.
  const cut = ipv4(S4, D4, TCP, tcp(SP4, DP4)).slice(0, 20 + 10);
  assert.equal(
    input(ether(0x0800, cut, { pad: false }), ALL).report,
    H.VIRTIO_NET_HASH_REPORT_IPv4,
  );
  assert.equal(input(ether(0x0800, cut), ALL).report, H.VIRTIO_NET_HASH_REPORT_TCPv4);
  const cutUdp = ipv4(S4, D4, UDP, udp(SP4, DP4, 0)).slice(0, 27);
  assert.equal(input(ether(0x0800, cutUdp, { pad: false }), ALL).report, 1);
  const wholeUdp = ipv4(S4, D4, UDP, udp(SP4, DP4, 0));
  assert.equal(input(ether(0x0800, wholeUdp, { pad: false }), ALL).report, 3);
  // An IPv4 header cut short: no hash (QEMU would hash stale bytes there).
  const cutIp = ether(0x0800, ipv4(S4, D4, TCP, []).slice(0, 19), { pad: false });
  assert.equal(input(cutIp, ALL).report, H.VIRTIO_NET_HASH_REPORT_NONE);
  assert.equal(input(tcp4Frame.subarray(0, 17), ALL).report, H.VIRTIO_NET_HASH_REPORT_NONE);
  assert.equal(input(new Uint8Array(0), ALL).report, H.VIRTIO_NET_HASH_REPORT_NONE);
});

Deno.test("rssHashInput(): non-IP frames are unclassified", () => {
  const arp = ether(0x0806, [0, 1, 8, 0, 6, 4, 0, 1, ...new Array(20).fill(0)]);
  assert.equal(input(arp, ALL).report, H.VIRTIO_NET_HASH_REPORT_NONE);
  const lldp = ether(0x88cc, [2, 7, 4, 0, 0, 0, 0, 0, 1]);
  assert.equal(input(lldp, ALL).report, H.VIRTIO_NET_HASH_REPORT_NONE);
  // An 802.3 length field in place of the ethertype.
  assert.equal(input(ether(46, ipv4(S4, D4, TCP, tcp(1, 2))), ALL).report, 0);
});

Deno.test("rssHashInput(): VLAN tags as QEMU's eth_get_l2_hdr_length skips them", () => {
  const payload = ipv4(S4, D4, TCP, tcp(SP4, DP4));
  const cases: [string, [number, number][], number][] = [
    ["802.1Q", [[0x8100, 5]], H.VIRTIO_NET_HASH_REPORT_TCPv4],
    ["802.1ad + 802.1Q", [[0x88a8, 7], [0x8100, 5]], H.VIRTIO_NET_HASH_REPORT_TCPv4],
    ["802.1ad alone", [[0x88a8, 7]], H.VIRTIO_NET_HASH_REPORT_TCPv4],
    ["802.1Q + 802.1Q (not parsed)", [[0x8100, 7], [0x8100, 5]], H.VIRTIO_NET_HASH_REPORT_NONE],
    ["802.1ad + 802.1ad (not parsed)", [[0x88a8, 7], [0x88a8, 5]], H.VIRTIO_NET_HASH_REPORT_NONE],
  ];
  for (const [what, tags, report] of cases) {
    const r = input(ether(0x0800, payload, { tags }), ALL);
    assert.equal(r.report, report, what);
    if (report) assert.deepEqual(r.bytes, v4Tuple, what);
  }
  const tagged6 = ether(0x86dd, ipv6(S6, D6, TCP, tcp(SP6, DP6)), { tags: [[0x8100, 9]] });
  assert.equal(hex(input(tagged6, ALL).hash), hex(TCP6_HASH));
  // A Q-in-Q frame too short to hold the inner ethertype.
  const stub = ether(0x88a8, [0, 7, 0x81, 0, 0, 5, 0x08], { pad: false }); // 21 bytes
  assert.equal(input(stub, ALL).report, H.VIRTIO_NET_HASH_REPORT_NONE);
  const whole = ether(0x88a8, [0, 7, 0x81, 0, 0, 5, 0x08, 0, ...ipv4(S4, D4, TCP, tcp(1, 2))]);
  assert.equal(input(whole, ALL).report, H.VIRTIO_NET_HASH_REPORT_TCPv4);
});

Deno.test("rssHashInput(): IPv6 TCP and UDP without extension headers (§5.1.6.4.3.3)", () => {
  const t6 = ether(0x86dd, ipv6(S6, D6, TCP, tcp(SP6, DP6)));
  const u6 = ether(0x86dd, ipv6(S6, D6, UDP, udp(SP6, DP6)));
  const addrs = [...v6(S6), ...v6(D6)];
  const tuple = [...addrs, ...port(SP6), ...port(DP6)];
  let r = input(t6, ALL & ~(H.VIRTIO_NET_RSS_HASH_TYPE_TCP_EX | H.VIRTIO_NET_RSS_HASH_TYPE_IP_EX));
  assert.equal(r.report, H.VIRTIO_NET_HASH_REPORT_TCPv6);
  assert.deepEqual(r.bytes, tuple);
  assert.equal(hex(r.hash), hex(TCP6_HASH));
  r = input(t6, H.VIRTIO_NET_RSS_HASH_TYPE_IPv6 | H.VIRTIO_NET_RSS_HASH_TYPE_UDPv6);
  assert.equal(r.report, H.VIRTIO_NET_HASH_REPORT_IPv6);
  assert.deepEqual(r.bytes, addrs);
  assert.equal(hex(r.hash), hex(IP6_HASH));
  r = input(u6, H.VIRTIO_NET_RSS_HASH_TYPE_UDPv6 | H.VIRTIO_NET_RSS_HASH_TYPE_IPv6);
  assert.equal(r.report, H.VIRTIO_NET_HASH_REPORT_UDPv6);
  assert.equal(hex(r.hash), hex(TCP6_HASH));
  assert.equal(input(u6, H.VIRTIO_NET_RSS_HASH_TYPE_TCPv6).report, H.VIRTIO_NET_HASH_REPORT_NONE);
  assert.equal(
    input(t6, H.VIRTIO_NET_RSS_HASH_TYPE_IPv4 | 6).report,
    H.VIRTIO_NET_HASH_REPORT_NONE,
  );
  // The IPv6 header cut short: no hash.
  assert.equal(input(t6.subarray(0, 14 + 39), ALL).report, H.VIRTIO_NET_HASH_REPORT_NONE);
});

Deno.test("rssHashInput(): _EX bits choose the report differently in QEMU and in the spec", () => {
  const t6 = ether(0x86dd, ipv6(S6, D6, TCP, tcp(SP6, DP6)));
  const u6 = ether(0x86dd, ipv6(S6, D6, UDP, udp(SP6, DP6)));
  const EX = H.VIRTIO_NET_RSS_HASH_TYPE_TCP_EX | H.VIRTIO_NET_RSS_HASH_TYPE_UDP_EX |
    H.VIRTIO_NET_RSS_HASH_TYPE_IP_EX;
  // No extension headers. QEMU: an enabled _EX bit picks the _EX variant; spec: ignored.
  assert.equal(input(t6, ALL).report, H.VIRTIO_NET_HASH_REPORT_TCPv6_EX);
  assert.equal(input(t6, ALL, "spec").report, H.VIRTIO_NET_HASH_REPORT_TCPv6);
  assert.equal(input(t6, EX).report, H.VIRTIO_NET_HASH_REPORT_TCPv6_EX);
  assert.equal(input(t6, EX, "spec").report, H.VIRTIO_NET_HASH_REPORT_NONE);
  assert.equal(input(u6, EX).report, H.VIRTIO_NET_HASH_REPORT_UDPv6_EX);
  assert.equal(
    input(u6, H.VIRTIO_NET_RSS_HASH_TYPE_IP_EX).report,
    H.VIRTIO_NET_HASH_REPORT_IPv6_EX,
  );
  assert.equal(input(u6, H.VIRTIO_NET_RSS_HASH_TYPE_IP_EX, "spec").report, 0);
  // Same hash either way: without the extension headers, _EX hashes the header addresses.
  assert.equal(input(t6, ALL).hash, input(t6, ALL, "spec").hash);
  // With extension headers (hop-by-hop): the spec tries the _EX types first.
  const hbh = ether(0x86dd, ipv6(S6, D6, 0, [...hopByHop(TCP), ...tcp(SP6, DP6)]));
  const tcp6AndIpEx = H.VIRTIO_NET_RSS_HASH_TYPE_TCPv6 | H.VIRTIO_NET_RSS_HASH_TYPE_IP_EX;
  assert.equal(input(hbh, tcp6AndIpEx).report, H.VIRTIO_NET_HASH_REPORT_TCPv6);
  assert.equal(input(hbh, tcp6AndIpEx, "spec").report, H.VIRTIO_NET_HASH_REPORT_IPv6_EX);
  assert.equal(input(hbh, H.VIRTIO_NET_RSS_HASH_TYPE_TCPv6, "spec").report, 5, "falls back");
  assert.equal(input(hbh, ALL, "spec").report, H.VIRTIO_NET_HASH_REPORT_TCPv6_EX);
  assert.equal(hex(input(hbh, ALL).hash), hex(TCP6_HASH), "ports found after the header");
});

Deno.test("rssHashInput(): home address and type-2 routing address in _EX hashes (§5.1.6.4.3.4)", () => {
  // Header addresses differ from the mobile-IPv6 ones, which are Microsoft's first vector.
  const hdrSrc = "2001:db8::1", hdrDst = "2001:db8::2";
  const payload = [...destHome(43, S6), ...routing2(TCP, D6), ...tcp(SP6, DP6)];
  const f = ether(0x86dd, ipv6(hdrSrc, hdrDst, 60, payload));
  let r = input(f, ALL);
  assert.equal(r.report, H.VIRTIO_NET_HASH_REPORT_TCPv6_EX);
  assert.deepEqual(r.bytes, [...v6(S6), ...v6(D6), ...port(SP6), ...port(DP6)]);
  assert.equal(hex(r.hash), hex(TCP6_HASH));
  r = input(f, H.VIRTIO_NET_RSS_HASH_TYPE_IP_EX);
  assert.equal(r.report, H.VIRTIO_NET_HASH_REPORT_IPv6_EX);
  assert.equal(hex(r.hash), hex(IP6_HASH));
  r = input(f, H.VIRTIO_NET_RSS_HASH_TYPE_TCPv6);
  assert.equal(r.report, H.VIRTIO_NET_HASH_REPORT_TCPv6);
  assert.deepEqual(r.bytes, [...v6(hdrSrc), ...v6(hdrDst), ...port(SP6), ...port(DP6)]);
  // Only one of them present: the other address comes from the header.
  const homeOnly = ether(0x86dd, ipv6(hdrSrc, hdrDst, 60, [...destHome(UDP, S6), ...udp(1, 2)]));
  r = input(homeOnly, H.VIRTIO_NET_RSS_HASH_TYPE_UDP_EX);
  assert.equal(r.report, H.VIRTIO_NET_HASH_REPORT_UDPv6_EX);
  assert.deepEqual(r.bytes, [...v6(S6), ...v6(hdrDst), 0, 1, 0, 2]);
  // A routing header of another type (or with segments left ≠ 1) gives no address.
  const rt0 = routing2(TCP, D6);
  rt0[2] = 0;
  const f0 = ether(0x86dd, ipv6(hdrSrc, hdrDst, 43, [...rt0, ...tcp(SP6, DP6)]));
  assert.deepEqual(input(f0, ALL).bytes.slice(16, 32), v6(hdrDst));
});

Deno.test("rssHashInput(): an IPv6 fragment header means no ports; cut-short headers", () => {
  const frag = ether(0x86dd, ipv6(S6, D6, 44, [...fragment6(TCP, 0, true), ...tcp(SP6, DP6)]));
  let r = input(frag, ALL & ~H.VIRTIO_NET_RSS_HASH_TYPE_IP_EX);
  assert.equal(r.report, H.VIRTIO_NET_HASH_REPORT_IPv6);
  assert.equal(hex(r.hash), hex(IP6_HASH));
  assert.equal(input(frag, H.VIRTIO_NET_RSS_HASH_TYPE_TCPv6).report, 0);
  assert.equal(input(frag, ALL).report, H.VIRTIO_NET_HASH_REPORT_IPv6_EX);
  // An extension header chain that runs past the frame: addresses only (as QEMU).
  const cut = ether(0x86dd, ipv6(S6, D6, 0, [...hopByHop(60), 60, 9]), { pad: false });
  r = input(cut, ALL & ~H.VIRTIO_NET_RSS_HASH_TYPE_IP_EX);
  assert.equal(r.report, H.VIRTIO_NET_HASH_REPORT_IPv6);
  assert.equal(hex(r.hash), hex(IP6_HASH));
  // ESP is not walked over: it is the upper layer (no ports).
  const esp = ether(0x86dd, ipv6(S6, D6, 50, [0, 0, 1, 0, 0, 0, 0, 1, ...tcp(1, 2)]));
  assert.equal(input(esp, ALL & ~H.VIRTIO_NET_RSS_HASH_TYPE_IP_EX).report, 4);
});

Deno.test("rssHashInput(): honours offset and len, and checks its buffers", () => {
  const buf = new Uint8Array(12 + tcp4Frame.length + 30).fill(0x77);
  buf.set(tcp4Frame, 12); // e.g. behind a 12-byte virtio-net header
  const r = input(buf, ALL, "qemu", 12, tcp4Frame.length);
  assert.equal(r.report, H.VIRTIO_NET_HASH_REPORT_TCPv4);
  assert.equal(hex(r.hash), hex(TCP4_HASH));
  const out = new Uint8Array(36);
  assert.throws(() => rssHashInput(buf, 12, buf.length, ALL, out), RangeError);
  assert.throws(() => rssHashInput(buf, -1, 10, ALL, out), RangeError);
  assert.throws(() => rssHashInput(buf, 0, 60, ALL, new Uint8Array(35)), /36/);
});

Deno.test("predictRss(): indirection table, unclassified queue, QEMU's modulo max_tx_vq", () => {
  const table = Array.from({ length: 128 }, (_, i) => i % 4);
  const params = {
    key: KEY,
    hashTypes: ALL,
    indirectionTable: table,
    unclassifiedQueue: 3,
  };
  let p = predictRss(tcp4Frame, 0, tcp4Frame.length, params);
  assert.equal(p.hash, TCP4_HASH);
  assert.equal(p.report, H.VIRTIO_NET_HASH_REPORT_TCPv4);
  assert.equal(p.queue, table[TCP4_HASH & 127]);
  p = predictRss(tcp4Frame, 0, tcp4Frame.length, { ...params, indirectionTable: [0, 1] });
  assert.equal(p.queue, TCP4_HASH & 1);
  const arp = ether(0x0806, new Array(28).fill(0));
  p = predictRss(arp, 0, arp.length, params);
  assert.deepEqual(p, { queue: 3, hash: 0, report: H.VIRTIO_NET_HASH_REPORT_NONE });
  // QEMU delivers to index % curr_queue_pairs, and RSS_CONFIG sets that to max_tx_vq.
  p = predictRss(arp, 0, arp.length, { ...params, maxTxVq: 2 });
  assert.equal(p.queue, 1);
  const wide = { ...params, indirectionTable: [5, 5, 5, 5] };
  assert.equal(predictRss(tcp4Frame, 0, 60, { ...wide, maxTxVq: 4 }).queue, 1);
  assert.throws(() => predictRss(arp, 0, 60, { ...params, indirectionTable: [0, 1, 2] }), /power/);
  assert.throws(() => predictRss(arp, 0, 60, { ...params, indirectionTable: [] }), /power/);
});

Deno.test("predictRss(): a ToeplitzHasher key and a reused result agree with a plain key", () => {
  const hasher = new ToeplitzHasher(KEY);
  const table = Array.from({ length: 64 }, (_, i) => (i * 7) % 8);
  const out: RssPrediction = { queue: -1, hash: -1, report: -1 };
  const frames = [
    tcp4Frame,
    udp4Frame,
    ether(0x86dd, ipv6(S6, D6, TCP, tcp(SP6, DP6))),
    ether(0x86dd, ipv6(S6, D6, UDP, udp(1000, 2000))),
    ether(0x0806, new Array(28).fill(0)),
  ];
  for (const f of frames) {
    const plain = predictRss(f, 0, f.length, {
      key: KEY,
      hashTypes: ALL,
      indirectionTable: table,
      unclassifiedQueue: 0,
    });
    const fast = predictRss(f, 0, f.length, {
      key: hasher,
      hashTypes: ALL,
      indirectionTable: new Uint16Array(table),
      unclassifiedQueue: 0,
    }, out);
    assert.equal(fast, out);
    assert.deepEqual({ ...fast }, plain);
  }
});

Deno.test("hash type and report constants are virtio 1.2 §5.1.6.4.3.1 and §5.1.6.4.4", () => {
  const consts = H as unknown as Record<string, number>;
  const types = ["IPv4", "TCPv4", "UDPv4", "IPv6", "TCPv6", "UDPv6", "IP_EX", "TCP_EX", "UDP_EX"];
  const reports = ["IPv4", "TCPv4", "UDPv4", "IPv6", "TCPv6", "UDPv6", "IPv6_EX", "TCPv6_EX"];
  reports.push("UDPv6_EX");
  types.forEach((t, i) => assert.equal(consts[`VIRTIO_NET_RSS_HASH_TYPE_${t}`], 1 << i, t));
  // "VIRTIO_NET_HASH_TYPE_XXX = 1 << (VIRTIO_NET_HASH_REPORT_XXX - 1)"
  reports.forEach((r, i) => assert.equal(consts[`VIRTIO_NET_HASH_REPORT_${r}`], i + 1, r));
  assert.equal(H.VIRTIO_NET_HASH_REPORT_NONE, 0);
  assert.equal(H.VIRTIO_NET_RSS_HASH_TYPES_ALL, 0x1ff);
  const lengths = reports.map((_, i) => hashInputLength(i + 1));
  assert.deepEqual(lengths, [8, 12, 12, 32, 36, 36, 32, 36, 36]);
  assert.equal(hashInputLength(0), 0);
  assert.equal(hashInputLength(10), 0);
});

Deno.test("formatHashTypes() and hashReportName() print spec names", () => {
  assert.equal(formatHashTypes(0), "none");
  assert.equal(
    formatHashTypes(ALL),
    "IPv4|TCPv4|UDPv4|IPv6|TCPv6|UDPv6|IP_EX|TCP_EX|UDP_EX",
  );
  assert.equal(formatHashTypes(H.VIRTIO_NET_RSS_HASH_TYPE_TCPv6 | (1 << 31)), "TCPv6|0x80000000");
  assert.equal(hashReportName(H.VIRTIO_NET_HASH_REPORT_NONE), "VIRTIO_NET_HASH_REPORT_NONE");
  assert.equal(
    hashReportName(H.VIRTIO_NET_HASH_REPORT_UDPv6_EX),
    "VIRTIO_NET_HASH_REPORT_UDPv6_EX",
  );
  assert.equal(hashReportName(H.VIRTIO_NET_HASH_REPORT_IPv4), "VIRTIO_NET_HASH_REPORT_IPv4");
  assert.match(hashReportName(10), /unknown/);
});
