/**
 * The vfio-user wire format (vfio-user.rst in QEMU 7.2's subprojects/libvfio-user/docs,
 * spec text 0.9.1; protocol version 0.1 as libvfio-user speaks it): the 16-byte message
 * header, command numbers, and the payloads of the commands a virtio-net driver needs.
 * Pure functions over Uint8Array; all data is little-endian ("Protocol Specification").
 * Payload offsets count from the end of the header, as the spec gives them. Comments name
 * the spec section each part implements.
 *
 * @example
 * ```ts
 * import { encodeCommand, encodeRegionRead, VFIO_USER_REGION_READ } from "./protocol.ts";
 * const msg = encodeCommand(1, VFIO_USER_REGION_READ, encodeRegionRead(7, 0, 2));
 * msg.length; // 32: header + region access
 * ```
 *
 * @module
 */

export * from "./protocol/header.ts";
export * from "./protocol/version.ts";
export * from "./protocol/dma.ts";
export * from "./protocol/device_info.ts";
export * from "./protocol/region_access.ts";
