/**
 * A virtqueue's interrupts on PCI (virtio 1.x §4.1.5.1.2 MSI-X Vector Configuration), in
 * the order Linux's virtio_pci sets them up:
 * 1. MSI-X vector v of the function routed to the caller's eventfd (PciDevice.setIrqEventfds:
 *    VFIO_DEVICE_SET_IRQS, or VFIO_USER_DEVICE_SET_IRQS with the fd as SCM_RIGHTS);
 * 2. the queue's queue_msix_vector = v, read back: VIRTIO_MSI_NO_VECTOR means the device
 *    refused the mapping (§4.1.5.1.2.1, "the driver MUST verify success by reading the
 *    Vector field value").
 * Undoing it unmaps the queue's vector first, then the routing.
 *
 * @module
 */

import { VFIO_PCI_MSIX_IRQ_INDEX } from "../../ffi/vfio_uapi.ts";
import { DriverError } from "../errors.ts";
import type { PciDevice } from "../pci/pci_device.ts";
import type { QueueInterruptOptions, QueueInterruptRoute } from "./transport.ts";

/** virtio-pci's "no vector" (§4.1.4.3). */
const NO_VECTOR = 0xffff;

/** Vectors routed per transport, so that two queues never share one eventfd by accident. */
/**
 * What routing needs of a virtio-pci transport, modern (pci_transport.ts) or legacy
 * (legacy_pci_transport.ts): the function, and the queue's MSI-X vector register.
 *
 * @example
 * ```ts ignore
 * import type { MsixVectorTransport } from "./pci_queue_interrupts.ts";
 * const t: MsixVectorTransport = new LegacyPciTransport(pciDevice);
 * ```
 */
export interface MsixVectorTransport {
  /** The PCI function's name. */
  readonly name: string;
  /** The PCI function. */
  readonly pci: PciDevice;
  /** Maps queue `index` to `vector` and returns what the device reads back. */
  setQueueVector(index: number, vector: number): number;
}

const routedVectors = new WeakMap<MsixVectorTransport, Set<number>>();

/**
 * Routes queue `index` of `t` to eventfd `fd` through MSI-X vector `options.vector`
 * (default 1 + index: vector 0 is left for configuration changes, as Linux does, and every
 * queue gets its own).
 *
 * @example
 * ```ts ignore
 * import { routeMsixQueueInterrupt } from "./pci_queue_interrupts.ts";
 * const route = routeMsixQueueInterrupt(transport, 0, efd.fd); // receiveq1 → vector 1
 * route.unroute();
 * ```
 */
export function routeMsixQueueInterrupt(
  t: MsixVectorTransport,
  index: number,
  fd: number,
  options: QueueInterruptOptions = {},
): QueueInterruptRoute {
  const pci = t.pci;
  const count = pci.irqCount(VFIO_PCI_MSIX_IRQ_INDEX);
  if (count === 0) {
    throw new DriverError(
      "UNSUPPORTED",
      `${t.name} has no MSI-X vectors, so its queues cannot interrupt: poll them (QEMU: give virtio-net-pci vectors=N).`,
    );
  }
  const vector = options.vector ?? 1 + index;
  // §4.1.5.1.2.2: the driver MUST NOT map an event to a vector outside the MSI-X table.
  if (!Number.isInteger(vector) || vector < 0 || vector >= count) {
    throw new DriverError(
      "BAD_ARGUMENT",
      `MSI-X vector ${vector} is outside ${t.name}'s table of ${count}: pass a vector below ${count} (option vector), or give the device more (QEMU: vectors=${
        index + 3
      } or more).`,
    );
  }
  const used = routedVectors.get(t) ?? new Set<number>();
  if (used.has(vector)) {
    throw new DriverError(
      "BAD_ARGUMENT",
      `MSI-X vector ${vector} of ${t.name} already signals another queue: pass another vector (option vector).`,
    );
  }
  let routed = false;
  try {
    pci.setIrqEventfds(VFIO_PCI_MSIX_IRQ_INDEX, vector, [fd]);
    routed = true;
    const got = t.setQueueVector(index, vector);
    if (got !== vector) {
      throw new DriverError(
        "DEVICE_REFUSED",
        `${t.name} did not map queue ${index} to MSI-X vector ${vector} (queue_msix_vector reads back 0x${
          got.toString(16)
        }, §4.1.5.1.2): it has no resources for it; try another vector or poll the queue.`,
      );
    }
  } catch (e) {
    if (routed) unroute(t, used, vector);
    throw e;
  }
  used.add(vector);
  routedVectors.set(t, used);
  let done = false;
  return {
    vector,
    unroute(): void {
      if (done) return;
      done = true;
      try {
        t.setQueueVector(index, NO_VECTOR);
        unroute(t, used, vector);
      } finally {
        used.delete(vector);
      }
    },
  };
}

/** Detaches `vector`; the last one routed turns MSI-X off for the function. */
function unroute(t: MsixVectorTransport, used: Set<number>, vector: number): void {
  const others = [...used].some((v) => v !== vector);
  t.pci.setIrqEventfds(VFIO_PCI_MSIX_IRQ_INDEX, others ? vector : 0, others ? [-1] : []);
}
