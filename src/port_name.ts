/**
 * Port names: what selects a port's transport (src/open_port.ts). A PCI address
 * (`0000:00:04.0`: kernel VFIO), `vfio-user:/path` (a vfio-user server's socket) or
 * `vhost-user:/path` (a vhost-user back-end's socket), each with one canonical spelling.
 * Pure text: no FFI, so a tool can check its command line before it has permissions.
 *
 * @module
 */

import { UNIX_PATH_MAX } from "../ffi/unix_socket.ts";
import { DriverError, type DriverErrorCode } from "./errors.ts";
import { formatPciAddress, parsePciAddress, type PciAddress } from "./pci/address.ts";

/**
 * Where a port lives: a PCI function through kernel VFIO, a vfio-user server socket, or a
 * vhost-user back-end's socket, with options after `?`: `mac=` the port's MAC address,
 * `queues=` the back-end's queue pairs (DPDK 22.11 reports 128 whatever it has), joined
 * by `&`.
 * `name` is canonical: two spellings of one port (`00:04.0`, `0000:00:04.0`) give one name.
 */
export type PortSpec =
  | { kind: "pci"; address: PciAddress; name: string }
  | { kind: "vfio-user"; socketPath: string; name: string }
  | { kind: "vhost-user"; socketPath: string; name: string; mac?: string; queues?: number };

/**
 * A socket path with repeated slashes, `.` components and a trailing slash removed: the
 * spellings that name the same file whatever the links on the way (`..` is kept, as it
 * does not, after a symbolic link). This is the path a port connects to.
 *
 * @example
 * ```ts
 * import { normalizeSocketPath } from "./port_name.ts";
 * normalizeSocketPath("//run/./net0.sock"); // "/run/net0.sock"
 * ```
 */
export function normalizeSocketPath(path: string): string {
  const parts = path.split("/").filter((p) => p !== "" && p !== ".");
  return `/${parts.join("/")}`;
}

/**
 * A socket path with `.` and `..` resolved lexically (`..` drops the component before it;
 * at the root it stays there): the spelling port names compare by, so `/run/a/../s.sock`
 * and `/run/s.sock` are one port. After a symbolic link the two may differ; comparing the
 * files themselves is `samePortTarget` (src/same_port.ts).
 *
 * @example
 * ```ts
 * import { lexicalSocketPath } from "./port_name.ts";
 * lexicalSocketPath("/run/a/../b/./net0.sock"); // "/run/b/net0.sock"
 * ```
 */
export function lexicalSocketPath(path: string): string {
  const parts: string[] = [];
  for (const p of path.split("/")) {
    if (p === "" || p === ".") continue;
    if (p === "..") parts.pop();
    else parts.push(p);
  }
  return `/${parts.join("/")}`;
}

/**
 * Parses a port name as the tools accept it: a PCI address (kernel VFIO),
 * `vfio-user:/path/to/socket` or
 * `vhost-user:/path/to/socket[?mac=02:00:00:00:00:01][&queues=2]`. The result's `name` is canonical (lower-case, zero-padded
 * PCI address; socket path with `.` and `..` resolved lexically), so comparing names finds
 * one port given twice unless a symbolic link hides it (`samePortTarget` finds those).
 *
 * @example
 * ```ts
 * import { parsePortSpec } from "./port_name.ts";
 * parsePortSpec("vfio-user:/run/net0.sock"); // { kind: "vfio-user", socketPath: "/run/net0.sock", … }
 * parsePortSpec("0000:00:04.0").kind; // "pci"
 * ```
 */
export function parsePortSpec(text: string): PortSpec {
  if (typeof text !== "string") {
    throw new DriverError(
      "BAD_ADDRESS",
      `A port name is text, not ${typeof text}: give one such as 0000:00:04.0, vfio-user:/path/to/socket or vhost-user:/path/to/socket.`,
    );
  }
  for (const kind of ["vfio-user", "vhost-user"] as const) {
    if (!text.startsWith(`${kind}:`)) continue;
    let socketPath = text.slice(kind.length + 1);
    let mac: string | undefined;
    const q = socketPath.indexOf("?");
    let queues: number | undefined;
    if (kind === "vhost-user" && q >= 0) {
      for (const opt of socketPath.slice(q + 1).split("&")) {
        const m = /^(?:mac=([0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5})|queues=([1-9][0-9]{0,2}))$/
          .exec(opt);
        if (!m) {
          throw new DriverError(
            "BAD_ADDRESS",
            `'${text}' has an option this driver does not know (${opt}): the options are mac=02:00:00:00:00:01 and queues=N (the back-end's queue pairs, 1 to 128).`,
          );
        }
        if ((m[1] !== undefined ? mac : queues) !== undefined) {
          throw new DriverError(
            "BAD_ADDRESS",
            `'${text}' gives ${opt.split("=")[0]} twice: give each option once.`,
          );
        }
        if (m[1] !== undefined) mac = m[1].toLowerCase();
        else queues = Number(m[2]);
      }
      if (queues !== undefined && queues > 128) {
        throw new DriverError(
          "BAD_ADDRESS",
          `'${text}' asks for ${queues} queue pairs: vhost-user has at most 128.`,
        );
      }
      socketPath = socketPath.slice(0, q);
    }
    if (!socketPath.startsWith("/")) {
      throw new DriverError(
        "BAD_ADDRESS",
        `'${text}' names no socket: write ${kind}:/absolute/path/to/socket.`,
      );
    }
    // The kernel resolves `..` where the port connects; names fold it to compare.
    const name = `${kind}:${lexicalSocketPath(socketPath)}`;
    const path = normalizeSocketPath(socketPath);
    // Both refused here, not where the port connects: a tool checks all its names first.
    if (new TextEncoder().encode(path).length > UNIX_PATH_MAX) {
      throw new DriverError(
        "BAD_ADDRESS",
        `The socket path ${path} is longer than ${UNIX_PATH_MAX} bytes: put the socket in a shorter directory.`,
      );
    }
    if (mac !== undefined) parseMacAddress(mac, text, "BAD_ADDRESS");
    return kind === "vhost-user"
      ? {
        kind,
        socketPath: path,
        name,
        ...(mac === undefined ? {} : { mac }),
        ...(queues === undefined ? {} : { queues }),
      }
      : { kind, socketPath: path, name };
  }
  const address = parsePciAddress(text);
  return { kind: "pci", address, name: formatPciAddress(address) };
}

/**
 * `text` (aa:bb:cc:dd:ee:ff) as 6 bytes, checked to be a MAC address a port can have
 * (unicast, not all zero); otherwise throws a {@linkcode DriverError} with `code`, one
 * sentence naming `port`.
 *
 * @example
 * ```ts
 * import { parseMacAddress } from "./port_name.ts";
 * parseMacAddress("02:00:00:00:00:01", "vhost-user:/run/a.sock"); // Uint8Array [2, 0, 0, 0, 0, 1]
 * ```
 */
export function parseMacAddress(
  text: string,
  port: string,
  code: DriverErrorCode = "BAD_ARGUMENT",
): Uint8Array {
  if (typeof text !== "string" || !/^[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}$/.test(text)) {
    throw new DriverError(
      code,
      `'${text}' is not a MAC address for ${port}: write six hexadecimal bytes, e.g. 02:00:00:00:00:01.`,
    );
  }
  const mac = Uint8Array.from(text.split(":").map((h) => parseInt(h, 16)));
  if (mac[0] & 1) {
    throw new DriverError(
      code,
      `${text} is a multicast address, which no port can have: use a unicast one such as 02:00:00:00:00:01.`,
    );
  }
  if (mac.every((b) => b === 0)) {
    throw new DriverError(
      code,
      `${text} is the all-zero address, which no port can have: use one such as 02:00:00:00:00:01.`,
    );
  }
  return mac;
}

/**
 * The canonical name of a port (see {@linkcode parsePortSpec}); throws BAD_ADDRESS for a
 * name that is no port.
 *
 * @example
 * ```ts
 * import { canonicalPortName } from "./port_name.ts";
 * canonicalPortName("00:04.0") === canonicalPortName("0000:00:04.0"); // true
 * ```
 */
export function canonicalPortName(text: string): string {
  return parsePortSpec(text).name;
}
