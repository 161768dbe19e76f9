/**
 * The virtio transport interface: everything the device-type driver (src/net/) and the
 * engine need from "a virtio device", whatever carries it (virtio 1.x §3.1 device
 * initialization, §4 transports). The modern PCI transport implements it over a
 * {@linkcode PciDevice} (kernel VFIO or vfio-user: pci_transport.ts); the vhost-user
 * transport over a vhost-user connection (vhost_user_transport.ts). As DPDK's
 * `struct virtio_ops`, or Linux's `virtio_config_ops` plus the ring's notify callback.
 * docs/architecture.md shows where it sits and what adding a transport takes (a folder,
 * an implementation of this, a case in src/open_port.ts and a prefix in src/port_name.ts).
 *
 * @module
 */

import type { Doorbell } from "../dma/doorbell.ts";
import type { DmaTarget } from "../dma/dma_target.ts";
import type { RegionIo } from "../pci/pci_device.ts";
import type { QueueNotifier } from "./virtqueue.ts";

/** A queue's interrupts routed to an eventfd ({@linkcode VirtioTransport.routeQueueInterrupt}). */
export interface QueueInterruptRoute {
  /** The MSI-X vector used (PCI), or -1 where the transport has none (vhost-user's call fd). */
  readonly vector: number;
  /** Undoes the routing: the queue interrupts nobody again. */
  unroute(): void;
}

/** Options of {@linkcode VirtioTransport.routeQueueInterrupt}. */
export interface QueueInterruptOptions {
  /** PCI: the MSI-X vector to use (default 1 + the queue index). Ignored elsewhere. */
  vector?: number;
}

/**
 * One virtio device as the driver sees it, through whichever transport carries it.
 *
 * @example
 * ```ts ignore
 * import { openTransport } from "../open_port.ts";
 * const t = openTransport("vhost-user:/run/a.sock");
 * t.reset();
 * console.log(t.deviceFeatures().toString(16));
 * t.close();
 * ```
 */
export interface VirtioTransport {
  /** How users name the port: `0000:00:04.0`, `vfio-user:/path`, `vhost-user:/path`. */
  readonly name: string;
  /** What DMA memory is mapped for (the PCI function, or the vhost-user memory table). */
  readonly dma: DmaTarget;
  /**
   * True for a legacy (virtio 0.9.5) device (§4.1.4.8): 32-bit features, no FEATURES_OK,
   * the legacy split-ring layout at a fixed queue size, and DMA to physical addresses.
   */
  readonly legacy?: boolean;
  /** device_status (§2.1). */
  readonly status: number;
  /** Sets status bits (the §3.1.1 handshake only ever adds bits until a reset). */
  addStatus(bits: number): void;
  /** Resets the device and waits until it confirms (§2.1.2: it no longer uses its queues). */
  reset(): void;
  /** The features the device offers (§2.2), as this transport can carry them. */
  deviceFeatures(): bigint;
  /** Writes the driver's features and sets FEATURES_OK, throwing if the device refuses (§3.1.1 steps 5–6). */
  setDriverFeatures(features: bigint): void;
  /** Largest size of queue `index` (0: no such queue). */
  queueMaxSize(index: number): number;
  /**
   * Gives queue `index` its size and ring addresses (IOVAs of memory mapped for
   * {@linkcode VirtioTransport.dma}) and enables it; returns what notifies it from this
   * thread.
   */
  setupQueue(
    index: number,
    size: number,
    descIova: number,
    availIova: number,
    usedIova: number,
  ): QueueNotifier;
  /** How another thread (a forwarding worker) notifies queue `index`, once it is set up. */
  doorbell(index: number): Doorbell;
  /** Routes queue `index`'s used-buffer notifications to the eventfd `fd`. */
  routeQueueInterrupt(
    index: number,
    fd: number,
    options?: QueueInterruptOptions,
  ): QueueInterruptRoute;
  /** Reads the device-specific configuration consistently (§2.5: generation checked). */
  readConfig<T>(read: (cfg: RegionIo) => T): T;
  /** Throws when the device set DEVICE_NEEDS_RESET or FAILED (§2.1.1). */
  checkHealthy(): void;
  /**
   * Releases the transport (after the device was reset and its DMA memory unmapped).
   * Idempotent. `restoreDriver`: a PCI function taken from its kernel driver goes back.
   */
  close(options?: { restoreDriver?: boolean }): void;
}
