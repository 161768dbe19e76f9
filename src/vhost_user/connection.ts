/**
 * One vhost-user connection, front-end side: request/reply over the back-end's AF_UNIX
 * stream socket (ffi/unix_socket.ts does the sendmsg with SCM_RIGHTS and the timeouts).
 * The back-end listens; this side connects as the client (vhost-user.rst, "Introduction":
 * "The front-end and back-end can be either a client (i.e. connecting) or server").
 *
 * Replies are read synchronously right after their request: a back-end only ever writes
 * on this socket to answer (its own requests would come on a separate channel,
 * VHOST_USER_PROTOCOL_F_SLAVE_REQ, which is never negotiated), so anything that arrives
 * unasked means the stream is out of step. With REPLY_ACK negotiated, every request
 * without a reply of its own carries need_reply and its ack is checked
 * ("VHOST_USER_PROTOCOL_F_REPLY_ACK": zero on success, non-zero on failure).
 *
 * @module
 */

import { SysError } from "../../ffi/libc.ts";
import { closeFds, ECONNRESET, EPIPE, ETIMEDOUT, UnixStream } from "../../ffi/unix_socket.ts";
import { DriverError } from "../errors.ts";
import { vhostConnectFailure } from "./connect_failure.ts";
import { decodeU64, U64_SIZE } from "./payloads.ts";
import {
  decodeHeader,
  encodeMessage,
  FLAG_NEED_REPLY,
  HEADER_SIZE,
  replyHeaderProblem,
  requestName,
} from "./protocol.ts";

/** Default time to wait for a reply, and for the back-end to accept the connection. */
export const DEFAULT_TIMEOUT_MS = 5000;

/** What a refused request was for, to word its error. */
export interface RefusalText {
  /** What the request asked, e.g. "2097152 bytes at IOVA 0x100000000". */
  what?: string;
  /** How to fix it (default: look at the back-end's log). */
  fix?: string;
}

/**
 * A connected vhost-user front-end.
 *
 * @example
 * ```ts ignore
 * import { VhostUserConnection } from "./connection.ts";
 * import { VhostUserRequest } from "./protocol.ts";
 * const c = VhostUserConnection.connect("/tmp/a.sock");
 * c.send(VhostUserRequest.SET_OWNER);
 * const features = c.callU64(VhostUserRequest.GET_FEATURES);
 * c.close();
 * ```
 */
export class VhostUserConnection {
  /** The back-end's socket path. */
  readonly path: string;
  /** Milliseconds to wait for each reply. */
  readonly timeoutMs: number;
  /** Set once REPLY_ACK is negotiated: requests without a reply then ask for an ack. */
  replyAck = false;
  #sock: UnixStream;
  #gone: DriverError | null = null;
  readonly #header = new Uint8Array(new ArrayBuffer(HEADER_SIZE));
  readonly #payload = new Uint8Array(new ArrayBuffer(64));
  readonly #probe = new Uint8Array(new ArrayBuffer(1));

  private constructor(path: string, sock: UnixStream, timeoutMs: number) {
    this.path = path;
    this.#sock = sock;
    this.timeoutMs = timeoutMs;
  }

  /**
   * Connects to the back-end listening on `path`. Throws one sentence per cause (no such
   * file, nobody listening, not a socket, permission, timeout).
   */
  static connect(path: string, options: { timeoutMs?: number } = {}): VhostUserConnection {
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    let sock: UnixStream;
    try {
      sock = UnixStream.connect(path, timeoutMs);
    } catch (e) {
      if (e instanceof SysError) throw vhostConnectFailure(path, e.errno, e);
      throw e;
    }
    return new VhostUserConnection(path, sock, timeoutMs);
  }

  /** False once the back-end closed the connection, broke the protocol, or close() ran. */
  get connected(): boolean {
    return this.#gone === null && this.#sock.fd >= 0;
  }

  /** The socket's fd (-1 once closed). */
  get fd(): number {
    return this.#sock.fd;
  }

  /**
   * Sends a request that has no reply of its own. With REPLY_ACK negotiated it carries
   * need_reply and the ack is checked: non-zero throws DEVICE_REFUSED naming the request.
   */
  send(
    request: number,
    payload?: Uint8Array,
    fds: readonly number[] = [],
    refusal: RefusalText = {},
  ): void {
    const ack = this.replyAck;
    this.#write(request, payload, fds, ack ? FLAG_NEED_REPLY : 0);
    if (!ack) return;
    const value = decodeU64(this.#read(request, U64_SIZE));
    if (value !== 0n) {
      throw new DriverError(
        "DEVICE_REFUSED",
        `The vhost-user back-end at ${this.path} refused ${requestName(request)}${
          refusal.what ? ` (${refusal.what})` : ""
        }: ${refusal.fix ?? "its log says why"}.`,
      );
    }
  }

  /** Sends a request that has a reply and returns its payload (exactly `replySize` bytes, a copy). */
  call(request: number, payload: Uint8Array | undefined, replySize: number): Uint8Array {
    this.#write(request, payload, [], 0);
    return this.#read(request, replySize).slice();
  }

  /** Sends a request whose reply is a u64 and returns it. */
  callU64(request: number): bigint {
    return decodeU64(this.call(request, undefined, U64_SIZE));
  }

  /**
   * Looks at the socket without waiting: throws TRANSPORT when the back-end closed the
   * connection (EOF or reset) or sent something nobody asked for.
   */
  checkOpen(): void {
    this.#live(null);
    let r;
    try {
      r = this.#sock.recvInto(this.#probe, 0);
    } catch (e) {
      throw this.#lose(null, e);
    }
    if (r === null) return;
    closeFds(r.fds);
    if (r.n === 0) throw this.#lose(null);
    throw this.#lose(
      null,
      undefined,
      `The vhost-user back-end at ${this.path} sent a message nobody asked for: it does not speak vhost-user as this driver does; restart it, then the program.`,
    );
  }

  /** Closes the socket (the back-end then drops the device). Idempotent. */
  close(): void {
    this.#sock.close();
  }

  #live(request: number | null): void {
    if (this.#gone) throw this.#gone;
    if (this.#sock.fd < 0) {
      throw new DriverError(
        "TRANSPORT",
        `The vhost-user connection to ${this.path} is closed${
          request === null ? "" : `, so ${requestName(request)} was not sent`
        }: open the port again to use it.`,
      );
    }
  }

  #write(request: number, payload: Uint8Array | undefined, fds: readonly number[], flags: number) {
    this.#live(request);
    try {
      this.#sock.send(encodeMessage(request, payload, flags), fds, this.timeoutMs);
    } catch (e) {
      if (e instanceof SysError && e.errno === ETIMEDOUT) {
        throw this.#lose(
          request,
          e,
          `The vhost-user back-end at ${this.path} took no ${
            requestName(request)
          } within ${this.timeoutMs} ms (it stopped reading its socket: it is stuck): restart it, then the program.`,
        );
      }
      throw this.#lose(request, e);
    }
  }

  /** Reads the reply to `request`: header checked, then exactly `size` payload bytes. */
  #read(request: number, size: number): Uint8Array {
    const deadline = performance.now() + this.timeoutMs;
    this.#readExact(this.#header, deadline, request);
    const h = decodeHeader(this.#header);
    const problem = replyHeaderProblem(h, request, size);
    if (problem !== null) {
      throw this.#lose(
        request,
        undefined,
        `The vhost-user back-end at ${this.path} sent a malformed reply to ${
          requestName(request)
        } (${problem}): it does not speak vhost-user as this driver does; restart it, then the program.`,
      );
    }
    // Replies of this driver's requests fit the buffer kept for them; a larger one (e.g.
    // GET_CONFIG, through low_level.ts) gets its own.
    const out = size <= this.#payload.length
      ? this.#payload.subarray(0, size)
      : new Uint8Array(new ArrayBuffer(size));
    this.#readExact(out, deadline, request);
    return out;
  }

  #readExact(into: Uint8Array, deadline: number, request: number): void {
    for (let done = 0; done < into.length;) {
      const left = Math.max(0, Math.ceil(deadline - performance.now()));
      let r;
      try {
        r = this.#sock.recvInto(into.subarray(done), left);
      } catch (e) {
        throw this.#lose(request, e);
      }
      if (r === null) {
        throw this.#lose(
          request,
          undefined,
          `The vhost-user back-end at ${this.path} did not answer ${
            requestName(request)
          } within ${this.timeoutMs} ms (it is stuck): restart it, then the program.`,
        );
      }
      closeFds(r.fds); // no reply this side asks for carries fds
      if (r.n === 0) throw this.#lose(request);
      done += r.n;
    }
  }

  /** Marks the connection unusable (for good: the stream is out of step) and returns why. */
  #lose(request: number | null, cause?: unknown, message?: string): DriverError {
    if (this.#gone) return this.#gone;
    const peerGone = message === undefined;
    if (
      peerGone && cause instanceof SysError && cause.errno !== EPIPE &&
      cause.errno !== ECONNRESET
    ) {
      message = `The vhost-user connection to ${this.path} failed${
        request === null ? "" : ` during ${requestName(request)}`
      } (${cause.message}): restart the back-end, then the program.`;
    }
    message ??= request === null
      ? `The vhost-user back-end at ${this.path} closed the connection (it exited or was killed): restart it, then the program.`
      : `The vhost-user back-end at ${this.path} closed the connection during ${
        requestName(request)
      } (it exited, was killed, or refused the request): restart it, then the program.`;
    this.#gone = new DriverError("TRANSPORT", message, { cause });
    return this.#gone;
  }
}
