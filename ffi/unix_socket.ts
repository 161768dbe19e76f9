/**
 * A connected AF_UNIX stream socket through Deno FFI, with file descriptor passing
 * (SCM_RIGHTS, unix(7)) both ways and blocking reads bounded by a poll(2) timeout. The
 * vfio-user client uses it: DMA memory (memfd) goes to the server with DMA_MAP, region fds
 * may come back with DEVICE_GET_REGION_INFO.
 *
 * Struct layouts are those of x86-64 glibc: struct msghdr (56 bytes), struct iovec (16),
 * struct cmsghdr (16, data aligned to 8), struct sockaddr_un (110), struct pollfd (8),
 * struct timeval (16). Writes pass MSG_NOSIGNAL, so a peer that went away gives EPIPE
 * rather than SIGPIPE, and MSG_DONTWAIT, so a peer that stopped reading is waited for
 * with poll(2) up to a deadline instead of forever (the fd's own flags stay blocking:
 * other threads may send on it too).
 *
 * @module
 */

import { lazyLibrary } from "./lazy_library.ts";
import { check, cstr, errno, SysError } from "./libc.ts";

const sys = lazyLibrary("libc.so.6", {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  sendmsg: { parameters: ["i32", "buffer", "i32"], result: "isize" },
  recvmsg: { parameters: ["i32", "buffer", "i32"], result: "isize" },
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  stat: { parameters: ["buffer", "buffer"], result: "i32" },
});

/** AF_UNIX (<bits/socket.h>). */
export const AF_UNIX = 1;
/** SOCK_STREAM. */
export const SOCK_STREAM = 1;
/** SOCK_CLOEXEC. */
export const SOCK_CLOEXEC = 0o2000000;
/** SOL_SOCKET, the cmsg level of SCM_RIGHTS. */
export const SOL_SOCKET = 1;
/** SCM_RIGHTS: the cmsg carries file descriptors. */
export const SCM_RIGHTS = 1;
/** MSG_NOSIGNAL: no SIGPIPE when the peer is gone (EPIPE instead). */
export const MSG_NOSIGNAL = 0x4000;
/** MSG_DONTWAIT: this call does not block (EAGAIN instead). */
export const MSG_DONTWAIT = 0x40;
/** MSG_CMSG_CLOEXEC: received fds get FD_CLOEXEC. */
export const MSG_CMSG_CLOEXEC = 0x40000000;
/** msg_flags bit: control data was truncated (fds lost). */
export const MSG_CTRUNC = 0x8;
/** poll event: data to read. */
export const POLLIN = 0x1;
/** poll event: room to write. */
export const POLLOUT = 0x4;
/** poll event: error. */
export const POLLERR = 0x8;
/** poll event: hang-up. */
export const POLLHUP = 0x10;
/** Most bytes of a path in struct sockaddr_un (108 with the NUL). */
export const UNIX_PATH_MAX = 107;
/** Most fds received in one recvmsg (the control buffer's room). */
export const MAX_RECV_FDS = 16;

/** errno: interrupted system call. */
export const EINTR = 4;
/** errno: try again (a non-blocking call found no room; a timed connect(2) timed out). */
export const EAGAIN = 11;
/** errno: timed out (a send or connect that did not complete before its deadline). */
export const ETIMEDOUT = 110;
/** errno: broken pipe (peer closed). */
export const EPIPE = 32;
/** errno: connection reset by peer. */
export const ECONNRESET = 104;
/** errno: connection refused (socket file without a listener). */
export const ECONNREFUSED = 111;
/** errno: file name too long. */
export const ENAMETOOLONG = 36;
/** errno: not a data message (here: control data truncated). */
export const EBADMSG = 74;
/** errno: socket operation on non-socket. */
export const ENOTSOCK = 88;

/** shutdown(2) `how`: no more reads nor writes, on either side of the connection. */
export const SHUT_RDWR = 2;

/** SO_SNDTIMEO: send timeout, which also bounds an AF_UNIX connect(2) (struct timeval). */
const SO_SNDTIMEO = 21;
const SIZEOF_STAT = 144;
const STAT_DEV = 0; // st_dev, u64, in x86-64 struct stat
const STAT_INO = 8; // st_ino, u64
const STAT_MODE = 24; // st_mode
const S_IFMT = 0o170000;
const S_IFSOCK = 0o140000;
const SIZEOF_MSGHDR = 56;
const SIZEOF_IOVEC = 16;
const CMSG_HDR = 16;

/** CMSG_SPACE(n): room for n bytes of cmsg data, header included, 8-aligned. */
function cmsgSpace(n: number): number {
  return CMSG_HDR + ((n + 7) & ~7);
}

function address(b: Uint8Array): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(b as Uint8Array<ArrayBuffer>)));
}

/** What one {@linkcode UnixStream.recvInto} got. */
export interface Received {
  /** Bytes read (0 at EOF: the peer closed the connection). */
  n: number;
  /** File descriptors that came with them (the caller owns and must close them). */
  fds: number[];
}

/**
 * One connected AF_UNIX stream socket. Buffers (msghdr, iovec, control, receive) are
 * allocated outside the JS heap once per socket, so their addresses stay valid in the
 * structs.
 *
 * @example
 * ```ts ignore
 * import { UnixStream } from "./unix_socket.ts";
 * const s = UnixStream.connect("/tmp/net0.sock");
 * s.send(new Uint8Array([1, 2, 3]));
 * const r = s.recvInto(new Uint8Array(new ArrayBuffer(4096)), 1000); // null on timeout
 * s.close();
 * ```
 */
export class UnixStream {
  /** The socket's file descriptor (-1 once closed). */
  fd: number;
  readonly #msg = new Uint8Array(new ArrayBuffer(SIZEOF_MSGHDR));
  readonly #msgView = new DataView(this.#msg.buffer);
  readonly #iov = new Uint8Array(new ArrayBuffer(SIZEOF_IOVEC));
  readonly #iovView = new DataView(this.#iov.buffer);
  readonly #ctl = new Uint8Array(new ArrayBuffer(cmsgSpace(4 * MAX_RECV_FDS)));
  readonly #ctlView = new DataView(this.#ctl.buffer);
  readonly #pfd = new Uint8Array(new ArrayBuffer(8));
  readonly #pfdView = new DataView(this.#pfd.buffer);
  #sbuf = new Uint8Array(new ArrayBuffer(4096));

  private constructor(fd: number) {
    this.fd = fd;
  }

  /**
   * Connects to the socket at `path`, waiting at most `timeoutMs` for a listener whose
   * backlog is full (it accepts nobody). Throws {@linkcode SysError} with connect(2)'s errno
   * (ENOENT: no such file; ECONNREFUSED: nobody listens; ENOTSOCK; EACCES), ETIMEDOUT when
   * the listener took nobody in time, or ENAMETOOLONG when the path does not fit in
   * sockaddr_un.
   */
  static connect(path: string, timeoutMs = Infinity): UnixStream {
    const p = cstr(path);
    if (p.length - 1 > UNIX_PATH_MAX) throw new SysError("connect", path, ENAMETOOLONG);
    const addr = new Uint8Array(2 + p.length);
    addr[0] = AF_UNIX; // sun_family, u16 little-endian
    addr.set(p, 2);
    const fd = check(sys.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket", "AF_UNIX");
    // An AF_UNIX stream connect(2) sleeps while the listener's backlog is full, bounded only
    // by SO_SNDTIMEO (net/unix/af_unix.c, unix_stream_connect); it is reset afterwards, as
    // other threads may send on this fd and expect blocking sends.
    const timed = Number.isFinite(timeoutMs);
    if (timed && !setSendTimeout(fd, timeoutMs)) {
      const e = errno();
      sys.close(fd);
      throw new SysError("connect", path, e);
    }
    for (;;) {
      if (sys.connect(fd, addr, addr.length) === 0) {
        if (timed) setSendTimeout(fd, 0);
        return new UnixStream(fd);
      }
      const e = errno();
      if (e === EINTR) continue;
      sys.close(fd);
      if (e === EAGAIN) throw new SysError("connect", path, ETIMEDOUT);
      // Linux answers ECONNREFUSED for a file that is not a socket too: tell them apart.
      if (e === ECONNREFUSED && isSocketFile(path) === false) {
        throw new SysError("connect", path, ENOTSOCK);
      }
      throw new SysError("connect", path, e);
    }
  }

  #live(op: string): void {
    if (this.fd < 0) throw new SysError(op, "closed socket", 9 /* EBADF */);
  }

  /**
   * Writes all of `data`; `fds` travel as one SCM_RIGHTS message with the first byte.
   * Waits at most `timeoutMs` in all for the peer to make room. Throws
   * {@linkcode SysError}: EPIPE/ECONNRESET when the peer is gone, ETIMEDOUT when it took
   * too little in time (part of `data` may have gone: the stream is then out of step).
   */
  send(data: Uint8Array, fds: readonly number[] = [], timeoutMs = Infinity): void {
    this.#live("sendmsg");
    let done = 0;
    let deadline = 0; // set at the first full buffer: a send that fits reads no clock
    if (fds.length > 0) {
      for (;;) {
        const n = this.#sendWithFds(data, fds);
        if (n >= 0) {
          done = n;
          break;
        }
        deadline ||= performance.now() + timeoutMs;
        this.#waitWritable(deadline, data.length - done, timeoutMs);
      }
    }
    while (done < data.length) {
      const rest = done === 0 ? data : data.subarray(done);
      const n = Number(
        sys.send(
          this.fd,
          rest as Uint8Array<ArrayBuffer>,
          BigInt(rest.length),
          MSG_NOSIGNAL | MSG_DONTWAIT,
        ),
      );
      if (n < 0) {
        const e = errno();
        if (e === EINTR) continue;
        if (e !== EAGAIN) throw new SysError("send", "", e);
        deadline ||= performance.now() + timeoutMs;
        this.#waitWritable(deadline, data.length - done, timeoutMs);
        continue;
      }
      done += n;
    }
  }

  /** sendmsg(2) of `data` with `fds`: bytes sent, or -1 when the buffer is full (EAGAIN). */
  #sendWithFds(data: Uint8Array, fds: readonly number[]): number {
    if (fds.length > MAX_RECV_FDS) throw new RangeError(`too many fds: ${fds.length}`);
    if (this.#sbuf.length < data.length) {
      this.#sbuf = new Uint8Array(new ArrayBuffer(data.length));
    }
    this.#sbuf.set(data);
    this.#iovView.setBigUint64(0, address(this.#sbuf), true);
    this.#iovView.setBigUint64(8, BigInt(data.length), true);
    const dataLen = 4 * fds.length;
    const ctlLen = cmsgSpace(dataLen);
    this.#ctl.fill(0);
    this.#ctlView.setBigUint64(0, BigInt(CMSG_HDR + dataLen), true); // cmsg_len = CMSG_LEN
    this.#ctlView.setInt32(8, SOL_SOCKET, true);
    this.#ctlView.setInt32(12, SCM_RIGHTS, true);
    fds.forEach((fd, i) => this.#ctlView.setInt32(CMSG_HDR + 4 * i, fd, true));
    this.#setMsghdr(ctlLen);
    for (;;) {
      const n = Number(sys.sendmsg(this.fd, this.#msg, MSG_NOSIGNAL | MSG_DONTWAIT));
      if (n >= 0) return n;
      const e = errno();
      if (e === EAGAIN) return -1;
      if (e !== EINTR) throw new SysError("sendmsg", "", e);
    }
  }

  /** Polls for room to write until `deadline`; past it, throws ETIMEDOUT. */
  #waitWritable(deadline: number, left: number, timeoutMs: number): void {
    const v = this.#pfdView;
    for (;;) {
      const ms = Math.ceil(deadline - performance.now());
      if (ms <= 0) {
        throw new SysError("send", `${left} bytes not taken within ${timeoutMs} ms`, ETIMEDOUT);
      }
      v.setInt32(0, this.fd, true);
      v.setInt16(4, POLLOUT, true);
      v.setInt16(6, 0, true);
      const r = sys.poll(this.#pfd, 1n, Math.min(ms, 0x7fffffff));
      if (r > 0) return; // POLLOUT, or POLLERR/POLLHUP: the next send tells which
      if (r < 0) {
        const e = errno();
        if (e !== EINTR) throw new SysError("poll", "", e);
      }
    }
  }

  #setMsghdr(controlLen: number): void {
    const m = this.#msgView;
    m.setBigUint64(0, 0n, true); // msg_name
    m.setUint32(8, 0, true); // msg_namelen
    m.setBigUint64(16, address(this.#iov), true); // msg_iov
    m.setBigUint64(24, 1n, true); // msg_iovlen
    m.setBigUint64(32, controlLen ? address(this.#ctl) : 0n, true); // msg_control
    m.setBigUint64(40, BigInt(controlLen), true); // msg_controllen
    m.setInt32(48, 0, true); // msg_flags
  }

  /**
   * Waits up to `timeoutMs` for data (poll), then reads into `into` (which must be backed
   * by an ArrayBuffer outside the JS heap, e.g. `new Uint8Array(new ArrayBuffer(n))`, as
   * its address goes into struct iovec) together with any fds. Returns null on timeout;
   * `n` is 0 at EOF. Throws {@linkcode SysError} on errors (ECONNRESET when the peer went
   * away with data unread).
   */
  recvInto(into: Uint8Array, timeoutMs: number): Received | null {
    this.#live("recvmsg");
    if (!this.#waitReadable(timeoutMs)) return null;
    this.#iovView.setBigUint64(0, address(into), true);
    this.#iovView.setBigUint64(8, BigInt(into.length), true);
    this.#ctl.fill(0);
    this.#setMsghdr(this.#ctl.length);
    let n: number;
    for (;;) {
      n = Number(sys.recvmsg(this.fd, this.#msg, MSG_CMSG_CLOEXEC));
      if (n >= 0) break;
      const e = errno();
      if (e !== EINTR) throw new SysError("recvmsg", "", e);
    }
    const fds = this.#takeFds();
    if (this.#msgView.getInt32(48, true) & MSG_CTRUNC) {
      closeFds(fds);
      throw new SysError("recvmsg", `more than ${MAX_RECV_FDS} fds in one message`, EBADMSG);
    }
    return { n, fds };
  }

  #takeFds(): number[] {
    const fds: number[] = [];
    const controlLen = Number(this.#msgView.getBigUint64(40, true));
    for (let at = 0; at + CMSG_HDR <= controlLen;) {
      const len = Number(this.#ctlView.getBigUint64(at, true));
      if (len < CMSG_HDR) break;
      const level = this.#ctlView.getInt32(at + 8, true);
      const type = this.#ctlView.getInt32(at + 12, true);
      if (level === SOL_SOCKET && type === SCM_RIGHTS) {
        for (let o = at + CMSG_HDR; o + 4 <= at + len; o += 4) {
          fds.push(this.#ctlView.getInt32(o, true));
        }
      }
      at += cmsgSpace(len - CMSG_HDR);
    }
    return fds;
  }

  #waitReadable(timeoutMs: number): boolean {
    const deadline = performance.now() + timeoutMs;
    const v = this.#pfdView;
    for (;;) {
      v.setInt32(0, this.fd, true);
      v.setInt16(4, POLLIN, true);
      v.setInt16(6, 0, true);
      const left = Math.max(0, Math.ceil(deadline - performance.now()));
      const r = sys.poll(this.#pfd, 1n, Math.min(left, 0x7fffffff));
      if (r > 0) return true; // POLLIN, POLLHUP or POLLERR: recvmsg tells which
      if (r === 0) {
        if (performance.now() >= deadline) return false;
        continue;
      }
      const e = errno();
      if (e !== EINTR) throw new SysError("poll", "", e);
    }
  }

  /**
   * Shuts the connection down both ways (shutdown(2), SHUT_RDWR) but keeps the fd number:
   * other threads that still send on it get EPIPE, and the number cannot be reused by an
   * unrelated open() until {@linkcode UnixStream.close}. Idempotent.
   */
  shutdown(): void {
    if (this.fd >= 0) sys.shutdown(this.fd, SHUT_RDWR);
  }

  /** Closes the socket. Idempotent. */
  close(): void {
    if (this.fd < 0) return;
    sys.close(this.fd);
    this.fd = -1;
  }
}

/** Sets SO_SNDTIMEO of `fd` to `ms` (0: wait forever); false when setsockopt fails. */
function setSendTimeout(fd: number, ms: number): boolean {
  const tv = new BigInt64Array(2); // struct timeval: tv_sec, tv_usec
  const us = ms > 0 ? Math.max(1000, Math.round(ms * 1000)) : 0; // 0 would mean forever
  tv[0] = BigInt(Math.floor(us / 1e6));
  tv[1] = BigInt(us % 1e6);
  return sys.setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, new Uint8Array(tv.buffer), 16) === 0;
}

/**
 * Whether `path` is a socket file (stat(2)); null when it cannot be stat'ed.
 *
 * @example
 * ```ts
 * import { isSocketFile } from "./unix_socket.ts";
 * isSocketFile("/proc/self/stat"); // false
 * ```
 */
export function isSocketFile(path: string): boolean | null {
  const st = new Uint8Array(SIZEOF_STAT);
  if (sys.stat(cstr(path), st) !== 0) return null;
  return (new DataView(st.buffer).getUint32(STAT_MODE, true) & S_IFMT) === S_IFSOCK;
}

/**
 * The identity of the file at `path` after following links (stat(2): st_dev and st_ino,
 * as "dev:ino"), or null when it cannot be stat'ed. Two paths with one identity name one
 * file.
 *
 * @example
 * ```ts
 * import { fileIdentity } from "./unix_socket.ts";
 * fileIdentity("/proc/self/..") === fileIdentity("/proc"); // true
 * ```
 */
export function fileIdentity(path: string): string | null {
  const st = new Uint8Array(SIZEOF_STAT);
  if (sys.stat(cstr(path), st) !== 0) return null;
  const v = new DataView(st.buffer);
  return `${v.getBigUint64(STAT_DEV, true)}:${v.getBigUint64(STAT_INO, true)}`;
}

/**
 * Closes file descriptors received with a message that nobody will use.
 *
 * @example
 * ```ts
 * import { closeFds } from "./unix_socket.ts";
 * closeFds([]); // nothing to do
 * ```
 */
export function closeFds(fds: readonly number[]): void {
  for (const fd of fds) sys.close(fd);
}
