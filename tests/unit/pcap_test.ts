import assert from "node:assert/strict";
import {
  decodeFileHeader,
  encodeFileHeader,
  encodePcap,
  LINKTYPE_ETHERNET,
  PCAP_FILE_HEADER_SIZE,
  PCAP_RECORD_HEADER_SIZE,
  PcapWriter,
  readPcap,
  readPcapFrames,
} from "../../src/pcap/pcap.ts";

function frame(len: number, fill: number): Uint8Array<ArrayBuffer> {
  return new Uint8Array(len).fill(fill);
}

Deno.test("pcap file header is 24 bytes, little-endian, v2.4, Ethernet, microseconds", () => {
  const h = encodeFileHeader();
  assert.equal(h.length, PCAP_FILE_HEADER_SIZE);
  assert.deepEqual([...h.subarray(0, 4)], [0xd4, 0xc3, 0xb2, 0xa1]);
  const d = decodeFileHeader(h);
  assert.equal(d.versionMajor, 2);
  assert.equal(d.versionMinor, 4);
  assert.equal(d.linktype, LINKTYPE_ETHERNET);
  assert.equal(d.littleEndian, true);
  assert.equal(d.nanoseconds, false);
});

Deno.test("pcap frames written are read back identical, in order, with timestamps", () => {
  const frames = [frame(60, 1), frame(1514, 2), frame(61, 3), frame(0, 0)];
  const w = new PcapWriter();
  frames.forEach((f, i) => w.append(f, 1_700_000_000_000_000 + i * 1_000_001));
  assert.equal(w.count, 4);
  const bytes = w.bytes();
  assert.equal(
    bytes.length,
    PCAP_FILE_HEADER_SIZE + frames.reduce((n, f) => n + PCAP_RECORD_HEADER_SIZE + f.length, 0),
  );
  const recs = readPcap(bytes);
  assert.equal(recs.length, 4);
  recs.forEach((r, i) => {
    assert.deepEqual(r.data, frames[i]);
    assert.equal(r.origLen, frames[i].length);
    assert.equal(r.timestampUs, 1_700_000_000_000_000 + i * 1_000_001);
  });
});

Deno.test("pcap writer grows its buffer past the initial size", () => {
  const frames = Array.from({ length: 100 }, (_, i) => frame(1514, i));
  assert.deepEqual(readPcapFrames(encodePcap(frames)), frames);
});

Deno.test("pcap writer writes to a sink the same bytes it would buffer", () => {
  const chunks: Uint8Array[] = [];
  const sink = {
    writeSync(p: Uint8Array): number {
      const n = Math.min(p.length, 7); // short writes must be retried
      chunks.push(p.slice(0, n));
      return n;
    },
  };
  const w = new PcapWriter(sink);
  w.append(frame(100, 9), 5);
  assert.throws(() => w.bytes(), /sink/);
  const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let off = 0;
  for (const c of chunks) all.set(c, (off += c.length) - c.length);
  const ref = new PcapWriter();
  ref.append(frame(100, 9), 5);
  assert.deepEqual(all, ref.bytes());
});

Deno.test("pcap reader accepts big-endian and nanosecond files", () => {
  const b = new Uint8Array(24 + 16 + 3);
  const v = new DataView(b.buffer);
  v.setUint32(0, 0xa1b23c4d, false); // nanosecond magic, big-endian
  v.setUint16(4, 2, false);
  v.setUint16(6, 4, false);
  v.setUint32(16, 65535, false);
  v.setUint32(20, 1, false);
  v.setUint32(24, 10, false);
  v.setUint32(28, 999_999_999, false);
  v.setUint32(32, 3, false);
  v.setUint32(36, 3, false);
  b.set([1, 2, 3], 40);
  const [r] = readPcap(b);
  assert.deepEqual([...r.data], [1, 2, 3]);
  assert.equal(r.timestampUs, 10_999_999);
});

Deno.test("pcap reader rejects pcapng, bad magic and truncated records with a clear error", () => {
  const ng = new Uint8Array(24);
  new DataView(ng.buffer).setUint32(0, 0x0a0d0d0a, true);
  assert.throws(() => readPcap(ng), /pcapng/);
  assert.throws(() => readPcap(new Uint8Array(24)), /bad magic/);
  assert.throws(() => readPcap(new Uint8Array(3)), /too short/);
  const good = encodePcap([frame(60, 1)]);
  assert.throws(() => readPcap(good.subarray(0, good.length - 1)), /truncated/);
  assert.throws(() => readPcap(good.subarray(0, 30)), /truncated/);
});

const hasTcpdump = (() => {
  try {
    return Deno.statSync("/usr/bin/tcpdump").isFile;
  } catch {
    return false;
  }
})();

Deno.test({
  name: "pcap writer output is read back by tcpdump -r with the same count and bytes",
  ignore: !hasTcpdump,
  async fn() {
    const frames = Array.from(
      { length: 50 },
      (_, i) => frame(60 + ((i * 97) % 1455), i),
    );
    const path = await Deno.makeTempFile({ suffix: ".pcap" });
    try {
      await Deno.writeFile(path, encodePcap(frames, 1_700_000_000_000_000));
      const out = await new Deno.Command("tcpdump", {
        args: ["-r", path, "-nn", "-xx", "-e"],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
      const text = new TextDecoder().decode(out.stdout);
      // One summary line per frame (hex dump lines start with a tab).
      const summaries = text.split("\n").filter((l) => l && !l.startsWith("\t"));
      assert.equal(summaries.length, frames.length);
      // The hex dump of each frame is its bytes.
      const dumps = text.split(/\n(?!\t)/).map((block) =>
        block.split("\n").slice(1).map((l) => l.replace(/^\s*0x[0-9a-f]+:\s*/, ""))
          .join(" ").replace(/\s+/g, "")
      );
      dumps.forEach((hex, i) => {
        if (i >= frames.length) return;
        const want = Array.from(frames[i], (b) => b.toString(16).padStart(2, "0")).join("");
        assert.equal(hex, want, `frame ${i}`);
      });
    } finally {
      await Deno.remove(path);
    }
  },
});
