/**
 * A user-space virtio-net driver for Deno: binds a virtio-net PCI function to vfio-pci,
 * drives it through VFIO (or a vfio-user socket) with Deno FFI, and moves packets in
 * bursts of buffer indices over typed arrays. `--allow-ffi` is the only permission needed.
 *
 * @example
 * ```ts ignore
 * import { VirtioNetPort } from "./mod.ts";
 * const port = VirtioNetPort.open("0000:00:04.0", { bind: true });
 * const bufs = new Uint32Array(32), lens = new Uint32Array(32);
 * const n = port.rx().rxBurst(bufs, lens, 32);
 * port.tx().txBurst(bufs, lens, n); // echo them back
 * port.close();
 * ```
 *
 * @module
 */

export * from "./src/errors.ts";
export * from "./src/pci/address.ts";
export * from "./src/pci/pci_device.ts";
export * from "./src/pci/capabilities.ts";
export * from "./src/pci/msix.ts";
export * from "./src/pci/sysfs.ts";
export * from "./src/vfio/container.ts";
export * from "./src/vfio/group.ts";
export * from "./src/vfio/vfio_pci_device.ts";
export * from "./src/dma/memory.ts";
export * from "./src/dma/iova.ts";
export * from "./src/dma/buffer_pool.ts";
export type { PacketBuffers } from "./src/dma/packet_buffers.ts";
export * from "./src/virtio/features.ts";
export * from "./src/virtio/status.ts";
export * from "./src/virtio/ring_math.ts";
export * from "./src/virtio/split_queue.ts";
export * from "./src/virtio/pci_transport.ts";
export * from "./src/net/features.ts";
export * from "./src/net/header.ts";
export * from "./src/net/config.ts";
export * from "./src/net/rx_queue.ts";
export * from "./src/net/rx_interrupts.ts";
export * from "./src/net/tx_queue.ts";
export * from "./src/net/port.ts";
export * from "./src/net/control_queue.ts";
export * from "./src/net/negotiate.ts";
export * from "./src/net/steering.ts";
export type {
  DeviceInfo,
  IommuInfo,
  IovaRange,
  IrqInfo,
  RegionInfo,
  SparseArea,
} from "./ffi/vfio_uapi.ts";
export { Eventfd } from "./ffi/eventfd.ts";
export * from "./src/vfio_user/client.ts";
export * from "./src/vfio_user/vfio_user_device.ts";
export * from "./src/open_port.ts";
export * from "./src/port_name.ts";
export * from "./src/same_port.ts";
export type * from "./src/virtio/transport.ts";
export type { Doorbell } from "./src/dma/doorbell.ts";
export type { DmaSegment, DmaTarget } from "./src/dma/dma_target.ts";
export type {
  DeviceInfo as VfioUserDeviceInfo,
  IrqInfo as VfioUserIrqInfo,
  MessageHeader as VfioUserMessageHeader,
  RegionInfo as VfioUserRegionInfo,
  SparseArea as VfioUserSparseArea,
  VersionCapabilities as VfioUserVersionCapabilities,
} from "./src/vfio_user/protocol.ts";
export * from "./src/steering/toeplitz.ts";
export * from "./src/steering/hash_types.ts";
export * from "./src/steering/rss_config.ts";
export * from "./src/net/rx_filter.ts";
export * from "./src/engine/mod.ts";
