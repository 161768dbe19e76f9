/**
 * The second entry point: the layers under the public API ({@link ./mod.ts}), for people
 * who build or test virtio devices and transports, or learn how the driver works: PCI
 * config space and capabilities, kernel VFIO, the vfio-user and vhost-user protocols, the
 * modern virtio-pci transport and its registers, split and packed rings, RSS arithmetic, the VFIO uAPI
 * structures. What mod.ts exports is here too.
 *
 * @example
 * ```ts ignore
 * import { splitRingLayout, VirtioPciTransport } from "./low_level.ts";
 * console.log(splitRingLayout(256).totalBytes); // 6 + 16·256 + … bytes
 * ```
 *
 * @module
 */

export * from "./mod.ts";
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
export * from "./src/virtio/status.ts";
export * from "./src/virtio/ring_math.ts";
export * from "./src/virtio/split_queue.ts";
export * from "./src/virtio/packed_queue.ts";
export * from "./src/virtio/packed_ring_math.ts";
export * from "./src/virtio/ring_format.ts";
export * from "./src/virtio/pci_transport.ts";
export * from "./src/virtio/vhost_user_transport.ts";
export type {
  DeviceInfo,
  IommuInfo,
  IovaRange,
  IrqInfo,
  RegionInfo,
  SparseArea,
} from "./ffi/vfio_uapi.ts";
export * from "./src/vfio_user/client.ts";
export * from "./src/vfio_user/vfio_user_device.ts";
export type {
  DeviceInfo as VfioUserDeviceInfo,
  IrqInfo as VfioUserIrqInfo,
  MessageHeader as VfioUserMessageHeader,
  RegionInfo as VfioUserRegionInfo,
  SparseArea as VfioUserSparseArea,
  VersionCapabilities as VfioUserVersionCapabilities,
} from "./src/vfio_user/protocol.ts";
export * from "./src/vhost_user/vhost_user_device.ts";
export * from "./src/vhost_user/connection.ts";
export * from "./src/vhost_user/memory_table.ts";
export * from "./src/vhost_user/kick.ts";
export * from "./src/vhost_user/protocol.ts";
export * from "./src/vhost_user/payloads.ts";
export * from "./src/steering/toeplitz.ts";
export * from "./src/steering/hash_types.ts";
export * from "./src/steering/rss_config.ts";
export * from "./src/net/rx_offload.ts";
export * from "./src/net/frame_class.ts";
