/**
 * libc opened on first use rather than when a module loads: a program can import the
 * library, check that it was given `--allow-ffi`, and say so in one sentence, instead of
 * failing inside an import (Deno refuses dlopen without the permission).
 *
 * @module
 */

/**
 * The symbols of `path`, opened the first time one is used.
 *
 * @example
 * ```ts ignore
 * import { lazyLibrary } from "./lazy_library.ts";
 * const lib = lazyLibrary("libc.so.6", { getpid: { parameters: [], result: "i32" } });
 * lib.getpid(); // dlopen happens here
 * ```
 */
export function lazyLibrary<S extends Deno.ForeignLibraryInterface>(
  path: string,
  symbols: S,
): Deno.DynamicLibrary<S>["symbols"] {
  let opened: Deno.DynamicLibrary<S>["symbols"] | null = null;
  return new Proxy({} as Deno.DynamicLibrary<S>["symbols"], {
    get(_target, name) {
      opened ??= Deno.dlopen(path, symbols).symbols;
      return opened[name as keyof typeof opened];
    },
  });
}
