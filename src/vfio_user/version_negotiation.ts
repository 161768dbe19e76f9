/**
 * The client's side of "VFIO_USER_VERSION": propose protocol 0.1 with this client's
 * capabilities, check the server's answer (it must keep the major and may lower the
 * minor) and agree on the smaller max_data_xfer_size.
 *
 * @module
 */

import { MAX_RECV_FDS } from "../../ffi/unix_socket.ts";
import { DriverError } from "../errors.ts";
import type { Reply } from "./message_reader.ts";
import {
  decodeVersion,
  encodeVersion,
  type VersionCapabilities,
  VFIO_USER_MAJOR,
  VFIO_USER_MINOR,
  VFIO_USER_VERSION,
} from "./protocol.ts";

/** What client and server agreed on. */
export interface Negotiated {
  /** Protocol version agreed on, e.g. "0.1". */
  version: string;
  /** Capabilities the server announced. */
  server: VersionCapabilities;
  /** Largest `count` of one REGION_READ/WRITE: the smaller of both sides' limits. */
  maxDataXferSize: number;
}

/**
 * Sends VERSION through `request` (the connection's request function) announcing
 * `ownMaxDataXferSize`, and checks the reply. A reply that is malformed or names another
 * protocol is a TRANSPORT {@linkcode DriverError} naming the server at `path`.
 *
 * @example
 * ```ts ignore
 * import { negotiateVersion } from "./version_negotiation.ts";
 * const n = negotiateVersion(path, 1 << 20, (cmd, payload) => client.request(cmd, payload));
 * n.version; // "0.1"
 * ```
 */
export function negotiateVersion(
  path: string,
  ownMaxDataXferSize: number,
  request: (command: number, payload: Uint8Array) => Reply,
): Negotiated {
  const reply = request(
    VFIO_USER_VERSION,
    encodeVersion({
      major: VFIO_USER_MAJOR,
      minor: VFIO_USER_MINOR,
      capabilities: { maxMsgFds: MAX_RECV_FDS, maxDataXferSize: ownMaxDataXferSize },
    }),
  );
  let v;
  try {
    v = decodeVersion(reply.payload);
  } catch (e) {
    throw new DriverError(
      "TRANSPORT",
      `The vfio-user server at ${path} sent a malformed VERSION reply (${
        (e as Error).message
      }): it does not speak vfio-user as QEMU 7.2 does.`,
    );
  }
  if (v.major !== VFIO_USER_MAJOR || v.minor > VFIO_USER_MINOR) {
    throw new DriverError(
      "TRANSPORT",
      `The vfio-user server at ${path} speaks protocol ${v.major}.${v.minor}, this driver ${VFIO_USER_MAJOR}.${VFIO_USER_MINOR}: use a server built from libvfio-user of QEMU 7.2.`,
    );
  }
  return {
    version: `${v.major}.${v.minor}`,
    server: v.capabilities,
    maxDataXferSize: Math.max(1, Math.min(v.capabilities.maxDataXferSize, ownMaxDataXferSize)),
  };
}
