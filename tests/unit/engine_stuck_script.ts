/**
 * A forwarding script whose first burst does not return for 20 seconds: a worker stuck in
 * its loop, for the engine's stop tests (engine_stop_test.ts).
 *
 * @module
 */

/** Spins for 20 s (long past any stop timeout). */
export function handleBurst(): void {
  const until = Date.now() + 20_000;
  while (Date.now() < until) {
    // spin
  }
}
