/**
 * The forwarding script API: a module that every forwarding worker loads and calls once per
 * received burst, to inspect, rewrite, filter, bounce or count packets, with no allocation
 * (everything it gets is a typed array built once per worker).
 *
 * A script is an ES module exporting `handleBurst` and optionally `counters`, `tableSize`,
 * `init` and `report`. Workers call `init` and `handleBurst`; the main thread loads the
 * same module for `counters`, `tableSize` and `report`. Scripts should import nothing at
 * run time (`import type` is fine: it is erased), so that reading the script file is the
 * only permission they need (`--allow-read=FILE`).
 *
 * @example
 * ```ts
 * import { type Burst, DROP } from "./script_api.ts";
 * export const counters = ["ipv4"] as const;
 * export function handleBurst(b: Burst): void {
 *   for (let i = 0; i < b.count; i++) {
 *     const o = b.offsets[i];
 *     if (b.data[o + 12] === 0x08 && b.data[o + 13] === 0x00) b.counters[0]++;
 *     else b.verdicts[i] = DROP;
 *   }
 * }
 * ```
 *
 * @module
 */

/** Verdict: send the packet out of the other port (the default). */
export const FORWARD = 0;
/** Verdict: drop the packet (counted as "dropped by script"). */
export const DROP = 1;
/** Verdict: send the packet back out of the port it came in on. */
export const BOUNCE = 2;

/** Checksum state ({@linkcode Burst.csum}): nothing known; sent as it is. */
export const CSUM_NONE = 0;
/** Checksum state: the receiving device checked the frame's checksums (DATA_VALID). */
export const CSUM_VALID = 1;
/**
 * Checksum state: partial (NEEDS_CSUM): the 16-bit field at csumStart + csumOffset holds
 * the pseudo-header sum (not complemented); the sum from csumStart to the end is due. Set
 * on a frame to send, the output device completes it (VIRTIO_NET_F_CSUM).
 */
export const CSUM_PARTIAL = 2;
/** GSO type ({@linkcode Burst.gsoType}): an ordinary frame. */
export const GSO_NONE = 0;
/** GSO type: a TCP/IPv4 super-frame, to be cut into segments of gsoSize payload bytes. */
export const GSO_TCPV4 = 1;
/** GSO type: a TCP/IPv6 super-frame. */
export const GSO_TCPV6 = 4;

/**
 * One received burst as a script sees it. The arrays are the worker's own and are reused
 * for every burst: keep no reference to them beyond the call.
 */
export interface Burst {
  /** Index of the port the packets came in on. */
  readonly inPort: number;
  /** Index of the port FORWARD sends them to. */
  readonly outPort: number;
  /** Queue pair (= worker) index. */
  readonly queue: number;
  /** Packets in this burst: entries 0…count-1 of the arrays below are valid. */
  readonly count: number;
  /** Buffer index of each packet (in the shared pool). */
  readonly bufs: Uint32Array;
  /**
   * Frame length of each packet in bytes; a script may shorten or lengthen it. A frame
   * longer than {@linkcode Burst.room} spans several buffers (mergeable receive buffers,
   * a large receive): only its first `room` bytes are in `data` at its offset, which
   * holds its headers; such a frame may be shortened but not lengthened.
   */
  readonly lens: Uint32Array;
  /** Byte offset of each frame (its destination MAC) in {@linkcode Burst.data}. */
  readonly offsets: Uint32Array;
  /** Verdict of each packet: {@linkcode FORWARD} (preset), {@linkcode DROP}, {@linkcode BOUNCE}. */
  readonly verdicts: Uint8Array;
  /** All bytes of the packet buffer pool. */
  readonly data: Uint8Array;
  /** The same bytes as a DataView (big-endian network fields: `view.getUint16(o, false)`). */
  readonly view: DataView;
  /** Bytes a frame may grow to (the buffer's room after the virtio-net header). */
  readonly room: number;
  /** The script's named counters of this worker, in the order of its `counters` export. */
  readonly counters: Float64Array;
  /** The script's table of `tableSize` numbers of this worker (e.g. per-flow counters). */
  readonly table: Float64Array;
  /** MAC address of each port (6 bytes each). */
  readonly macs: readonly Uint8Array[];
  /**
   * Offloads (docs/offloads.md). Each packet's checksum state, {@linkcode CSUM_NONE},
   * {@linkcode CSUM_VALID} or {@linkcode CSUM_PARTIAL}: as the receiving device reported
   * it (validated; CSUM_NONE without VIRTIO_NET_F_GUEST_CSUM), and what the packet is sent
   * with: CSUM_PARTIAL asks the output device to complete the checksum described by
   * csumStart/csumOffset. A request the output port cannot honour drops the packet
   * (counted in dropsTxOffload).
   */
  readonly csum: Uint8Array;
  /** Bytes from the frame's start to where the checksummed bytes start (CSUM_PARTIAL). */
  readonly csumStart: Uint16Array;
  /** Where the checksum field is, from csumStart: 16 for TCP, 6 for UDP (CSUM_PARTIAL). */
  readonly csumOffset: Uint16Array;
  /**
   * {@linkcode GSO_NONE}, or a super-frame: {@linkcode GSO_TCPV4} / {@linkcode GSO_TCPV6}
   * as received (large receive, GUEST_TSO4/6), and as sent: the output device cuts it
   * into segments of gsoSize payload bytes (TSO, HOST_TSO4/6). Needs CSUM_PARTIAL.
   */
  readonly gsoType: Uint8Array;
  /** Payload bytes per segment (the MSS) of a super-frame. */
  readonly gsoSize: Uint16Array;
  /**
   * Bytes of headers (Ethernet to the end of TCP's) of a super-frame; as a device reported
   * it on receive, checked against the frame only, so it may run past the first buffer.
   */
  readonly hdrLen: Uint16Array;
}

/** What `init` gets, once per worker before the first burst. */
export interface ScriptInit {
  /** Queue pair (= worker) index. */
  queue: number;
  /** Number of workers (queue pairs). */
  workers: number;
  /** Number of ports. */
  ports: number;
  /** MAC address of each port. */
  macs: readonly Uint8Array[];
  /** `--script-arg KEY=VALUE` options. */
  args: Readonly<Record<string, string>>;
}

/** What `report` gets on the main thread, once per statistics line. */
export interface ScriptReportInput {
  /** Each named counter summed over the workers. */
  counters: Readonly<Record<string, number>>;
  /** Each worker's table (views over shared memory the workers keep writing). */
  tables: readonly Float64Array[];
  /** `--script-arg KEY=VALUE` options. */
  args: Readonly<Record<string, string>>;
}

/** The shape of a script module. */
export interface ForwardScript {
  /** Names of the script's counters (one Float64 each per worker, summed in the stats). */
  counters?: readonly string[];
  /** Numbers in the script's table per worker (default 0). */
  tableSize?: number;
  /**
   * Called in each worker before the first burst (parse args, precompute), and on the
   * main thread before forwarding starts (l2fwd: before it opens any port), with the MACs
   * all zero, to check the args: throw to refuse them, with a sentence saying why.
   */
  init?(init: ScriptInit): void;
  /** Called for every received burst: set verdicts, rewrite frames, count. Must not throw. */
  handleBurst(burst: Burst): void;
  /** Called on the main thread for the statistics: what to print under "script". */
  report?(input: ScriptReportInput): unknown;
}

/**
 * Checks that a loaded module is a script; returns it typed, or throws a TypeError that
 * says what is missing.
 *
 * @example
 * ```ts
 * import { asForwardScript } from "./script_api.ts";
 * const s = asForwardScript({ handleBurst() {} }, "inline");
 * s.counters; // undefined
 * ```
 */
export function asForwardScript(mod: Record<string, unknown>, name: string): ForwardScript {
  if (typeof mod.handleBurst !== "function") {
    throw new TypeError(`${name} exports no handleBurst(burst) function: it is not a script`);
  }
  const counters = mod.counters;
  if (
    counters !== undefined &&
    !(Array.isArray(counters) && counters.every((c) => typeof c === "string"))
  ) {
    throw new TypeError(`${name}: its counters export must be an array of names`);
  }
  const tableSize = mod.tableSize;
  if (
    tableSize !== undefined &&
    !(Number.isInteger(tableSize) && (tableSize as number) >= 0 &&
      (tableSize as number) <= 1 << 24)
  ) {
    throw new TypeError(`${name}: its tableSize export must be an integer from 0 to 16777216`);
  }
  for (const f of ["init", "report"]) {
    if (mod[f] !== undefined && typeof mod[f] !== "function") {
      throw new TypeError(`${name}: its ${f} export must be a function`);
    }
  }
  return mod as unknown as ForwardScript;
}
