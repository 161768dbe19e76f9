/**
 * The vfio-user message header and command numbers (vfio-user.rst "Header" and
 * "Commands"). All data is little-endian ("Protocol Specification").
 *
 * @module
 */

import { dv, need } from "./bytes.ts";

/** Protocol major version this client speaks ("VFIO_USER_VERSION"; libvfio-user: 0). */
export const VFIO_USER_MAJOR = 0;
/** Protocol minor version this client proposes. */
export const VFIO_USER_MINOR = 1;
/** Size of the message header ("Header"). */
export const HEADER_SIZE = 16;
/** Default max_data_xfer_size when a peer names none ("VFIO_USER_VERSION"). */
export const DEFAULT_MAX_DATA_XFER_SIZE = 1048576;
/** Default max_msg_fds when a peer names none ("VFIO_USER_VERSION"). */
export const DEFAULT_MAX_MSG_FDS = 1;

// "Commands": command numbers.
/** Version and capability negotiation. */
export const VFIO_USER_VERSION = 1;
/** Make client memory available to the server. */
export const VFIO_USER_DMA_MAP = 2;
/** Withdraw client memory. */
export const VFIO_USER_DMA_UNMAP = 3;
/** Device flags, region and IRQ counts. */
export const VFIO_USER_DEVICE_GET_INFO = 4;
/** One region's flags, size, mmap offset and capabilities. */
export const VFIO_USER_DEVICE_GET_REGION_INFO = 5;
/** ioeventfd/ioregionfd sub-regions of a region. */
export const VFIO_USER_DEVICE_GET_REGION_IO_FDS = 6;
/** One IRQ type's flags and count. */
export const VFIO_USER_DEVICE_GET_IRQ_INFO = 7;
/** Set IRQ actions (eventfds, mask, trigger). */
export const VFIO_USER_DEVICE_SET_IRQS = 8;
/** Read from a region. */
export const VFIO_USER_REGION_READ = 9;
/** Write to a region. */
export const VFIO_USER_REGION_WRITE = 10;
/** Server reads client DMA memory (server → client). */
export const VFIO_USER_DMA_READ = 11;
/** Server writes client DMA memory (server → client). */
export const VFIO_USER_DMA_WRITE = 12;
/** Reset the device. */
export const VFIO_USER_DEVICE_RESET = 13;
/** Dirty page logging. */
export const VFIO_USER_DIRTY_PAGES = 14;

const COMMAND_NAMES: Record<number, string> = {
  1: "VFIO_USER_VERSION",
  2: "VFIO_USER_DMA_MAP",
  3: "VFIO_USER_DMA_UNMAP",
  4: "VFIO_USER_DEVICE_GET_INFO",
  5: "VFIO_USER_DEVICE_GET_REGION_INFO",
  6: "VFIO_USER_DEVICE_GET_REGION_IO_FDS",
  7: "VFIO_USER_DEVICE_GET_IRQ_INFO",
  8: "VFIO_USER_DEVICE_SET_IRQS",
  9: "VFIO_USER_REGION_READ",
  10: "VFIO_USER_REGION_WRITE",
  11: "VFIO_USER_DMA_READ",
  12: "VFIO_USER_DMA_WRITE",
  13: "VFIO_USER_DEVICE_RESET",
  14: "VFIO_USER_DIRTY_PAGES",
};

/**
 * The spec name of a command number.
 *
 * @example
 * ```ts
 * import { commandName } from "./header.ts";
 * commandName(10); // "VFIO_USER_REGION_WRITE"
 * commandName(99); // "command 99"
 * ```
 */
export function commandName(command: number): string {
  return COMMAND_NAMES[command] ?? `command ${command}`;
}

// "Header": flags word. Bits 0-3 type, bit 4 No_reply, bit 5 Error.
/** Mask of the message type bits. */
export const FLAG_TYPE_MASK = 0xf;
/** Type: command message. */
export const FLAG_TYPE_COMMAND = 0x0;
/** Type: reply message. */
export const FLAG_TYPE_REPLY = 0x1;
/** The command wants no reply. */
export const FLAG_NO_REPLY = 1 << 4;
/** The reply reports an error; `errorNo` holds the errno (may be 0). */
export const FLAG_ERROR = 1 << 5;

/** A decoded message header ("Header"). */
export interface MessageHeader {
  /** Message ID, echoed in the reply (offset 0, u16). */
  msgId: number;
  /** Command number (offset 2, u16). */
  command: number;
  /** Size of the whole message, header included (offset 4, u32). */
  size: number;
  /** Flags (offset 8, u32): type, No_reply, Error. */
  flags: number;
  /** errno of an error reply (offset 12, u32). */
  errorNo: number;
}

/**
 * Writes a header into `out` at `at` ("Header": all fields little-endian).
 *
 * @example
 * ```ts
 * import { encodeHeader, VFIO_USER_DEVICE_RESET } from "./header.ts";
 * const b = new Uint8Array(16);
 * encodeHeader(b, 0, { msgId: 7, command: VFIO_USER_DEVICE_RESET, size: 16, flags: 0, errorNo: 0 });
 * b[0]; // 7
 * ```
 */
export function encodeHeader(out: Uint8Array, at: number, h: MessageHeader): void {
  const v = new DataView(out.buffer, out.byteOffset + at, HEADER_SIZE);
  v.setUint16(0, h.msgId, true);
  v.setUint16(2, h.command, true);
  v.setUint32(4, h.size, true);
  v.setUint32(8, h.flags, true);
  v.setUint32(12, h.errorNo, true);
}

/**
 * Reads a header from the first 16 bytes of `b`.
 *
 * @example
 * ```ts
 * import { decodeHeader } from "./header.ts";
 * decodeHeader(new Uint8Array([1, 0, 9, 0, 32, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0])).command; // 9
 * ```
 */
export function decodeHeader(b: Uint8Array): MessageHeader {
  need(b, HEADER_SIZE, "a vfio-user header");
  const v = dv(b);
  return {
    msgId: v.getUint16(0, true),
    command: v.getUint16(2, true),
    size: v.getUint32(4, true),
    flags: v.getUint32(8, true),
    errorNo: v.getUint32(12, true),
  };
}

/**
 * A whole command message: header (type Command) followed by `payload`.
 *
 * @example
 * ```ts
 * import { encodeCommand, VFIO_USER_DEVICE_RESET } from "./header.ts";
 * encodeCommand(1, VFIO_USER_DEVICE_RESET).length; // 16
 * ```
 */
export function encodeCommand(
  msgId: number,
  command: number,
  payload: Uint8Array = new Uint8Array(0),
  flags = FLAG_TYPE_COMMAND,
): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(HEADER_SIZE + payload.length);
  encodeHeader(b, 0, { msgId, command, size: b.length, flags, errorNo: 0 });
  b.set(payload, HEADER_SIZE);
  return b;
}

/**
 * True when `flags` mark a reply ("Header": Type = 1).
 *
 * @example
 * ```ts
 * import { FLAG_ERROR, FLAG_TYPE_REPLY, isReply } from "./header.ts";
 * isReply(FLAG_TYPE_REPLY | FLAG_ERROR); // true
 * ```
 */
export function isReply(flags: number): boolean {
  return (flags & FLAG_TYPE_MASK) === FLAG_TYPE_REPLY;
}
