/**
 * File descriptors from an untrusted vfio-user server: those it sends with replies that
 * should carry none are closed, and a message with more than fit (MSG_CTRUNC) or more
 * than max_msg_fds drops the connection with one sentence, its fds closed (the socket's
 * own fd at close()). Against fake_vfio_user_server.ts in "device" mode.
 */

import assert from "node:assert/strict";
import { libc } from "../../ffi/libc.ts";
import { DriverError } from "../../src/errors.ts";
import { VfioUserDevice } from "../../src/vfio_user/vfio_user_device.ts";
import { startFakeServer } from "./vfio_user_test_server.ts";

function openFds(): number {
  return [...Deno.readDirSync("/proc/self/fd")].length;
}

Deno.test("fds a server sends with replies that carry none are closed", async () => {
  const server = await startFakeServer("device", { replyFds: 3 });
  const efd = libc.eventfd(0, 0o2000000);
  const dev = VfioUserDevice.open(server.path, { timeoutMs: 3000 });
  try {
    const before = openFds();
    for (let i = 0; i < 10; i++) {
      dev.reset();
      dev.setIrqEventfds(2, 0, [efd]);
      dev.setIrqEventfds(2, 0, []);
      assert.equal(dev.irqCount(2), 3);
      assert.equal(dev.config.read16(0), 0x1af4);
      dev.client.regionRead(2, 0, 8);
    }
    assert.equal(openFds(), before, "open fds grew: received fds were not closed");
  } finally {
    dev.close();
    libc.close(efd);
    await server.closed;
    await server.stop();
  }
});

Deno.test("more fds with one message than fit (MSG_CTRUNC) drop the connection, fds closed", async () => {
  const server = await startFakeServer("device", { resetFds: 20 });
  const dev = VfioUserDevice.open(server.path, { timeoutMs: 3000 });
  try {
    const before = openFds();
    const sentence =
      /^The vfio-user server at \S+s\.sock sent more than 16 file descriptors with one message during VFIO_USER_DEVICE_RESET \(this client announced max_msg_fds 16\): the server is broken; restart it and open the port again\.$/;
    assert.throws(
      () => dev.reset(),
      (e: unknown) =>
        e instanceof DriverError && e.code === "TRANSPORT" && sentence.test(e.message),
    );
    assert.equal(dev.connected, false);
    // The 16 fds that arrived are closed; the socket is shut down, its fd kept until close.
    assert.equal(openFds(), before);
    assert.throws(() => dev.config.read16(0), (e: unknown) => sentence.test((e as Error).message));
    dev.close();
    assert.equal(openFds(), before - 1);
  } finally {
    dev.close();
    await server.closed;
    await server.stop();
  }
});

Deno.test("more fds with one message than max_msg_fds, over several reads, drop the connection", async () => {
  const server = await startFakeServer("device", { resetFdsPerByte: 8 });
  const dev = VfioUserDevice.open(server.path, { timeoutMs: 3000 });
  try {
    const before = openFds();
    assert.throws(
      () => dev.reset(),
      (e: unknown) =>
        e instanceof DriverError && e.code === "TRANSPORT" &&
        /sent more than 16 file descriptors with one message during VFIO_USER_DEVICE_RESET/
          .test(e.message),
    );
    assert.equal(dev.connected, false);
    // The fds that arrived are closed; the socket is shut down, its fd kept until close.
    assert.equal(openFds(), before);
    dev.close();
    assert.equal(openFds(), before - 1);
  } finally {
    dev.close();
    await server.closed;
    await server.stop();
  }
});
