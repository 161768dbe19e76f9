/**
 * The virtqueue seam: what the device-type driver (src/net/) and the engine use of a
 * virtqueue, whatever its layout. `SplitQueue` (split_queue.ts, §2.7) and `PackedQueue`
 * (packed_queue.ts, §2.8) implement it. Nothing outside src/virtio/ does ring
 * arithmetic: positions in a queue are free-running 16-bit counts of entries (the split
 * ring's idx fields; a packed ring counts the same way), compared with the functions below.
 *
 * @module
 */

/**
 * Notifies the device that a queue has new available buffers (§2.7.13 "Supplying Buffers
 * to The Device", last step; how, per transport: §4.1.4.4 for PCI, a kick eventfd for
 * vhost-user).
 *
 * An object with a method rather than a closure: all notifiers of one kind share one
 * method, so the call in `publish` keeps one target however many queues there are. With
 * closures, each queue's is a function of its own, and optimised code that first meets
 * one it has not seen is thrown away ("wrong call target"; a receive queue first notifies
 * when its device first runs dry, long after warm-up) and compiled again.
 *
 * @example
 * ```ts
 * import type { QueueNotifier } from "./virtqueue.ts";
 * class CountingNotifier implements QueueNotifier {
 *   count = 0;
 *   notify(): void {
 *     this.count++;
 *   }
 * }
 * new CountingNotifier().notify();
 * ```
 */
export interface QueueNotifier {
  /** Sends one notification for the queue. */
  notify(): void;
}

/**
 * Notifies each of `targets` in order: a queue's own notifier first, then the siblings it
 * wakes with it (`alsoNotify`). The one loop every ring's `publish` calls, so its call
 * site sees every kind of notifier from the first notification on (see
 * {@linkcode QueueNotifier}: a site that first meets a new target long after warm-up throws
 * optimised code away).
 *
 * @example
 * ```ts
 * import { notifyAll } from "./virtqueue.ts";
 * let n = 0;
 * notifyAll([{ notify: () => n++ }, { notify: () => n++ }]); // n === 2
 * ```
 */
export function notifyAll(targets: readonly QueueNotifier[]): void {
  for (let i = 0; i < targets.length; i++) targets[i].notify();
}

/**
 * The driver-side state of a virtqueue as `exportState` copies it, for another thread to
 * go on driving the same ring (a forwarding worker adopting a queue). Plain numbers and
 * typed arrays, so it can be posted to a Worker. Each layout adds its own fields.
 */
export interface VirtqueueState {
  /** The ring layout (§2.7 split, §2.8 packed), so the adopting side builds the right queue. */
  layout: "split" | "packed";
  /** Free descriptors. */
  numFree: number;
  /** Per descriptor: the token of the buffer in flight, -1 when free. */
  token: Int32Array;
  /**
   * VIRTIO_F_IN_ORDER: the queue was built with `inOrder` (absent: false); the adopting
   * queue keeps it, with the in-order fields its layout adds.
   */
  inOrder?: boolean;
  /**
   * VIRTIO_F_INDIRECT_DESC: the IOVA of the queue's indirect tables, which lie in the
   * ring's memory after the ring (indirect_table.ts); absent: the queue has none.
   */
  indirectIova?: number;
}

/**
 * The driver side of one virtqueue, as the net layer and the engine use it.
 *
 * @example
 * ```ts ignore
 * import type { Virtqueue } from "./virtqueue.ts";
 * function drain(vq: Virtqueue, tokens: Uint32Array, lens: Uint32Array): number {
 *   return vq.takeUsed(tokens, lens, 0, tokens.length);
 * }
 * ```
 */
export interface Virtqueue {
  /** Queue index on the device. */
  readonly index: number;
  /** Queue size (entries). */
  readonly size: number;
  /** Name for messages, e.g. "receiveq1 of 0000:00:04.0". */
  readonly name: string;
  /** What notifies the device about this queue. */
  readonly notifier: QueueNotifier;
  /** The memory the ring lives in, and where in it the ring starts. */
  readonly ringMemory: ArrayBuffer;
  /** Byte offset of the ring in {@linkcode Virtqueue.ringMemory}. */
  readonly ringOffset: number;
  /** Bytes of the ring. */
  readonly ringBytes: number;
  /** Free descriptors. */
  readonly freeCount: number;
  /** Buffers the device holds. */
  readonly inFlight: number;
  /** VIRTIO_F_IN_ORDER: buffers are used in the order made available (§2.7.9, §2.8.8). */
  readonly inOrder: boolean;
  /**
   * VIRTIO_F_INDIRECT_DESC: the most pieces `addSegments` puts behind one indirect
   * descriptor, which takes one ring slot (§2.7.5.3, §2.8.19); 0 when the queue has no
   * indirect tables (a buffer of `count` pieces then takes `count` slots).
   */
  readonly indirectMax: number;
  /** Why the device was caught misbehaving on this queue (it is then unusable), or null. */
  readonly broken: string | null;
  /** Notifications sent. */
  readonly kicks: number;
  /** Notifications the device's suppression saved. */
  readonly kicksSuppressed: number;
  /** Position of the next used entry the driver takes (free-running, 16 bits). */
  readonly lastUsedIdx: number;
  /** Position up to which the driver last published available entries. */
  readonly publishedIdx: number;
  /** Other queues' notifiers notified together with this one's. */
  alsoNotify: readonly QueueNotifier[];
  /** How many notifiers `alsoNotify` holds (allocates nothing). */
  readonly alsoNotifyCount: number;
  /** Position up to which the device has used entries. */
  deviceUsedIdx(): number;
  /** IOVA of the first buffer of used entry `pos` (-1: not a valid entry); any thread. */
  usedAddr(pos: number): number;
  /** Length the device wrote into used entry `pos`. */
  usedLen(pos: number): number;
  /** Adds one buffer (a token, its IOVA in two halves, length, device-writable). */
  add(token: number, iovaLo: number, iovaHi: number, len: number, writable: boolean): boolean;
  /** Adds a two-buffer chain: a device-readable one, then a device-writable one. */
  addChain(
    token: number,
    lo1: number,
    hi1: number,
    len1: number,
    lo2: number,
    hi2: number,
    len2: number,
  ): boolean;
  /**
   * Adds one buffer of `count` device-readable pieces as a descriptor chain (piece i at
   * `lo[i]`/`hi[i]`, `lens[i]` bytes): a frame that spans several packet buffers.
   */
  addSegments(
    token: number,
    lo: Uint32Array,
    hi: Uint32Array,
    lens: Uint32Array,
    count: number,
  ): boolean;
  /** Publishes what was added and notifies unless the device suppressed it. */
  publish(): boolean;
  /** Notifies the device unconditionally. */
  kick(): void;
  /** Takes up to `max` used entries: their tokens and lengths from `at`. */
  takeUsed(tokens: Uint32Array, lens: Uint32Array, at: number, max: number): number;
  /** True when the device has used entries the driver has not taken. */
  hasUsed(): boolean;
  /** Asks for used-buffer notifications; true when entries are already waiting. */
  enableInterrupts(): boolean;
  /** Suppresses used-buffer notifications. */
  disableInterrupts(): void;
  /** The driver-side state, for another thread to adopt. */
  exportState(): VirtqueueState;
}

/**
 * Entries from position `from` to position `to` (free-running 16-bit counts).
 *
 * @example
 * ```ts
 * import { positionDistance } from "./virtqueue.ts";
 * positionDistance(65530, 4); // 10
 * ```
 */
export function positionDistance(from: number, to: number): number {
  return (to - from) & 0xffff;
}

/**
 * Position `pos` moved by `n` entries (negative: back).
 *
 * @example
 * ```ts
 * import { positionAdd } from "./virtqueue.ts";
 * positionAdd(0, -1); // 65535
 * ```
 */
export function positionAdd(pos: number, n: number): number {
  return (pos + n) & 0xffff;
}

/**
 * True when position `pos` has reached `mark` (is at or less than half the space past it).
 *
 * @example
 * ```ts
 * import { positionReached } from "./virtqueue.ts";
 * positionReached(3, 65534); // true: 5 entries past
 * positionReached(65534, 3); // false
 * ```
 */
export function positionReached(pos: number, mark: number): boolean {
  return ((pos - mark) & 0xffff) < 0x8000;
}
