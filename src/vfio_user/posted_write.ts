/**
 * A posted 16-bit VFIO_USER_REGION_WRITE ("Read and Write Operations", with the No_reply
 * flag of "Header"), built once: a forwarding worker sends these bytes as they are to
 * notify a queue through a BAR the server does not let us mmap (QEMU 7.2's notify BAR).
 *
 * @module
 */

import {
  encodeHeader,
  FLAG_NO_REPLY,
  FLAG_TYPE_COMMAND,
  HEADER_SIZE,
  VFIO_USER_REGION_WRITE,
} from "./protocol/header.ts";
import { encodeRegionAccessInto, REGION_ACCESS_SIZE } from "./protocol/region_access.ts";

/**
 * Message IDs only match replies to commands ("Header"); a posted write gets none. Posted
 * notifications carry this ID, outside the range the client counts in, so traces tell
 * them apart.
 */
export const POSTED_WRITE_MSG_ID = 0xf000;

/**
 * The whole message that writes `value` (16 bits) at `offset` of region `region`, posted.
 *
 * @example
 * ```ts
 * import { postedWrite16 } from "./posted_write.ts";
 * postedWrite16(4, 0x3000, 1).length; // 34: header, region access, 2 bytes of data
 * ```
 */
export function postedWrite16(region: number, offset: number, value: number): Uint8Array {
  const size = HEADER_SIZE + REGION_ACCESS_SIZE + 2;
  const msg = new Uint8Array(size);
  encodeHeader(msg, 0, {
    msgId: POSTED_WRITE_MSG_ID,
    command: VFIO_USER_REGION_WRITE,
    size,
    flags: FLAG_TYPE_COMMAND | FLAG_NO_REPLY,
    errorNo: 0,
  });
  encodeRegionAccessInto(msg, HEADER_SIZE, offset, region, 2);
  new DataView(msg.buffer).setUint16(HEADER_SIZE + REGION_ACCESS_SIZE, value, true);
  return msg;
}
