/**
 * A scripted vfio-user server for the client's unit tests, run as a Worker (so it serves
 * while the test's thread blocks in the client's synchronous calls). It listens on the
 * socket path it is sent, accepts one client and serves it with plain FFI socket calls
 * (independent of the client's own ffi/unix_socket.ts), so it can misbehave on purpose.
 *
 * Start it with `{ path, mode?, options? }`. Mode "script" (the default) answers:
 *
 * - VERSION: 0.1 with max_data_xfer_size 8 (so the client must split larger accesses);
 * - REGION_READ: bytes (offset + i) & 0xff, refusing counts above 8 with EINVAL; a read
 *   at offset 0x40 is preceded by a stale reply (another message ID) and a server-to-client
 *   DMA_READ command, whose answer it reports to the test;
 * - REGION_WRITE: records the data (reported to the test), answers the access header;
 * - DMA_MAP: an error reply, errno 17 (EEXIST);
 * - DEVICE_RESET: half a reply header, then it closes the connection.
 *
 * Mode "device" serves a minimal PCI function that `VfioUserDevice.open` accepts: 9
 * regions (config space 256 bytes, read and written for real; BAR4 16 KiB, 64-bit,
 * mmap-able from a memfd sent with its REGION_INFO, with a sparse mmap capability when
 * `options.sparse` lists areas), 5 IRQ types (3 MSI-X vectors), DEVICE_RESET, DMA_MAP,
 * SET_IRQS; max_data_xfer_size 1 MiB. {@linkcode DeviceOptions} make it misbehave.
 *
 * A "device" server keeps its fds (connection, eventfd, memfd) after the client left, so
 * that a test counting /proc/self/fd sees only the client's, until it is sent
 * `{ release: true }`.
 *
 * Messages to the test: `{ listening: true }`, `{ write: {offset, data} }`,
 * `{ clientAnswer: {flags, errorNo} }`, `{ stalled: true }`, `{ closed: true }`,
 * `{ released: true }`, `{ error }`.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import { cstr, libc, MFD_CLOEXEC } from "../../ffi/libc.ts";
import {
  AF_UNIX,
  check,
  errno,
  SCM_RIGHTS,
  sock,
  SOCK_CLOEXEC,
  SOCK_STREAM,
  SOL_SOCKET,
} from "../../ffi/socket.ts";

/** How a "device" mode server misbehaves. */
export interface DeviceOptions {
  /** Sparse mmap areas of BAR4, [offset, size] (bigint: u64 on the wire). */
  sparse?: [bigint, bigint][];
  /** Copies of one eventfd sent with every reply but BAR4's REGION_INFO. */
  replyFds?: number;
  /** Copies of that eventfd sent with the DEVICE_RESET reply (> 16: more than fit). */
  resetFds?: number;
  /** Send the DEVICE_RESET reply one byte at a time, each byte with this many copies. */
  resetFdsPerByte?: number;
  /** Stop reading (and answering) at the first command of this number. */
  stallAt?: number;
  /** A malformed reply: see the switch in `device()`. */
  malform?:
    | "shortDeviceInfo"
    | "shortRegionInfo"
    | "capabilityLoop"
    | "shortIrqInfo"
    | "readCount";
}

const HEADER = 16;

function header(id: number, cmd: number, size: number, flags: number, errorNo = 0): Uint8Array {
  const b = new Uint8Array(HEADER);
  const v = new DataView(b.buffer);
  v.setUint16(0, id, true);
  v.setUint16(2, cmd, true);
  v.setUint32(4, size, true);
  v.setUint32(8, flags, true);
  v.setUint32(12, errorNo, true);
  return b;
}

function concat(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function reply(id: number, cmd: number, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  return concat(header(id, cmd, HEADER + payload.length, 1), payload);
}

/** One accepted connection, read and written with blocking FFI calls. */
class Conn {
  constructor(readonly fd: number) {}

  /** `n` bytes, or null at EOF (fds the client sent along are dropped by recv). */
  readExact(n: number): Uint8Array<ArrayBuffer> | null {
    const b = new Uint8Array(n);
    for (let got = 0; got < n;) {
      const r = Number(sock.recvfrom(this.fd, b.subarray(got), BigInt(n - got), 0, null, null));
      if (r === 0) return null;
      if (r < 0) {
        if (errno() === 4) continue;
        throw new Error(`recv: errno ${errno()}`);
      }
      got += r;
    }
    return b;
  }

  /** Writes `b`; `fds` go with its first byte in one SCM_RIGHTS message (any number). */
  write(b: Uint8Array, fds: number[] = []): void {
    let at = 0;
    if (fds.length) at = this.#sendmsg(b, fds);
    while (at < b.length) {
      const rest = b.slice(at);
      const r = Number(sock.sendto(this.fd, rest, BigInt(rest.length), 0x4000, null, 0));
      if (r < 0) throw new Error(`send: errno ${errno()}`);
      at += r;
    }
  }

  #sendmsg(b: Uint8Array, fds: number[]): number {
    const data = new Uint8Array(new ArrayBuffer(b.length));
    data.set(b);
    const ctl = new Uint8Array(new ArrayBuffer(16 + ((4 * fds.length + 7) & ~7)));
    const c = new DataView(ctl.buffer);
    c.setBigUint64(0, BigInt(16 + 4 * fds.length), true);
    c.setInt32(8, SOL_SOCKET, true);
    c.setInt32(12, SCM_RIGHTS, true);
    fds.forEach((fd, i) => c.setInt32(16 + 4 * i, fd, true));
    const iov = new Uint8Array(new ArrayBuffer(16));
    const iv = new DataView(iov.buffer);
    iv.setBigUint64(0, addr(data), true);
    iv.setBigUint64(8, BigInt(data.length), true);
    const msg = new Uint8Array(new ArrayBuffer(56));
    const m = new DataView(msg.buffer);
    m.setBigUint64(16, addr(iov), true);
    m.setBigUint64(24, 1n, true);
    m.setBigUint64(32, addr(ctl), true);
    m.setBigUint64(40, BigInt(ctl.length), true);
    const r = Number(sock.sendmsg(this.fd, msg, 0x4000));
    if (r < 0) throw new Error(`sendmsg: errno ${errno()}`);
    return r;
  }

  close(): void {
    libc.close(this.fd);
  }
}

function addr(b: Uint8Array<ArrayBuffer>): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(b)));
}

function acceptOne(path: string): Conn {
  const p = cstr(path);
  const sa = new Uint8Array(2 + p.length);
  sa[0] = AF_UNIX;
  sa.set(p, 2);
  const lfd = check(sock.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket");
  check(sock.bind(lfd, sa, sa.length), "bind", path);
  check(sock.listen(lfd, 1), "listen", path);
  self.postMessage({ listening: true });
  const fd = check(sock.accept(lfd, null, null), "accept", path);
  libc.close(lfd);
  return new Conn(fd);
}

/** The next command: header fields and payload, or null at EOF. */
function next(conn: Conn, stallAt = -1) {
  const h = conn.readExact(HEADER);
  if (!h) return null;
  const v = new DataView(h.buffer);
  const cmd = v.getUint16(2, true);
  if (cmd === stallAt) return "stall" as const;
  const payload = conn.readExact(v.getUint32(4, true) - HEADER);
  if (!payload) return null;
  return {
    id: v.getUint16(0, true),
    cmd,
    flags: v.getUint32(8, true),
    errorNo: v.getUint32(12, true),
    payload,
    pv: new DataView(payload.buffer),
  };
}

function script(conn: Conn): void {
  for (;;) {
    const m = next(conn);
    if (m === null || m === "stall") break;
    const { id, cmd, flags, payload, pv } = m;
    if ((flags & 0xf) === 1) { // the client's answer to our DMA_READ
      self.postMessage({ clientAnswer: { flags, errorNo: m.errorNo } });
      continue;
    }
    switch (cmd) {
      case 1: { // VERSION
        const json = new TextEncoder().encode(
          '{"capabilities":{"max_msg_fds":1,"max_data_xfer_size":8}}\0',
        );
        conn.write(reply(id, 1, concat(new Uint8Array([0, 0, 1, 0]), json)));
        break;
      }
      case 9: { // REGION_READ
        const offset = Number(pv.getBigUint64(0, true)), count = pv.getUint32(12, true);
        if (count > 8) {
          conn.write(header(id, 9, HEADER, 0x21, 22));
          break;
        }
        if (offset === 0x40) {
          // A stale reply, then a server-to-client DMA_READ (address 0, count 4).
          const stale = concat(header(id ^ 0x8000, 9, HEADER + 16 + count, 1), payload);
          const dmaRead = new Uint8Array(16);
          new DataView(dmaRead.buffer).setBigUint64(8, 4n, true);
          conn.write(
            concat(stale, new Uint8Array(count), header(0x77, 11, HEADER + 16, 0), dmaRead),
          );
        }
        const data = new Uint8Array(count).map((_, i) => (offset + i) & 0xff);
        conn.write(reply(id, 9, concat(payload.subarray(0, 16), data)));
        break;
      }
      case 10: { // REGION_WRITE
        const offset = Number(pv.getBigUint64(0, true)), count = pv.getUint32(12, true);
        if (count > 8) {
          conn.write(header(id, 10, HEADER, 0x21, 22));
          break;
        }
        self.postMessage({ write: { offset, data: [...payload.subarray(16)] } });
        if (!(flags & 0x10)) conn.write(reply(id, 10, payload.subarray(0, 16)));
        break;
      }
      case 2: // DMA_MAP
        conn.write(header(id, 2, HEADER, 0x21, 17));
        break;
      case 13: // DEVICE_RESET: half a header, then hang up
        conn.write(header(id, 13, HEADER, 1).subarray(0, 8));
        return;
      default:
        conn.write(header(id, cmd, HEADER, 0x21, 95));
    }
  }
}

const BAR4_SIZE = 0x4000;

function regionInfo(index: number, o: DeviceOptions): Uint8Array {
  const sparse = index === 4 ? o.sparse : undefined;
  const caps = sparse ? 16 + 16 * sparse.length : 0;
  const b = new Uint8Array(32 + caps);
  const v = new DataView(b.buffer);
  const size = index === 7 ? 256 : index === 4 ? BAR4_SIZE : 0;
  const flags = index === 4 ? 0x7 | (sparse ? 0x8 : 0) : size ? 0x3 : 0;
  v.setUint32(0, b.length, true);
  v.setUint32(4, flags, true);
  v.setUint32(8, index, true);
  v.setUint32(12, sparse ? 32 : 0, true);
  v.setBigUint64(16, BigInt(size), true);
  if (sparse) {
    v.setUint16(32, 1, true); // VFIO_REGION_INFO_CAP_SPARSE_MMAP, version 1, next 0
    v.setUint16(34, 1, true);
    v.setUint32(40, sparse.length, true);
    sparse.forEach(([off, len], i) => {
      v.setBigUint64(48 + 16 * i, off, true);
      v.setBigUint64(56 + 16 * i, len, true);
    });
  }
  if (o.malform === "capabilityLoop" && index === 4) {
    v.setUint32(4, flags | 0x8, true);
    v.setUint32(12, 32, true);
    const looped = concat(b.subarray(0, 32), new Uint8Array(16));
    new DataView(looped.buffer).setUint32(0, looped.length, true);
    new DataView(looped.buffer).setUint32(36, 32, true); // next: itself
    return looped;
  }
  if (o.malform === "shortRegionInfo" && index === 4) return b.subarray(0, 20);
  return b;
}

/** fds the server keeps until the test sends `{ release: true }`, so fd counts hold still. */
const held: number[] = [];

function device(conn: Conn, o: DeviceOptions): void {
  const efd = libc.eventfd(0, 0o2000000);
  const memfd = libc.memfd_create(cstr("fake-bar4"), MFD_CLOEXEC);
  held.push(efd, memfd);
  libc.ftruncate(memfd, BigInt(BAR4_SIZE));
  const copies = (n = 0) => new Array<number>(n).fill(efd);
  const config = new Uint8Array(256);
  const cv = new DataView(config.buffer);
  cv.setUint16(0, 0x1af4, true);
  cv.setUint16(2, 0x1041, true);
  cv.setUint32(0x20, 0x4, true); // BAR4: 64-bit memory BAR
  for (;;) {
    {
      const m = next(conn, o.stallAt);
      if (m === null) break;
      if (m === "stall") {
        self.postMessage({ stalled: true });
        // Read nothing more, keep the connection: the client's sends fill the socket.
        for (;;) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60_000);
      }
      const { id, cmd, pv, payload } = m;
      const fds = copies(o.replyFds);
      switch (cmd) {
        case 1: { // VERSION
          const json = new TextEncoder().encode(
            '{"capabilities":{"max_msg_fds":8,"max_data_xfer_size":1048576}}\0',
          );
          conn.write(reply(id, 1, concat(new Uint8Array([0, 0, 1, 0]), json)), fds);
          break;
        }
        case 4: { // DEVICE_GET_INFO: PCI, reset; 9 regions, 5 IRQ types
          const b = new Uint8Array(16);
          const v = new DataView(b.buffer);
          v.setUint32(0, 16, true);
          v.setUint32(4, 3, true);
          v.setUint32(8, 9, true);
          v.setUint32(12, 5, true);
          const body = o.malform === "shortDeviceInfo" ? b.subarray(0, 8) : b;
          conn.write(reply(id, 4, body), fds);
          break;
        }
        case 5: { // DEVICE_GET_REGION_INFO
          const index = pv.getUint32(8, true);
          const info = regionInfo(index, o);
          conn.write(reply(id, 5, info), index === 4 ? [memfd] : fds);
          break;
        }
        case 7: { // DEVICE_GET_IRQ_INFO: 3 vectors of each type, eventfd capable
          const b = new Uint8Array(16);
          const v = new DataView(b.buffer);
          v.setUint32(0, 16, true);
          v.setUint32(4, 1, true);
          v.setUint32(8, pv.getUint32(8, true), true);
          v.setUint32(12, 3, true);
          conn.write(reply(id, 7, o.malform === "shortIrqInfo" ? b.subarray(0, 8) : b), fds);
          break;
        }
        case 9: { // REGION_READ: config space for real, zeros elsewhere
          const offset = Number(pv.getBigUint64(0, true));
          const region = pv.getUint32(8, true), count = pv.getUint32(12, true);
          const data = region === 7 ? config.slice(offset, offset + count) : new Uint8Array(count);
          const access = payload.slice(0, 16);
          if (o.malform === "readCount" && region === 2) {
            new DataView(access.buffer).setUint32(12, count + 4, true);
          }
          conn.write(reply(id, 9, concat(access, data)), fds);
          break;
        }
        case 10: { // REGION_WRITE
          const offset = Number(pv.getBigUint64(0, true));
          if (pv.getUint32(8, true) === 7) config.set(payload.subarray(16), offset);
          if (!(m.flags & 0x10)) conn.write(reply(id, 10, payload.subarray(0, 16)), fds);
          break;
        }
        case 13: { // DEVICE_RESET
          const r = reply(id, 13);
          if (o.resetFdsPerByte) {
            for (let i = 0; i < r.length; i++) {
              conn.write(r.subarray(i, i + 1), copies(o.resetFdsPerByte));
            }
          } else {
            conn.write(r, copies(o.resetFds ?? o.replyFds));
          }
          break;
        }
        default: // DMA_MAP, DMA_UNMAP, SET_IRQS: done
          conn.write(reply(id, cmd), fds);
      }
    }
  }
}

self.onmessage = (
  e: MessageEvent<
    { path: string; mode?: "script" | "device"; options?: DeviceOptions; release?: boolean }
  >,
) => {
  if (e.data.release) {
    for (const fd of held.splice(0)) libc.close(fd);
    self.postMessage({ released: true });
    return;
  }
  try {
    const conn = acceptOne(e.data.path);
    try {
      if (e.data.mode === "device") device(conn, e.data.options ?? {});
      else script(conn);
    } finally {
      // The script's hang-up closes at once; a device keeps its end until released.
      if (e.data.mode === "device") held.push(conn.fd);
      else conn.close();
    }
  } catch (err) {
    self.postMessage({ error: String(err) });
  }
  self.postMessage({ closed: true });
};
