/**
 * Interrupts of a PCI function served over vfio-user: IRQ information, routing vectors
 * to eventfds with DEVICE_SET_IRQS (vfio-user.rst "VFIO_USER_DEVICE_GET_IRQ_INFO",
 * "VFIO_USER_DEVICE_SET_IRQS"), and the MSI-X enabling that kernel VFIO does for its
 * clients but QEMU's vfio-user server leaves to the client.
 *
 * @module
 */

import { strerror } from "../../ffi/libc.ts";
import { MAX_RECV_FDS } from "../../ffi/unix_socket.ts";
import { DriverError } from "../errors.ts";
import {
  findMsix,
  type MsixCapability,
  msixControlOffset,
  msixVectorControlOffset,
  PCI_MSIX_ENTRY_CTRL_MASKBIT,
  PCI_MSIX_FLAGS_ENABLE,
  PCI_MSIX_FLAGS_MASKALL,
} from "../pci/msix.ts";
import { checkIrqRange, type RegionIo } from "../pci/pci_device.ts";
import { type VfioUserClient, VfioUserCommandError } from "./client.ts";
import {
  decodeIrqInfo,
  encodeIrqInfoRequest,
  type IrqInfo,
  irqSetMessages,
  VFIO_USER_DEVICE_GET_IRQ_INFO,
  VFIO_USER_DEVICE_SET_IRQS,
} from "./protocol.ts";

/** IRQ type index of MSI-X (VFIO_PCI_MSIX_IRQ_INDEX in Linux vfio.h). */
export const MSIX_IRQ_INDEX = 2;

/**
 * The interrupt routing of one vfio-user device: which vectors of which IRQ type have an
 * eventfd, and the function's MSI-X state this client changed to make them fire.
 *
 * @example
 * ```ts ignore
 * import { VfioUserIrqs } from "./irq_routing.ts";
 * const irqs = new VfioUserIrqs(client, "vfio-user:/tmp/net0.sock", config, 5, (i) => dev.bar(i));
 * irqs.setEventfds(2, 1, [efd]); // MSI-X vector 1 → efd
 * irqs.setEventfds(2, 0, []); // all of MSI-X off again
 * ```
 */
export class VfioUserIrqs {
  readonly #client: VfioUserClient;
  readonly #name: string;
  readonly #config: RegionIo;
  readonly #numIrqs: number;
  readonly #bar: (index: number) => RegionIo;
  /** Per IRQ type set up with eventfds: the vectors that have one. */
  readonly #routed = new Map<number, Set<number>>();
  #msix: MsixCapability | null | undefined;
  /** Message Control as it was before this client enabled MSI-X. */
  #msixControlBefore: number | null = null;

  /**
   * Routing for the device `name` on `client`, whose config space is `config`, which has
   * `numIrqs` IRQ types (DEVICE_GET_INFO) and whose BARs `bar` opens (for the MSI-X
   * table).
   */
  constructor(
    client: VfioUserClient,
    name: string,
    config: RegionIo,
    numIrqs: number,
    bar: (index: number) => RegionIo,
  ) {
    this.#client = client;
    this.#name = name;
    this.#config = config;
    this.#numIrqs = numIrqs;
    this.#bar = bar;
  }

  /** DEVICE_GET_IRQ_INFO of IRQ type `index` (0 INTx, 1 MSI, 2 MSI-X, 3 ERR, 4 REQ). */
  info(index: number): IrqInfo {
    const r = this.#client.request(VFIO_USER_DEVICE_GET_IRQ_INFO, encodeIrqInfoRequest(index));
    return this.#client.decodeReply(VFIO_USER_DEVICE_GET_IRQ_INFO, r.payload, decodeIrqInfo);
  }

  /** Number of interrupts of IRQ type `index`; 0 for a type the device does not have. */
  count(index: number): number {
    if (!Number.isInteger(index) || index < 0 || index >= this.#numIrqs) return 0;
    return this.info(index).count;
  }

  /** IRQ types that have eventfds routed now. */
  routedTypes(): number[] {
    return [...this.#routed.keys()];
  }

  /** Forgets every routing (the device is closing; the server drops them with it). */
  forget(): void {
    this.#routed.clear();
  }

  /**
   * Routes vectors `start`… of IRQ type `index` to `fds` (-1: de-assign that vector); an
   * empty `fds` turns the whole type off.
   */
  setEventfds(index: number, start: number, fds: number[]): void {
    const routed = this.#routed.get(index);
    if (fds.length === 0) {
      if (!routed) return;
      this.#routed.delete(index);
      if (index === MSIX_IRQ_INDEX) this.#msixOff(routed);
      for (const m of irqSetMessages(index, 0, [], 1)) {
        this.#client.request(VFIO_USER_DEVICE_SET_IRQS, m.payload);
      }
      return;
    }
    checkIrqRange(this.#name, index, start, fds.length, this.count(index));
    // "VFIO_USER_DEVICE_SET_IRQS": the eventfds go as SCM_RIGHTS, at most max_msg_fds per
    // message (the server's, from VERSION; and what one sendmsg here carries).
    const perMessage = Math.min(this.#client.server.maxMsgFds, MAX_RECV_FDS);
    const set = routed ?? new Set<number>();
    for (const m of irqSetMessages(index, start, fds, perMessage)) {
      try {
        this.#client.request(VFIO_USER_DEVICE_SET_IRQS, m.payload, { fds: m.fds });
      } catch (e) {
        if (!(e instanceof VfioUserCommandError)) throw e;
        throw new DriverError(
          "DEVICE_REFUSED",
          `The vfio-user server at ${this.#client.socketPath} refused to route interrupts of IRQ type ${index} to eventfds (${
            e.errno ? strerror(e.errno) : "no errno"
          }): see the server's log for why.`,
          { cause: e },
        );
      }
    }
    fds.forEach((fd, i) => fd < 0 ? set.delete(start + i) : set.add(start + i));
    this.#routed.set(index, set);
    if (index === MSIX_IRQ_INDEX) this.#msixOn(set);
  }

  /**
   * After DEVICE_RESET: the server keeps its eventfds across a reset, but the function's
   * MSI-X state was reset (disabled, every vector masked), so it is set up again.
   */
  afterReset(): void {
    const msix = this.#routed.get(MSIX_IRQ_INDEX);
    if (msix) {
      this.#msixControlBefore = null;
      this.#msixOn(msix);
    }
  }

  /**
   * Kernel VFIO enables MSI-X in the function when SET_IRQS routes its vectors; QEMU's
   * vfio-user server does not: its virtio-pci signals a vector only while the MSI-X Enable
   * bit of Message Control is set (else it raises INTx), and msix_notify() holds back a
   * vector whose Vector Control mask bit is set (all are masked after reset), or all while
   * Function Mask is set (PCI 3.0 §6.8.2.3, §6.8.2.9). So the client does here what a
   * kernel does for its own MSI-X: unmask the routed vectors in the table, then set Enable
   * and clear Function Mask. The table's address/data need no programming: the server
   * turns vector v into a signal of eventfd v. Checked against QEMU 7.2's server: without
   * Enable no signal comes (and none later: the event went out as INTx); with the vector
   * masked the signal is held pending and arrives once the vector is unmasked.
   */
  #msixOn(vectors: Set<number>): void {
    this.#msix ??= findMsix(this.#config);
    const cap = this.#msix;
    if (!cap) return;
    const table = this.#bar(cap.tableBar);
    for (const v of vectors) {
      const at = msixVectorControlOffset(cap, v);
      const ctrl = table.read32(at);
      if (ctrl & PCI_MSIX_ENTRY_CTRL_MASKBIT) {
        table.write32(at, ctrl & ~PCI_MSIX_ENTRY_CTRL_MASKBIT);
      }
    }
    const mc = this.#config.read16(msixControlOffset(cap));
    this.#msixControlBefore ??= mc;
    const want = (mc | PCI_MSIX_FLAGS_ENABLE) & ~PCI_MSIX_FLAGS_MASKALL;
    if (want !== mc) this.#config.write16(msixControlOffset(cap), want);
  }

  /** Masks the vectors {@linkcode VfioUserIrqs.#msixOn} unmasked; puts Message Control back. */
  #msixOff(vectors: Set<number>): void {
    const cap = this.#msix;
    if (!cap) return;
    const table = this.#bar(cap.tableBar);
    for (const v of vectors) {
      const at = msixVectorControlOffset(cap, v);
      table.write32(at, table.read32(at) | PCI_MSIX_ENTRY_CTRL_MASKBIT);
    }
    if (this.#msixControlBefore !== null) {
      this.#config.write16(msixControlOffset(cap), this.#msixControlBefore);
      this.#msixControlBefore = null;
    }
  }
}
