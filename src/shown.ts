/**
 * How a refused argument appears in a BAD_ARGUMENT sentence.
 *
 * @module
 */

/**
 * `v` as a message shows it: strings quoted, other primitives as they print, objects by
 * kind (never their contents, which may be large or hold a secret).
 *
 * @example
 * ```ts
 * import { shown } from "./shown.ts";
 * shown("x"); // "'x'"
 * shown(-1); // "-1"
 * shown([1, 2]); // "an array"
 * ```
 */
export function shown(v: unknown): string {
  if (typeof v === "string") return `'${v}'`;
  if (v === null || typeof v !== "object") return String(v);
  return Array.isArray(v) ? "an array" : "an object";
}
