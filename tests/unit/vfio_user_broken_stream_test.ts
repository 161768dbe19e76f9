/**
 * A vfio-user stream a hostile server broke keeps its fd number reserved until close():
 * forwarding workers send posted notifications on `client.socketFd`, so a freed number
 * reused by the next socket of the process would take their bytes into a foreign stream.
 * Against fake_vfio_user_server.ts in "device" mode, whose DEVICE_RESET reply carries more
 * fds than one message may (a malformed message: the client drops the connection).
 */

import assert from "node:assert/strict";
import { errno, libc } from "../../ffi/libc.ts";
import { AF_UNIX, sock, SOCK_CLOEXEC, SOCK_STREAM } from "../../ffi/socket.ts";
import { DriverError } from "../../src/errors.ts";
import { VfioUserClient } from "../../src/vfio_user/client.ts";
import { VFIO_USER_DEVICE_RESET } from "../../src/vfio_user/protocol.ts";
import { startFakeServer } from "./vfio_user_test_server.ts";

const EPIPE = 32;
const MSG_NOSIGNAL = 0x4000;
const MSG_DONTWAIT = 0x40;

/** `pairs` new socketpairs: the fds the process opens next. */
function openSocketPairs(pairs: number): number[] {
  const fds: number[] = [];
  for (let i = 0; i < pairs; i++) {
    const sv = new Int32Array(2);
    const r = sock.socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, new Uint8Array(sv.buffer));
    assert.equal(r, 0, `socketpair: errno ${errno()}`);
    fds.push(sv[0], sv[1]);
  }
  return fds;
}

Deno.test("a broken vfio-user stream keeps its fd number until close, and sends on it fail with EPIPE", async () => {
  const server = await startFakeServer("device", { resetFds: 20 });
  const c = VfioUserClient.connect(server.path, { timeoutMs: 3000 });
  let fresh: number[] = [];
  try {
    const fd = c.socketFd;
    assert.throws(
      () => c.request(VFIO_USER_DEVICE_RESET),
      (e: unknown) => e instanceof DriverError && e.code === "TRANSPORT",
    );
    assert.equal(c.connected, false);
    assert.equal(c.socketFd, fd, "socketFd changed before close()");
    fresh = openSocketPairs(4);
    assert.ok(!fresh.includes(fd), `fd ${fd} of the broken stream was reused: ${fresh}`);
    // A worker's 34-byte posted notification (src/engine/notifier.ts) on the old number.
    const msg = new Uint8Array(34);
    const n = Number(
      sock.sendto(fd, msg, BigInt(msg.length), MSG_NOSIGNAL | MSG_DONTWAIT, null, 0),
    );
    const e = errno();
    assert.equal(n, -1, "a send on the broken stream's fd went somewhere");
    assert.equal(e, EPIPE);
  } finally {
    c.close();
    for (const f of fresh) libc.close(f);
    await server.closed;
    await server.stop();
  }
  assert.equal(c.socketFd, -1);
});
