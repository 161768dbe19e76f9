/**
 * `openPort()`: opens a virtio-net port by name whatever its transport, a PCI address
 * (kernel VFIO) or `vfio-user:/path/to/socket` (this module's {@linkcode VfioUserDevice}).
 * {@linkcode VirtioNetPort.open} itself knows only kernel VFIO, so that programs that never
 * use vfio-user do not load it.
 *
 * @module
 */

import { DriverError } from "../errors.ts";
import { type PortOptions, VirtioNetPort } from "../net/port.ts";
import type { PortSpec } from "../pci/address.ts";
import { VfioUserDevice, type VfioUserOpenOptions } from "./vfio_user_device.ts";

/** Options of {@linkcode openPort}: the port's, plus how to reach a vfio-user server. */
export interface OpenPortOptions extends PortOptions {
  /** Connection options for `vfio-user:` ports (timeout, posted writes). */
  vfioUser?: VfioUserOpenOptions;
}

/**
 * Opens a port named by a PCI address or `vfio-user:/path`, as the tools accept it.
 *
 * @example
 * ```ts ignore
 * import { openPort } from "./open_port.ts";
 * const port = openPort("vfio-user:/tmp/vfu/net0.sock");
 * console.log(port.negotiatedFeatureNames().join(" "));
 * port.close();
 * ```
 */
export function openPort(spec: string | PortSpec, options: OpenPortOptions = {}): VirtioNetPort {
  const { vfioUser, ...portOptions } = options;
  return VirtioNetPort.open(spec, {
    ...portOptions,
    openDevice: portOptions.openDevice ?? ((s: PortSpec) => {
      if (s.kind !== "vfio-user") {
        throw new DriverError("UNSUPPORTED", `${s.name} is not a vfio-user port.`);
      }
      return VfioUserDevice.open(s.socketPath, vfioUser);
    }),
  });
}
