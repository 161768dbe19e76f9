/**
 * libpcap's classic capture file format, pure and over `Uint8Array`: what `tcpdump -w` writes
 * and `tcpdump -r` reads.
 *
 * Writing: little-endian, microsecond timestamps, LINKTYPE_ETHERNET. Reading: either byte
 * order, microsecond or nanosecond timestamps (pcapng is refused with a clear error).
 *
 * @example
 * ```ts
 * import { PcapWriter, readPcap } from "./pcap.ts";
 * const w = new PcapWriter();
 * w.append(new Uint8Array(60));
 * readPcap(w.bytes()).length; // 1
 * ```
 *
 * @module
 */

/** Magic of a microsecond-resolution classic pcap file. */
export const PCAP_MAGIC_US = 0xa1b2c3d4;
/** Magic of a nanosecond-resolution classic pcap file. */
export const PCAP_MAGIC_NS = 0xa1b23c4d;
/** Link type of Ethernet frames. */
export const LINKTYPE_ETHERNET = 1;
/** Size of the file header. */
export const PCAP_FILE_HEADER_SIZE = 24;
/** Size of each record header. */
export const PCAP_RECORD_HEADER_SIZE = 16;
/** Snap length written into files (the largest frame kept whole). */
export const PCAP_SNAPLEN = 262144;

/** The fields of a pcap file header. */
export interface PcapFileHeader {
  /** Major version (2). */
  versionMajor: number;
  /** Minor version (4). */
  versionMinor: number;
  /** Snap length. */
  snaplen: number;
  /** Link type, e.g. {@linkcode LINKTYPE_ETHERNET}. */
  linktype: number;
  /** True when timestamps have nanosecond resolution. */
  nanoseconds: boolean;
  /** True when the file is little-endian. */
  littleEndian: boolean;
}

/** One captured frame. */
export interface PcapRecord {
  /** The captured bytes (a view into the file buffer). */
  data: Uint8Array;
  /** Length of the frame on the wire (≥ data.length when the capture was truncated). */
  origLen: number;
  /** Timestamp in microseconds since the epoch. */
  timestampUs: number;
}

/** Encodes a file header (little-endian, microseconds). */
export function encodeFileHeader(
  linktype = LINKTYPE_ETHERNET,
  snaplen = PCAP_SNAPLEN,
): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(PCAP_FILE_HEADER_SIZE);
  const v = new DataView(b.buffer);
  v.setUint32(0, PCAP_MAGIC_US, true);
  v.setUint16(4, 2, true);
  v.setUint16(6, 4, true);
  v.setInt32(8, 0, true); // thiszone
  v.setUint32(12, 0, true); // sigfigs
  v.setUint32(16, snaplen, true);
  v.setUint32(20, linktype, true);
  return b;
}

/** Decodes a file header; throws on anything that is not a classic pcap file. */
export function decodeFileHeader(bytes: Uint8Array): PcapFileHeader {
  if (bytes.length < PCAP_FILE_HEADER_SIZE) {
    throw new Error(`pcap: file too short for a header (${bytes.length} bytes)`);
  }
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const le = v.getUint32(0, true), be = v.getUint32(0, false);
  let littleEndian: boolean, nanoseconds: boolean;
  if (le === PCAP_MAGIC_US || le === PCAP_MAGIC_NS) {
    littleEndian = true;
    nanoseconds = le === PCAP_MAGIC_NS;
  } else if (be === PCAP_MAGIC_US || be === PCAP_MAGIC_NS) {
    littleEndian = false;
    nanoseconds = be === PCAP_MAGIC_NS;
  } else if (le === 0x0a0d0d0a) {
    throw new Error("pcap: this is a pcapng file; only classic pcap is supported");
  } else {
    throw new Error(`pcap: bad magic 0x${le.toString(16)}`);
  }
  return {
    versionMajor: v.getUint16(4, littleEndian),
    versionMinor: v.getUint16(6, littleEndian),
    snaplen: v.getUint32(16, littleEndian),
    linktype: v.getUint32(20, littleEndian),
    nanoseconds,
    littleEndian,
  };
}

/** Encodes a record header (little-endian, microseconds). */
export function encodeRecordHeader(
  capturedLen: number,
  origLen: number,
  timestampUs: number,
): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(PCAP_RECORD_HEADER_SIZE);
  const v = new DataView(b.buffer);
  const us = Math.max(0, Math.floor(timestampUs));
  v.setUint32(0, Math.floor(us / 1e6), true);
  v.setUint32(4, us % 1e6, true);
  v.setUint32(8, capturedLen, true);
  v.setUint32(12, origLen, true);
  return b;
}

/**
 * Iterates over the records of a pcap file held in memory. Records are views into `bytes`.
 * Throws on a truncated record.
 */
export function* pcapRecords(bytes: Uint8Array): Generator<PcapRecord> {
  const h = decodeFileHeader(bytes);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let off = PCAP_FILE_HEADER_SIZE;
  let index = 0;
  while (off < bytes.length) {
    if (off + PCAP_RECORD_HEADER_SIZE > bytes.length) {
      throw new Error(`pcap: record ${index} header truncated at offset ${off}`);
    }
    const sec = v.getUint32(off, h.littleEndian);
    const frac = v.getUint32(off + 4, h.littleEndian);
    const incl = v.getUint32(off + 8, h.littleEndian);
    const orig = v.getUint32(off + 12, h.littleEndian);
    const start = off + PCAP_RECORD_HEADER_SIZE;
    if (start + incl > bytes.length) {
      throw new Error(`pcap: record ${index} data truncated (${incl} bytes at offset ${start})`);
    }
    yield {
      data: bytes.subarray(start, start + incl),
      origLen: orig,
      timestampUs: sec * 1e6 + (h.nanoseconds ? Math.floor(frac / 1000) : frac),
    };
    off = start + incl;
    index++;
  }
}

/** All records of a pcap file held in memory. */
export function readPcap(bytes: Uint8Array): PcapRecord[] {
  return [...pcapRecords(bytes)];
}

/** The frames (captured bytes) of a pcap file held in memory. */
export function readPcapFrames(bytes: Uint8Array): Uint8Array[] {
  return readPcap(bytes).map((r) => r.data);
}

/** Something bytes can be written to synchronously, e.g. a `Deno.FsFile`. */
export interface SyncSink {
  /** Writes some of `p`, returning how many bytes were written. */
  writeSync(p: Uint8Array): number;
}

function writeAll(sink: SyncSink, p: Uint8Array): void {
  let off = 0;
  while (off < p.length) off += sink.writeSync(p.subarray(off));
}

/**
 * Writes a pcap file: into a growable in-memory buffer ({@linkcode PcapWriter.bytes}), or
 * straight to a sink such as an open `Deno.FsFile` when one is given.
 *
 * @example
 * ```ts
 * import { PcapWriter } from "./pcap.ts";
 * const w = new PcapWriter();
 * w.append(new Uint8Array(64), 1_700_000_000_000_000);
 * w.bytes().length; // 24 + 16 + 64
 * ```
 */
export class PcapWriter {
  #sink?: SyncSink;
  #buf: Uint8Array<ArrayBuffer>;
  #len = 0;
  #count = 0;

  /** Starts a file (the header is written at once). */
  constructor(sink?: SyncSink, linktype = LINKTYPE_ETHERNET) {
    this.#sink = sink;
    this.#buf = new Uint8Array(sink ? 0 : 4096);
    this.#put(encodeFileHeader(linktype));
  }

  #put(p: Uint8Array): void {
    if (this.#sink) {
      writeAll(this.#sink, p);
      return;
    }
    if (this.#len + p.length > this.#buf.length) {
      const grown = new Uint8Array(Math.max(this.#buf.length * 2, this.#len + p.length));
      grown.set(this.#buf.subarray(0, this.#len));
      this.#buf = grown;
    }
    this.#buf.set(p, this.#len);
    this.#len += p.length;
  }

  /** Appends one frame; the timestamp defaults to now (microseconds since the epoch). */
  append(frame: Uint8Array, timestampUs = Date.now() * 1000, origLen = frame.length): void {
    this.#put(encodeRecordHeader(frame.length, origLen, timestampUs));
    this.#put(frame);
    this.#count++;
  }

  /** Number of frames appended so far. */
  get count(): number {
    return this.#count;
  }

  /** The file so far (a copy); throws when writing to a sink. */
  bytes(): Uint8Array<ArrayBuffer> {
    if (this.#sink) throw new Error("PcapWriter: bytes() is not available when writing to a sink");
    return this.#buf.slice(0, this.#len);
  }
}

/** Encodes frames as a complete pcap file, timestamps 1 µs apart from `startUs`. */
export function encodePcap(frames: Iterable<Uint8Array>, startUs = 0): Uint8Array<ArrayBuffer> {
  const w = new PcapWriter();
  let t = startUs;
  for (const f of frames) w.append(f, t++);
  return w.bytes();
}
