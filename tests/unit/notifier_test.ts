/**
 * A forwarding worker's vfio-user notification (src/engine/notifier.ts) waits a bounded
 * time for a server that stopped reading, then fails with one sentence; a stop request
 * ends the wait. Each case runs in notifier_blocking_probe.ts, a process of its own that
 * the test kills if it hangs. How a wait ended is told by its result, never by its
 * duration: a test asserts only that a wait waited (a lower bound), so load cannot fail it.
 */

import assert from "node:assert/strict";

/** The probe's JSON line, or a failure saying it hung. */
async function probe(
  scenario: "stuck" | "drain" | "stop",
  timeoutMs: number,
): Promise<Record<string, unknown>> {
  const started = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("./notifier_blocking_probe.ts", import.meta.url).pathname,
      scenario,
      String(timeoutMs),
    ],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(timeoutMs + 20_000),
  }).output();
  const ms = Math.round(performance.now() - started);
  assert.equal(
    out.signal,
    null,
    `the ${scenario} probe was killed after ${ms} ms: notify() blocked past its ${timeoutMs} ms deadline`,
  );
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

Deno.test("a notification to a vfio-user server that stopped reading fails the worker with one sentence at its deadline", async () => {
  const r = await probe("stuck", 300);
  assert.equal(r.code, "TRANSPORT");
  assert.equal(
    r.message,
    "The vfio-user server of vfio-user:/probe.sock stopped reading notifications (transmitq1 waited 300 ms for room on its socket): restart it and open the port again.",
  );
  const ms = r.ms as number;
  assert.ok(ms >= 290, `gave up after ${ms} ms, before its deadline`);
  // The fd is shared with the main thread's client: its flags stay as they were.
  assert.equal(r.flagsAfter, r.flagsBefore);
});

Deno.test("a notification waits for a vfio-user server that makes room before the deadline", async () => {
  const r = await probe("drain", 5000);
  assert.equal(r.message, "returned", `${r.message}`); // a failure would name the deadline
  assert.ok((r.ms as number) >= 200, `sent after ${r.ms} ms, before the server made room`);
  assert.equal(r.flagsAfter, r.flagsBefore);
});

Deno.test("a stop request ends a notification's wait for a stalled vfio-user server, without an error", async () => {
  // The stop comes 300 ms in; the deadline is far off, and reaching it would name it.
  const r = await probe("stop", 60_000);
  assert.equal(r.message, "returned", `${r.message}`);
  const ms = r.ms as number;
  assert.ok(ms >= 200, `returned after ${ms} ms, before the stop came`);
  assert.equal(r.flagsAfter, r.flagsBefore);
});
