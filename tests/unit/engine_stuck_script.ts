/**
 * A forwarding script whose first burst does not return for 5 seconds because it blocks in
 * a foreign call (poll(2) with no descriptors): a worker stuck where `Worker.terminate()`
 * cannot interrupt it, for the engine's stop tests (engine_stop_test.ts). It counts
 * `entered` first, so the test knows the worker is inside the call.
 *
 * @module
 */

/** `entered`: bursts that reached the blocking call. */
export const counters = ["entered"] as const;

/** The script's view of a burst (only its counters are used). */
interface Burst {
  counters: Float64Array;
}

/** Counts the burst, then blocks in poll(NULL, 0, 5000) (long past any stop timeout). */
export function handleBurst(b: Burst): void {
  b.counters[0]++;
  const libc = Deno.dlopen("libc.so.6", {
    poll: { parameters: ["pointer", "usize", "i32"], result: "i32" },
  });
  libc.symbols.poll(null, 0n, 5000);
  libc.close();
}
