/**
 * VFIO_USER_VERSION payloads: version numbers and the JSON capabilities (vfio-user.rst
 * "VFIO_USER_VERSION").
 *
 * @module
 */

import { dv, need } from "./bytes.ts";
import { DEFAULT_MAX_DATA_XFER_SIZE, DEFAULT_MAX_MSG_FDS } from "./header.ts";

/** Capabilities exchanged in the version data's JSON ("VFIO_USER_VERSION"). */
export interface VersionCapabilities {
  /** Most fds the sender can receive in one message (default 1). */
  maxMsgFds: number;
  /** Largest `count` of a REGION/DMA READ/WRITE (default 1 MiB). */
  maxDataXferSize: number;
  /** Dirty-page bitmap page size when the sender supports migration. */
  migrationPgsize?: number;
}

/** A VERSION request or reply. */
export interface VersionMessage {
  /** Major version (offset 0, u16). */
  major: number;
  /** Minor version (offset 2, u16). */
  minor: number;
  /** Capabilities from the JSON version data (defaults when absent). */
  capabilities: VersionCapabilities;
}

/**
 * Encodes a VERSION payload: major, minor, then the JSON version data with its
 * terminating NUL ("VFIO_USER_VERSION": "including terminating NUL").
 *
 * @example
 * ```ts
 * import { encodeVersion } from "./version.ts";
 * const p = encodeVersion({ major: 0, minor: 1, capabilities: { maxMsgFds: 8, maxDataXferSize: 1048576 } });
 * p.at(-1); // 0
 * ```
 */
export function encodeVersion(v: VersionMessage): Uint8Array<ArrayBuffer> {
  const caps: Record<string, unknown> = {
    max_msg_fds: v.capabilities.maxMsgFds,
    max_data_xfer_size: v.capabilities.maxDataXferSize,
  };
  if (v.capabilities.migrationPgsize !== undefined) {
    caps.migration = { pgsize: v.capabilities.migrationPgsize };
  }
  const json = new TextEncoder().encode(JSON.stringify({ capabilities: caps }));
  const b = new Uint8Array(4 + json.length + 1);
  const d = dv(b);
  d.setUint16(0, v.major, true);
  d.setUint16(2, v.minor, true);
  b.set(json, 4);
  return b;
}

/**
 * Decodes a VERSION payload. Missing capabilities take the spec's defaults
 * (max_msg_fds 1, max_data_xfer_size 1048576); malformed JSON throws.
 *
 * @example
 * ```ts
 * import { decodeVersion } from "./version.ts";
 * decodeVersion(new Uint8Array([0, 0, 1, 0])).capabilities.maxMsgFds; // 1
 * ```
 */
export function decodeVersion(b: Uint8Array): VersionMessage {
  need(b, 4, "a VERSION payload");
  const d = dv(b);
  const caps: VersionCapabilities = {
    maxMsgFds: DEFAULT_MAX_MSG_FDS,
    maxDataXferSize: DEFAULT_MAX_DATA_XFER_SIZE,
  };
  let data = b.subarray(4);
  const nul = data.indexOf(0);
  if (nul >= 0) data = data.subarray(0, nul);
  if (data.length > 0) {
    const parsed = JSON.parse(new TextDecoder().decode(data));
    const c = parsed?.capabilities;
    if (c !== undefined && (typeof c !== "object" || c === null)) {
      throw new TypeError("VERSION capabilities is not a JSON object");
    }
    if (c) {
      if (c.max_msg_fds !== undefined) caps.maxMsgFds = positiveInt(c.max_msg_fds, "max_msg_fds");
      if (c.max_data_xfer_size !== undefined) {
        caps.maxDataXferSize = positiveInt(c.max_data_xfer_size, "max_data_xfer_size");
      }
      if (c.migration?.pgsize !== undefined) {
        caps.migrationPgsize = positiveInt(c.migration.pgsize, "migration.pgsize");
      }
    }
  }
  return { major: d.getUint16(0, true), minor: d.getUint16(2, true), capabilities: caps };
}

function positiveInt(x: unknown, name: string): number {
  if (typeof x !== "number" || !Number.isSafeInteger(x) || x < 0) {
    throw new TypeError(`VERSION capability ${name} is not a non-negative integer: ${x}`);
  }
  return x;
}
