/**
 * A vfio-user client connection: connects to a server's socket, negotiates the version
 * ("VFIO_USER_VERSION"), sends commands and matches replies to them by message ID
 * ("Header"), turns error replies into errors naming the command and errno, splits region
 * reads and writes at the server's max_data_xfer_size ("Read and Write Operations"), and
 * reports a server that went away ("Server Disconnection") or stopped answering as a
 * {@linkcode DriverError} with code TRANSPORT.
 *
 * Calls block the calling thread until the reply arrives (poll with a timeout): the
 * {@linkcode PciDevice} interface above is synchronous, like MMIO.
 *
 * @module
 */

import { strerror, SysError } from "../../ffi/libc.ts";
import {
  closeFds,
  ECONNRESET,
  EPIPE,
  MAX_RECV_FDS,
  type Received,
  UnixStream,
} from "../../ffi/unix_socket.ts";
import { DriverError } from "../errors.ts";
import {
  commandName,
  decodeHeader,
  decodeVersion,
  DEFAULT_MAX_DATA_XFER_SIZE,
  encodeHeader,
  encodeRegionAccessInto,
  encodeVersion,
  FLAG_ERROR,
  FLAG_NO_REPLY,
  FLAG_TYPE_COMMAND,
  FLAG_TYPE_REPLY,
  HEADER_SIZE,
  isReply,
  type MessageHeader,
  REGION_ACCESS_SIZE,
  type VersionCapabilities,
  VFIO_USER_MAJOR,
  VFIO_USER_MINOR,
  VFIO_USER_REGION_READ,
  VFIO_USER_REGION_WRITE,
  VFIO_USER_VERSION,
} from "./protocol.ts";

/** errno the client answers server-to-client commands with (it serves no DMA_READ/WRITE). */
const EOPNOTSUPP = 95;
/** Largest message this client accepts (a 1 MiB region read plus headers). */
const OWN_MAX_DATA_XFER_SIZE = DEFAULT_MAX_DATA_XFER_SIZE;

/** Options of {@linkcode VfioUserClient.connect}. */
export interface ClientOptions {
  /** How long to wait for each reply (default 5000 ms). */
  timeoutMs?: number;
  /**
   * This client's max_data_xfer_size, announced in VERSION (default and at most 1 MiB):
   * region reads and writes are split at the smaller of it and the server's.
   */
  maxDataXferSize?: number;
}

/** A reply to a command. */
export interface Reply {
  /** Its header. */
  header: MessageHeader;
  /** The bytes after the header (a copy the caller owns). */
  payload: Uint8Array;
  /** File descriptors that came with it (the caller owns and must close them). */
  fds: number[];
}

/**
 * The server answered a command with an error reply ("Header": Error bit and errno).
 *
 * @example
 * ```ts
 * import { VfioUserCommandError } from "./client.ts";
 * const e = new VfioUserCommandError("/run/net0.sock", 2, 17);
 * e.message; // "The vfio-user server at /run/net0.sock refused VFIO_USER_DMA_MAP: File exists (errno 17)."
 * ```
 */
export class VfioUserCommandError extends DriverError {
  /** The refused command. */
  readonly command: number;
  /** The errno of the reply (0 when the server gave none). */
  readonly errno: number;
  /** Creates the error. */
  constructor(socketPath: string, command: number, errno: number) {
    super(
      "DEVICE_REFUSED",
      `The vfio-user server at ${socketPath} refused ${commandName(command)}: ${
        errno ? `${strerror(errno)} (errno ${errno})` : "no errno given"
      }.`,
    );
    this.name = "VfioUserCommandError";
    this.command = command;
    this.errno = errno;
  }
}

/**
 * One connection to a vfio-user server.
 *
 * @example
 * ```ts ignore
 * import { VfioUserClient } from "./client.ts";
 * const c = VfioUserClient.connect("/tmp/net0.sock");
 * c.readSmall(7, 0, 2); // PCI vendor ID from config space (region 7)
 * c.close();
 * ```
 */
export class VfioUserClient {
  /** The server's socket path. */
  readonly socketPath: string;
  /** Capabilities the server announced in its VERSION reply. */
  readonly server: VersionCapabilities;
  /** Protocol version agreed on, e.g. "0.1". */
  readonly version: string;
  /** Largest `count` of one REGION_READ/WRITE: the smaller of both sides' limits. */
  readonly maxDataXferSize: number;
  readonly #timeoutMs: number;
  #sock: UnixStream | null;
  #gone: string | null = null;
  #nextId = 1;
  #in = new Uint8Array(new ArrayBuffer(65536));
  #inLen = 0;
  #pendingFds: number[] = [];
  // Hot path: one preallocated message for small region accesses.
  readonly #small = new Uint8Array(new ArrayBuffer(HEADER_SIZE + REGION_ACCESS_SIZE + 8));
  readonly #smallView = new DataView(this.#small.buffer);

  private constructor(path: string, sock: UnixStream, options: ClientOptions) {
    this.socketPath = path;
    this.#sock = sock;
    this.#timeoutMs = options.timeoutMs ?? 5000;
    const own = Math.min(options.maxDataXferSize ?? OWN_MAX_DATA_XFER_SIZE, OWN_MAX_DATA_XFER_SIZE);
    // "VFIO_USER_VERSION": propose 0.1 and our capabilities; the reply must keep the major
    // and may lower the minor.
    const reply = this.request(
      VFIO_USER_VERSION,
      encodeVersion({
        major: VFIO_USER_MAJOR,
        minor: VFIO_USER_MINOR,
        capabilities: { maxMsgFds: MAX_RECV_FDS, maxDataXferSize: own },
      }),
    );
    let v;
    try {
      v = decodeVersion(reply.payload);
    } catch (e) {
      throw new DriverError(
        "TRANSPORT",
        `The vfio-user server at ${path} sent a malformed VERSION reply (${
          (e as Error).message
        }): it does not speak vfio-user as QEMU 7.2 does.`,
      );
    } finally {
      closeFds(reply.fds);
    }
    if (v.major !== VFIO_USER_MAJOR || v.minor > VFIO_USER_MINOR) {
      throw new DriverError(
        "TRANSPORT",
        `The vfio-user server at ${path} speaks protocol ${v.major}.${v.minor}, this driver ${VFIO_USER_MAJOR}.${VFIO_USER_MINOR}: use a server built from libvfio-user of QEMU 7.2.`,
      );
    }
    this.version = `${v.major}.${v.minor}`;
    this.server = v.capabilities;
    this.maxDataXferSize = Math.max(1, Math.min(v.capabilities.maxDataXferSize, own));
  }

  /**
   * Connects to `socketPath` and negotiates the version. Connection errors are thrown as
   * the {@linkcode SysError} of connect(2) (the device layer words them for users).
   */
  static connect(socketPath: string, options: ClientOptions = {}): VfioUserClient {
    const sock = UnixStream.connect(socketPath);
    try {
      return new VfioUserClient(socketPath, sock, options);
    } catch (e) {
      sock.close();
      throw e;
    }
  }

  /** False once the server went away or {@linkcode VfioUserClient.close} ran. */
  get connected(): boolean {
    return this.#sock !== null;
  }

  /**
   * The socket's file descriptor (-1 once closed). Other threads of the process may send
   * posted (No_reply) messages of their own on it, e.g. a forwarding worker's queue
   * notifications: small messages go into a stream socket whole, and only this client
   * reads from it. It stays valid until {@linkcode VfioUserClient.close}.
   */
  get socketFd(): number {
    return this.#sock?.fd ?? -1;
  }

  #takeId(): number {
    const id = this.#nextId;
    this.#nextId = (id + 1) & 0xffff;
    return id;
  }

  /** The socket, or the TRANSPORT error that says why there is none. */
  #live(command: number): UnixStream {
    if (this.#sock) return this.#sock;
    throw new DriverError(
      "TRANSPORT",
      this.#gone ??
        `The vfio-user connection to ${this.socketPath} is closed: open the port again to use it (${
          commandName(command)
        }).`,
    );
  }

  /** The server went away: release the socket and describe it once for all later calls. */
  #lost(command: number, cause: unknown): DriverError {
    if (!this.#gone) {
      this.#gone = `The vfio-user server at ${this.socketPath} closed the connection during ${
        commandName(command)
      } (QEMU exited or was killed): restart it and open the port again.`;
    }
    this.#release();
    return new DriverError("TRANSPORT", this.#gone, { cause });
  }

  #release(): void {
    this.#sock?.close();
    this.#sock = null;
    closeFds(this.#pendingFds);
    this.#pendingFds = [];
    this.#inLen = 0;
  }

  #send(command: number, message: Uint8Array, fds: readonly number[]): void {
    const sock = this.#live(command);
    try {
      sock.send(message, fds);
    } catch (e) {
      if (e instanceof SysError && (e.errno === EPIPE || e.errno === ECONNRESET)) {
        throw this.#lost(command, e);
      }
      throw e;
    }
  }

  /**
   * Sends a command and waits for its reply; an error reply throws
   * {@linkcode VfioUserCommandError}. `fds` travel with the message (SCM_RIGHTS).
   */
  request(
    command: number,
    payload: Uint8Array = new Uint8Array(0),
    options: { fds?: readonly number[]; timeoutMs?: number } = {},
  ): Reply {
    const id = this.#takeId();
    const msg = new Uint8Array(HEADER_SIZE + payload.length);
    encodeHeader(msg, 0, {
      msgId: id,
      command,
      size: msg.length,
      flags: FLAG_TYPE_COMMAND,
      errorNo: 0,
    });
    msg.set(payload, HEADER_SIZE);
    this.#send(command, msg, options.fds ?? []);
    return this.#awaitReply(id, command, options.timeoutMs ?? this.#timeoutMs);
  }

  /**
   * Sends a command with the No_reply bit ("Command Concurrency"): the server runs it in
   * order with everything else but answers nothing, so an error it meets is not seen.
   */
  post(command: number, payload: Uint8Array = new Uint8Array(0)): void {
    const msg = new Uint8Array(HEADER_SIZE + payload.length);
    encodeHeader(msg, 0, {
      msgId: this.#takeId(),
      command,
      size: msg.length,
      flags: FLAG_TYPE_COMMAND | FLAG_NO_REPLY,
      errorNo: 0,
    });
    msg.set(payload, HEADER_SIZE);
    this.#send(command, msg, []);
  }

  #awaitReply(id: number, command: number, timeoutMs: number): Reply {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const m = this.#readMessage(command, deadline, timeoutMs);
      const h = m.header;
      if (!isReply(h.flags)) {
        // "Command Concurrency": server-to-client commands may arrive in between. This
        // client shares memory by fd, so it serves no DMA_READ/DMA_WRITE.
        closeFds(m.fds);
        if (!(h.flags & FLAG_NO_REPLY)) this.#replyError(h, EOPNOTSUPP);
        continue;
      }
      if (h.msgId !== id || h.command !== command) {
        closeFds(m.fds); // a late reply to a command that timed out
        continue;
      }
      if (h.flags & FLAG_ERROR) {
        closeFds(m.fds);
        throw new VfioUserCommandError(this.socketPath, command, h.errorNo);
      }
      return m;
    }
  }

  #replyError(h: MessageHeader, errno: number): void {
    const b = new Uint8Array(HEADER_SIZE);
    encodeHeader(b, 0, {
      msgId: h.msgId,
      command: h.command,
      size: HEADER_SIZE,
      flags: FLAG_TYPE_REPLY | FLAG_ERROR,
      errorNo: errno,
    });
    this.#send(h.command, b, []);
  }

  /** Reads the next whole message ("Header": its size field covers header and payload). */
  #readMessage(command: number, deadline: number, timeoutMs: number): Reply {
    for (;;) {
      if (this.#inLen >= HEADER_SIZE) {
        const size = new DataView(this.#in.buffer).getUint32(4, true);
        if (size < HEADER_SIZE || size > OWN_MAX_DATA_XFER_SIZE + 4096) {
          // "Header": the size covers the header; nothing this client asks for is larger
          // than a maximal region read. The stream cannot be resynchronised: drop it.
          this.#gone =
            `The vfio-user server at ${this.socketPath} sent a ${size}-byte message during ${
              commandName(command)
            }, which is no valid vfio-user message: restart it and open the port again.`;
          throw this.#lost(command, new Error(`message size ${size}`));
        }
        if (this.#inLen >= size) {
          const header = decodeHeader(this.#in);
          const payload = this.#in.slice(HEADER_SIZE, size);
          this.#in.copyWithin(0, size, this.#inLen);
          this.#inLen -= size;
          const fds = this.#pendingFds;
          this.#pendingFds = [];
          return { header, payload, fds };
        }
        if (size > this.#in.length) {
          const bigger = new Uint8Array(new ArrayBuffer(size));
          bigger.set(this.#in.subarray(0, this.#inLen));
          this.#in = bigger;
        }
      }
      const sock = this.#live(command);
      const left = deadline - performance.now();
      let r: Received | null;
      try {
        r = left > 0 ? sock.recvInto(this.#in.subarray(this.#inLen), left) : null;
      } catch (e) {
        if (e instanceof SysError && e.errno === ECONNRESET) throw this.#lost(command, e);
        throw e;
      }
      if (r === null) {
        throw new DriverError(
          "TRANSPORT",
          `The vfio-user server at ${this.socketPath} did not answer ${
            commandName(command)
          } within ${timeoutMs} ms: it is stuck or serves another client; restart it and open the port again.`,
        );
      }
      if (r.fds.length) this.#pendingFds.push(...r.fds);
      if (r.n === 0) throw this.#lost(command, new Error("EOF"));
      this.#inLen += r.n;
    }
  }

  /**
   * Reads `length` bytes of region `region` at `offset` ("VFIO_USER_REGION_READ"), in
   * pieces of at most {@linkcode VfioUserClient.maxDataXferSize}.
   */
  regionRead(region: number, offset: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    for (let done = 0; done < length;) {
      const n = Math.min(this.maxDataXferSize, length - done);
      const req = new Uint8Array(REGION_ACCESS_SIZE);
      encodeRegionAccessInto(req, 0, offset + done, region, n);
      const r = this.request(VFIO_USER_REGION_READ, req);
      closeFds(r.fds);
      const got = r.payload.length >= REGION_ACCESS_SIZE
        ? new DataView(r.payload.buffer).getUint32(12, true)
        : -1;
      if (got !== n || r.payload.length < REGION_ACCESS_SIZE + n) {
        throw this.#short("read", region, offset + done, n, got);
      }
      out.set(r.payload.subarray(REGION_ACCESS_SIZE, REGION_ACCESS_SIZE + n), done);
      done += n;
    }
    return out;
  }

  /**
   * Writes `data` to region `region` at `offset` ("VFIO_USER_REGION_WRITE"), in pieces of
   * at most {@linkcode VfioUserClient.maxDataXferSize}. With `posted`, the writes carry
   * No_reply (like PCI posted writes: errors go unseen, order is kept).
   */
  regionWrite(region: number, offset: number, data: Uint8Array, posted = false): void {
    for (let done = 0; done < data.length;) {
      const n = Math.min(this.maxDataXferSize, data.length - done);
      const req = new Uint8Array(REGION_ACCESS_SIZE + n);
      encodeRegionAccessInto(req, 0, offset + done, region, n);
      req.set(data.subarray(done, done + n), REGION_ACCESS_SIZE);
      if (posted) {
        this.post(VFIO_USER_REGION_WRITE, req);
      } else {
        const r = this.request(VFIO_USER_REGION_WRITE, req);
        closeFds(r.fds);
        const got = r.payload.length >= REGION_ACCESS_SIZE
          ? new DataView(r.payload.buffer).getUint32(12, true)
          : -1;
        if (got !== n) throw this.#short("write", region, offset + done, n, got);
      }
      done += n;
    }
  }

  #short(what: string, region: number, offset: number, n: number, got: number): DriverError {
    return new DriverError(
      "DEVICE_MISBEHAVED",
      `The vfio-user server at ${this.socketPath} answered a ${n}-byte ${what} of region ${region} at 0x${
        offset.toString(16)
      } with ${got < 0 ? "no access header" : `${got} bytes`}: the device model is broken.`,
    );
  }

  /**
   * Reads a 1-, 2- or 4-byte little-endian register: the hot path of message-based
   * register access, with one preallocated message and no allocation but the reply's.
   */
  readSmall(region: number, offset: number, width: 1 | 2 | 4): number {
    const id = this.#takeId();
    const msg = this.#small.subarray(0, HEADER_SIZE + REGION_ACCESS_SIZE);
    this.#smallHeader(id, VFIO_USER_REGION_READ, msg.length, FLAG_TYPE_COMMAND);
    encodeRegionAccessInto(this.#small, HEADER_SIZE, offset, region, width);
    this.#send(VFIO_USER_REGION_READ, msg, []);
    const r = this.#awaitReply(id, VFIO_USER_REGION_READ, this.#timeoutMs);
    closeFds(r.fds);
    if (r.payload.length < REGION_ACCESS_SIZE + width) {
      throw this.#short("read", region, offset, width, r.payload.length - REGION_ACCESS_SIZE);
    }
    const v = new DataView(r.payload.buffer, REGION_ACCESS_SIZE);
    return width === 1 ? v.getUint8(0) : width === 2 ? v.getUint16(0, true) : v.getUint32(0, true);
  }

  /** Writes a 1-, 2- or 4-byte little-endian register (`posted`: with No_reply). */
  writeSmall(region: number, offset: number, width: 1 | 2 | 4, value: number, posted = false) {
    const id = this.#takeId();
    const size = HEADER_SIZE + REGION_ACCESS_SIZE + width;
    const msg = this.#small.subarray(0, size);
    this.#smallHeader(
      id,
      VFIO_USER_REGION_WRITE,
      size,
      FLAG_TYPE_COMMAND | (posted ? FLAG_NO_REPLY : 0),
    );
    encodeRegionAccessInto(this.#small, HEADER_SIZE, offset, region, width);
    const at = HEADER_SIZE + REGION_ACCESS_SIZE;
    if (width === 1) this.#smallView.setUint8(at, value);
    else if (width === 2) this.#smallView.setUint16(at, value, true);
    else this.#smallView.setUint32(at, value, true);
    this.#send(VFIO_USER_REGION_WRITE, msg, []);
    if (posted) return;
    const r = this.#awaitReply(id, VFIO_USER_REGION_WRITE, this.#timeoutMs);
    closeFds(r.fds);
  }

  #smallHeader(id: number, command: number, size: number, flags: number): void {
    const v = this.#smallView;
    v.setUint16(0, id, true);
    v.setUint16(2, command, true);
    v.setUint32(4, size, true);
    v.setUint32(8, flags, true);
    v.setUint32(12, 0, true);
  }

  /** Closes the connection (the server then drops this client's mappings). Idempotent. */
  close(): void {
    this.#release();
  }
}
