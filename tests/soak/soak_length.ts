/**
 * How long the soak tests run. `deno task soak` sets VIRTIO_SOAK=full: the lengths issue 13
 * asks for (1,000,000 fuzz iterations, 60 s of overload, 200 open/close cycles). Without it
 * (`deno test`, CI) each runs at a reduced length that still exercises every path.
 *
 * @module
 */

/** True under `deno task soak` (VIRTIO_SOAK=full). */
export const SOAK_FULL: boolean = Deno.env.get("VIRTIO_SOAK") === "full";

/** `full` under `deno task soak`, `reduced` otherwise. */
export function soakLength(full: number, reduced: number): number {
  return SOAK_FULL ? full : reduced;
}
