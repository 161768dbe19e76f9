/**
 * Sends one worker queue notification over vfio-user (src/engine/notifier.ts) into a unix
 * socket whose peer has stopped reading, in its own process so a test can kill it when the
 * send blocks, and prints how it ended as one JSON line:
 * `{ code, message, ms, flagsBefore, flagsAfter }` (message "returned" when it did not
 * throw).
 *
 * - `stuck`: the peer never reads again;
 * - `drain`: the peer (a Worker) starts reading 300 ms after the notification was sent;
 * - `stop`: the peer never reads again, and a Worker raises the engine's stop flag 300 ms
 *   after the notification was sent.
 *
 * The notification's deadline is `timeoutMs` (the notifier's option).
 *
 * Usage: `deno run -A tests/unit/notifier_blocking_probe.ts stuck|drain|stop timeoutMs`
 *
 * @module
 */

import { AF_UNIX, check, sock, SOCK_CLOEXEC, SOCK_STREAM } from "../../ffi/socket.ts";
import { sharedControl } from "../../src/engine/control.ts";
import { makeNotifier } from "../../src/engine/notifier.ts";
import { postedWrite16 } from "../../src/vfio_user/posted_write.ts";

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

const [scenario, timeout] = Deno.args;
const control = sharedControl(1);

/** A Worker that, 300 ms after it is armed, drains the peer or raises the stop flag. */
const sources = {
  drain: `
    const lib = Deno.dlopen("libc.so.6", {
      recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
    }).symbols;
    self.onmessage = (e) => {
      setTimeout(() => {
        const b = new Uint8Array(1 << 16);
        for (; Number(lib.recv(e.data.peer, b, BigInt(b.length), 0x40)) > 0;) { /* drain */ }
      }, 300);
      self.postMessage("armed");
    };
  `,
  stop: `
    self.onmessage = (e) => {
      const ctl = new Int32Array(e.data.control);
      setTimeout(() => { Atomics.store(ctl, 0, 1); Atomics.notify(ctl, 0); }, 300);
      self.postMessage("armed");
    };
  `,
};
let helper: Worker | null = null;
if (scenario === "drain" || scenario === "stop") {
  helper = new Worker(
    URL.createObjectURL(new Blob([sources[scenario]], { type: "text/javascript" })),
    { type: "module" },
  );
  const armed = new Promise((r) => helper!.onmessage = r);
  helper.postMessage({ peer, control: control.buffer });
  await armed; // its 300 ms run from here
}

const flagsBefore = libc.fcntl(fd, F_GETFL, 0);
const notifier = makeNotifier(
  {
    kind: "message",
    fd,
    bytes: postedWrite16(4, 0x3000, 1),
    what: "the vfio-user server of vfio-user:/probe.sock",
  },
  "transmitq1",
  { timeoutMs: Number(timeout), control },
);
const t0 = performance.now();
let out: Record<string, unknown>;
try {
  notifier.notify();
  out = { message: "returned" };
} catch (e) {
  const err = e as { name?: string; code?: string; message?: string };
  out = { name: err.name, code: err.code, message: err.message };
}
out.ms = Math.round(performance.now() - t0);
out.flagsBefore = flagsBefore;
out.flagsAfter = libc.fcntl(fd, F_GETFL, 0);
console.log(JSON.stringify(out));
helper?.terminate();
libc.close(fd);
libc.close(peer);
Deno.exit(0);
