/** File helpers over libc (ffi/fs.ts), on /proc and on a temporary directory. */

import assert from "node:assert/strict";
import {
  basename,
  exists,
  listDir,
  readBytes,
  readLink,
  readText,
  writeBytes,
  writeText,
} from "../../ffi/fs.ts";
import { EACCES, ENOENT, SysError } from "../../ffi/libc.ts";

const ENOTDIR = 20;

async function withTempDir(fn: (dir: string) => void | Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "fs_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function assertSysError(fn: () => unknown, op: string, errno: number, path: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof SysError, `expected SysError, got ${e}`);
    assert.equal(e.op, op);
    assert.equal(e.errno, errno);
    assert.ok(e.message.includes(path), `message names ${path}: ${e.message}`);
    return true;
  });
}

Deno.test("readText() reads a /proc file whole", () => {
  assert.equal(readText("/proc/sys/kernel/ostype"), "Linux\n");
  assert.equal(readText("/proc/self/stat").split(" ")[0], String(Deno.pid));
});

Deno.test("readText() reads files larger than one 4 KiB chunk and stops at `max`", async () => {
  await withTempDir(async (dir) => {
    const text = "0123456789abcdef".repeat(1000); // 16000 bytes
    await Deno.writeTextFile(`${dir}/big.txt`, text);
    assert.equal(readText(`${dir}/big.txt`), text);
    assert.equal(readText(`${dir}/big.txt`, 5000), text.slice(0, 5000));
    await Deno.writeTextFile(`${dir}/empty`, "");
    assert.equal(readText(`${dir}/empty`), "");
    await Deno.writeTextFile(`${dir}/utf8`, "grüße ✓\n");
    assert.equal(readText(`${dir}/utf8`), "grüße ✓\n");
  });
});

Deno.test("readText() on a missing file throws SysError naming the path and ENOENT", () => {
  assertSysError(() => readText("/proc/no/such/file"), "open", ENOENT, "/proc/no/such/file");
});

Deno.test("exists() is true for files and directories and false for missing paths", async () => {
  assert.equal(exists("/proc/self"), true);
  assert.equal(exists("/proc/sys/kernel/ostype"), true);
  assert.equal(exists("/proc/self/no-such-entry"), false);
  await withTempDir(async (dir) => {
    assert.equal(exists(dir), true);
    assert.equal(exists(`${dir}/x`), false);
    await Deno.writeTextFile(`${dir}/x`, "1");
    assert.equal(exists(`${dir}/x`), true);
    await Deno.symlink(`${dir}/nowhere`, `${dir}/dangling`);
    assert.equal(exists(`${dir}/dangling`), false, "access(2) follows links");
  });
});

Deno.test("listDir() lists entries sorted, without . and ..", async () => {
  await withTempDir(async (dir) => {
    assert.deepEqual(listDir(dir), []);
    for (const n of ["b", "a", "0000:00:04.0", ".hidden", "c.d"]) {
      await Deno.writeTextFile(`${dir}/${n}`, "");
    }
    await Deno.mkdir(`${dir}/sub`);
    assert.deepEqual(listDir(dir), [".hidden", "0000:00:04.0", "a", "b", "c.d", "sub"]);
  });
});

Deno.test("listDir() returns every entry of a large directory with full names", async () => {
  await withTempDir(async (dir) => {
    const names: string[] = [];
    for (let i = 0; i < 300; i++) {
      const n = `entry-${String(i).padStart(3, "0")}-${"x".repeat(i % 200)}`;
      names.push(n);
      await Deno.writeTextFile(`${dir}/${n}`, "");
    }
    assert.deepEqual(listDir(dir), names.sort());
  });
});

Deno.test("listDir() agrees with Deno.readDirSync() on /proc/self", () => {
  const mine = listDir("/proc/self");
  const theirs = [...Deno.readDirSync("/proc/self")].map((e) => e.name).sort();
  assert.deepEqual(mine, theirs);
});

Deno.test("listDir() on a missing directory or a file throws SysError", async () => {
  assertSysError(() => listDir("/proc/self/nope"), "opendir", ENOENT, "/proc/self/nope");
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/f`, "");
    assertSysError(() => listDir(`${dir}/f`), "opendir", ENOTDIR, `${dir}/f`);
  });
});

Deno.test("readLink() returns a link's target, or null for a non-link", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/file`, "");
    await Deno.symlink("../../bus/pci/drivers/virtio-pci", `${dir}/driver`);
    await Deno.symlink(`${dir}/file`, `${dir}/abs`);
    assert.equal(readLink(`${dir}/driver`), "../../bus/pci/drivers/virtio-pci");
    assert.equal(readLink(`${dir}/abs`), `${dir}/file`);
    assert.equal(readLink(`${dir}/file`), null);
    assert.equal(readLink(`${dir}/missing`), null);
  });
});

Deno.test("readLink() reads /proc/self/exe as the deno binary", () => {
  assert.equal(readLink("/proc/self/exe"), Deno.realPathSync(Deno.execPath()));
});

Deno.test("basename() gives the last path component", () => {
  assert.equal(basename("../../../bus/pci/drivers/virtio-pci"), "virtio-pci");
  assert.equal(basename("/sys/kernel/iommu_groups/12"), "12");
  assert.equal(basename("name"), "name");
  assert.equal(basename("/a/b/"), "b");
  assert.equal(basename("/"), "");
  assert.equal(basename(""), "");
});

Deno.test("writeText() writes an existing file in one write and does not create files", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/attr`, "old contents that are longer");
    writeText(`${dir}/attr`, "vfio-pci");
    // Like a sysfs attribute: no O_TRUNC, the write lands at offset 0.
    assert.ok((await Deno.readTextFile(`${dir}/attr`)).startsWith("vfio-pci"));
    assertSysError(() => writeText(`${dir}/nope`, "x"), "open", ENOENT, `${dir}/nope`);
    assert.equal(exists(`${dir}/nope`), false);
  });
});

Deno.test({
  name: Deno.uid() === 0
    ? "writeText() to a read-only file throws SysError with EACCES [SKIPPED: root ignores modes]"
    : "writeText() to a read-only file throws SysError with EACCES",
  ignore: Deno.uid() === 0,
  async fn() {
    await withTempDir(async (dir) => {
      await Deno.writeTextFile(`${dir}/ro`, "");
      await Deno.chmod(`${dir}/ro`, 0o444);
      assertSysError(() => writeText(`${dir}/ro`, "x"), "open", EACCES, `${dir}/ro`);
    });
  },
});

Deno.test("writeBytes() and readBytes() round-trip data larger than 64 KiB", async () => {
  await withTempDir(async (dir) => {
    const data = Uint8Array.from({ length: 200_000 }, (_, i) => (i * 7) & 0xff);
    writeBytes(`${dir}/blob`, data);
    assert.deepEqual(readBytes(`${dir}/blob`), data);
    assert.deepEqual(await Deno.readFile(`${dir}/blob`), data);
    writeBytes(`${dir}/blob`, new Uint8Array([1, 2, 3])); // truncates
    assert.deepEqual(readBytes(`${dir}/blob`), new Uint8Array([1, 2, 3]));
    writeBytes(`${dir}/blob`, new Uint8Array(0));
    assert.equal(readBytes(`${dir}/blob`).length, 0);
    assert.equal((await Deno.stat(`${dir}/blob`)).mode! & 0o777, 0o644 & ~Deno.umask());
  });
});
