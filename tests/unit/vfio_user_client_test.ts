/**
 * The vfio-user client against a scripted server (fake_vfio_user_server.ts, in a Worker):
 * version negotiation, splitting at max_data_xfer_size, reply matching by message ID
 * past a stale reply, answering a server-to-client command, posted writes, error replies
 * and a server that hangs up mid-reply.
 */

import assert from "node:assert/strict";
import { DriverError } from "../../src/errors.ts";
import { VfioUserClient, VfioUserCommandError } from "../../src/vfio_user/client.ts";
import {
  encodeDmaMap,
  VFIO_USER_DEVICE_RESET,
  VFIO_USER_DMA_MAP,
} from "../../src/vfio_user/protocol.ts";

type ServerMessage = {
  listening?: boolean;
  closed?: boolean;
  error?: string;
  write?: { offset: number; data: number[] };
  clientAnswer?: { flags: number; errorNo: number };
};

Deno.test("VfioUserClient: negotiation, splitting, reply matching, errors, hang-up", async () => {
  const dir = await Deno.makeTempDir({ prefix: "vfu-unit-" });
  const path = `${dir}/s.sock`;
  const worker = new Worker(new URL("./fake_vfio_user_server.ts", import.meta.url), {
    type: "module",
  });
  const got: ServerMessage[] = [];
  let closed!: () => void;
  const closedP = new Promise<void>((r) => closed = r);
  const listening = new Promise<void>((resolve) => {
    worker.onmessage = (e: MessageEvent<ServerMessage>) => {
      got.push(e.data);
      if (e.data.listening) resolve();
      if (e.data.closed) closed();
    };
  });
  worker.postMessage({ path });
  await listening;
  let c: VfioUserClient | null = null;
  try {
    c = VfioUserClient.connect(path, { timeoutMs: 3000 });
    // "VFIO_USER_VERSION": the server's smaller max_data_xfer_size wins.
    assert.equal(c.version, "0.1");
    assert.equal(c.server.maxMsgFds, 1);
    assert.equal(c.maxDataXferSize, 8);

    // 20 bytes arrive as reads of 8, 8 and 4 (the server refuses more than 8).
    assert.deepEqual(
      c.regionRead(2, 0x10, 20),
      new Uint8Array(20).map((_, i) => 0x10 + i),
    );
    // A stale reply and a server-to-client DMA_READ come first; the client skips the
    // one, refuses the other with EOPNOTSUPP and returns the right reply.
    assert.equal(c.readSmall(2, 0x40, 4), 0x43424140);

    // Writes are split too; a posted write gets no reply and stays in order.
    c.regionWrite(2, 0x100, new Uint8Array(20).map((_, i) => i));
    c.writeSmall(2, 0x200, 2, 0xbeef, true);
    assert.equal(c.readSmall(2, 0, 1), 0);

    // An error reply names the command and the errno.
    assert.throws(
      () =>
        c!.request(
          VFIO_USER_DMA_MAP,
          encodeDmaMap({ flags: 3, offset: 0n, address: 1n << 32n, size: 4096n }),
        ),
      (e: unknown) =>
        e instanceof VfioUserCommandError && e.errno === 17 && e.code === "DEVICE_REFUSED" &&
        /refused VFIO_USER_DMA_MAP: File exists \(errno 17\)\.$/.test(e.message),
    );

    // Half a reply, then EOF: one TRANSPORT sentence, now and for every later call.
    const sentence =
      /^The vfio-user server at .*s\.sock closed the connection during VFIO_USER_DEVICE_RESET \(QEMU exited or was killed\): restart it and open the port again\.$/;
    for (const call of [() => c!.request(VFIO_USER_DEVICE_RESET), () => c!.readSmall(7, 0, 2)]) {
      assert.throws(
        call,
        (e: unknown) =>
          e instanceof DriverError && e.code === "TRANSPORT" && sentence.test(e.message),
      );
    }
    assert.equal(c.connected, false);

    await closedP;
    const writes = got.filter((m) => m.write).map((m) => m.write);
    assert.deepEqual(writes, [
      { offset: 0x100, data: [0, 1, 2, 3, 4, 5, 6, 7] },
      { offset: 0x108, data: [8, 9, 10, 11, 12, 13, 14, 15] },
      { offset: 0x110, data: [16, 17, 18, 19] },
      { offset: 0x200, data: [0xef, 0xbe] },
    ]);
    // The answer to DMA_READ: a reply (type 1) with the Error bit (0x20), EOPNOTSUPP.
    assert.deepEqual(got.find((m) => m.clientAnswer)?.clientAnswer, { flags: 0x21, errorNo: 95 });
    assert.equal(got.find((m) => m.error), undefined);
  } finally {
    c?.close();
    worker.terminate();
    await Deno.remove(dir, { recursive: true });
  }
});
