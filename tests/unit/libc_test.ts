/** libc through Deno FFI (ffi/libc.ts): errno, strerror, SysError and the constants. */

import assert from "node:assert/strict";
import * as libcMod from "../../ffi/libc.ts";
import {
  addressOf,
  check,
  cstr,
  decodeCString,
  EACCES,
  ENOENT,
  errno,
  libc,
  O_RDONLY,
  readCString,
  strerror,
  SysError,
} from "../../ffi/libc.ts";
import { CC, runCProbe } from "./c_probe.ts";

const EBADF = 9;

Deno.test("errno() reads the errno of the libc call just made", () => {
  assert.equal(libc.close(-1), -1);
  assert.equal(errno(), EBADF);
  assert.equal(libc.open(cstr("/proc/no/such/file"), O_RDONLY, 0), -1);
  assert.equal(errno(), ENOENT);
});

Deno.test("strerror() gives glibc's text for an errno", () => {
  assert.equal(strerror(ENOENT), "No such file or directory");
  assert.equal(strerror(EACCES), "Permission denied");
  assert.equal(strerror(EBADF), "Bad file descriptor");
  assert.match(strerror(100000), /Unknown error/);
});

Deno.test("SysError says which call failed on what, with errno and its text", () => {
  const e = new SysError("open", "/dev/vfio/vfio", 2);
  assert.equal(e.message, "open /dev/vfio/vfio: No such file or directory (errno 2)");
  assert.equal(e.name, "SysError");
  assert.equal(e.errno, 2);
  assert.equal(e.op, "open");
  assert.ok(e instanceof Error);
  const bare = new SysError("ioctl VFIO_IOMMU_MAP_DMA", "", 22);
  assert.equal(bare.message, "ioctl VFIO_IOMMU_MAP_DMA: Invalid argument (errno 22)");
});

Deno.test("SysError takes the current errno when no code is given", () => {
  libc.close(-1);
  const e = new SysError("close", "-1");
  assert.equal(e.errno, EBADF);
  assert.equal(e.message, "close -1: Bad file descriptor (errno 9)");
});

Deno.test("check() passes non-negative results through and throws SysError on negatives", () => {
  assert.equal(check(0, "x"), 0);
  assert.equal(check(42n, "x"), 42);
  const fd = check(libc.open(cstr("/proc/self/stat"), O_RDONLY, 0), "open", "/proc/self/stat");
  assert.ok(fd >= 0);
  libc.close(fd);
  assert.throws(
    () => check(libc.open(cstr("/proc/no/such"), O_RDONLY, 0), "open", "/proc/no/such"),
    (e: unknown) =>
      e instanceof SysError && e.errno === ENOENT &&
      e.message === "open /proc/no/such: No such file or directory (errno 2)",
  );
  assert.throws(() => check(-1n, "read"), SysError);
});

Deno.test("cstr() NUL-terminates UTF-8, decodeCString() stops at the first NUL", () => {
  assert.deepEqual(cstr("ab"), new Uint8Array([0x61, 0x62, 0]));
  assert.deepEqual(cstr(""), new Uint8Array([0]));
  assert.deepEqual(cstr("ü"), new Uint8Array([0xc3, 0xbc, 0]));
  assert.equal(decodeCString(new Uint8Array([104, 105, 0, 1])), "hi");
  assert.equal(decodeCString(new Uint8Array([104, 105])), "hi", "no NUL: all bytes");
  assert.equal(decodeCString(new Uint8Array([0, 104])), "");
});

Deno.test("readCString() reads a C string at a pointer and gives '' for null", () => {
  assert.equal(readCString(libc.strerror(ENOENT)), "No such file or directory");
  assert.equal(readCString(null), "");
  const buf = cstr("virtio");
  assert.equal(readCString(Deno.UnsafePointer.of(buf)), "virtio");
});

Deno.test("addressOf() is 0n for null and the pointer's value otherwise", () => {
  assert.equal(addressOf(null), 0n);
  const buf = new Uint8Array(16);
  const p = Deno.UnsafePointer.of(buf);
  assert.equal(addressOf(p), BigInt(Deno.UnsafePointer.value(p)));
  assert.ok(addressOf(p) > 0n);
});

Deno.test("getpid() through FFI is Deno.pid", () => {
  assert.equal(libc.getpid(), Deno.pid);
});

// ---------------------------------------------------------------------------------------
// The constants against the system headers, compiled (x86-64 values are also literal in
// the module; this guards against typos).
// ---------------------------------------------------------------------------------------

const HEADERS = ["fcntl.h", "sys/mman.h", "sys/eventfd.h", "errno.h", "linux/memfd.h"];
const NAMES = Object.entries(libcMod)
  .filter(([k, v]) => /^(O|PROT|MAP|MFD|EFD|E)[A-Z0-9_]*$/.test(k) && typeof v === "number")
  .map(([k]) => k);

Deno.test({
  name: CC
    ? "open/mmap/memfd/eventfd flags and errno values match the C headers (compiled with cc)"
    : "open/mmap/memfd/eventfd flags and errno values match the C headers [SKIPPED: no `cc` in PATH]",
  ignore: CC === null,
  async fn() {
    assert.ok(NAMES.length >= 25, `found ${NAMES.join(", ")}`);
    const src = [
      "#define _GNU_SOURCE",
      ...HEADERS.map((h) => `#include <${h}>`),
      "#include <stdio.h>",
      "int main(void) {",
      ...NAMES.map((n) => `  printf("%s %lld\\n", "${n}", (long long)(${n}));`),
      "  return 0;",
      "}",
    ].join("\n");
    const c = new Map(
      (await runCProbe(src)).trim().split("\n").map((l) => {
        const [k, v] = l.split(" ");
        return [k, Number(v)] as const;
      }),
    );
    const mod = libcMod as unknown as Record<string, number>;
    for (const n of NAMES) assert.equal(mod[n], c.get(n), n);
    // MAP_FAILED is (void *)-1.
    assert.equal(libcMod.MAP_FAILED, (1n << 64n) - 1n);
  },
});
