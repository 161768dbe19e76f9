import assert from "node:assert/strict";
import {
  BROADCAST_MAC,
  formatMac,
  frameSize,
  internetChecksum,
  MAX_FRAME,
  MIN_FRAME,
  parseMac,
  parseTestFrame,
  parseUdpTestFrame,
  TEST_ETHERTYPE,
  testFrames,
  udpFlow,
  udpFrames,
} from "../../tests/bed/frames.ts";

Deno.test("test frames are deterministic: same seed, same bytes; other seed, other bytes", () => {
  const a = testFrames({ seed: 42, count: 50 });
  const b = testFrames({ seed: 42, count: 50 });
  const c = testFrames({ seed: 43, count: 50 });
  assert.deepEqual(a, b);
  assert.notDeepEqual(a.slice(2), c.slice(2));
});

Deno.test("test frame sizes cover 60, 1514 and sizes in between", () => {
  const frames = testFrames({ seed: 1, count: 200 });
  const sizes = new Set(frames.map((f) => f.length));
  assert.ok(sizes.has(MIN_FRAME));
  assert.ok(sizes.has(MAX_FRAME));
  assert.ok(sizes.size > 50, `only ${sizes.size} distinct sizes`);
  for (const s of sizes) assert.ok(s >= MIN_FRAME && s <= MAX_FRAME);
  assert.equal(frames[0].length, MIN_FRAME);
  assert.equal(frames[1].length, MAX_FRAME);
  assert.equal(frameSize(1, 5, 100, 100), 100);
});

Deno.test("test frames carry dst/src MAC, EtherType 0x88b5 and a parseable sequence", () => {
  const frames = testFrames({
    seed: 9,
    count: 20,
    startSeq: 100,
    dst: "52:54:00:12:34:50",
    src: "02:00:00:00:00:07",
  });
  frames.forEach((f, i) => {
    assert.equal(formatMac(f.subarray(0, 6)), "52:54:00:12:34:50");
    assert.equal(formatMac(f.subarray(6, 12)), "02:00:00:00:00:07");
    assert.equal((f[12] << 8) | f[13], TEST_ETHERTYPE);
    assert.deepEqual(parseTestFrame(f), { seed: 9, seq: 100 + i, size: f.length });
  });
  assert.equal(formatMac(testFrames({ count: 1 })[0]), BROADCAST_MAC);
});

Deno.test("a corrupted, truncated or foreign frame is not taken for a test frame", () => {
  const [f] = testFrames({ seed: 3, count: 1, startSeq: 2 });
  const bad = f.slice();
  bad[bad.length - 1] ^= 1;
  assert.equal(parseTestFrame(bad), null);
  assert.equal(parseTestFrame(f.subarray(0, f.length - 1)), null);
  const other = f.slice();
  other[12] = 0x08;
  other[13] = 0x00;
  assert.equal(parseTestFrame(other), null);
  assert.equal(parseTestFrame(new Uint8Array(10)), null);
});

Deno.test("MAC addresses parse and format; malformed ones are refused", () => {
  assert.equal(formatMac(parseMac("0a:0B:c:00:ff:1")), "0a:0b:0c:00:ff:01");
  assert.throws(() => parseMac("00:11:22:33:44"), /bad MAC/);
  assert.throws(() => parseMac("00:11:22:33:44:zz"), /bad MAC/);
});

Deno.test("UDP frames: valid IPv4 header checksum and UDP checksum, right lengths", () => {
  for (const f of udpFrames({ seed: 5, count: 40, flows: 4 })) {
    assert.equal((f[12] << 8) | f[13], 0x0800);
    const ip = f.subarray(14, 34);
    assert.equal(internetChecksum(ip), 0, "IPv4 header checksum");
    const ipLen = (f[16] << 8) | f[17];
    assert.equal(ipLen, f.length - 14);
    const udp = f.subarray(34);
    assert.equal((udp[4] << 8) | udp[5], udp.length);
    // The ones' complement sum over pseudo header + datagram must be 0xffff.
    const pseudo = new Uint8Array(12 + udp.length);
    pseudo.set(ip.subarray(12, 20), 0);
    pseudo[9] = 17;
    pseudo[10] = udp.length >> 8;
    pseudo[11] = udp.length & 0xff;
    pseudo.set(udp, 12);
    assert.equal(internetChecksum(pseudo), 0, "UDP checksum");
  }
});

Deno.test("UDP frames rotate over distinct flows: addresses and ports differ per flow", () => {
  const frames = udpFrames({ seed: 1, count: 64, flows: 16 });
  const tuples = new Set<string>();
  frames.forEach((f, i) => {
    const info = parseUdpTestFrame(f);
    assert.ok(info, `frame ${i} not recognised`);
    assert.equal(info.flow, i % 16);
    assert.equal(info.seq, i);
    const src = f.subarray(26, 30).join("."), dst = f.subarray(30, 34).join(".");
    const sport = (f[34] << 8) | f[35], dport = (f[36] << 8) | f[37];
    const fl = udpFlow(info.flow);
    assert.deepEqual([src, dst, sport, dport], [fl.srcIp, fl.dstIp, fl.srcPort, fl.dstPort]);
    tuples.add(`${src} ${dst} ${sport} ${dport}`);
  });
  assert.equal(tuples.size, 16);
  const a = udpFlow(1), b = udpFlow(2);
  assert.ok(a.srcIp !== b.srcIp && a.dstIp !== b.dstIp);
  assert.ok(a.srcPort !== b.srcPort && a.dstPort !== b.dstPort);
});

Deno.test("UDP frames cover 60..1514 bytes and a corrupted one is rejected", () => {
  const frames = udpFrames({ seed: 2, count: 32, flows: 3 });
  assert.equal(frames[0].length, 60);
  assert.equal(frames[1].length, 1514);
  const bad = frames[5].slice();
  bad[bad.length - 2] ^= 0x80;
  assert.equal(parseUdpTestFrame(bad), null);
  assert.equal(parseUdpTestFrame(testFrames({ count: 1 })[0]), null);
});

const scapy = "/usr/bin/python3";
const hasScapy = (() => {
  try {
    return new Deno.Command(scapy, { args: ["-c", "import scapy"], stderr: "null" }).outputSync()
      .success;
  } catch {
    return false;
  }
})();

Deno.test({
  name: "scapy agrees that generated UDP frames have correct IPv4 and UDP checksums",
  ignore: !hasScapy,
  async fn() {
    const frames = udpFrames({ seed: 11, count: 8, flows: 8 });
    const hex = frames.map((f) => Array.from(f, (b) => b.toString(16).padStart(2, "0")).join(""));
    const py = `
import sys
from scapy.all import Ether, IP, UDP
for line in sys.stdin.read().split():
    p = Ether(bytes.fromhex(line))
    ipc, udc = p[IP].chksum, p[UDP].chksum
    del p[IP].chksum
    del p[UDP].chksum
    q = Ether(bytes(p))
    print("ok" if (q[IP].chksum, q[UDP].chksum) == (ipc, udc) else "bad")
`;
    const child = new Deno.Command(scapy, {
      args: ["-c", py],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(hex.join("\n")));
    await w.close();
    const out = await child.output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    assert.deepEqual(new TextDecoder().decode(out.stdout).trim().split("\n"), Array(8).fill("ok"));
  },
});
