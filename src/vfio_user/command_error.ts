/**
 * The error of a command the vfio-user server refused ("Header": an error reply carries
 * the Error bit and an errno).
 *
 * @module
 */

import { strerror } from "../../ffi/libc.ts";
import { DriverError } from "../errors.ts";
import { commandName } from "./protocol.ts";

/**
 * The server answered a command with an error reply ("Header": Error bit and errno).
 *
 * @example
 * ```ts
 * import { VfioUserCommandError } from "./command_error.ts";
 * const e = new VfioUserCommandError("/run/net0.sock", 2, 17);
 * e.message; // "The vfio-user server at /run/net0.sock refused VFIO_USER_DMA_MAP: File exists (errno 17)."
 * ```
 */
export class VfioUserCommandError extends DriverError {
  /** The refused command. */
  readonly command: number;
  /** The errno of the reply (0 when the server gave none). */
  readonly errno: number;
  /** Creates the error. */
  constructor(socketPath: string, command: number, errno: number) {
    super(
      "DEVICE_REFUSED",
      `The vfio-user server at ${socketPath} refused ${commandName(command)}: ${
        errno ? `${strerror(errno)} (errno ${errno})` : "no errno given"
      }.`,
    );
    this.name = "VfioUserCommandError";
    this.command = command;
    this.errno = errno;
  }
}
