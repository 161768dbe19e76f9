/**
 * The main thread's end of packet capture: drains the workers' side buffers
 * (pcap_ring.ts) into one classic pcap file (src/pcap/pcap.ts: what `tcpdump -r` reads),
 * merging the workers' records by timestamp, on a timer so that file writes never hold up
 * a worker.
 *
 * @module
 */

import { PcapWriter, type SyncSink } from "../pcap/pcap.ts";
import { PcapRingReader } from "./pcap_ring.ts";

/**
 * Writes what the workers capture to a file.
 *
 * @example
 * ```ts ignore
 * import { PcapSink } from "./pcap_sink.ts";
 * const sink = PcapSink.open("/tmp/rx.pcap", rings, 20);
 * // … workers capture …
 * sink.close(); // drains what is left
 * ```
 */
export class PcapSink {
  readonly #readers: PcapRingReader[];
  readonly #writer: PcapWriter;
  readonly #file: (SyncSink & { close(): void }) | null;
  #timer: ReturnType<typeof setInterval> | undefined;
  #written = 0;
  #closed = false;

  /** Drains `rings` into `sink` (a file, or anything with writeSync) every `everyMs`. */
  constructor(
    sink: SyncSink & { close?(): void },
    rings: readonly SharedArrayBuffer[],
    everyMs = 20,
  ) {
    this.#readers = rings.map((r) => new PcapRingReader(r));
    this.#writer = new PcapWriter(sink);
    this.#file = typeof sink.close === "function" ? sink as SyncSink & { close(): void } : null;
    if (everyMs > 0) this.#timer = setInterval(() => this.drain(), everyMs);
  }

  /** Creates (or truncates) `path` and starts draining into it. Needs write permission. */
  static open(path: string, rings: readonly SharedArrayBuffer[], everyMs = 20): PcapSink {
    const f = Deno.openSync(path, { write: true, create: true, truncate: true });
    try {
      return new PcapSink(f, rings, everyMs);
    } catch (e) {
      f.close();
      throw e;
    }
  }

  /** Frames written so far. */
  get written(): number {
    return this.#written;
  }

  /** Writes every record published so far, oldest first across workers. */
  drain(): void {
    const rs = this.#readers;
    const w = this.#writer;
    const put = (bytes: Uint8Array, orig: number, ts: number) => {
      w.append(bytes, ts, orig);
      this.#written++;
    };
    if (rs.length === 1) {
      rs[0].drain(put);
      return;
    }
    for (;;) {
      let best = -1, bestTs = Infinity;
      for (let i = 0; i < rs.length; i++) {
        const t = rs[i].peekTimestamp();
        if (t !== null && t < bestTs) {
          bestTs = t;
          best = i;
        }
      }
      if (best < 0) return;
      rs[best].drain(put, 1);
    }
  }

  /** Stops the timer, writes what is left and closes the file. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.drain();
    this.#file?.close();
  }
}
