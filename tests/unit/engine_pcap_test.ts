/**
 * Packet capture from the data path: the side buffer between a worker and the main thread
 * (src/engine/pcap_ring.ts) and the file writer that drains it (src/engine/pcap_sink.ts),
 * alone and behind a real forwarding worker; the file is read back with `tcpdump -r`
 * when tcpdump is installed.
 */

import assert from "node:assert/strict";
import { createPcapRing, PcapRingReader, PcapRingWriter } from "../../src/engine/pcap_ring.ts";
import { PcapSink } from "../../src/engine/pcap_sink.ts";
import { readPcap } from "../../src/pcap/pcap.ts";
import { udpFrames } from "../bed/frames.ts";
import { FakeBed } from "./engine_fake_nic.ts";

function words(frame: Uint8Array): Uint32Array {
  const w = new Uint32Array(Math.ceil(frame.length / 4) + 1);
  new Uint8Array(w.buffer).set(frame);
  return w;
}

Deno.test("pcap side buffer: records come out whole and in order across many wrap-arounds", () => {
  const sab = createPcapRing(4096);
  const w = new PcapRingWriter(sab), r = new PcapRingReader(sab);
  const frames = udpFrames({ seed: 1, count: 500, flows: 3, maxSize: 700 });
  const got: { bytes: Uint8Array; ts: number }[] = [];
  let next = 0;
  for (const [i, f] of frames.entries()) {
    w.stampUs[0] = 1000 + i;
    while (!w.capture(words(f), 0, f.length)) {
      // Full: the reader frees room, as the main thread's timer does.
      r.drain((bytes, _orig, ts) => got.push({ bytes: bytes.slice(), ts }), 2);
    }
    if (i % 7 === 0) r.drain((bytes, _orig, ts) => got.push({ bytes: bytes.slice(), ts }));
    next = i + 1;
  }
  r.drain((bytes, _orig, ts) => got.push({ bytes: bytes.slice(), ts }));
  assert.equal(next, 500);
  assert.equal(got.length, 500);
  for (let i = 0; i < 500; i++) {
    assert.deepEqual(got[i].bytes, frames[i], `record ${i}`);
    assert.equal(got[i].ts, 1000 + i);
  }
  assert.equal(r.peekTimestamp(), null);
});

Deno.test("pcap side buffer: a full buffer refuses the frame and keeps what it holds", () => {
  const sab = createPcapRing(1024);
  const w = new PcapRingWriter(sab), r = new PcapRingReader(sab);
  const f = new Uint8Array(200).fill(7);
  let taken = 0;
  while (w.capture(words(f), 0, f.length)) taken++;
  assert.equal(taken, 4); // 4 × (16 + 200) bytes fit in 1024, a fifth does not
  assert.equal(r.drain(() => {}), 4);
  assert.ok(w.capture(words(f), 0, f.length), "room again after the drain");
});

Deno.test("pcap sink merges workers' side buffers by timestamp into one pcap file", () => {
  const a = createPcapRing(1 << 16), b = createPcapRing(1 << 16);
  const wa = new PcapRingWriter(a), wb = new PcapRingWriter(b);
  const frames = udpFrames({ seed: 2, count: 20, flows: 2 });
  for (const [i, f] of frames.entries()) {
    const w = i % 2 ? wb : wa;
    w.stampUs[0] = 5_000_000 + i;
    w.capture(words(f), 0, f.length);
  }
  const chunks: Uint8Array[] = [];
  const sink = new PcapSink(
    {
      writeSync: (p) => {
        chunks.push(p.slice());
        return p.length;
      },
    },
    [a, b],
    0,
  );
  sink.close();
  const file = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    file.set(c, at);
    at += c.length;
  }
  const recs = readPcap(file);
  assert.equal(sink.written, 20);
  assert.deepEqual(recs.map((r) => r.data), frames);
  assert.deepEqual(recs.map((r) => r.timestampUs), frames.map((_, i) => 5_000_000 + i));
});

async function tcpdumpCount(path: string): Promise<number | null> {
  try {
    const out = await new Deno.Command("tcpdump", {
      args: ["-nr", path],
      stdout: "piped",
      stderr: "piped",
    })
      .output();
    if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
    return new TextDecoder().decode(out.stdout).trim().split("\n").filter((l) => l).length;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

Deno.test("a forwarding worker captures what port 0 receives; the file reads back with tcpdump -r", async () => {
  const bed = await FakeBed.start({ capture: { port: 0 } });
  const path = await Deno.makeTempFile({ suffix: ".pcap" });
  const sink = PcapSink.open(path, [bed.captureRing!], 5);
  try {
    const frames = udpFrames({ seed: 4, count: 3000, flows: 30 });
    const back = udpFrames({ seed: 5, count: 500, flows: 5 });
    // The sink drains between rounds of at most 128 frames (200 KB) as well as on its timer:
    // 3,000 frames (2.4 MB) go through the 1 MiB side buffer however fast the worker goes.
    const drain = () => sink.drain();
    await bed.exchange(0, frames, 128, drain);
    await bed.exchange(1, back, 128, drain); // port 1's frames are not captured
    await bed.close();
    sink.close();
    const recs = readPcap(await Deno.readFile(path));
    assert.equal(recs.length, 3000);
    for (let i = 0; i < frames.length; i++) assert.deepEqual(recs[i].data, frames[i], `frame ${i}`);
    const now = Date.now() * 1000;
    assert.ok(Math.abs(recs[0].timestampUs - now) < 120e6, "timestamps are wall-clock time");
    const n = await tcpdumpCount(path);
    if (n === null) console.log("tcpdump is not installed: read back with readPcap only");
    else assert.equal(n, 3000);
  } finally {
    await bed.close();
    sink.close();
    await Deno.remove(path);
  }
});

Deno.test("a forwarding worker captures what leaves port 1 (tx) or both ways (both)", async () => {
  for (const direction of ["tx", "both"] as const) {
    const bed = await FakeBed.start({ capture: { port: 1, direction } });
    const path = await Deno.makeTempFile({ suffix: ".pcap" });
    const sink = PcapSink.open(path, [bed.captureRing!], 5);
    try {
      const out = udpFrames({ seed: 6, count: 1000, flows: 10 }); // 0 → 1: leaves port 1
      const back = udpFrames({ seed: 7, count: 300, flows: 3 }); // 1 → 0: arrives on port 1
      const drain = () => sink.drain(); // as above: at most 256 frames between drains
      await bed.exchange(0, out, 128, drain);
      await bed.exchange(1, back, 128, drain);
      await bed.close();
      sink.close();
      const recs = readPcap(await Deno.readFile(path)).map((r) => r.data);
      const want = direction === "tx" ? out : [...out, ...back];
      assert.equal(recs.length, want.length, direction);
      assert.deepEqual(recs, want, direction);
    } finally {
      await bed.close();
      sink.close();
      await Deno.remove(path);
    }
  }
});
