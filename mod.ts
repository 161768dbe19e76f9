/**
 * A user-space virtio-net driver for Deno: opens a virtio-net device through kernel VFIO,
 * a vfio-user socket or a vhost-user back-end, drives it with Deno FFI, and moves packets
 * in bursts of buffer indices over typed arrays. `--allow-ffi` is the only permission
 * needed. The transports' registers and messages are behind the second entry point,
 * `low_level.ts`.
 *
 * @example
 * ```ts ignore
 * import { openPort } from "./mod.ts";
 * const port = openPort("vhost-user:/run/a.sock"); // or "0000:00:04.0", "vfio-user:/path"
 * const bufs = new Uint32Array(32), lens = new Uint32Array(32);
 * const n = port.rx().rxBurst(bufs, lens, 32);
 * port.tx().txBurst(bufs, lens, n); // echo them back
 * port.close();
 * ```
 *
 * @module
 */

// Opening ports.
export * from "./src/errors.ts";
export * from "./src/open_port.ts";
export * from "./src/port_name.ts";
export * from "./src/same_port.ts";

// The virtio-net port and its queues.
export * from "./src/net/port.ts";
export * from "./src/net/rx_queue.ts";
export * from "./src/net/tx_queue.ts";
export * from "./src/net/rx_interrupts.ts";
export * from "./src/net/config.ts";
export * from "./src/net/header.ts";
export * from "./src/net/offloads.ts";
export * from "./src/net/offload_features.ts";
export * from "./src/net/tx_offload.ts";
export * from "./src/net/frame_copy.ts";
export * from "./src/net/negotiate.ts";
export * from "./src/net/features.ts";
export * from "./src/net/steering.ts";
export * from "./src/net/rx_filter.ts";
export * from "./src/net/control_queue.ts";

// Memory.
export * from "./src/dma/buffer_pool.ts";
export type { PacketBuffers } from "./src/dma/packet_buffers.ts";
export { DmaRegion } from "./src/dma/memory.ts";
export type { DmaSegment, DmaTarget } from "./src/dma/dma_target.ts";
export type { Doorbell } from "./src/dma/doorbell.ts";

// What every transport and ring offers.
export * from "./src/virtio/features.ts";
export type * from "./src/virtio/transport.ts";
export * from "./src/virtio/virtqueue.ts";
export type { RingFormat } from "./src/virtio/ring_format.ts";
export type { PciDevice, RegionIo } from "./src/pci/pci_device.ts";
export type { PciAddress } from "./src/pci/address.ts";
export type { VfioUserOpenOptions } from "./src/vfio_user/vfio_user_device.ts";
export type { ClientOptions } from "./src/vfio_user/client.ts";
export { Eventfd } from "./ffi/eventfd.ts";

// Forwarding.
export * from "./src/engine/mod.ts";
export * from "./src/pcap/pcap.ts";
