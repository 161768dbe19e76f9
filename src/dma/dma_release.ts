/**
 * Giving DMA memory back only once nothing can use it any more: not before the device
 * confirmed its reset (virtio 1.x §4.1.4.3.2: device_status reads back 0, after which it
 * no longer reads or writes its rings and buffers), and not while something this thread
 * cannot stop may still touch it (a forwarding worker that did not confirm it left its
 * loop). Memory that cannot be given back stays mapped; the process releases it when it
 * exits.
 *
 * @module
 */

import { ReleaseStack } from "../errors.ts";

/**
 * Release actions for one device's DMA memory, held back until the device is quiet.
 *
 * @example
 * ```ts
 * import { DmaRelease } from "./dma_release.ts";
 * const dma = new DmaRelease("0000:00:04.0");
 * dma.push("free the rings", () => {});
 * dma.releaseAll(); // ["…did not confirm its reset…"]: nothing freed yet
 * dma.deviceStopped(); // the reset read back 0
 * dma.releaseAll(); // []: freed
 * ```
 */
export class DmaRelease {
  readonly #name: string;
  readonly #actions = new ReleaseStack();
  #stopped = false;
  #retainedBy: string | null = null;

  /** Release actions of device `name` (for messages). */
  constructor(name: string) {
    this.#name = name;
  }

  /** Adds a release action (an unmap or a free), run last-in first-out. */
  push(what: string, fn: () => void): void {
    this.#actions.push(what, fn);
  }

  /** Records that the device confirmed its reset: it no longer touches the memory. */
  deviceStopped(): void {
    this.#stopped = true;
  }

  /**
   * Keeps the memory (and whatever the caller ties to this) until the process exits:
   * `reason` says who may still use it, e.g. "the forwarding worker of queue pair 0 did
   * not confirm it stopped".
   */
  retain(reason: string): void {
    this.#retainedBy ??= reason;
  }

  /** Why the memory is kept, or null. */
  get retainedBy(): string | null {
    return this.#retainedBy;
  }

  /**
   * Runs the release actions if the device confirmed its reset and nothing retains the
   * memory; otherwise runs none and says why. Returns the failures (never throws).
   */
  releaseAll(): string[] {
    if (this.#actions.size === 0) return [];
    if (this.#retainedBy !== null) {
      return [
        `${this.#retainedBy}, so ${this.#name}'s DMA memory stays mapped until the process exits`,
      ];
    }
    if (!this.#stopped) {
      return [
        `${this.#name} did not confirm its reset, so its DMA memory stays mapped until the process exits`,
      ];
    }
    return this.#actions.releaseAll();
  }
}
