/**
 * A forwarding worker's vfio-user notification (src/engine/notifier.ts) waits a bounded
 * time for a server that stopped reading, then fails with one sentence. Each case runs in
 * notifier_blocking_probe.ts, a process of its own that the test kills if it hangs.
 */

import assert from "node:assert/strict";

/** The probe's JSON line, or a failure saying it hung. */
async function probe(scenario: "stuck" | "drain"): Promise<Record<string, unknown>> {
  const started = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("./notifier_blocking_probe.ts", import.meta.url).pathname,
      scenario,
    ],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(20_000),
  }).output();
  const ms = Math.round(performance.now() - started);
  assert.equal(
    out.signal,
    null,
    `the ${scenario} probe was killed after ${ms} ms: notify() blocked past its 1000 ms deadline`,
  );
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

Deno.test("a notification to a vfio-user server that stopped reading fails the worker with one sentence within about 1 s", async () => {
  const r = await probe("stuck");
  assert.equal(r.code, "TRANSPORT");
  assert.equal(
    r.message,
    "The vfio-user server stopped reading notifications (transmitq1 waited 1000 ms for room on its socket): restart it and open the port again.",
  );
  const ms = r.ms as number;
  assert.ok(ms >= 990 && ms < 3000, `gave up after ${ms} ms`);
  // The fd is shared with the main thread's client: its flags stay as they were.
  assert.equal(r.flagsAfter, r.flagsBefore);
});

Deno.test("a notification waits for a vfio-user server that makes room before the deadline", async () => {
  const r = await probe("drain");
  assert.equal(r.message, "sent");
  const ms = r.ms as number;
  assert.ok(ms >= 200 && ms < 1000, `sent after ${ms} ms`);
  assert.equal(r.flagsAfter, r.flagsBefore);
});
