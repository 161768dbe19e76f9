/**
 * The side buffer between a forwarding worker that captures frames and the main thread
 * that writes them to a pcap file: a single-producer single-consumer ring of records in a
 * SharedArrayBuffer, so the data path never waits for the file. When the ring is full the
 * worker counts the frame as not captured and goes on.
 *
 * Layout: control words (Int32: head, tail) in the first 16 bytes, then `capacity` bytes of
 * records. A record is 16 bytes (u32 captured length, u32 original length, f64 timestamp
 * in µs since the epoch) and the frame, padded to 8 bytes. A record never wraps: where the
 * rest of the ring is too small, the producer writes a wrap mark (length 0xffffffff) and
 * starts again at 0.
 *
 * Memory ordering: the producer writes a record with plain stores, then publishes it with
 * Atomics.store of head; the consumer reads head with Atomics.load, then the records, then
 * releases the room with Atomics.store of tail. Atomics on a SharedArrayBuffer are
 * sequentially consistent on every architecture (on x86-64 under TSO the stores are in
 * order anyway; Atomics keep V8 from reordering them).
 *
 * @module
 */

const HEAD = 0;
const TAIL = 1;
const CONTROL_BYTES = 16;
const RECORD_HEADER = 16;
const WRAP = 0xffff_ffff;

/**
 * A new side buffer with room for `capacity` bytes of records (rounded up to 8).
 *
 * @example
 * ```ts
 * import { createPcapRing } from "./pcap_ring.ts";
 * createPcapRing(1 << 20).byteLength; // 1048592
 * ```
 */
export function createPcapRing(capacity: number): SharedArrayBuffer {
  return new SharedArrayBuffer(CONTROL_BYTES + Math.ceil(capacity / 8) * 8);
}

/**
 * The worker's end: copies frames in. Allocates nothing.
 *
 * @example
 * ```ts
 * import { createPcapRing, PcapRingReader, PcapRingWriter } from "./pcap_ring.ts";
 * const sab = createPcapRing(4096);
 * const frame = new Uint32Array([0x04030201, 0x08070605]);
 * const w = new PcapRingWriter(sab);
 * w.stampUs[0] = 1_700_000_000_000_000;
 * w.capture(frame, 0, 7);
 * new PcapRingReader(sab).drain((bytes) => console.log(bytes.length)); // 7
 * ```
 */
export class PcapRingWriter {
  /**
   * Timestamp (µs since the epoch) of the frames captured next: the caller stores it
   * once per burst (an array element, because a double passed as an argument to a call
   * V8 does not inline is boxed in a new heap number).
   */
  readonly stampUs: Float64Array = new Float64Array(1);
  readonly #ctl: Int32Array;
  readonly #words: Uint32Array;
  readonly #f64: Float64Array;
  readonly #size: number;
  #head: number;

  /** The producer end of `sab` (from {@linkcode createPcapRing}). */
  constructor(sab: SharedArrayBuffer) {
    this.#ctl = new Int32Array(sab, 0, 4);
    this.#size = sab.byteLength - CONTROL_BYTES;
    this.#words = new Uint32Array(sab, CONTROL_BYTES, this.#size >> 2);
    this.#f64 = new Float64Array(sab, CONTROL_BYTES, this.#size >> 3);
    this.#head = Atomics.load(this.#ctl, HEAD);
  }

  /**
   * Captures `len` bytes that start at word `word` of `src` (frames start 4-byte aligned
   * in packet buffers; the last word may carry up to 3 bytes past the frame, which are not
   * part of the record), stamped with {@linkcode PcapRingWriter.stampUs}. Returns false
   * when the ring has no room (the frame is skipped).
   */
  capture(src: Uint32Array, word: number, len: number): boolean {
    const at = this.#reserve(len);
    if (at < 0) return false;
    const w = this.#words, n = (len + 3) >> 2;
    for (let i = 0; i < n; i++) w[at + 4 + i] = src[word + i];
    this.#commit(len);
    return true;
  }

  /**
   * Captures one `len`-byte frame kept in `parts` pieces of `src` (a frame spanning
   * mergeable receive buffers): piece i starts at word `starts[i]` and is `bytes[i]` long,
   * a multiple of 4 for all but the last. Returns false when the ring has no room.
   */
  captureParts(
    src: Uint32Array,
    starts: Uint32Array,
    bytes: Uint32Array,
    parts: number,
    len: number,
  ): boolean {
    const at = this.#reserve(len);
    if (at < 0) return false;
    const w = this.#words;
    let to = at + 4, left = len;
    for (let p = 0; p < parts && left > 0; p++) {
      const take = bytes[p] < left ? bytes[p] : left, n = (take + 3) >> 2, from = starts[p];
      for (let i = 0; i < n; i++) w[to + i] = src[from + i];
      to += n;
      left -= take;
    }
    this.#commit(len);
    return true;
  }

  /** Room for a record of `len` frame bytes: its first word, -1 when the ring is full. */
  #reserve(len: number): number {
    const need = RECORD_HEADER + ((len + 7) & ~7);
    const size = this.#size;
    let h = this.#head;
    const t = Atomics.load(this.#ctl, TAIL);
    if (h >= t) {
      // Free: [h, size) and [0, t). Never let head catch up with tail (that reads empty).
      if (size - h < need || (h + need === size && t === 0)) {
        if (t <= need) return -1;
        this.#words[h >> 2] = WRAP;
        h = 0;
      }
    } else if (t - h <= need) {
      return -1;
    }
    const w = this.#words, at = h >> 2;
    w[at] = len;
    w[at + 1] = len;
    this.#f64[(h >> 3) + 1] = this.stampUs[0];
    this.#head = h; // a wrap moved it to 0
    return at;
  }

  /** Publishes the record #reserve() made room for. */
  #commit(len: number): void {
    let h = this.#head + RECORD_HEADER + ((len + 7) & ~7);
    if (h === this.#size) h = 0;
    this.#head = h;
    Atomics.store(this.#ctl, HEAD, h); // publication point
  }
}

/**
 * The main thread's end: hands out the records the worker published.
 *
 * @example
 * ```ts ignore
 * const reader = new PcapRingReader(sab);
 * setInterval(() => reader.drain((bytes, orig, ts) => writer.append(bytes, ts, orig)), 20);
 * ```
 */
export class PcapRingReader {
  readonly #ctl: Int32Array;
  readonly #bytes: Uint8Array;
  readonly #words: Uint32Array;
  readonly #f64: Float64Array;
  readonly #size: number;

  /** The consumer end of `sab`. */
  constructor(sab: SharedArrayBuffer) {
    this.#ctl = new Int32Array(sab, 0, 4);
    this.#size = sab.byteLength - CONTROL_BYTES;
    this.#bytes = new Uint8Array(sab, CONTROL_BYTES, this.#size);
    this.#words = new Uint32Array(sab, CONTROL_BYTES, this.#size >> 2);
    this.#f64 = new Float64Array(sab, CONTROL_BYTES, this.#size >> 3);
  }

  /** Timestamp (µs) of the next record, or null when there is none yet. */
  peekTimestamp(): number | null {
    let t = Atomics.load(this.#ctl, TAIL);
    const h = Atomics.load(this.#ctl, HEAD);
    if (t === h) return null;
    if (this.#words[t >> 2] === WRAP) t = 0;
    if (t === h) return null;
    return this.#f64[(t >> 3) + 1];
  }

  /**
   * Hands at most `max` published records to `take` (bytes: a view valid only during the
   * call), in order, then releases their room. Returns how many.
   */
  drain(
    take: (bytes: Uint8Array, origLen: number, timestampUs: number) => void,
    max = Infinity,
  ): number {
    let t = Atomics.load(this.#ctl, TAIL);
    const h = Atomics.load(this.#ctl, HEAD);
    let n = 0;
    while (t !== h && n < max) {
      if (this.#words[t >> 2] === WRAP) {
        t = 0;
        continue;
      }
      const len = this.#words[t >> 2], orig = this.#words[(t >> 2) + 1];
      const ts = this.#f64[(t >> 3) + 1];
      take(this.#bytes.subarray(t + RECORD_HEADER, t + RECORD_HEADER + len), orig, ts);
      t += RECORD_HEADER + ((len + 7) & ~7);
      if (t === this.#size) t = 0;
      n++;
    }
    Atomics.store(this.#ctl, TAIL, t);
    return n;
  }
}
