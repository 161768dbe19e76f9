/**
 * Whether two port names reach one port, looking at the files: a socket can be named
 * through symbolic links or `..` after one, which names alone cannot see through
 * (src/port_name.ts folds `..` lexically). A tool opening two ports (l2fwd) refuses one
 * port given twice, as the second connection would only wait for the first.
 *
 * @module
 */

import { fileIdentity } from "../ffi/unix_socket.ts";
import { parsePortSpec } from "./port_name.ts";

/**
 * True when port names `a` and `b` reach the same port: for two sockets of one kind that
 * both exist, when they are one file (same st_dev and st_ino after following links);
 * otherwise when their canonical names are equal. Throws BAD_ADDRESS for a name that is
 * no port.
 *
 * @example
 * ```ts
 * import { samePortTarget } from "./same_port.ts";
 * samePortTarget("00:04.0", "0000:00:04.0"); // true
 * samePortTarget("vfio-user:/run/net0.sock", "vfio-user:/run/net1.sock"); // false
 * ```
 */
export function samePortTarget(a: string, b: string): boolean {
  const pa = parsePortSpec(a), pb = parsePortSpec(b);
  if (pa.kind !== "pci" && pb.kind !== "pci" && pa.kind === pb.kind) {
    const ia = fileIdentity(pa.socketPath), ib = fileIdentity(pb.socketPath);
    if (ia !== null && ib !== null) return ia === ib;
  }
  return pa.name === pb.name;
}
