/**
 * Reassembles whole vfio-user messages from the stream socket ("Header": the size field
 * covers header and payload), with the file descriptors that came along (SCM_RIGHTS). A
 * stream that cannot go on (the peer left, a size no message has, more fds than one
 * message may carry) is a {@linkcode BrokenStream}; the client words it for users.
 *
 * @module
 */

import { closeFds, EBADMSG, ECONNRESET, type UnixStream } from "../../ffi/unix_socket.ts";
import { SysError } from "../../ffi/libc.ts";
import { decodeHeader, HEADER_SIZE, type MessageHeader } from "./protocol.ts";

/** A whole message: a reply to a command, or a command from the server. */
export interface Reply {
  /** Its header. */
  header: MessageHeader;
  /** The bytes after the header (a copy the caller owns). */
  payload: Uint8Array;
  /**
   * File descriptors that came with it. From {@linkcode VfioUserClient.request} only
   * when asked for (`takeFds`): the caller owns and must close them; else empty, as the
   * client closed them.
   */
  fds: number[];
}

/**
 * Why the stream cannot go on: `eof` the peer closed (or reset) the connection, `size` a
 * header announced `size` bytes, which no message has, `fds` more fds came with one
 * message than it may carry (or than fit: MSG_CTRUNC).
 *
 * @example
 * ```ts
 * import { BrokenStream } from "./message_reader.ts";
 * new BrokenStream("size", 3).kind; // "size"
 * ```
 */
export class BrokenStream extends Error {
  /** What broke. */
  readonly kind: "eof" | "size" | "fds";
  /** The announced size, for `size`. */
  readonly size: number;
  /** Creates it. */
  constructor(kind: "eof" | "size" | "fds", size = 0, cause?: unknown) {
    super(`vfio-user stream broken: ${kind}`, { cause });
    this.name = "BrokenStream";
    this.kind = kind;
    this.size = size;
  }
}

/**
 * The reading half of a client connection.
 *
 * @example
 * ```ts ignore
 * import { MessageReader } from "./message_reader.ts";
 * const reader = new MessageReader(1 << 20, 16);
 * const m = reader.next(sock, performance.now() + 1000); // null on timeout
 * ```
 */
export class MessageReader {
  #in = new Uint8Array(new ArrayBuffer(65536));
  #inLen = 0;
  #pendingFds: number[] = [];
  readonly #maxSize: number;
  readonly #maxFds: number;

  /** Messages of at most `maxSize` bytes with at most `maxFds` fds each. */
  constructor(maxSize: number, maxFds: number) {
    this.#maxSize = maxSize;
    this.#maxFds = maxFds;
  }

  /**
   * The next whole message, or null when none completed before `deadline`
   * (performance.now() time). Throws {@linkcode BrokenStream}, or the
   * {@linkcode SysError} of an unexpected recvmsg failure.
   */
  next(sock: UnixStream, deadline: number): Reply | null {
    for (;;) {
      if (this.#inLen >= HEADER_SIZE) {
        const size = new DataView(this.#in.buffer).getUint32(4, true);
        // "Header": the size covers the header; nothing this client asks for is larger
        // than a maximal region read. The stream cannot be resynchronised.
        if (size < HEADER_SIZE || size > this.#maxSize) throw new BrokenStream("size", size);
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
      const left = deadline - performance.now();
      if (left <= 0) return null;
      let r;
      try {
        r = sock.recvInto(this.#in.subarray(this.#inLen), left);
      } catch (e) {
        if (e instanceof SysError && e.errno === ECONNRESET) throw new BrokenStream("eof", 0, e);
        // MSG_CTRUNC: the bytes read are lost with the fds that did not fit (recvInto
        // closed those that did), so the stream is out of step.
        if (e instanceof SysError && e.errno === EBADMSG) throw new BrokenStream("fds", 0, e);
        throw e;
      }
      if (r === null) return null;
      if (r.fds.length) {
        this.#pendingFds.push(...r.fds);
        // A hostile server must not fill our fd table within one message.
        if (this.#pendingFds.length > this.#maxFds) throw new BrokenStream("fds");
      }
      if (r.n === 0) throw new BrokenStream("eof");
      this.#inLen += r.n;
    }
  }

  /** Closes the fds of a partial message and forgets its bytes. */
  clear(): void {
    closeFds(this.#pendingFds);
    this.#pendingFds = [];
    this.#inLen = 0;
  }
}
