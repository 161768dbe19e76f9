import assert from "node:assert/strict";
import { internetChecksum } from "../bed/frames.ts";
import {
  MIXED_KINDS,
  mixedFrame,
  mixedFrames,
  mixedMinSize,
  parseMixedFrame,
} from "../bed/mixed_frames.ts";

const DST = "52:54:00:12:34:50";

/** The L4 checksum over pseudo header + segment sums to 0 when the frame's is right. */
function l4ChecksumOk(f: Uint8Array): boolean {
  const tagged = f[12] === 0x81 && f[13] === 0x00;
  const ip = tagged ? 18 : 14;
  const v6 = f[ip] >> 4 === 6;
  const l4 = ip + (v6 ? 40 : 20);
  const len = f.length - l4;
  const proto = v6 ? f[ip + 6] : f[ip + 9];
  const pseudo = v6
    ? [...f.subarray(ip + 8, ip + 40), 0, 0, len >> 8, len & 255, 0, 0, 0, proto]
    : [...f.subarray(ip + 12, ip + 20), 0, proto, len >> 8, len & 255];
  const all = new Uint8Array([...pseudo, ...f.subarray(l4)]);
  return internetChecksum(all) === 0;
}

Deno.test("mixedFrames is deterministic and covers every kind, tagged and untagged, 60..1514 bytes", () => {
  const a = mixedFrames({ seed: 9, count: 3000, flows: 600, dst: DST });
  const b = mixedFrames({ seed: 9, count: 3000, flows: 600, dst: DST });
  assert.deepEqual(a, b);
  const kinds = new Set<string>();
  let tagged = 0;
  for (const [i, f] of a.entries()) {
    const info = parseMixedFrame(f);
    assert.ok(info, `frame ${i} parses`);
    assert.deepEqual([info.seed, info.seq, info.flow], [9, i, i % 600]);
    assert.equal(info.kind, MIXED_KINDS[info.flow % 6]);
    assert.ok(f.length >= 60 && f.length <= 1514, `size ${f.length}`);
    kinds.add(info.kind);
    if (info.vlan !== null) tagged++;
  }
  assert.deepEqual([...kinds].sort(), [...MIXED_KINDS].sort());
  assert.equal(tagged, 1000);
  assert.ok(a.some((f) => f.length === 1514) && a.some((f) => f.length === 60));
});

Deno.test("mixed IP frames carry valid IPv4 header, UDP and TCP checksums, tagged or not", () => {
  for (let flow = 0; flow < 6; flow++) {
    if (MIXED_KINDS[flow] === "arp") continue;
    for (const size of [mixedMinSize(MIXED_KINDS[flow]), 333, 1514]) {
      const f = mixedFrame(3, 100 + size, flow, size, DST);
      assert.equal(f.length, size);
      const ip = f[12] === 0x81 ? 18 : 14;
      if (f[ip] === 0x45) assert.equal(internetChecksum(f.subarray(ip, ip + 20)), 0);
      assert.ok(l4ChecksumOk(f), `${MIXED_KINDS[flow]} size ${size}`);
    }
  }
});

Deno.test("a mixed frame with its tag removed or a payload byte changed is not recognised", () => {
  const f = mixedFrame(1, 5, 3, 300, DST); // vlan-udp4
  assert.equal(parseMixedFrame(f)?.vlan, 4);
  const untagged = new Uint8Array([...f.subarray(0, 12), ...f.subarray(16)]);
  assert.equal(parseMixedFrame(untagged), null);
  const bad = f.slice();
  bad[200] ^= 1;
  assert.equal(parseMixedFrame(bad), null);
});

Deno.test("sequence numbers grow within each flow of a mixed stream", () => {
  const last = new Map<number, number>();
  for (const f of mixedFrames({ seed: 2, count: 2000, flows: 300, dst: DST })) {
    const { flow, seq } = parseMixedFrame(f)!;
    assert.ok(seq > (last.get(flow) ?? -1));
    last.set(flow, seq);
  }
  assert.equal(last.size, 300);
});
