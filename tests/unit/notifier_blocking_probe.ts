/**
 * Sends one worker queue notification over vfio-user (src/engine/notifier.ts) into a unix
 * socket whose peer has stopped reading, in its own process so a test can kill it when the
 * send blocks, and prints how it ended as one JSON line:
 * `{ code, message, ms, flagsBefore, flagsAfter }`.
 *
 * - `stuck`: the peer never reads again;
 * - `drain`: the peer (a Worker) starts reading 300 ms after the notification was sent.
 *
 * Usage: `deno run -A tests/unit/notifier_blocking_probe.ts stuck|drain`
 *
 * @module
 */

import { AF_UNIX, check, sock, SOCK_CLOEXEC, SOCK_STREAM } from "../../ffi/socket.ts";
import { makeNotifier } from "../../src/engine/notifier.ts";

const MSG_DONTWAIT = 0x40;
const F_GETFL = 3;

const libc = Deno.dlopen("libc.so.6", {
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
}).symbols;

const pair = new Int32Array(2);
check(
  sock.socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, new Uint8Array(pair.buffer)),
  "socketpair",
);
const [fd, peer] = pair;

// Fill the send buffer: big pieces first, then single bytes into what is left.
for (const chunk of [65536, 4096, 1]) {
  const b = new Uint8Array(chunk);
  while (Number(libc.send(fd, b, BigInt(chunk), MSG_DONTWAIT)) > 0) { /* more */ }
}

let drainer: Worker | null = null;
if (Deno.args[0] === "drain") {
  const src = `
    const lib = Deno.dlopen("libc.so.6", {
      recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
    }).symbols;
    self.onmessage = (e) => {
      setTimeout(() => {
        const b = new Uint8Array(1 << 16);
        for (; Number(lib.recv(e.data, b, BigInt(b.length), 0x40)) > 0;) { /* drain */ }
      }, 300);
      self.postMessage("armed");
    };
  `;
  drainer = new Worker(URL.createObjectURL(new Blob([src], { type: "text/javascript" })), {
    type: "module",
  });
  const armed = new Promise((r) => drainer!.onmessage = r);
  drainer.postMessage(peer);
  await armed; // its 300 ms run from here
}

const flagsBefore = libc.fcntl(fd, F_GETFL, 0);
const notifier = makeNotifier(
  { kind: "vfio-user", fd, region: 4, offset: 0x3000, value: 1 },
  "transmitq1",
);
const t0 = performance.now();
let out: Record<string, unknown>;
try {
  notifier.notify();
  out = { message: "sent" };
} catch (e) {
  const err = e as { name?: string; code?: string; message?: string };
  out = { name: err.name, code: err.code, message: err.message };
}
out.ms = Math.round(performance.now() - t0);
out.flagsBefore = flagsBefore;
out.flagsAfter = libc.fcntl(fd, F_GETFL, 0);
console.log(JSON.stringify(out));
drainer?.terminate();
libc.close(fd);
libc.close(peer);
Deno.exit(0);
