import assert from "node:assert/strict";
import { mixedFrames } from "../bed/mixed_frames.ts";
import { countMixed, reordersNotInReference } from "../mixed_checks.ts";

const DST = "52:54:00:12:34:50";
const sent = mixedFrames({ seed: 9, count: 24, flows: 6, dst: DST });

Deno.test("frames captured as sent count as byte-identical and in order", () => {
  const c = countMixed(sent, sent);
  assert.equal(c.identical, 24);
  assert.equal(c.reordered, 0);
  assert.equal(c.missing, 0);
  assert.equal(c.flows, 6);
});

Deno.test("a frame arriving after a later frame of its flow counts as reordered, by kind", () => {
  // Flow 3 (vlan-udp4): seq 3, 9, 15, 21; capture 9 before 3.
  const out = sent.slice();
  [out[3], out[9]] = [out[9], out[3]];
  const c = countMixed(sent, out);
  assert.equal(c.reordered, 1);
  assert.equal(c.reorderedFlows, 1);
  assert.deepEqual(c.reorderedByKind, { "vlan-udp4": 1 });
  assert.equal(c.identical, 24);
  assert.match(c.examples[0], /flow 3 \(vlan-udp4\): seq 3 after seq 9/);
});

Deno.test("frames of different flows interleaved differently are not reordered", () => {
  const out = sent.slice();
  [out[3], out[4]] = [out[4], out[3]];
  assert.equal(countMixed(sent, out).reordered, 0);
});

Deno.test("changed, missing, duplicated and foreign frames are counted apart", () => {
  const changed = sent[5].slice();
  changed[changed.length - 1] ^= 1; // the pattern: not a mixed frame any more
  const other = mixedFrames({ seed: 10, count: 1, flows: 6, dst: DST })[0];
  const hdr = sent[7].slice();
  hdr[0] ^= 2; // destination MAC: still parses, bytes differ
  const out = [...sent.slice(0, 5), changed, sent[6], hdr, sent[8], sent[8], other];
  const c = countMixed(sent, out);
  assert.equal(c.identical, 7);
  assert.equal(c.differing, 1);
  assert.equal(c.duplicated, 1);
  assert.equal(c.foreign, 2);
  assert.equal(c.missing, 24 - 8);
});

Deno.test("reorders of a kind the reference also reordered are not held against the product", () => {
  assert.deepEqual(reordersNotInReference({ "vlan-udp4": 2 }, { "vlan-udp4": 1 }), []);
  assert.deepEqual(reordersNotInReference({ "vlan-udp4": 2, arp: 1 }, { "vlan-udp4": 1 }), [
    "arp",
  ]);
  assert.deepEqual(reordersNotInReference({ udp6: 1 }, null), ["udp6"]);
  assert.deepEqual(reordersNotInReference({}, null), []);
});
