/**
 * connect and send to a vfio-user server are bounded by the client's timeout: a listener
 * that accepts nobody, or a server that stopped reading, gives one TRANSPORT sentence
 * instead of a thread blocked forever. Each call runs in vfio_user_blocking_probe.ts, a
 * process of its own that the test kills if it hangs.
 */

import assert from "node:assert/strict";

/** The probe's JSON line, or a failure saying it hung. */
async function probe(scenario: "connect" | "send"): Promise<Record<string, unknown>> {
  const started = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("./vfio_user_blocking_probe.ts", import.meta.url).pathname,
      scenario,
    ],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(20_000),
  }).output();
  const ms = performance.now() - started;
  assert.equal(
    out.signal,
    null,
    `the ${scenario} probe was killed after ${
      Math.round(ms)
    } ms: the call blocked past its 500 ms timeout`,
  );
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

Deno.test("a listener that accepts nobody gives a TRANSPORT sentence after the timeout", async () => {
  const r = await probe("connect");
  assert.equal(r.code, "TRANSPORT");
  assert.match(
    r.message as string,
    /^The vfio-user server at \S+s\.sock accepted no connection in time \(its listen queue is full: it is stuck, or busy with other clients\): restart it, or check the path\.$/,
  );
});

Deno.test("a server that stops reading gives a TRANSPORT sentence and a dropped connection", async () => {
  const r = await probe("send");
  const sentence =
    /^The vfio-user server at \S+s\.sock did not take VFIO_USER_REGION_WRITE within 500 ms \(it stopped reading its socket\): it is stuck; restart it and open the port again\.$/;
  assert.equal(r.code, "TRANSPORT");
  assert.match(r.message as string, sentence);
  // Part of the message may be in the stream: the connection is dropped, and later
  // calls get the same sentence.
  assert.equal(r.connected, false);
  assert.match(r.again as string, sentence);
});
