/**
 * A forwarding worker whose vfio-user server stalled (its socket full, so a queue
 * notification waits for room) still stops at once when the engine asks: the wait reads
 * the stop flag between short poll(2) slices (src/engine/notifier.ts). Before, it sat out
 * its whole notify deadline, and the engine counted it as stuck and kept its memory.
 * A real forwarding worker against the fake devices of engine_fake_nic.ts, transmit
 * queues notified over a socketpair whose peer never reads.
 */

import assert from "node:assert/strict";
import { AF_UNIX, check, sock, SOCK_CLOEXEC, SOCK_STREAM } from "../../ffi/socket.ts";
import { udpFrames } from "../bed/frames.ts";
import { FakeBed } from "./engine_fake_nic.ts";

const libc = Deno.dlopen("libc.so.6", {
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
}).symbols;

/** A unix socket pair whose first end's send buffer is full (the peer never reads). */
function fullSocket(): [number, number] {
  const pair = new Int32Array(2);
  check(
    sock.socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, new Uint8Array(pair.buffer)),
    "socketpair",
  );
  for (const chunk of [65536, 4096, 1]) {
    const b = new Uint8Array(chunk);
    while (Number(libc.send(pair[0], b, BigInt(chunk), 0x40 /* MSG_DONTWAIT */)) > 0) { /* fill */ }
  }
  return [pair[0], pair[1]];
}

Deno.test("a worker waiting to notify a stalled vfio-user server leaves at once when stopped", async () => {
  const [fd, peer] = fullSocket();
  // A deadline far beyond the stop timeout below: only the stop flag can end the wait.
  const bed = await FakeBed.start({ txNotifyFd: fd, notifyTimeoutMs: 20_000 });
  try {
    for (const f of udpFrames({ seed: 5, count: 8, flows: 1 })) bed.inject(0, f);
    bed.publishRx(0);
    // The worker notifies right after it publishes the frames on port 1's transmit queue.
    const until = performance.now() + 10_000;
    const tx = bed.ports[1].tx;
    while (tx.pending.length === 0 && performance.now() < until) {
      tx.poll();
      await new Promise((r) => setTimeout(r, 1));
    }
    assert.ok(tx.pending.length > 0, "the worker never transmitted");
    const done = await bed.close(500);
    assert.equal(bed.workerStuck, false, `the worker did not leave within 500 ms of the stop`);
    assert.equal(done?.type, "done", `the worker ended with ${JSON.stringify(done)}`);
  } finally {
    await bed.close();
    libc.close(fd);
    libc.close(peer);
  }
});
