/**
 * PCI functions as sysfs shows them: identity, current driver, IOMMU group, and binding a
 * function to vfio-pci (driver_override + drivers_probe) and back.
 *
 * Linux documents the procedure in Documentation/driver-api/vfio.rst and
 * Documentation/ABI/testing/sysfs-bus-pci (driver_override).
 *
 * @module
 */

import { basename, exists, listDir, readLink, readText, writeText } from "../../ffi/fs.ts";
import { EACCES, EPERM, SysError } from "../../ffi/libc.ts";
import { DriverError } from "../errors.ts";

/** Where sysfs and procfs are found by default: the real root. Tests give a fake tree. */
const DEFAULT_ROOT = "/";

/** `root` with exactly one trailing slash, so `${root}sys/...` is a path under it. */
function rootDir(root: string): string {
  return root.endsWith("/") ? root : `${root}/`;
}

/** Identity of a PCI function as sysfs reports it. */
export interface PciIdentity {
  /** Vendor id. */
  vendor: number;
  /** Device id. */
  device: number;
  /** Subsystem device id. */
  subsystemDevice: number;
  /** 24-bit class code. */
  classCode: number;
}

/** virtio's PCI vendor id (virtio 1.x §4.1.2). */
export const VIRTIO_PCI_VENDOR_ID = 0x1af4;
/** Modern virtio-net device id: 0x1040 + device type 1 (§4.1.2.1). */
export const VIRTIO_NET_MODERN_DEVICE_ID = 0x1041;
/** Transitional virtio-net device id (§4.1.2.3); subsystem device id 1 says "network". */
export const VIRTIO_NET_TRANSITIONAL_DEVICE_ID = 0x1000;

/**
 * True when the identity is a virtio-net function, modern or transitional (§4.1.2).
 *
 * @example
 * ```ts
 * import { isVirtioNet } from "./sysfs.ts";
 * isVirtioNet({ vendor: 0x1af4, device: 0x1041, subsystemDevice: 0x1100, classCode: 0x20000 }); // true
 * ```
 */
export function isVirtioNet(id: PciIdentity): boolean {
  return id.vendor === VIRTIO_PCI_VENDOR_ID &&
    (id.device === VIRTIO_NET_MODERN_DEVICE_ID ||
      (id.device === VIRTIO_NET_TRANSITIONAL_DEVICE_ID && id.subsystemDevice === 1));
}

/**
 * The sentence users get when a function is not virtio-net.
 *
 * @example
 * ```ts
 * import { notVirtioNetMessage } from "./sysfs.ts";
 * notVirtioNetMessage("0000:00:00.0", { vendor: 0x8086, device: 0x29c0, subsystemDevice: 0, classCode: 0x60000 });
 * ```
 */
export function notVirtioNetMessage(name: string, id: PciIdentity): string {
  const h = (n: number) => n.toString(16).padStart(4, "0");
  return `${name} is not a virtio-net device (vendor ${h(id.vendor)}, device ${
    h(id.device)
  }): give the address of a virtio-net function (vendor 1af4, device 1041 or 1000).`;
}

function sysError(e: unknown, what: string): never {
  if (e instanceof SysError && (e.errno === EACCES || e.errno === EPERM)) {
    throw new DriverError(
      "PERMISSION",
      `${what} was refused (${e.message}): run as root, or bind the device to vfio-pci beforehand and give your user access to /dev/vfio.`,
      { cause: e },
    );
  }
  throw e;
}

/** The whitespace-separated fields of each non-empty line of a /proc table; none if absent. */
function tableLines(path: string): string[][] {
  let text: string;
  try {
    text = readText(path, 1 << 22);
  } catch {
    return [];
  }
  return text.split("\n").map((l) => l.trim()).filter((l) => l).map((l) => l.split(/\s+/));
}

/**
 * True unless the interface in sysfs directory `dir` is known to be down: IFF_UP clear in
 * `flags` (include/uapi/linux/if.h, the administrative state) and `operstate` not up.
 */
function interfaceUp(dir: string): boolean {
  try {
    if (parseInt(readText(`${dir}/flags`).trim(), 16) & 0x1) return true;
    return readText(`${dir}/operstate`).trim() === "up";
  } catch {
    return true; // cannot tell: count it as up, the safe side
  }
}

/** How deep {@linkcode SysfsPciFunction.interfacesInUse} follows master/upper links. */
const MAX_UPPER_INTERFACES = 64;

/** A network interface that carries this host's traffic, itself or through one above it. */
export interface InterfaceInUse {
  /** The function's own interface, e.g. eth0. */
  name: string;
  /** What carries the traffic: "2 IPv4 routes", "IPv6 address …", joined by ", ". */
  uses: string;
  /** The interfaces above `name` (master/upper links), up to the one with `uses`. */
  via?: string[];
}

/**
 * Names of the interfaces directly above the one in sysfs directory `dir`: its `master`
 * link (bridge, bond, team) and its `upper_NAME` links (those, VLANs, macvlans).
 */
function upperInterfaces(dir: string): string[] {
  const names = new Set<string>();
  const master = readLink(`${dir}/master`);
  if (master !== null && basename(master)) names.add(basename(master));
  let entries: string[];
  try {
    entries = listDir(dir);
  } catch {
    return [...names];
  }
  for (const e of entries) if (e.startsWith("upper_") && e.length > 6) names.add(e.slice(6));
  return [...names];
}

/**
 * From the namespace's /proc/net tables under `net`: a function that tells what makes an
 * interface carry this host's traffic ("2 IPv4 routes, IPv6 address …"), "" for nothing.
 */
function hostUses(net: string): (name: string) => string {
  const v4 = tableLines(`${net}/route`).slice(1).map((l) => l[0]);
  // if_inet6: address ifindex prefixlen scope flags name; scope 0x20 is link, 0x10 host.
  const v6Addrs = tableLines(`${net}/if_inet6`)
    .filter((l) => l.length >= 6 && !(parseInt(l[3], 16) & 0x30))
    .map((l) => ({ name: l[5], addr: l[0].match(/.{1,4}/g)!.join(":") }));
  // ipv6_route: dest plen src plen nexthop metric refcnt use flags dev; link-local and
  // multicast routes come with any interface that is up, so they do not count.
  const v6Routes = tableLines(`${net}/ipv6_route`)
    .filter((l) => l.length >= 10 && !/^(fe80|ff)/.test(l[0]))
    .map((l) => l[9]);
  const count = (list: string[], name: string, what: string) => {
    const n = list.filter((x) => x === name).length;
    return n ? [`${n} ${what}${n > 1 ? "s" : ""}`] : [];
  };
  return (name) => {
    const addr = v6Addrs.find((a) => a.name === name);
    return [
      ...count(v4, name, "IPv4 route"),
      ...(addr ? [`IPv6 address ${addr.addr}`] : []),
      ...count(v6Routes, name, "IPv6 route"),
    ].join(", ");
  };
}

/** A PCI function in sysfs, by canonical address. */
export class SysfsPciFunction {
  /** Canonical address, e.g. 0000:00:04.0. */
  readonly address: string;
  /** Directory of the function in sysfs. */
  readonly path: string;
  /** Directory that holds `sys/` and `proc/` ("/" unless a test gave a fake tree). */
  readonly root: string;

  /**
   * Looks the function up; throws NO_DEVICE when sysfs has no such function. `root` is
   * the directory holding `sys/` and `proc/` (default "/"; tests pass a fake tree).
   *
   * @example
   * ```ts ignore
   * import { SysfsPciFunction } from "./sysfs.ts";
   * const fn = new SysfsPciFunction("0000:00:04.0");
   * console.log(fn.driver()); // "virtio-pci"
   * ```
   */
  constructor(address: string, root: string = DEFAULT_ROOT) {
    this.address = address;
    this.root = rootDir(root);
    this.path = `${this.root}sys/bus/pci/devices/${address}`;
    if (!exists(this.path)) {
      throw new DriverError(
        "NO_DEVICE",
        `There is no PCI device at ${address}: check the address with 'lspci -D'.`,
      );
    }
  }

  /** Vendor, device, subsystem and class ids. */
  identity(): PciIdentity {
    const num = (attr: string) => parseInt(readText(`${this.path}/${attr}`).trim(), 16);
    return {
      vendor: num("vendor"),
      device: num("device"),
      subsystemDevice: num("subsystem_device"),
      classCode: num("class"),
    };
  }

  /** Name of the bound driver, or null when none is bound. */
  driver(): string | null {
    const target = readLink(`${this.path}/driver`);
    return target === null ? null : basename(target);
  }

  /** The IOMMU group number, or null when the function has no group (IOMMU off). */
  iommuGroup(): number | null {
    const target = readLink(`${this.path}/iommu_group`);
    return target === null ? null : Number(basename(target));
  }

  /** Addresses of every function in the same IOMMU group (this one included). */
  groupMembers(): string[] {
    const group = this.iommuGroup();
    return group === null
      ? [this.address]
      : listDir(`${this.root}sys/kernel/iommu_groups/${group}/devices`);
  }

  /**
   * Network interfaces the function carries: `net/IFACE` (a NIC driver's own) and
   * `virtioN/net/IFACE` (virtio-net sits on a virtio device below the PCI function).
   */
  netInterfaces(): string[] {
    return this.#netDirs().map((i) => i.name);
  }

  #netDirs(): { name: string; dir: string }[] {
    const parents = [`${this.path}/net`];
    for (const e of listDir(this.path)) {
      if (e.startsWith("virtio")) parents.push(`${this.path}/${e}/net`);
    }
    return parents.flatMap((p) =>
      exists(p) ? listDir(p).map((name) => ({ name, dir: `${p}/${name}` })) : []
    );
  }

  /**
   * The interfaces of {@linkcode SysfsPciFunction.netInterfaces} that carry this host's
   * traffic: up, with IPv4 routes, IPv6 routes or an IPv6 address beyond link-local (as
   * dpdk-devbind calls a device with routes "Active"), or up under an interface that does
   * (its `master` or an `upper_*` link: a bridge or bond it belongs to, a VLAN on it, and
   * so on up): then `via` names the interfaces above it, the last one carrying the
   * traffic. Read from sysfs and this network namespace's /proc/net.
   *
   * @example
   * ```ts ignore
   * new SysfsPciFunction("0000:00:04.0").interfacesInUse();
   * // [{ name: "eth0", uses: "2 IPv4 routes", via: ["br0"] }] for a bridge port of br0
   * ```
   */
  interfacesInUse(): InterfaceInUse[] {
    const ifaces = this.#netDirs().filter((i) => interfaceUp(i.dir));
    if (ifaces.length === 0) return [];
    const usesOf = hostUses(`${this.root}proc/net`);
    // Depth first through master/upper links; `seen` ends loops a broken tree could have.
    const above = (dir: string, seen: Set<string>): { via: string[]; uses: string } | null => {
      for (const up of upperInterfaces(dir)) {
        if (seen.has(up) || seen.size >= MAX_UPPER_INTERFACES) continue;
        seen.add(up);
        const upDir = `${this.root}sys/class/net/${up}`;
        if (!interfaceUp(upDir)) continue; // a down upper carries nothing through this one
        const uses = usesOf(up);
        if (uses) return { via: [up], uses };
        const higher = above(upDir, seen);
        if (higher) return { via: [up, ...higher.via], uses: higher.uses };
      }
      return null;
    };
    return ifaces.flatMap(({ name, dir }) => {
      const uses = usesOf(name);
      if (uses) return [{ name, uses }];
      const higher = above(dir, new Set([name]));
      return higher ? [{ name, ...higher }] : [];
    });
  }

  /**
   * Binds the function to vfio-pci: driver_override, unbind from the current driver,
   * drivers_probe. Returns the driver it had before (null if none). A function whose
   * network interface carries this host's traffic (see
   * {@linkcode SysfsPciFunction.interfacesInUse}) is refused unless `force` is set.
   */
  bindVfioPci(options: { force?: boolean } = {}): string | null {
    const previous = this.driver();
    if (previous === "vfio-pci") return previous;
    requireVfioPciDriver(this.root);
    if (previous !== null && !options.force) {
      // As dpdk-devbind: unbinding the host's own network interface cuts the machine off.
      const busy = this.interfacesInUse()[0];
      if (busy) {
        const what = busy.via
          ? `${busy.name}, a network interface of this host that is up under ${
            busy.via.join(", itself under ")
          } (its master or upper interface: a bridge, bond or VLAN), and it is ${
            busy.via[busy.via.length - 1]
          } that carries this host's traffic, up with ${busy.uses}`
          : `${busy.name}, a network interface of this host that is up with ${busy.uses}`;
        throw new DriverError(
          "BOUND_TO_KERNEL_DRIVER",
          `${this.address} carries ${what}, so binding it to vfio-pci would cut that traffic: take ${busy.name} down first (ip link set ${busy.name} down) or pass --force (option force: true).`,
        );
      }
    }
    try {
      try {
        writeText(`${this.path}/driver_override`, "vfio-pci");
        if (previous !== null) writeText(`${this.path}/driver/unbind`, this.address);
        writeText(`${this.root}sys/bus/pci/drivers_probe`, this.address);
      } catch (e) {
        sysError(e, `Binding ${this.address} to vfio-pci`);
      }
      const now = this.driver();
      if (now !== "vfio-pci") {
        throw new DriverError(
          "VFIO",
          `${this.address} did not bind to vfio-pci (driver now: ${
            now ?? "none"
          }): check 'dmesg' for the reason.`,
        );
      }
    } catch (e) {
      // Undo what was done (a driver_override left at vfio-pci keeps the function's own
      // driver away for good); the first failure is the one reported.
      try {
        this.restoreDriver(previous);
      } catch { /* reported through e */ }
      throw e;
    }
    return previous;
  }

  /**
   * Hands the function back: clears driver_override, unbinds from vfio-pci and lets the
   * kernel probe its own driver again; `previous` null (it had no driver) leaves it
   * unbound, any other value is only informational.
   */
  restoreDriver(previous: string | null): void {
    try {
      writeText(`${this.path}/driver_override`, "\n");
      if (this.driver() === "vfio-pci") writeText(`${this.path}/driver/unbind`, this.address);
      if (previous !== null) writeText(`${this.root}sys/bus/pci/drivers_probe`, this.address);
    } catch (e) {
      sysError(e, `Returning ${this.address} to ${previous ?? "no driver"}`);
    }
  }
}

/**
 * Throws NO_VFIO_PCI unless the vfio-pci driver is registered (module loaded or built in);
 * `root` holds `sys/` (default "/").
 *
 * @example
 * ```ts ignore
 * import { requireVfioPciDriver } from "./sysfs.ts";
 * requireVfioPciDriver();
 * ```
 */
export function requireVfioPciDriver(root: string = DEFAULT_ROOT): void {
  if (!exists(`${rootDir(root)}sys/bus/pci/drivers/vfio-pci`)) {
    throw new DriverError(
      "NO_VFIO_PCI",
      "The vfio-pci driver is not loaded: run 'modprobe vfio-pci' as root (and make sure the IOMMU is on: intel_iommu=on or amd_iommu=on).",
    );
  }
}
