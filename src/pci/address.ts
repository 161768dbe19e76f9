/**
 * PCI addresses (domain:bus:device.function) and the port names that select a transport.
 *
 * @module
 */

import { DriverError } from "../errors.ts";

/** A parsed PCI address. */
export interface PciAddress {
  /** PCI domain (segment), 0–0xffff. */
  domain: number;
  /** Bus number, 0–0xff. */
  bus: number;
  /** Device (slot) number, 0–0x1f. */
  device: number;
  /** Function number, 0–7. */
  fn: number;
}

const PCI_RE = /^(?:([0-9a-fA-F]{1,4}):)?([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})\.([0-7])$/;

/**
 * Parses `DDDD:BB:DD.F` (or `BB:DD.F`, domain 0) and checks each field's range.
 * Throws a {@linkcode DriverError} with code BAD_ADDRESS otherwise.
 *
 * @example
 * ```ts
 * import { parsePciAddress } from "./address.ts";
 * parsePciAddress("00:04.0"); // { domain: 0, bus: 0, device: 4, fn: 0 }
 * ```
 */
export function parsePciAddress(text: string): PciAddress {
  const m = PCI_RE.exec(text.trim());
  const bad = (why: string) =>
    new DriverError(
      "BAD_ADDRESS",
      `'${text}' is not a PCI address (${why}): write it as DDDD:BB:DD.F, e.g. 0000:00:04.0 as lspci -D shows it.`,
    );
  if (!m) throw bad("expected domain:bus:device.function in hexadecimal");
  const addr = {
    domain: m[1] === undefined ? 0 : parseInt(m[1], 16),
    bus: parseInt(m[2], 16),
    device: parseInt(m[3], 16),
    fn: parseInt(m[4], 10),
  };
  if (addr.device > 0x1f) throw bad(`device ${m[3]} is above 1f`);
  return addr;
}

/**
 * The canonical sysfs form of an address, `0000:00:04.0`.
 *
 * @example
 * ```ts
 * import { formatPciAddress } from "./address.ts";
 * formatPciAddress({ domain: 0, bus: 0, device: 4, fn: 0 }); // "0000:00:04.0"
 * ```
 */
export function formatPciAddress(a: PciAddress): string {
  const h = (n: number, w: number) => n.toString(16).padStart(w, "0");
  return `${h(a.domain, 4)}:${h(a.bus, 2)}:${h(a.device, 2)}.${a.fn}`;
}

/**
 * Where a port lives: a PCI function through kernel VFIO, or a vfio-user server socket.
 * `name` is canonical: two spellings of one port (`00:04.0`, `0000:00:04.0`) give one name.
 */
export type PortSpec =
  | { kind: "pci"; address: PciAddress; name: string }
  | { kind: "vfio-user"; socketPath: string; name: string };

/**
 * A socket path with repeated slashes, `.` components and a trailing slash removed: the
 * spellings that name the same file whatever the links on the way (`..` is kept, as it
 * does not, after a symbolic link). This is the path a port connects to.
 *
 * @example
 * ```ts
 * import { normalizeSocketPath } from "./address.ts";
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
 * files themselves is `samePortTarget` (src/vfio_user/same_port.ts).
 *
 * @example
 * ```ts
 * import { lexicalSocketPath } from "./address.ts";
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
 * Parses a port name as the tools accept it: a PCI address (kernel VFIO) or
 * `vfio-user:/path/to/socket`. The result's `name` is canonical (lower-case, zero-padded
 * PCI address; socket path with `.` and `..` resolved lexically), so comparing names finds
 * one port given twice unless a symbolic link hides it (`samePortTarget` finds those).
 *
 * @example
 * ```ts
 * import { parsePortSpec } from "./address.ts";
 * parsePortSpec("vfio-user:/run/net0.sock"); // { kind: "vfio-user", socketPath: "/run/net0.sock", … }
 * parsePortSpec("0000:00:04.0").kind; // "pci"
 * ```
 */
export function parsePortSpec(text: string): PortSpec {
  if (text.startsWith("vfio-user:")) {
    const socketPath = text.slice("vfio-user:".length);
    if (!socketPath.startsWith("/")) {
      throw new DriverError(
        "BAD_ADDRESS",
        `'${text}' names no socket: write vfio-user:/absolute/path/to/socket.`,
      );
    }
    // The kernel resolves `..` where the port connects; names fold it to compare.
    return {
      kind: "vfio-user",
      socketPath: normalizeSocketPath(socketPath),
      name: `vfio-user:${lexicalSocketPath(socketPath)}`,
    };
  }
  const address = parsePciAddress(text);
  return { kind: "pci", address, name: formatPciAddress(address) };
}

/**
 * The canonical name of a port (see {@linkcode parsePortSpec}); throws BAD_ADDRESS for a
 * name that is no port.
 *
 * @example
 * ```ts
 * import { canonicalPortName } from "./address.ts";
 * canonicalPortName("00:04.0") === canonicalPortName("0000:00:04.0"); // true
 * ```
 */
export function canonicalPortName(text: string): string {
  return parsePortSpec(text).name;
}
