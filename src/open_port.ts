/**
 * The composition root: turns a port name into its transport, and a transport into a
 * virtio-net port. The only module that knows every transport; nothing below it imports
 * it. Adding a transport is a folder of its own, a `VirtioTransport` implementation in
 * src/virtio/, and one case here (docs/architecture.md).
 *
 * | Port name              | Transport                                                |
 * |------------------------|----------------------------------------------------------|
 * | `0000:00:04.0`         | kernel VFIO (src/vfio/) → modern or legacy virtio-pci    |
 * | `vfio-user:/path`      | a vfio-user server (src/vfio_user/) → modern virtio-pci  |
 * | `vhost-user:/path`     | a vhost-user back-end (src/vhost_user/)                  |
 *
 * @module
 */

import { DriverError } from "./errors.ts";
import { type PortOptions, VirtioNetPort } from "./net/port.ts";
import { checkPortOptions } from "./net/port_checks.ts";
import { PCI_DEVICE_ID, PCI_SUBSYSTEM_ID, PCI_VENDOR_ID } from "./pci/capabilities.ts";
import type { PciDevice } from "./pci/pci_device.ts";
import { isVirtioNet, notVirtioNetMessage } from "./pci/sysfs.ts";
import { parseMacAddress, parsePortSpec, type PortSpec } from "./port_name.ts";
import { VfioPciDevice } from "./vfio/vfio_pci_device.ts";
import { DEFAULT_MAX_DATA_XFER_SIZE } from "./vfio_user/protocol/header.ts";
import { VfioUserDevice, type VfioUserOpenOptions } from "./vfio_user/vfio_user_device.ts";
import { LegacyPciTransport } from "./virtio/legacy_pci_transport.ts";
import {
  findVirtioCaps,
  VIRTIO_PCI_CAP_COMMON_CFG,
  VirtioPciTransport,
} from "./virtio/pci_transport.ts";
import type { VirtioTransport } from "./virtio/transport.ts";
import { VhostUserTransport } from "./virtio/vhost_user_transport.ts";
import { shown } from "./shown.ts";

/** How to open a port's transport, by kind. */
export interface TransportOptions {
  /** Kernel VFIO: take the PCI function from its kernel driver (bind it to vfio-pci). */
  bind?: boolean;
  /** Kernel VFIO: give the function back to its previous kernel driver on close. */
  restoreDriver?: boolean;
  /** Kernel VFIO, with `bind`: take it even if its interface carries this host's traffic. */
  force?: boolean;
  /** vfio-user: connection options (timeout, posted writes). */
  vfioUser?: VfioUserOpenOptions;
  /**
   * vhost-user: the port's MAC address, `02:00:00:00:00:01` (default: the name's `?mac=`,
   * else a locally administered one derived from the socket path).
   */
  mac?: string;
  /**
   * vhost-user: queue pairs the back-end has (default: the name's `?queues=`, else what it
   * reports; DPDK 22.11 reports 128 whatever its `queues=`, so give it).
   */
  maxQueuePairs?: number;
}

/** Options of {@linkcode openPort}: the port's, plus how to open its transport. */
export interface OpenPortOptions extends PortOptions, TransportOptions {}

/**
 * Opens the transport a port name selects (see the module's table). Throws a
 * {@linkcode DriverError} with one sentence when it cannot, having released what it took.
 *
 * @example
 * ```ts ignore
 * import { openTransport } from "./open_port.ts";
 * const t = openTransport("vhost-user:/run/a.sock?mac=02:00:00:00:00:01");
 * console.log(t.name, t.deviceFeatures().toString(16));
 * t.close();
 * ```
 */
export function openTransport(
  spec: string | PortSpec,
  options: TransportOptions = {},
): VirtioTransport {
  const ps = portSpec(spec);
  checkTransportOptions(ps, options);
  switch (ps.kind) {
    case "pci":
      return pciTransport(
        VfioPciDevice.open(ps.address, {
          bind: options.bind,
          restoreDriver: options.restoreDriver,
          force: options.force,
        }),
      );
    case "vfio-user":
      return pciTransport(VfioUserDevice.open(ps.socketPath, options.vfioUser));
    case "vhost-user": {
      const mac = options.mac ?? ps.mac;
      return VhostUserTransport.open(ps.socketPath, {
        name: ps.name,
        mac: mac === undefined ? undefined : parseMacAddress(mac, ps.name),
        maxQueuePairs: options.maxQueuePairs ?? ps.queues,
      });
    }
  }
}

/** Config-space offset of BAR0; bit 0 set means an I/O-space BAR (PCI Local Bus 6.2.5.1). */
const PCI_BASE_ADDRESS_0 = 0x10;

/**
 * The virtio-pci transport over an opened PCI function, once it shows itself a virtio-net
 * device: modern when it has the virtio 1.x capabilities (§4.1.4; a transitional device
 * too), legacy when it has none but an I/O BAR0 (§4.1.4.8). Otherwise the function is
 * closed (and handed back to its kernel driver) and NOT_VIRTIO_NET thrown.
 *
 * @example
 * ```ts ignore
 * import { pciTransport } from "./open_port.ts";
 * const t = pciTransport(VfioPciDevice.open(parsePciAddress("0000:00:04.0")));
 * ```
 */
export function pciTransport(pci: PciDevice): VirtioTransport {
  try {
    const id = {
      vendor: pci.config.read16(PCI_VENDOR_ID),
      device: pci.config.read16(PCI_DEVICE_ID),
      subsystemDevice: pci.config.read16(PCI_SUBSYSTEM_ID),
      classCode: 0,
    };
    if (!isVirtioNet(id)) {
      throw new DriverError("NOT_VIRTIO_NET", notVirtioNetMessage(pci.name, id));
    }
    if (hasModernCaps(pci)) return new VirtioPciTransport(pci);
    if (pci.config.read32(PCI_BASE_ADDRESS_0) & 1) return new LegacyPciTransport(pci);
    throw new DriverError(
      "NOT_VIRTIO_NET",
      `${pci.name} has neither virtio 1.x capabilities nor a legacy I/O BAR0: it is not a virtio-pci function this driver can drive; check the address.`,
    );
  } catch (e) {
    pci.close({ restoreDriver: true });
    throw e;
  }
}

/** True when `pci` lists the common-configuration capability of modern virtio-pci. */
function hasModernCaps(pci: PciDevice): boolean {
  try {
    return findVirtioCaps(pci.config).has(VIRTIO_PCI_CAP_COMMON_CFG);
  } catch {
    return true; // a malformed list: the modern transport reports it in one sentence
  }
}

/**
 * Opens a virtio-net port by name: `0000:00:04.0` (kernel VFIO), `vfio-user:/path` or
 * `vhost-user:/path`. Any failure releases everything taken so far and throws a
 * {@linkcode DriverError}.
 *
 * @example
 * ```ts ignore
 * import { openPort } from "./open_port.ts";
 * const port = openPort("vhost-user:/run/a.sock", { queuePairs: 2 });
 * console.log(port.negotiatedFeatureNames().join(" "));
 * port.close();
 * ```
 */
export function openPort(spec: string | PortSpec, options: OpenPortOptions = {}): VirtioNetPort {
  // Every argument is checked before any device is touched: the name, then the options.
  const ps = portSpec(spec);
  checkPortOptions(options);
  return VirtioNetPort.open(openTransport(ps, options), options);
}

/** The most queue pairs a vhost-user back-end can have (VHOST_USER_GET_QUEUE_NUM's 128). */
const VHOST_USER_MAX_QUEUE_PAIRS = 128;
/** setTimeout's and poll(2)'s largest timeout: 2^31-1 ms. */
const MAX_TIMEOUT_MS = 0x7fffffff;

/** `spec` parsed (a name) or checked to be a parsed one; BAD_ADDRESS otherwise. */
function portSpec(spec: string | PortSpec): PortSpec {
  if (typeof spec === "string") return parsePortSpec(spec);
  const kind = (spec as { kind?: unknown } | null)?.kind;
  if (kind !== "pci" && kind !== "vfio-user" && kind !== "vhost-user") {
    // Not a PortSpec: parsePortSpec words the sentence for whatever it is.
    return parsePortSpec(spec as unknown as string);
  }
  return spec;
}

/**
 * Refuses transport options no device could take (types, ranges, a vhost-user name whose
 * `?queues=` is below `queuePairs`), before anything is opened: one BAD_ARGUMENT sentence.
 */
function checkTransportOptions(ps: PortSpec, options: OpenPortOptions): void {
  const bad = (m: string): never => {
    throw new DriverError("BAD_ARGUMENT", m);
  };
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    bad(`The options of ${ps.name} are ${shown(options)}: give an object such as { bind: true }.`);
  }
  for (const name of ["bind", "restoreDriver", "force"] as const) {
    if (options[name] !== undefined && typeof options[name] !== "boolean") {
      bad(`${name} is ${shown(options[name])}, not true or false: give a boolean or leave it out.`);
    }
  }
  if (options.mac !== undefined) parseMacAddress(options.mac, ps.name);
  const cap = options.maxQueuePairs;
  if (
    cap !== undefined &&
    !(Number.isInteger(cap) && cap >= 1 && cap <= VHOST_USER_MAX_QUEUE_PAIRS)
  ) {
    bad(
      `maxQueuePairs ${
        shown(cap)
      } is not possible: give an integer from 1 to ${VHOST_USER_MAX_QUEUE_PAIRS}.`,
    );
  }
  // A vhost-user back-end serves no more pairs than its name (or maxQueuePairs) says.
  const pairs = (options as PortOptions).queuePairs;
  const has = ps.kind === "vhost-user" ? cap ?? ps.queues : undefined;
  if (has !== undefined && typeof pairs === "number" && pairs > has) {
    bad(
      `${pairs} queue pairs is more than ${ps.name}'s max_virtqueue_pairs of ${has} (its ${
        cap === undefined ? `?queues=${has}` : "maxQueuePairs"
      }): use at most ${has}.`,
    );
  }
  const vu = options.vfioUser;
  if (vu === undefined) return;
  if (typeof vu !== "object" || vu === null || Array.isArray(vu)) {
    bad(`vfioUser is ${shown(vu)}: give an object such as { timeoutMs: 5000 }.`);
  }
  const t = vu.timeoutMs;
  if (t !== undefined && !(typeof t === "number" && t > 0 && t <= MAX_TIMEOUT_MS)) {
    bad(
      `vfioUser.timeoutMs ${
        shown(t)
      } is not possible: give milliseconds above 0 and at most ${MAX_TIMEOUT_MS}.`,
    );
  }
  const x = vu.maxDataXferSize;
  if (
    x !== undefined && !(Number.isInteger(x) && x >= 1 && x <= DEFAULT_MAX_DATA_XFER_SIZE)
  ) {
    bad(
      `vfioUser.maxDataXferSize ${
        shown(x)
      } is not possible: give an integer from 1 to ${DEFAULT_MAX_DATA_XFER_SIZE} bytes.`,
    );
  }
  if (vu.postedWrites !== undefined && typeof vu.postedWrites !== "boolean") {
    bad(`vfioUser.postedWrites is ${shown(vu.postedWrites)}, not true or false: give a boolean.`);
  }
}
