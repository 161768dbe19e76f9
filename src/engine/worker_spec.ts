/**
 * What the main thread posts to a forwarding worker: plain numbers, bigints, typed arrays
 * and SharedArrayBuffers describing memory both threads see (workers share the process's
 * address space, so an address is enough to rebuild a view with
 * `Deno.UnsafePointer.create` + `Deno.UnsafePointerView.getArrayBuffer`).
 *
 * @module
 */

import type { Doorbell } from "../dma/doorbell.ts";
import type { ForwardMode } from "./fwd_modes/modes.ts";
import type { RingFormat } from "../virtio/ring_format.ts";
import type { VirtqueueState } from "../virtio/virtqueue.ts";

/** One virtqueue for a worker to adopt. */
export interface RingSpec {
  /** Queue index on the device. */
  index: number;
  /** Queue size. */
  size: number;
  /** VIRTIO_F_EVENT_IDX negotiated. */
  eventIdx: boolean;
  /** Name for messages, e.g. "receiveq1 of 0000:00:04.0". */
  name: string;
  /** Address of the ring (its descriptor table) in this process. */
  address: bigint;
  /** Bytes of the ring. */
  bytes: number;
  /** The driver-side state the main thread left it in. */
  state: VirtqueueState;
  /** How to notify it (its transport's doorbell). */
  notify: Doorbell;
}

/** One port's queue pair for a worker. */
export interface PortQueuesSpec {
  /** The port's name. */
  name: string;
  /** Its MAC address. */
  mac: Uint8Array;
  /** Bytes of virtio_net_hdr in front of each frame. */
  headerSize: number;
  /** VIRTIO_NET_F_MRG_RXBUF was negotiated: a received frame may span buffers. */
  mergeable: boolean;
  /** The offloads negotiated, as the mask of src/net/offloads.ts (docs/offloads.md). */
  offloads: number;
  /** receiveq(k+1). */
  rx: RingSpec;
  /** transmitq(k+1). */
  tx: RingSpec;
  /**
   * How to notify the port's other receive queues (other workers'): a worker whose
   * receive queue ran dry wakes them too (see `siblings` in src/net/rx_queue.ts).
   */
  rxSiblings: Doorbell[];
}

/** The shared pool and this worker's partition of it. */
export interface PoolSpec {
  /** Address of the pool's memory in this process. */
  address: bigint;
  /** Bytes of it. */
  bytes: number;
  /** Device address of its first byte. */
  iova: number;
  /** A physically addressed pool's IOVA per 2 MiB page (legacy devices), else null. */
  pageIovas?: number[] | null;
  /** Buffers in the whole pool. */
  count: number;
  /** Bytes per buffer. */
  bufferSize: number;
  /** This worker's free buffers. */
  free: Uint32Array;
  /** This worker's buffers posted in its receive rings. */
  inUse: Uint32Array;
}

/** The script a worker runs. */
export interface ScriptSpec {
  /** Module URL (a file: URL: importing it needs read permission). */
  url: string;
  /** `--script-arg` options. */
  args: Record<string, string>;
}

/** What a capture records of its port: frames received, sent, or both. */
export type CaptureDirection = "rx" | "tx" | "both";

/** A pcap side buffer a worker copies frames of one port into. */
export interface CaptureSpec {
  /** Port whose frames are captured. */
  port: number;
  /** Received frames (as they arrived), sent ones (as they leave), or both. */
  direction: CaptureDirection;
  /** The side buffer (see pcap_ring.ts). */
  ring: SharedArrayBuffer;
}

/** What a worker generates in the engine's txonly and flowgen modes (generator.ts). */
export interface GeneratorSpec {
  /** "txonly" (one flow) or "flowgen" (`flows` flows). */
  mode: "txonly" | "flowgen";
  /** Bytes per frame. */
  frameSize: number;
  /** Flows per port. */
  flows: number;
  /** Frames per second this worker sends over both ports (0: as fast as the rings take). */
  ratePps: number;
}

/** Everything one worker gets. */
export interface WorkerSpec {
  /** The queue pair this worker drives (0-based). */
  queue: number;
  /** Number of workers. */
  workers: number;
  /** Frames per receive burst and transmit burst. */
  burst: number;
  /** A partial transmit burst goes out after this many milliseconds. */
  drainMs: number;
  /** Rewrite MACs as DPDK's l2fwd does. */
  macRewrite: boolean;
  /** Count the extended statistics per frame (engine option `xstats`; default true). */
  xstats?: boolean;
  /** The built-in forwarding mode (engine option `mode`; default "io"). */
  mode?: ForwardMode;
  /** Frames a full transmit ring does not take: wait (backpressure) or drop. */
  txFull: "wait" | "drop";
  /** Sleep this long (µs) when nothing arrived for a while (0: poll without pause). */
  idleUs: number;
  /** Packets received before the heap is sampled as "warm". */
  warmupPackets: number;
  /** Synthetic frames forwarded to warm the code before adopting the queues (0: none). */
  prewarmFrames: number;
  /** Seconds without a compile step that warm-up waits for after its packets. */
  warmupQuietSeconds: number;
  /**
   * Force full GCs (at the first sample, at warm-up and at the stop) so that the heap
   * figures are live memory; each pauses forwarding (engine option `heapAudit`).
   */
  heapAudit: boolean;
  /**
   * How long a vfio-user queue notification waits for room on the server's full socket
   * before the worker fails (ms; engine option `notifyTimeoutMs`).
   */
  notifyTimeoutMs: number;
  /** The pool. */
  pool: PoolSpec;
  /** The ports, in forwarding order (port i forwards to port i ^ 1). */
  ports: PortQueuesSpec[];
  /** Counters (a Float64Array's buffer; layout in counters.ts). */
  counters: SharedArrayBuffer;
  /** Control words (Int32Array; see CTL_* in worker.ts's protocol, control.ts). */
  control: SharedArrayBuffer;
  /** Run-time steering switches (Int32Array; steering_mailbox.ts). */
  steering: SharedArrayBuffer;
  /** The script, if any. */
  script: ScriptSpec | null;
  /** The capture, if this worker captures. */
  capture: CaptureSpec | null;
  /** Generate instead of forwarding (engine modes txonly and flowgen); null or absent: io. */
  generator?: GeneratorSpec | null;
}

/** What a worker warms with: the forwarder options that shape its code. */
export interface PrewarmParams {
  /** Synthetic frames (both ports) to forward; at most 3 s are spent. */
  frames: number;
  /** The ring formats to warm, in turn. */
  formats: RingFormat[];
  /** Frames per burst, as the engine will use. */
  burst: number;
  /** Partial transmit burst drain time (ms), as the engine will use. */
  drainMs: number;
  /** As the engine will use. */
  txFull: "wait" | "drop";
  /** As the engine will use. */
  macRewrite: boolean;
  /** The extended statistics' per-frame classification, as the engine will use (default true). */
  xstats?: boolean;
}
