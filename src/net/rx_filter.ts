/**
 * Receive filtering and announcements through the control virtqueue (virtio 1.x
 * §5.1.6.5.1 "Packet Receive Filtering", §5.1.6.5.2 "Setting MAC Address Filtering",
 * §5.1.6.5.3 "VLAN Filtering", §5.1.6.5.4 "Gratuitous Packet Sending"): promiscuous and
 * all-multicast modes, the device's MAC address and its MAC filter table, the VLANs it
 * receives, and answering the device's request to announce the port. The filters apply
 * once promiscuous mode is off (devices start promiscuous, as QEMU's does).
 *
 * @module
 */

import { DriverError } from "../errors.ts";
import { hasFeature } from "../virtio/features.ts";
import {
  type ControlQueue,
  VIRTIO_NET_CTRL_ANNOUNCE,
  VIRTIO_NET_CTRL_ANNOUNCE_ACK,
  VIRTIO_NET_CTRL_MAC,
  VIRTIO_NET_CTRL_MAC_ADDR_SET,
  VIRTIO_NET_CTRL_MAC_TABLE_SET,
  VIRTIO_NET_CTRL_RX,
  VIRTIO_NET_CTRL_RX_ALLMULTI,
  VIRTIO_NET_CTRL_RX_PROMISC,
  VIRTIO_NET_CTRL_VLAN,
  VIRTIO_NET_CTRL_VLAN_ADD,
  VIRTIO_NET_CTRL_VLAN_DEL,
} from "./control_queue.ts";
import {
  VIRTIO_NET_F_CTRL_MAC_ADDR,
  VIRTIO_NET_F_CTRL_RX,
  VIRTIO_NET_F_CTRL_VLAN,
  VIRTIO_NET_F_GUEST_ANNOUNCE,
} from "./features.ts";

/** EtherType of RARP, which announcements use (as QEMU's own self-announce does). */
export const ETH_P_RARP = 0x8035;

/**
 * A gratuitous RARP request from `mac` (RFC 903 layout, 60 bytes with padding), the
 * announcement a virtio-net driver sends when the device sets VIRTIO_NET_S_ANNOUNCE.
 *
 * @example
 * ```ts
 * import { rarpAnnouncement } from "./rx_filter.ts";
 * const f = rarpAnnouncement(new Uint8Array([0x52, 0x54, 0, 0x12, 0x34, 0x56]));
 * f.length; // 60
 * ```
 */
export function rarpAnnouncement(mac: Uint8Array): Uint8Array<ArrayBuffer> {
  const f = new Uint8Array(60);
  const v = new DataView(f.buffer);
  f.fill(0xff, 0, 6); // broadcast
  f.set(mac, 6);
  v.setUint16(12, ETH_P_RARP);
  v.setUint16(14, 1); // hardware type: Ethernet
  v.setUint16(16, 0x0800); // protocol type: IPv4
  f[18] = 6; // hardware address length
  f[19] = 4; // protocol address length
  v.setUint16(20, 3); // opcode: reverse request
  f.set(mac, 22); // sender hardware address
  f.set(mac, 32); // target hardware address
  return f;
}

/** The receive-filter commands of one port. */
export class RxFilter {
  readonly #port: string;
  readonly #features: bigint;
  readonly #control: ControlQueue | null;
  #promiscuous = true;
  #allMulticast = false;

  /**
   * Used by VirtioNetPort; applications use `port.rxFilter`.
   *
   * @example
   * ```ts ignore
   * port.rxFilter.setPromiscuous(false);
   * ```
   */
  constructor(port: string, features: bigint, control: ControlQueue | null) {
    this.#port = port;
    this.#features = features;
    this.#control = control;
  }

  #require(feature: number, name: string, what: string): ControlQueue {
    if (!this.#control || !hasFeature(this.#features, feature)) {
      throw new DriverError(
        "UNSUPPORTED",
        `${this.#port} does not offer ${name}, so ${what} cannot be changed: the device filters as it likes (QEMU offers it by default: ctrl_rx=on).`,
      );
    }
    return this.#control;
  }

  /** Promiscuous mode as last set (assumed on at start-up, as QEMU's device starts). */
  get promiscuous(): boolean {
    return this.#promiscuous;
  }

  /** All-multicast mode as last set (assumed off at start-up, as QEMU's device starts). */
  get allMulticast(): boolean {
    return this.#allMulticast;
  }

  /** VIRTIO_NET_CTRL_RX_PROMISC: receive every frame, whatever its destination. */
  setPromiscuous(on: boolean): void {
    const c = this.#require(VIRTIO_NET_F_CTRL_RX, "VIRTIO_NET_F_CTRL_RX", "promiscuous mode");
    c.command(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, new Uint8Array([on ? 1 : 0]));
    this.#promiscuous = on;
  }

  /** VIRTIO_NET_CTRL_RX_ALLMULTI: receive every multicast frame. */
  setAllMulticast(on: boolean): void {
    const c = this.#require(VIRTIO_NET_F_CTRL_RX, "VIRTIO_NET_F_CTRL_RX", "all-multicast mode");
    c.command(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_ALLMULTI, new Uint8Array([on ? 1 : 0]));
    this.#allMulticast = on;
  }

  /**
   * VIRTIO_NET_CTRL_MAC_ADDR_SET: the unicast address the device receives for (and that
   * `port.config.mac` does not change to: read `port.readConfig().mac`).
   */
  setMacAddress(mac: Uint8Array): void {
    if (mac.length !== 6 || (mac[0] & 1) !== 0) {
      throw new DriverError(
        "BAD_ARGUMENT",
        `A port's MAC address must be 6 bytes and unicast (the low bit of the first byte clear): give e.g. 02:00:00:00:00:01.`,
      );
    }
    const c = this.#require(
      VIRTIO_NET_F_CTRL_MAC_ADDR,
      "VIRTIO_NET_F_CTRL_MAC_ADDR",
      "the MAC address",
    );
    c.command(VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, mac.slice());
  }

  /**
   * VIRTIO_NET_CTRL_MAC_TABLE_SET (§5.1.6.5.2): the unicast and multicast addresses the
   * device receives for besides its own MAC (when not promiscuous; all multicast ones
   * with all-multicast on). Replaces the tables set before.
   *
   * @example
   * ```ts ignore
   * port.rxFilter.setPromiscuous(false);
   * port.rxFilter.setMacTable([parseMac("02:00:00:00:00:77")], [parseMac("01:00:5e:00:00:fb")]);
   * ```
   */
  setMacTable(unicast: readonly Uint8Array[], multicast: readonly Uint8Array[]): void {
    const bad = [
      ...unicast.map((m) => [m, false] as const),
      ...multicast.map((m) => [m, true] as const),
    ]
      .find(([m, group]) => m.length !== 6 || ((m[0] & 1) === 1) !== group);
    if (bad) {
      throw new DriverError(
        "BAD_ARGUMENT",
        `A MAC filter table takes 6-byte addresses, unicast ones (low bit of the first byte clear) in the first list and multicast ones in the second: move or fix the address of ${
          bad[0].length
        } bytes starting ${bad[0][0]?.toString(16) ?? "with nothing"}.`,
      );
    }
    const c = this.#require(VIRTIO_NET_F_CTRL_RX, "VIRTIO_NET_F_CTRL_RX", "the MAC filter table");
    // struct virtio_net_ctrl_mac twice: le32 entries, then the addresses.
    const data = new Uint8Array(8 + 6 * (unicast.length + multicast.length));
    const v = new DataView(data.buffer);
    let at = 0;
    for (const list of [unicast, multicast]) {
      v.setUint32(at, list.length, true);
      at += 4;
      for (const m of list) {
        data.set(m, at);
        at += 6;
      }
    }
    c.command(VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, data);
  }

  /**
   * VIRTIO_NET_CTRL_VLAN_ADD (§5.1.6.5.3): receive frames tagged with VLAN `vid` (0 to
   * 4095). With VIRTIO_NET_F_CTRL_VLAN negotiated a device that is not promiscuous drops
   * tagged frames of every VLAN not added.
   */
  addVlan(vid: number): void {
    this.#vlan(VIRTIO_NET_CTRL_VLAN_ADD, vid);
  }

  /** VIRTIO_NET_CTRL_VLAN_DEL: stop receiving frames tagged with VLAN `vid`. */
  removeVlan(vid: number): void {
    this.#vlan(VIRTIO_NET_CTRL_VLAN_DEL, vid);
  }

  #vlan(cmd: number, vid: number): void {
    if (!(Number.isInteger(vid) && vid >= 0 && vid <= 4095)) {
      throw new DriverError(
        "BAD_ARGUMENT",
        `VLAN id ${vid} is not possible: give a whole number from 0 to 4095.`,
      );
    }
    const c = this.#require(VIRTIO_NET_F_CTRL_VLAN, "VIRTIO_NET_F_CTRL_VLAN", "VLAN filtering");
    c.command(VIRTIO_NET_CTRL_VLAN, cmd, new Uint8Array([vid & 0xff, vid >> 8]));
  }

  /**
   * VIRTIO_NET_CTRL_ANNOUNCE_ACK: tells the device the announcement it asked for
   * (VIRTIO_NET_S_ANNOUNCE) was sent, which clears the status bit.
   */
  ackAnnounce(): void {
    const c = this.#require(
      VIRTIO_NET_F_GUEST_ANNOUNCE,
      "VIRTIO_NET_F_GUEST_ANNOUNCE",
      "announcements",
    );
    c.command(VIRTIO_NET_CTRL_ANNOUNCE, VIRTIO_NET_CTRL_ANNOUNCE_ACK, new Uint8Array(0));
  }
}
