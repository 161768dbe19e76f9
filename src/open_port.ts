/**
 * The composition root: turns a port name into its transport, and a transport into a
 * virtio-net port. The only module that knows every transport; nothing below it imports
 * it. Adding a transport is a folder of its own, a `VirtioTransport` implementation in
 * src/virtio/, and one case here (docs/architecture.md).
 *
 * | Port name              | Transport                                                |
 * |------------------------|----------------------------------------------------------|
 * | `0000:00:04.0`         | kernel VFIO (src/vfio/) → modern virtio-pci              |
 * | `vfio-user:/path`      | a vfio-user server (src/vfio_user/) → modern virtio-pci  |
 * | `vhost-user:/path`     | a vhost-user back-end (src/vhost_user/)                  |
 *
 * @module
 */

import { DriverError } from "./errors.ts";
import { type PortOptions, VirtioNetPort } from "./net/port.ts";
import { PCI_DEVICE_ID, PCI_SUBSYSTEM_ID, PCI_VENDOR_ID } from "./pci/capabilities.ts";
import type { PciDevice } from "./pci/pci_device.ts";
import { isVirtioNet, notVirtioNetMessage } from "./pci/sysfs.ts";
import { parsePortSpec, type PortSpec } from "./port_name.ts";
import { VfioPciDevice } from "./vfio/vfio_pci_device.ts";
import { VfioUserDevice, type VfioUserOpenOptions } from "./vfio_user/vfio_user_device.ts";
import { VirtioPciTransport } from "./virtio/pci_transport.ts";
import type { VirtioTransport } from "./virtio/transport.ts";
import { VhostUserTransport } from "./virtio/vhost_user_transport.ts";

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
  const ps = typeof spec === "string" ? parsePortSpec(spec) : spec;
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
    case "vhost-user":
      return VhostUserTransport.open(ps.socketPath, {
        name: ps.name,
        mac: parseMac(ps.name, options.mac ?? ps.mac),
        maxQueuePairs: options.maxQueuePairs ?? ps.queues,
      });
  }
}

/**
 * The modern virtio-pci transport over an opened PCI function, once it shows itself a
 * virtio-net device; otherwise the function is closed (and handed back to its kernel
 * driver) and NOT_VIRTIO_NET thrown.
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
    return new VirtioPciTransport(pci);
  } catch (e) {
    pci.close({ restoreDriver: true });
    throw e;
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
  return VirtioNetPort.open(openTransport(spec, options), options);
}

/** `text` (aa:bb:cc:dd:ee:ff) as 6 bytes, or undefined; BAD_ARGUMENT when malformed. */
function parseMac(port: string, text: string | undefined): Uint8Array | undefined {
  if (text === undefined) return undefined;
  if (!/^[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}$/.test(text)) {
    throw new DriverError(
      "BAD_ARGUMENT",
      `'${text}' is not a MAC address for ${port}: write six hexadecimal bytes, e.g. 02:00:00:00:00:01.`,
    );
  }
  const mac = Uint8Array.from(text.split(":").map((h) => parseInt(h, 16)));
  if (mac[0] & 1) {
    throw new DriverError(
      "BAD_ARGUMENT",
      `${text} is a multicast address, which no port can have: use a unicast one such as 02:00:00:00:00:01.`,
    );
  }
  return mac;
}
