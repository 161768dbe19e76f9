/**
 * Sockets through Deno FFI: AF_PACKET raw sockets for the test beds' traffic tools, and the
 * calls a vfio-user client needs (AF_UNIX, `sendmsg`/`recvmsg` with SCM_RIGHTS).
 *
 * Like {@link ./libc.ts}, this only needs `--allow-ffi`. Errors: check return values with
 * {@linkcode check} from ./libc.ts (re-exported here with {@linkcode SysError} and
 * {@linkcode errno} for convenience).
 *
 * @module
 */

import { lazyLibrary } from "./lazy_library.ts";
import { check, cstr, errno, SysError } from "./libc.ts";

export { check, errno, SysError };

/** Signatures of the libc socket calls, see {@linkcode sock}. */
export const SOCKET_SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  socketpair: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
  accept: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  sendto: {
    parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"],
    result: "isize",
  },
  recvfrom: {
    parameters: ["i32", "buffer", "usize", "i32", "buffer", "buffer"],
    result: "isize",
  },
  sendmsg: { parameters: ["i32", "buffer", "i32"], result: "isize" },
  recvmsg: { parameters: ["i32", "buffer", "i32"], result: "isize" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  if_nametoindex: { parameters: ["buffer"], result: "u32" },
  /** poll(2) on the calling thread (blocks the JS thread for up to `timeout` ms). */
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32" },
  /** poll(2) on a helper thread: returns a Promise, leaves the event loop running. */
  poll_async: {
    name: "poll",
    parameters: ["buffer", "u64", "i32"],
    result: "i32",
    nonblocking: true,
  },
} as const satisfies Deno.ForeignLibraryInterface;

/** The raw socket symbols of libc. `size` arguments are `usize`: pass BigInt. */
export const sock: Deno.DynamicLibrary<typeof SOCKET_SYMBOLS>["symbols"] = lazyLibrary(
  "libc.so.6",
  SOCKET_SYMBOLS,
);

// Address families and socket types (<bits/socket.h>, x86-64).
/** Unix domain sockets. */
export const AF_UNIX = 1;
/** Link-layer packet sockets. */
export const AF_PACKET = 17;
/** Stream socket. */
export const SOCK_STREAM = 1;
/** Datagram socket. */
export const SOCK_DGRAM = 2;
/** Raw socket (for AF_PACKET: frames including the Ethernet header). */
export const SOCK_RAW = 3;
/** Sequenced-packet socket. */
export const SOCK_SEQPACKET = 5;
/** `socket(2)` type flag: non-blocking. */
export const SOCK_NONBLOCK = 0o4000;
/** `socket(2)` type flag: close on exec. */
export const SOCK_CLOEXEC = 0o2000000;

// Socket options.
/** Level of the generic socket options. */
export const SOL_SOCKET = 1;
/** Send buffer size (capped by net.core.wmem_max). */
export const SO_SNDBUF = 7;
/** Receive buffer size (capped by net.core.rmem_max). */
export const SO_RCVBUF = 8;
/** Send buffer size, ignoring wmem_max (needs CAP_NET_ADMIN). */
export const SO_SNDBUFFORCE = 32;
/** Receive buffer size, ignoring rmem_max (needs CAP_NET_ADMIN). */
export const SO_RCVBUFFORCE = 33;
/** Level of the AF_PACKET options. */
export const SOL_PACKET = 263;
/** AF_PACKET option: do not deliver frames this host sends (Linux 4.20+). */
export const PACKET_IGNORE_OUTGOING = 23;
/** Ancillary data type carrying file descriptors. */
export const SCM_RIGHTS = 1;

// sll_pkttype values (<linux/if_packet.h>).
/** Frame addressed to this host. */
export const PACKET_HOST = 0;
/** Broadcast frame. */
export const PACKET_BROADCAST = 1;
/** Multicast frame. */
export const PACKET_MULTICAST = 2;
/** Frame addressed to another host (seen in promiscuous mode or on a tap). */
export const PACKET_OTHERHOST = 3;
/** Frame this host sent (looped back to packet sockets). */
export const PACKET_OUTGOING = 4;

/** EtherType meaning "every protocol" for AF_PACKET sockets. */
export const ETH_P_ALL = 0x0003;

// Message flags and poll events.
/** Non-blocking operation for this call only. */
export const MSG_DONTWAIT = 0x40;
/** recv: return the real length of a truncated datagram. */
export const MSG_TRUNC = 0x20;
/** Data to read. */
export const POLLIN = 0x1;
/** Writing will not block. */
export const POLLOUT = 0x4;
/** Error condition. */
export const POLLERR = 0x8;
/** Hang up. */
export const POLLHUP = 0x10;

/** Size of `struct sockaddr_ll`. */
export const SOCKADDR_LL_SIZE = 20;

/** Swaps a 16-bit value to network byte order. */
export function htons(v: number): number {
  return ((v & 0xff) << 8) | ((v >> 8) & 0xff);
}

/**
 * A `struct sockaddr_ll` for binding an AF_PACKET socket to an interface.
 *
 * @example
 * ```ts
 * import { ETH_P_ALL, sockaddrLl } from "./socket.ts";
 * const addr = sockaddrLl(3, ETH_P_ALL); // 20 bytes
 * ```
 */
export function sockaddrLl(ifindex: number, protocol: number): Uint8Array<ArrayBuffer> {
  const a = new Uint8Array(SOCKADDR_LL_SIZE);
  const v = new DataView(a.buffer);
  v.setUint16(0, AF_PACKET, true);
  v.setUint16(2, protocol, false);
  v.setInt32(4, ifindex, true);
  return a;
}

/** The fields of a `struct sockaddr_ll` that `recvfrom` fills in. */
export interface SockaddrLl {
  /** EtherType (host byte order). */
  protocol: number;
  /** Interface index. */
  ifindex: number;
  /** One of the PACKET_* values, e.g. {@linkcode PACKET_OUTGOING}. */
  pkttype: number;
}

/** Decodes a `struct sockaddr_ll`. */
export function parseSockaddrLl(a: Uint8Array): SockaddrLl {
  const v = new DataView(a.buffer, a.byteOffset, a.byteLength);
  return { protocol: v.getUint16(2, false), ifindex: v.getInt32(4, true), pkttype: a[10] };
}

/** Index of a network interface by name; throws {@linkcode SysError} when there is none. */
export function ifIndex(name: string): number {
  const i = sock.if_nametoindex(cstr(name));
  if (i === 0) throw new SysError("if_nametoindex", name);
  return i;
}

/** Sets an integer socket option; throws {@linkcode SysError} on failure. */
export function setIntOption(fd: number, level: number, name: number, value: number): void {
  const v = new Int32Array([value]);
  check(
    sock.setsockopt(fd, level, name, new Uint8Array(v.buffer), 4),
    "setsockopt",
    `level ${level} option ${name}`,
  );
}

/** Reads an integer socket option; throws {@linkcode SysError} on failure. */
export function getIntOption(fd: number, level: number, name: number): number {
  const v = new Int32Array(1);
  const len = new Uint32Array([4]);
  check(
    sock.getsockopt(fd, level, name, new Uint8Array(v.buffer), new Uint8Array(len.buffer)),
    "getsockopt",
    `level ${level} option ${name}`,
  );
  return v[0];
}
