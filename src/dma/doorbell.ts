/**
 * A doorbell: how a thread other than the one that set a queue up (a forwarding worker)
 * tells the device that the queue has new buffers. Plain data, so it can be posted to a
 * worker, which rings it with the generic code in src/engine/notifier.ts; each transport
 * says which kind its queues have (docs/architecture.md, "Notifications"):
 *
 * - `store16`: a 16-bit store of `value` at `address`, a register in a mapped BAR
 *   (virtio-pci over kernel VFIO, §4.1.4.4);
 * - `message`: `bytes`, one complete message, sent on the stream socket `fd` (vfio-user: a
 *   posted VFIO_USER_REGION_WRITE of the notify register);
 * - `eventfd`: an 8-byte write of 1 to the eventfd `fd` (vhost-user: the queue's kick fd);
 * - `pwrite16`: a 2-byte pwrite(2) of `value` at `offset` of the file `fd` (a register of a
 *   BAR that cannot be mapped: a legacy virtio-pci device's QUEUE_NOTIFY in its I/O BAR0,
 *   reached through the kernel VFIO device fd, §4.1.4.8).
 *
 * `what` names the receiving end for messages, in words that can start a sentence once
 * capitalised: "the vfio-user server of vfio-user:/run/a.sock".
 *
 * @module
 */

/**
 * How to ring one queue's doorbell from any thread of this process.
 *
 * @example
 * ```ts
 * import type { Doorbell } from "./doorbell.ts";
 * const bell: Doorbell = { kind: "eventfd", fd: 7, what: "the kick eventfd of vhost-user:/run/a.sock" };
 * bell.kind; // "eventfd"
 * ```
 */
export type Doorbell =
  | { kind: "store16"; address: bigint; value: number; what: string }
  | { kind: "message"; fd: number; bytes: Uint8Array; what: string }
  | { kind: "eventfd"; fd: number; what: string }
  | { kind: "pwrite16"; fd: number; offset: bigint; value: number; what: string };
