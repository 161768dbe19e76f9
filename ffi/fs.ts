/**
 * Small file-system helpers over libc, for sysfs and device nodes. They need only
 * `--allow-ffi` (Deno's own file APIs would also need `--allow-read`/`--allow-write`).
 *
 * @module
 */

import {
  check,
  cstr,
  libc,
  O_CLOEXEC,
  O_CREAT,
  O_RDONLY,
  O_TRUNC,
  O_WRONLY,
  readCString,
  SysError,
} from "./libc.ts";

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/**
 * True when `path` exists (access(2) with F_OK).
 *
 * @example
 * ```ts
 * import { exists } from "./fs.ts";
 * exists("/sys/bus/pci/devices"); // true on Linux
 * ```
 */
export function exists(path: string): boolean {
  return libc.access(cstr(path), 0) === 0;
}

/**
 * Reads a whole (small) file as text, like `cat`.
 *
 * @example
 * ```ts
 * import { readText } from "./fs.ts";
 * readText("/proc/sys/kernel/ostype"); // "Linux\n"
 * ```
 */
export function readText(path: string, max = 65536): string {
  const fd = check(libc.open(cstr(path), O_RDONLY | O_CLOEXEC, 0), "open", path);
  try {
    const chunks: Uint8Array[] = [];
    let total = 0;
    while (total < max) {
      const buf = new Uint8Array(Math.min(4096, max - total));
      const n = check(libc.read(fd, buf, BigInt(buf.length)), "read", path);
      if (n === 0) break;
      chunks.push(buf.subarray(0, n));
      total += n;
    }
    const all = new Uint8Array(total);
    let off = 0;
    for (const c of chunks) {
      all.set(c, off);
      off += c.length;
    }
    return decoder.decode(all);
  } finally {
    libc.close(fd);
  }
}

/**
 * Writes text to a file in one write(2), as sysfs attributes expect; throws
 * {@linkcode SysError} with the errno the kernel returned.
 *
 * @example
 * ```ts ignore
 * import { writeText } from "./fs.ts";
 * writeText("/sys/bus/pci/devices/0000:00:04.0/driver_override", "vfio-pci");
 * ```
 */
export function writeText(path: string, text: string): void {
  const fd = check(libc.open(cstr(path), O_WRONLY | O_CLOEXEC, 0), "open", path);
  try {
    const data = encoder.encode(text);
    const n = check(libc.write(fd, data, BigInt(data.length)), "write", path);
    if (n !== data.length) throw new SysError("write", `${path} (short write)`, 5);
  } finally {
    libc.close(fd);
  }
}

/**
 * The target of a symbolic link, or null when `path` is not a link.
 *
 * @example
 * ```ts
 * import { readLink } from "./fs.ts";
 * readLink("/proc/self/exe"); // e.g. "/usr/lib/node_modules/deno/deno"
 * ```
 */
export function readLink(path: string): string | null {
  const buf = new Uint8Array(4096);
  const n = Number(libc.readlink(cstr(path), buf, BigInt(buf.length)));
  if (n < 0) return null;
  return decoder.decode(buf.subarray(0, n));
}

/**
 * The entry names of a directory, without "." and "..", sorted.
 *
 * @example
 * ```ts
 * import { listDir } from "./fs.ts";
 * listDir("/sys/bus/pci/devices"); // ["0000:00:00.0", …]
 * ```
 */
export function listDir(path: string): string[] {
  const dir = libc.opendir(cstr(path));
  if (dir === null) throw new SysError("opendir", path);
  const names: string[] = [];
  try {
    for (;;) {
      const ent = libc.readdir(dir);
      if (ent === null) break;
      // glibc x86-64 struct dirent: d_ino u64, d_off i64, d_reclen u16, d_type u8, d_name[256].
      const name = readCString(Deno.UnsafePointer.offset(ent, 19));
      if (name !== "." && name !== "..") names.push(name);
    }
  } finally {
    libc.closedir(dir);
  }
  return names.sort();
}

/**
 * The last path component of a link target (e.g. the driver name of a PCI device).
 *
 * @example
 * ```ts
 * import { basename } from "./fs.ts";
 * basename("../../../bus/pci/drivers/virtio-pci"); // "virtio-pci"
 * ```
 */
export function basename(path: string): string {
  const parts = path.split("/").filter((p) => p.length > 0);
  return parts.length ? parts[parts.length - 1] : "";
}

/**
 * Reads a whole file as bytes.
 *
 * @example
 * ```ts
 * import { readBytes } from "./fs.ts";
 * readBytes("/proc/self/stat").length > 0; // true
 * ```
 */
export function readBytes(path: string): Uint8Array<ArrayBuffer> {
  const fd = check(libc.open(cstr(path), O_RDONLY | O_CLOEXEC, 0), "open", path);
  try {
    let buf = new Uint8Array(1 << 16);
    let total = 0;
    for (;;) {
      if (total === buf.length) {
        const bigger = new Uint8Array(buf.length * 2);
        bigger.set(buf);
        buf = bigger;
      }
      const n = check(
        libc.read(fd, buf.subarray(total), BigInt(buf.length - total)),
        "read",
        path,
      );
      if (n === 0) break;
      total += n;
    }
    return buf.slice(0, total);
  } finally {
    libc.close(fd);
  }
}

/**
 * Creates (or truncates) a file and writes `data` to it.
 *
 * @example
 * ```ts ignore
 * import { writeBytes } from "./fs.ts";
 * writeBytes("/tmp/x.bin", new Uint8Array([1, 2, 3]));
 * ```
 */
export function writeBytes(path: string, data: Uint8Array, mode = 0o644): void {
  const fd = check(
    libc.open(cstr(path), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode),
    "open",
    path,
  );
  try {
    let off = 0;
    while (off < data.length) {
      const n = check(
        libc.write(fd, data.subarray(off), BigInt(data.length - off)),
        "write",
        path,
      );
      off += n;
    }
  } finally {
    libc.close(fd);
  }
}

/**
 * Renames `from` to `to` with rename(2): atomic within a file system, replacing `to`.
 *
 * @example
 * ```ts ignore
 * import { renamePath, writeBytes } from "./fs.ts";
 * writeBytes("/tmp/x.tmp", new Uint8Array([1]));
 * renamePath("/tmp/x.tmp", "/tmp/x"); // readers of /tmp/x see the old file or the new one
 * ```
 */
export function renamePath(from: string, to: string): void {
  check(libc.rename(cstr(from), cstr(to)), "rename", `${from} to ${to}`);
}
