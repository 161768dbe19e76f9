/**
 * Frames for the forwarding modes' unit tests: Ethernet with VLAN tags, IPv4 and IPv6
 * with TCP, UDP or ICMP, ARP, each with valid checksums, and the checksum checks.
 *
 * @module
 */

/** The Internet checksum's one's-complement sum of `b` (folded, not complemented). */
export function onesSum(b: Uint8Array, initial = 0): number {
  let s = initial;
  for (let i = 0; i + 1 < b.length; i += 2) s += (b[i] << 8) | b[i + 1];
  if (b.length & 1) s += b[b.length - 1] << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

/** Ethernet header: `tags` (TPID, TCI) pairs, then `type`. */
export function eth(dst: number[], src: number[], type: number, tags: number[][] = []): number[] {
  const h = [...dst, ...src];
  for (const [tpid, tci] of tags) h.push(tpid >> 8, tpid & 0xff, tci >> 8, tci & 0xff);
  h.push(type >> 8, type & 0xff);
  return h;
}

/** Writes the 16-bit checksum of `sum` (complemented) at `at`. */
function put(b: Uint8Array, at: number, sum: number): void {
  const c = ~sum & 0xffff;
  b[at] = c >> 8;
  b[at + 1] = c & 0xff;
}

/** A transport header with `payload` bytes: TCP (20 bytes), UDP (8) or ICMP echo (8). */
function l4(proto: number, sport: number, dport: number, payload: number): Uint8Array {
  const size = proto === 6 ? 20 : 8;
  const b = new Uint8Array(size + payload);
  if (proto === 1) {
    b[0] = 8; // echo request, code 0
    b.set([0x12, 0x34, 0x00, 0x07], 4); // identifier, sequence
  } else {
    b.set([sport >> 8, sport & 0xff, dport >> 8, dport & 0xff], 0);
  }
  if (proto === 17) b.set([(size + payload) >> 8, (size + payload) & 0xff], 4);
  if (proto === 6) b[12] = 0x50;
  for (let i = size; i < b.length; i++) b[i] = (i * 7 + proto) & 0xff;
  return b;
}

/** Where the checksum of a transport header of protocol `proto` is. */
function csumAt(proto: number): number {
  return proto === 6 ? 16 : proto === 17 ? 6 : 2;
}

/** An IPv4 packet (20-byte header, valid checksums) of `proto` from `src` to `dst`. */
export function ipv4(
  proto: number,
  src: number[],
  dst: number[],
  ports: [number, number] = [1000, 2000],
  payload = 18,
  frag = 0,
): number[] {
  const t = l4(proto, ports[0], ports[1], payload);
  const h = new Uint8Array(20);
  const total = 20 + t.length;
  h.set([0x45, 0, total >> 8, total & 0xff, 0, 1, frag >> 8, frag & 0xff, 64, proto]);
  h.set(src, 12);
  h.set(dst, 16);
  put(h, 10, onesSum(h));
  const pseudo = proto === 1
    ? 0
    : onesSum(Uint8Array.from([...src, ...dst, 0, proto, t.length >> 8, t.length & 0xff]));
  put(t, csumAt(proto), onesSum(t, pseudo));
  return [...h, ...t];
}

/** An IPv6 packet of TCP or UDP (valid checksum) from `src` to `dst` (16 bytes each). */
export function ipv6(
  proto: number,
  src: number[],
  dst: number[],
  ports: [number, number] = [1000, 2000],
  payload = 18,
): number[] {
  const t = l4(proto, ports[0], ports[1], payload);
  const h = new Uint8Array(40);
  h.set([0x60, 0, 0, 0, t.length >> 8, t.length & 0xff, proto, 64]);
  h.set(src, 8);
  h.set(dst, 24);
  const pseudo = onesSum(
    Uint8Array.from([...src, ...dst, 0, 0, t.length >> 8, t.length & 0xff, 0, 0, 0, proto]),
  );
  put(t, csumAt(proto), onesSum(t, pseudo));
  return [...h, ...t];
}

/** An ARP request over Ethernet for IPv4: `sha`/`spa` asking for `tpa`. */
export function arpRequest(sha: number[], spa: number[], tpa: number[], op = 1): number[] {
  return [0, 1, 0x08, 0, 6, 4, 0, op, ...sha, ...spa, 0, 0, 0, 0, 0, 0, ...tpa];
}

/**
 * True when the IPv4 header at `l3` of `f` and its TCP, UDP or ICMP checksum are valid.
 */
export function ipv4ChecksumsValid(f: Uint8Array, l3: number): boolean {
  const ihl = (f[l3] & 15) * 4, total = (f[l3 + 2] << 8) | f[l3 + 3], proto = f[l3 + 9];
  if (onesSum(f.subarray(l3, l3 + ihl)) !== 0xffff) return false;
  const t = f.subarray(l3 + ihl, l3 + total);
  const pseudo = proto === 1 ? 0 : onesSum(
    Uint8Array.from([...f.subarray(l3 + 12, l3 + 20), 0, proto, t.length >> 8, t.length & 0xff]),
  );
  return onesSum(t, pseudo) === 0xffff;
}

/** True when the TCP or UDP checksum of the IPv6 packet at `l3` of `f` is valid. */
export function ipv6ChecksumValid(f: Uint8Array, l3: number): boolean {
  const len = (f[l3 + 4] << 8) | f[l3 + 5], proto = f[l3 + 6];
  const t = f.subarray(l3 + 40, l3 + 40 + len);
  const pseudo = onesSum(
    Uint8Array.from([...f.subarray(l3 + 8, l3 + 40), 0, 0, len >> 8, len & 0xff, 0, 0, 0, proto]),
  );
  return onesSum(t, pseudo) === 0xffff;
}
