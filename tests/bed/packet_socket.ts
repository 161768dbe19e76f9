/**
 * AF_PACKET sockets of the beds' traffic tool (traffic.ts): one bound to an interface, and
 * its `PACKET_STATISTICS`, i.e. how many frames the kernel dropped because the socket's
 * receive buffer was full, so a capture can say where a missing frame went.
 *
 * @module
 */

import { libc } from "../../ffi/libc.ts";
import {
  AF_PACKET,
  check,
  ETH_P_ALL,
  htons,
  ifIndex,
  PACKET_IGNORE_OUTGOING,
  setIntOption,
  SO_RCVBUFFORCE,
  SO_SNDBUFFORCE,
  sock,
  SOCK_CLOEXEC,
  SOCK_RAW,
  sockaddrLl,
  SOL_PACKET,
  SOL_SOCKET,
} from "../../ffi/socket.ts";

/** `getsockopt(SOL_PACKET, PACKET_STATISTICS)`: struct tpacket_stats (linux/if_packet.h). */
export const PACKET_STATISTICS = 6;

/** Options of {@linkcode openPacketSocket}. */
export interface PacketSocketOptions {
  /** Receive and send buffer size, forced past rmem_max (default 64 MiB). */
  bufBytes?: number;
  /**
   * Receive frames (default true). A sender passes false: protocol 0 gets no frame at all,
   * so nothing piles up in a buffer nobody reads.
   */
  receive?: boolean;
  /**
   * Do not deliver frames this host sends out of the interface (PACKET_IGNORE_OUTGOING,
   * Linux 4.20+): a capture of what the guest sends then neither sees nor buffers the
   * frames injected into the same tap. Default false.
   */
  ignoreOutgoing?: boolean;
}

/**
 * Opens an AF_PACKET raw socket bound to `ifname` (in the caller's namespace).
 *
 * @example
 * ```ts ignore
 * const fd = openPacketSocket("vb-abc-0-0", { ignoreOutgoing: true });
 * ```
 */
export function openPacketSocket(ifname: string, opts: PacketSocketOptions = {}): number {
  const protocol = opts.receive === false ? 0 : ETH_P_ALL;
  const fd = check(
    sock.socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(protocol)),
    "socket",
    "AF_PACKET",
  );
  try {
    const buf = opts.bufBytes ?? 64 << 20;
    setIntOption(fd, SOL_SOCKET, SO_RCVBUFFORCE, buf);
    setIntOption(fd, SOL_SOCKET, SO_SNDBUFFORCE, buf);
    if (opts.ignoreOutgoing) setIntOption(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, 1);
    const addr = sockaddrLl(ifIndex(ifname), protocol);
    check(sock.bind(fd, addr, addr.length), "bind", ifname);
  } catch (e) {
    libc.close(fd);
    throw e;
  }
  return fd;
}

/** A packet socket's counters since the last read (the kernel zeroes them when read). */
export interface PacketStats {
  /** Frames the socket was offered: queued to it plus dropped (tp_packets). */
  packets: number;
  /** Frames dropped because its receive buffer was full (tp_drops). */
  drops: number;
}

/**
 * Decodes a struct tpacket_stats { u32 tp_packets; u32 tp_drops; } (host byte order).
 *
 * @example
 * ```ts
 * import { decodeTpacketStats } from "./packet_socket.ts";
 * decodeTpacketStats(new Uint8Array([10, 0, 0, 0, 3, 0, 0, 0])); // { packets: 10, drops: 3 }
 * ```
 */
export function decodeTpacketStats(b: Uint8Array): PacketStats {
  if (b.length < 8) throw new Error(`struct tpacket_stats is 8 bytes, got ${b.length}`);
  const v = new DataView(b.buffer, b.byteOffset, 8);
  return { packets: v.getUint32(0, true), drops: v.getUint32(4, true) };
}

/**
 * Reads (and so resets) a packet socket's PACKET_STATISTICS: read once, when the socket is
 * done, to get the totals of its whole life.
 *
 * @example
 * ```ts ignore
 * const { drops } = readPacketStats(fd); // frames the full receive buffer cost
 * ```
 */
export function readPacketStats(fd: number): PacketStats {
  const b = new Uint8Array(8);
  const len = new Uint32Array([8]);
  check(
    sock.getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, b, new Uint8Array(len.buffer)),
    "getsockopt",
    "PACKET_STATISTICS",
  );
  return decodeTpacketStats(b);
}

const PACKET_RX_RING = 5;
const PACKET_VERSION = 10;
const TPACKET_V2 = 1;
/** tpacket2_hdr.tp_status bits (linux/if_packet.h). */
const TP_STATUS_USER = 1;
const TP_STATUS_VLAN_VALID = 0x10;
const TP_STATUS_VLAN_TPID_VALID = 0x40;
/** TPACKET2_HDRLEN (32) + 16, aligned: the kernel puts the MAC header before this offset. */
const RING_HEADROOM = 80;
const PAGE = 4096;

/** One frame read from a {@linkcode PacketRxRing}. */
export interface RingFrame {
  /** The frame as it was on the wire, its 802.1Q tag put back where the kernel took it out. */
  data: Uint8Array;
  /** Its length on the wire (larger than `data` when the slot truncated it). */
  wireLength: number;
  /** sll_pkttype, e.g. PACKET_OUTGOING (4). */
  pkttype: number;
  /** Kernel receive time, µs since the epoch. */
  timeUs: number;
}

/**
 * A TPACKET_V2 receive ring on a packet socket: the kernel writes frames into memory shared
 * with this process, so a capture makes no system call per frame and holds `bytes` of
 * frames while it is not scheduled (a socket buffer holds far fewer: each frame costs its
 * whole skb). The kernel takes an 802.1Q tag out of a received frame (into skb metadata);
 * the ring reports it and {@linkcode PacketRxRing.next} puts it back.
 *
 * @example
 * ```ts ignore
 * const ring = new PacketRxRing(fd, 1500, 64 << 20);
 * const f = ring.next(); // null when the ring is empty: poll(2) the socket then
 * ```
 */
export class PacketRxRing {
  /** Bytes of one slot (the largest frame it holds is this minus 80). */
  readonly slotBytes: number;
  /** Number of slots. */
  readonly slots: number;
  readonly #mem: Uint8Array;
  readonly #view: DataView;
  readonly #ptr: Deno.PointerObject;
  readonly #bytes: number;
  #slot = 0;

  /** Sets the ring up on `fd` for frames of an interface of this MTU, about `bytes` big. */
  constructor(fd: number, mtu: number, bytes: number) {
    let slot = 2048;
    while (slot < RING_HEADROOM + mtu + 18) slot *= 2;
    const block = Math.max(slot, 16 * PAGE);
    const blocks = Math.max(1, Math.floor(bytes / block));
    this.slotBytes = slot;
    this.slots = blocks * (block / slot);
    this.#bytes = blocks * block;
    setIntOption(fd, SOL_PACKET, PACKET_VERSION, TPACKET_V2);
    const req = new Uint32Array([block, blocks, slot, this.slots]);
    check(
      sock.setsockopt(fd, SOL_PACKET, PACKET_RX_RING, new Uint8Array(req.buffer), 16),
      "setsockopt",
      "PACKET_RX_RING",
    );
    const p = libc.mmap(null, BigInt(this.#bytes), 3, /* PROT_READ|WRITE */ 1, /* SHARED */ fd, 0n);
    if (p === null || Deno.UnsafePointer.value(p) === 0xffff_ffff_ffff_ffffn) {
      throw new Error(`mmap of a ${this.#bytes}-byte packet ring failed`);
    }
    this.#ptr = p;
    this.#mem = new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(p, this.#bytes));
    this.#view = new DataView(this.#mem.buffer);
  }

  /** The next frame (copied out; its slot goes back to the kernel), or null if none is ready. */
  next(): RingFrame | null {
    const o = this.#slot * this.slotBytes, v = this.#view;
    const status = v.getUint32(o, true);
    if ((status & TP_STATUS_USER) === 0) return null;
    const len = v.getUint32(o + 4, true), snap = v.getUint32(o + 8, true);
    const mac = v.getUint16(o + 12, true);
    const timeUs = v.getUint32(o + 16, true) * 1e6 + Math.floor(v.getUint32(o + 20, true) / 1000);
    const pkttype = this.#mem[o + 32 + 10]; // sockaddr_ll after the 32-byte header
    const raw = this.#mem.subarray(o + mac, o + mac + snap);
    let data: Uint8Array;
    if (status & TP_STATUS_VLAN_VALID && snap >= 12) {
      const tpid = status & TP_STATUS_VLAN_TPID_VALID ? v.getUint16(o + 26, true) : 0x8100;
      data = new Uint8Array(snap + 4);
      data.set(raw.subarray(0, 12));
      data[12] = tpid >> 8;
      data[13] = tpid & 255;
      data[14] = this.#mem[o + 25];
      data[15] = this.#mem[o + 24];
      data.set(raw.subarray(12), 16);
    } else data = raw.slice();
    v.setUint32(o, 0, true); // TP_STATUS_KERNEL: the slot is the kernel's again
    this.#slot = (this.#slot + 1) % this.slots;
    return { data, wireLength: len + (data.length - snap), pkttype, timeUs };
  }

  /** Unmaps the ring (before the socket is closed). */
  close(): void {
    libc.munmap(this.#ptr, BigInt(this.#bytes));
  }
}
