/**
 * One vfio-user socket named twice (src/same_port.ts): through a symbolic link,
 * or `..` after one, the port names differ but the file is one; l2fwd must see it.
 */

import assert from "node:assert/strict";
import { cstr, libc } from "../../ffi/libc.ts";
import { AF_UNIX, check, sock, SOCK_CLOEXEC, SOCK_STREAM } from "../../ffi/socket.ts";
import { canonicalPortName } from "../../src/port_name.ts";
import { samePortTarget } from "../../src/same_port.ts";

/** Creates a socket file at `path` (bound, not listening: only the inode matters here). */
function socketFile(path: string): void {
  const p = cstr(path);
  const sa = new Uint8Array(2 + p.length);
  sa[0] = AF_UNIX;
  sa.set(p, 2);
  const fd = check(sock.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket");
  try {
    check(sock.bind(fd, sa, sa.length), "bind", path);
  } finally {
    libc.close(fd);
  }
}

Deno.test("a socket named through a symbolic link, or '..' after one, is the same port", () => {
  const dir = Deno.makeTempDirSync({ prefix: "vfu-same-" });
  try {
    Deno.mkdirSync(`${dir}/other/deep`, { recursive: true });
    socketFile(`${dir}/s.sock`);
    socketFile(`${dir}/other/s.sock`);
    Deno.symlinkSync(`${dir}/s.sock`, `${dir}/link.sock`);
    Deno.symlinkSync(`${dir}/other/deep`, `${dir}/sub`);
    const port = (p: string) => `vfio-user:${dir}/${p}`;

    // The names differ, the file is one.
    assert.notEqual(canonicalPortName(port("link.sock")), canonicalPortName(port("s.sock")));
    assert.equal(samePortTarget(port("link.sock"), port("s.sock")), true);
    // sub/.. is other/, not dir/: the kernel resolves `..` after the link.
    assert.equal(samePortTarget(port("sub/../s.sock"), port("other/s.sock")), true);
    assert.equal(samePortTarget(port("sub/../s.sock"), port("s.sock")), false);
    assert.equal(samePortTarget(port("s.sock"), port("other/s.sock")), false);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("ports whose sockets do not exist (yet) are compared by canonical name", () => {
  assert.equal(
    samePortTarget("vfio-user:/nonexistent/a/../s.sock", "vfio-user:/nonexistent/s.sock"),
    true,
  );
  assert.equal(
    samePortTarget("vfio-user:/nonexistent/s.sock", "vfio-user:/nonexistent/t.sock"),
    false,
  );
  assert.equal(samePortTarget("00:04.0", "0000:00:04.0"), true);
  assert.equal(samePortTarget("0000:00:04.0", "vfio-user:/nonexistent/s.sock"), false);
});
