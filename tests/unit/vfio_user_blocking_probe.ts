/**
 * Runs one vfio-user call that a stuck server could block forever, in its own process
 * (so a test can kill it when it hangs), and prints how it ended as one JSON line:
 * `{ name, code, message, connected?, again? }`.
 *
 * - `connect`: opens a device at a socket whose listener accepts nobody (backlog full);
 * - `send`: sends a 1 MiB REGION_WRITE to a server that stopped reading.
 *
 * Usage: `deno run -A tests/unit/vfio_user_blocking_probe.ts connect|send`
 *
 * @module
 */

import { cstr } from "../../ffi/libc.ts";
import { AF_UNIX, check, sock, SOCK_CLOEXEC, SOCK_STREAM } from "../../ffi/socket.ts";
import { UnixStream } from "../../ffi/unix_socket.ts";
import { VfioUserClient } from "../../src/vfio_user/client.ts";
import { VfioUserDevice } from "../../src/vfio_user/vfio_user_device.ts";
import { startFakeServer } from "./vfio_user_test_server.ts";

function report(e: unknown, extra: Record<string, unknown> = {}): void {
  const err = e as { name?: string; code?: string; message?: string };
  console.log(JSON.stringify({ name: err.name, code: err.code, message: err.message, ...extra }));
}

const TIMEOUT_MS = 500;

if (Deno.args[0] === "connect") {
  const dir = Deno.makeTempDirSync({ prefix: "vfu-probe-" });
  const path = `${dir}/s.sock`;
  const p = cstr(path);
  const sa = new Uint8Array(2 + p.length);
  sa[0] = AF_UNIX;
  sa.set(p, 2);
  const lfd = check(sock.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket");
  check(sock.bind(lfd, sa, sa.length), "bind", path);
  check(sock.listen(lfd, 0), "listen", path);
  const filler = UnixStream.connect(path); // takes the backlog's one place; never accepted
  try {
    VfioUserDevice.open(path, { timeoutMs: TIMEOUT_MS }).close();
    report({ message: "opened" });
  } catch (e) {
    report(e);
  }
  filler.close();
  Deno.removeSync(dir, { recursive: true });
  Deno.exit(0);
} else if (Deno.args[0] === "send") {
  const server = await startFakeServer("device", { stallAt: 10 });
  const c = VfioUserClient.connect(server.path, { timeoutMs: TIMEOUT_MS });
  try {
    c.regionWrite(2, 0, new Uint8Array(1 << 20));
    report({ message: "sent" });
  } catch (e) {
    let again: string | undefined;
    try {
      c.readSmall(7, 0, 2);
    } catch (e2) {
      again = (e2 as Error).message;
    }
    report(e, { connected: c.connected, again });
  }
  c.close();
  Deno.exit(0);
}
