/**
 * A vfio-user client connection: connects to a server's socket, negotiates the version
 * ("VFIO_USER_VERSION"), sends commands and matches replies to them by message ID
 * ("Header"), turns error replies into errors naming the command and errno, splits region
 * reads and writes at the server's max_data_xfer_size ("Read and Write Operations"), and
 * reports a server that went away ("Server Disconnection"), stopped answering or reading,
 * or broke the stream as a {@linkcode DriverError} with code TRANSPORT.
 *
 * The server is untrusted: every reply is checked before use (a malformed one is a
 * DEVICE_MISBEHAVED {@linkcode DriverError} naming the command and the server), and every
 * file descriptor it sends is closed unless the caller asked for it.
 *
 * Calls block the calling thread until the reply arrives, and connect and send wait for
 * the server at most the timeout too (poll with a timeout): the {@linkcode PciDevice}
 * interface above is synchronous, like MMIO.
 *
 * @module
 */

import { SysError } from "../../ffi/libc.ts";
import {
  closeFds,
  ECONNRESET,
  EPIPE,
  ETIMEDOUT,
  MAX_RECV_FDS,
  UnixStream,
} from "../../ffi/unix_socket.ts";
import { DriverError } from "../errors.ts";
import { VfioUserCommandError } from "./command_error.ts";
import { BrokenStream, MessageReader, type Reply } from "./message_reader.ts";
import { negotiateVersion } from "./version_negotiation.ts";
import {
  commandName,
  DEFAULT_MAX_DATA_XFER_SIZE,
  encodeHeader,
  encodeRegionAccessInto,
  FLAG_ERROR,
  FLAG_NO_REPLY,
  FLAG_TYPE_COMMAND,
  FLAG_TYPE_REPLY,
  HEADER_SIZE,
  isReply,
  type MessageHeader,
  REGION_ACCESS_SIZE,
  type VersionCapabilities,
  VFIO_USER_REGION_READ,
  VFIO_USER_REGION_WRITE,
} from "./protocol.ts";

export { VfioUserCommandError } from "./command_error.ts";
export type { Reply } from "./message_reader.ts";

/** errno the client answers server-to-client commands with (it serves no DMA_READ/WRITE). */
const EOPNOTSUPP = 95;
/** Largest message this client accepts (a 1 MiB region read plus headers). */
const OWN_MAX_DATA_XFER_SIZE = DEFAULT_MAX_DATA_XFER_SIZE;

/** Options of {@linkcode VfioUserClient.connect}. */
export interface ClientOptions {
  /**
   * How long to wait for each reply, for the server to accept the connection, and for it
   * to take each message (default 5000 ms).
   */
  timeoutMs?: number;
  /**
   * This client's max_data_xfer_size, announced in VERSION (default and at most 1 MiB):
   * region reads and writes are split at the smaller of it and the server's.
   */
  maxDataXferSize?: number;
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
  readonly #reader = new MessageReader(OWN_MAX_DATA_XFER_SIZE + 4096, MAX_RECV_FDS);
  // Hot path: one preallocated message for small region accesses.
  readonly #small = new Uint8Array(new ArrayBuffer(HEADER_SIZE + REGION_ACCESS_SIZE + 8));
  readonly #smallView = new DataView(this.#small.buffer);

  private constructor(path: string, sock: UnixStream, options: ClientOptions) {
    this.socketPath = path;
    this.#sock = sock;
    this.#timeoutMs = options.timeoutMs ?? 5000;
    const own = Math.min(options.maxDataXferSize ?? OWN_MAX_DATA_XFER_SIZE, OWN_MAX_DATA_XFER_SIZE);
    const n = negotiateVersion(path, own, (command, payload) => this.request(command, payload));
    this.version = n.version;
    this.server = n.server;
    this.maxDataXferSize = n.maxDataXferSize;
  }

  /**
   * Connects to `socketPath` and negotiates the version. Connection errors are thrown as
   * the {@linkcode SysError} of connect(2) (the device layer words them for users);
   * ETIMEDOUT when the listener accepted nobody within the timeout.
   */
  static connect(socketPath: string, options: ClientOptions = {}): VfioUserClient {
    const sock = UnixStream.connect(socketPath, options.timeoutMs ?? 5000);
    try {
      return new VfioUserClient(socketPath, sock, options);
    } catch (e) {
      sock.close();
      throw e;
    }
  }

  /** False once the server went away or {@linkcode VfioUserClient.close} ran. */
  get connected(): boolean {
    return this.#sock !== null && this.#gone === null;
  }

  /**
   * The socket's file descriptor (-1 once closed). Other threads of the process may send
   * posted (No_reply) messages of their own on it, e.g. a forwarding worker's queue
   * notifications: small messages go into a stream socket whole, and only this client
   * reads from it. It stays valid until {@linkcode VfioUserClient.close}: a broken stream
   * is shut down (their sends fail with EPIPE), not closed, so its number is not reused.
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
    if (this.#sock && this.#gone === null) return this.#sock;
    throw new DriverError(
      "TRANSPORT",
      this.#gone ??
        `The vfio-user connection to ${this.socketPath} is closed: open the port again to use it (${
          commandName(command)
        }).`,
    );
  }

  /** The server went away: drop the connection and describe it once for all later calls. */
  #lost(command: number, cause: unknown): DriverError {
    return this.#broken(
      `The vfio-user server at ${this.socketPath} closed the connection during ${
        commandName(command)
      } (QEMU exited or was killed): restart it and open the port again.`,
      cause,
    );
  }

  /**
   * The stream cannot go on (the server left, or it is out of step): shut the socket down
   * and drop its pending fds, and give every later call the same `sentence`. The fd stays
   * open until close(), as workers may still send on its number (see `socketFd`).
   */
  #broken(sentence: string, cause: unknown): DriverError {
    this.#gone ??= sentence;
    this.#sock?.shutdown();
    this.#reader.clear();
    return new DriverError("TRANSPORT", this.#gone, { cause });
  }

  #send(command: number, message: Uint8Array, fds: readonly number[]): void {
    const sock = this.#live(command);
    try {
      sock.send(message, fds, this.#timeoutMs);
    } catch (e) {
      if (e instanceof SysError && (e.errno === EPIPE || e.errno === ECONNRESET)) {
        throw this.#lost(command, e);
      }
      if (e instanceof SysError && e.errno === ETIMEDOUT) {
        // Part of the message may be in the stream: nothing can follow it.
        throw this.#broken(
          `The vfio-user server at ${this.socketPath} did not take ${
            commandName(command)
          } within ${this.#timeoutMs} ms (it stopped reading its socket): it is stuck; restart it and open the port again.`,
          e,
        );
      }
      throw e;
    }
  }

  /**
   * Sends a command and waits for its reply; an error reply throws
   * {@linkcode VfioUserCommandError}. `fds` travel with the message (SCM_RIGHTS). File
   * descriptors that come with the reply are closed, unless `takeFds` hands them to the
   * caller (in {@linkcode Reply.fds}).
   */
  request(
    command: number,
    payload: Uint8Array = new Uint8Array(0),
    options: { fds?: readonly number[]; timeoutMs?: number; takeFds?: boolean } = {},
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
    return this.#awaitReply(
      id,
      command,
      options.timeoutMs ?? this.#timeoutMs,
      options.takeFds ?? false,
    );
  }

  /**
   * Decodes the payload of a reply to `command` with `decode`; a payload it rejects (too
   * short, fields out of range) becomes one DEVICE_MISBEHAVED sentence naming the command
   * and the server.
   *
   * @example
   * ```ts ignore
   * import { decodeIrqInfo, VFIO_USER_DEVICE_GET_IRQ_INFO } from "./protocol.ts";
   * const r = client.request(VFIO_USER_DEVICE_GET_IRQ_INFO, encodeIrqInfoRequest(2));
   * client.decodeReply(VFIO_USER_DEVICE_GET_IRQ_INFO, r.payload, decodeIrqInfo).count;
   * ```
   */
  decodeReply<T>(command: number, payload: Uint8Array, decode: (b: Uint8Array) => T): T {
    try {
      return decode(payload);
    } catch (e) {
      if (e instanceof DriverError) throw e;
      throw this.#malformed(command, (e as Error).message, e);
    }
  }

  #malformed(command: number, detail: string, cause?: unknown): DriverError {
    return new DriverError(
      "DEVICE_MISBEHAVED",
      `The vfio-user server at ${this.socketPath} sent a malformed ${
        commandName(command)
      } reply (${detail}): the device model is broken; fix the server or use another.`,
      { cause },
    );
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

  #awaitReply(id: number, command: number, timeoutMs: number, takeFds = false): Reply {
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
        // A late reply to a command that timed out, or to a posted write another thread
        // sent (msgId 0xf000, src/engine/notifier.ts).
        closeFds(m.fds);
        continue;
      }
      if (h.flags & FLAG_ERROR) {
        closeFds(m.fds);
        throw new VfioUserCommandError(this.socketPath, command, h.errorNo);
      }
      // A hostile server must not fill our fd table with replies that carry fds unasked.
      if (!takeFds && m.fds.length) {
        closeFds(m.fds);
        m.fds.length = 0;
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

  /** Reads the next whole message; a broken stream drops the connection with a sentence. */
  #readMessage(command: number, deadline: number, timeoutMs: number): Reply {
    let m: Reply | null;
    try {
      m = this.#reader.next(this.#live(command), deadline);
    } catch (e) {
      if (!(e instanceof BrokenStream)) throw e;
      if (e.kind === "fds") throw this.#tooManyFds(command, e);
      if (e.kind === "eof") throw this.#lost(command, e);
      throw this.#broken(
        `The vfio-user server at ${this.socketPath} sent a ${e.size}-byte message during ${
          commandName(command)
        }, which is no valid vfio-user message: restart it and open the port again.`,
        e,
      );
    }
    if (m) return m;
    throw new DriverError(
      "TRANSPORT",
      `The vfio-user server at ${this.socketPath} did not answer ${
        commandName(command)
      } within ${timeoutMs} ms: it is stuck or serves another client; restart it and open the port again.`,
    );
  }

  #tooManyFds(command: number, cause: unknown): DriverError {
    return this.#broken(
      `The vfio-user server at ${this.socketPath} sent more than ${MAX_RECV_FDS} file descriptors with one message during ${
        commandName(command)
      } (this client announced max_msg_fds ${MAX_RECV_FDS}): the server is broken; restart it and open the port again.`,
      cause,
    );
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
    if (r.payload.length < REGION_ACCESS_SIZE) throw this.#short("read", region, offset, width, -1);
    const v = new DataView(r.payload.buffer);
    // "VFIO_USER_REGION_READ": the reply's count is the bytes read, all of them after it.
    const got = v.getUint32(12, true);
    if (got !== width) throw this.#short("read", region, offset, width, got);
    if (r.payload.length < REGION_ACCESS_SIZE + width) {
      throw this.#short("read", region, offset, width, r.payload.length - REGION_ACCESS_SIZE);
    }
    const at = REGION_ACCESS_SIZE;
    return width === 1
      ? v.getUint8(at)
      : width === 2
      ? v.getUint16(at, true)
      : v.getUint32(at, true);
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
    this.#awaitReply(id, VFIO_USER_REGION_WRITE, this.#timeoutMs);
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
    this.#sock?.close();
    this.#sock = null;
    this.#reader.clear();
  }
}
