/**
 * libc through Deno FFI: the only door this library uses to the system.
 *
 * Everything the driver does with the kernel (sysfs, VFIO ioctls, mmap, eventfds, memfds)
 * goes through these symbols, so `deno run --allow-ffi` is the only permission a user needs.
 *
 * Performance notes (measured with Deno 2.9, see DEVELOPERS.md): `u64`/`usize` arguments are
 * passed as BigInt to stay on the fast call path; none of these functions is called per
 * packet on the kernel-VFIO path.
 *
 * @module
 */

import { lazyLibrary } from "./lazy_library.ts";

/** The raw libc symbols. Callers check return values themselves or use {@linkcode check}. */
export const libc = lazyLibrary("libc.so.6", {
  open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  pread: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize" },
  pwrite: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize" },
  ioctl: { parameters: ["i32", "u64", "buffer"], result: "i32" },
  /** ioctl whose third argument is a plain integer (VFIO_SET_IOMMU, VFIO_CHECK_EXTENSION). */
  ioctl_int: { name: "ioctl", parameters: ["i32", "u64", "u64"], result: "i32" },
  mmap: {
    parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"],
    result: "pointer",
  },
  munmap: { parameters: ["pointer", "usize"], result: "i32" },
  ftruncate: { parameters: ["i32", "i64"], result: "i32" },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  memfd_create: { parameters: ["buffer", "u32"], result: "i32" },
  /** fcntl with an integer argument (F_ADD_SEALS, F_GET_SEALS). */
  fcntl_int: { name: "fcntl", parameters: ["i32", "i32", "i32"], result: "i32" },
  access: { parameters: ["buffer", "i32"], result: "i32" },
  rename: { parameters: ["buffer", "buffer"], result: "i32" },
  readlink: { parameters: ["buffer", "buffer", "usize"], result: "isize" },
  opendir: { parameters: ["buffer"], result: "pointer" },
  readdir: { parameters: ["pointer"], result: "pointer" },
  closedir: { parameters: ["pointer"], result: "i32" },
  getpid: { parameters: [], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
  strerror: { parameters: ["i32"], result: "pointer" },
});

// open(2) flags, x86-64 values from <asm-generic/fcntl.h>.
/** Open for reading only. */
export const O_RDONLY = 0;
/** Open for writing only. */
export const O_WRONLY = 1;
/** Open for reading and writing. */
export const O_RDWR = 2;
/** Create the file if it does not exist. */
export const O_CREAT = 0o100;
/** Truncate the file to length 0. */
export const O_TRUNC = 0o1000;
/** Append on each write. */
export const O_APPEND = 0o2000;
/** Non-blocking I/O. */
export const O_NONBLOCK = 0o4000;
/** Close the descriptor on exec. */
export const O_CLOEXEC = 0o2000000;

// mmap(2) constants from <asm-generic/mman-common.h> and <asm/mman.h>.
/** Pages may be read. */
export const PROT_READ = 1;
/** Pages may be written. */
export const PROT_WRITE = 2;
/** Share the mapping with other mappers of the object. */
export const MAP_SHARED = 0x01;
/** Private copy-on-write mapping. */
export const MAP_PRIVATE = 0x02;
/** Not backed by a file. */
export const MAP_ANONYMOUS = 0x20;
/** Pre-fault the pages. */
export const MAP_POPULATE = 0x8000;
/** Back the mapping with huge pages. */
export const MAP_HUGETLB = 0x40000;
/** mmap's failure value, `(void *)-1`. */
export const MAP_FAILED = 0xffff_ffff_ffff_ffffn;

// memfd_create(2) flags from <linux/memfd.h>.
/** Close the memfd on exec. */
export const MFD_CLOEXEC = 0x1;
/** Allow seals on the memfd (F_ADD_SEALS). */
export const MFD_ALLOW_SEALING = 0x2;
/** Back the memfd with huge pages. */
export const MFD_HUGETLB = 0x4;
/** Select 2 MiB huge pages (21 << MFD_HUGE_SHIFT). */
export const MFD_HUGE_2MB = 21 << 26;

// File seals, fcntl(2) and <linux/fcntl.h>.
/** fcntl command: add seals. */
export const F_ADD_SEALS = 1033;
/** fcntl command: read the seals. */
export const F_GET_SEALS = 1034;
/** Seal: no more seals can be added. */
export const F_SEAL_SEAL = 0x1;
/** Seal: the file cannot shrink. */
export const F_SEAL_SHRINK = 0x2;
/** Seal: the file cannot grow. */
export const F_SEAL_GROW = 0x4;

// eventfd(2) flags.
/** Close the eventfd on exec. */
export const EFD_CLOEXEC = 0o2000000;
/** Non-blocking eventfd. */
export const EFD_NONBLOCK = 0o4000;

// Selected errno values (<asm-generic/errno-base.h>).
/** Operation not permitted. */
export const EPERM = 1;
/** No such file or directory. */
export const ENOENT = 2;
/** Interrupted system call. */
export const EINTR = 4;
/** No such device or address. */
export const ENXIO = 6;
/** Try again. */
export const EAGAIN = 11;
/** Out of memory. */
export const ENOMEM = 12;
/** Permission denied. */
export const EACCES = 13;
/** Device or resource busy. */
export const EBUSY = 16;
/** No such device. */
export const ENODEV = 19;
/** Invalid argument. */
export const EINVAL = 22;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Encodes a string as a NUL-terminated C string.
 *
 * @example
 * ```ts
 * import { cstr } from "./libc.ts";
 * cstr("/dev/vfio/vfio"); // Uint8Array ending in 0
 * ```
 */
export function cstr(s: string): Uint8Array<ArrayBuffer> {
  return encoder.encode(s + "\0");
}

/**
 * Reads a NUL-terminated C string at `ptr`.
 *
 * @example
 * ```ts
 * import { libc, readCString } from "./libc.ts";
 * readCString(libc.strerror(2)); // "No such file or directory"
 * ```
 */
export function readCString(ptr: Deno.PointerValue): string {
  if (ptr === null) return "";
  return new Deno.UnsafePointerView(ptr).getCString();
}

/**
 * The calling thread's errno, read right after a failed call.
 *
 * @example
 * ```ts
 * import { errno, libc } from "./libc.ts";
 * if (libc.close(-1) < 0) console.log(errno()); // 9 (EBADF)
 * ```
 */
export function errno(): number {
  const p = libc.__errno_location();
  return new Deno.UnsafePointerView(p!).getInt32();
}

/**
 * The text of an errno value, as strerror(3) gives it.
 *
 * @example
 * ```ts
 * import { strerror } from "./libc.ts";
 * strerror(13); // "Permission denied"
 * ```
 */
export function strerror(code: number): string {
  return readCString(libc.strerror(code));
}

/**
 * A failed system call: which call, on what, and errno with its text.
 *
 * @example
 * ```ts
 * import { SysError } from "./libc.ts";
 * const e = new SysError("open", "/dev/vfio/vfio", 2);
 * e.message; // "open /dev/vfio/vfio: No such file or directory (errno 2)"
 * ```
 */
export class SysError extends Error {
  /** errno at the time of the failure. */
  readonly errno: number;
  /** The failed call, e.g. "open" or "ioctl VFIO_IOMMU_MAP_DMA". */
  readonly op: string;
  /** Creates the error; `code` defaults to the current errno. */
  constructor(op: string, what: string, code: number = errno()) {
    super(`${op}${what ? " " + what : ""}: ${strerror(code)} (errno ${code})`);
    this.name = "SysError";
    this.errno = code;
    this.op = op;
  }
}

/**
 * Returns `ret` as a number, or throws {@linkcode SysError} when it is negative.
 *
 * @example
 * ```ts
 * import { check, cstr, libc, O_RDONLY } from "./libc.ts";
 * const fd = check(libc.open(cstr("/proc/self/stat"), O_RDONLY, 0), "open", "/proc/self/stat");
 * libc.close(fd);
 * ```
 */
export function check(ret: number | bigint, op: string, what = ""): number {
  const n = Number(ret);
  if (n < 0) throw new SysError(op, what);
  return n;
}

/**
 * The numeric address of a pointer (0 for null).
 *
 * @example
 * ```ts
 * import { addressOf } from "./libc.ts";
 * addressOf(null); // 0n
 * ```
 */
export function addressOf(p: Deno.PointerValue): bigint {
  return p === null ? 0n : BigInt(Deno.UnsafePointer.value(p));
}

/**
 * Decodes UTF-8 bytes up to the first NUL (or the end).
 *
 * @example
 * ```ts
 * import { decodeCString } from "./libc.ts";
 * decodeCString(new Uint8Array([104, 105, 0, 1])); // "hi"
 * ```
 */
export function decodeCString(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  return decoder.decode(end < 0 ? bytes : bytes.subarray(0, end));
}
