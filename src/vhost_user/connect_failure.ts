/**
 * The one sentence a user gets when connecting to a vhost-user back-end's socket fails:
 * what is wrong with the path, and how to start a back-end there.
 *
 * @module
 */

import { EACCES, ENOENT, strerror } from "../../ffi/libc.ts";
import {
  ECONNREFUSED,
  ENAMETOOLONG,
  ENOTSOCK,
  ETIMEDOUT,
  UNIX_PATH_MAX,
} from "../../ffi/unix_socket.ts";
import { DriverError } from "../errors.ts";

/**
 * The one-sentence wording of a failed connect(2) to a vhost-user back-end's socket.
 *
 * @example
 * ```ts
 * import { vhostConnectFailure } from "./connect_failure.ts";
 * vhostConnectFailure("/tmp/a.sock", 2).message;
 * // "No vhost-user back-end listens on /tmp/a.sock (no such file): start the back-end first, e.g. dpdk-testpmd --vdev net_vhost0,iface=/tmp/a.sock, or check the path."
 * ```
 */
export function vhostConnectFailure(path: string, errno: number, cause?: unknown): DriverError {
  const start = `start the back-end first, e.g. dpdk-testpmd --vdev net_vhost0,iface=${path}`;
  const t = (code: "TRANSPORT" | "BAD_ADDRESS" | "PERMISSION", m: string) =>
    new DriverError(code, m, { cause });
  switch (errno) {
    case ENOENT:
      return t(
        "TRANSPORT",
        `No vhost-user back-end listens on ${path} (no such file): ${start}, or check the path.`,
      );
    case ECONNREFUSED:
      return t(
        "TRANSPORT",
        `No vhost-user back-end listens on ${path} (connection refused: the back-end exited and left its socket file behind): ${start}.`,
      );
    case ENOTSOCK:
      return t(
        "TRANSPORT",
        `${path} is not a socket: give the socket path the vhost-user back-end listens on (dpdk-testpmd: the iface= of --vdev net_vhost0,iface=PATH).`,
      );
    case EACCES:
      return t(
        "PERMISSION",
        `Permission denied connecting to ${path}: run as root or as the owner of the socket.`,
      );
    case ETIMEDOUT:
      return t(
        "TRANSPORT",
        `The vhost-user back-end at ${path} accepted no connection in time (its listen queue is full: it is stuck): restart it, or check the path.`,
      );
    case ENAMETOOLONG:
      return t(
        "BAD_ADDRESS",
        `The socket path ${path} is longer than ${UNIX_PATH_MAX} bytes: put the socket in a shorter directory.`,
      );
    default:
      return t(
        "TRANSPORT",
        `Connecting to the vhost-user back-end at ${path} failed (${
          strerror(errno)
        }, errno ${errno}): ${start}, or check the path.`,
      );
  }
}
