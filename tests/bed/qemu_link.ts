/**
 * A NIC's link taken down and brought back from QEMU's human monitor (`set_link`), as a
 * cable pulled and plugged in again: QEMU clears VIRTIO_NET_S_LINK_UP in the NIC's config
 * (and raises a config interrupt), and drops what the NIC sends or would receive until the
 * link is back; the NIC still completes the descriptors it is given.
 *
 * @example
 * ```ts ignore
 * import { setLink } from "./qemu_link.ts";
 * await setLink(bed, 1, false); // "n1": NIC 1's netdev, all its queues
 * await setLink(bed, 1, true);
 * ```
 *
 * @module
 */

/** What the link helpers need of a bed (tests/bed/vm.ts's `VmBed`). */
export interface MonitorBed {
  /** Runs a QEMU human-monitor command, returns what it printed (echo included). */
  monitor(command: string): Promise<string>;
  /** MAC address of NIC `nic`. */
  nicMac(nic: number): string;
}

/** What a monitor command printed, without the echo of the command line itself. */
function printed(raw: string): string {
  return raw.slice(raw.indexOf("\n") + 1);
}

/**
 * QEMU's name of NIC `nic`'s netdev (its tap back-end), read from `info network`. The netdev
 * is named once for all its queues; the NIC's own clients are one per queue
 * (virtio-net-pci.2, .3, …), so `set_link` on one of those would take down one queue only.
 */
export async function netdevOf(bed: MonitorBed, nic: number): Promise<string> {
  const out = printed(await bed.monitor("info network"));
  const lines = out.split("\n");
  const i = lines.findIndex((l) => l.includes(`macaddr=${bed.nicMac(nic)}`));
  const m = i >= 0 ? /^\s*\\ ([^:\s]+): .*type=tap/.exec(lines[i + 1] ?? "") : null;
  if (!m) {
    throw new Error(
      `info network names no tap netdev for NIC ${nic} (${bed.nicMac(nic)}):\n${out}`,
    );
  }
  return m[1];
}

/** Takes NIC `nic`'s link down (`up` false) or up; returns the netdev name it used. */
export async function setLink(bed: MonitorBed, nic: number, up: boolean): Promise<string> {
  const id = await netdevOf(bed, nic);
  const out = printed(await bed.monitor(`set_link ${id} ${up ? "on" : "off"}`)).trim();
  if (out) throw new Error(`set_link ${id} ${up ? "on" : "off"}: ${out}`);
  return id;
}
