/**
 * PCI addresses (domain:bus:device.function). Port names (which select a transport) are
 * src/port_name.ts.
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
