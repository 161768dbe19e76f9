/**
 * Workers' doorbells of the eventfd kind (src/engine/notifier.ts; vhost-user's kick fd) and
 * vhost-user port names (src/port_name.ts).
 */

import assert from "node:assert/strict";
import { Eventfd } from "../../ffi/eventfd.ts";
import { makeNotifier } from "../../src/engine/notifier.ts";
import { DriverError } from "../../src/errors.ts";
import { parsePortSpec } from "../../src/port_name.ts";
import { EventfdKick } from "../../src/vhost_user/kick.ts";

Deno.test("an eventfd doorbell adds 1 to the counter per notification", () => {
  const efd = Eventfd.create();
  try {
    const n = makeNotifier({ kind: "eventfd", fd: efd.fd, what: "the kick eventfd" }, "txq");
    n.notify();
    n.notify();
    n.notify();
    assert.equal(efd.take(), 3);
    assert.equal(efd.take(), 0);
  } finally {
    efd.close();
  }
});

Deno.test("an eventfd doorbell on a closed fd fails with one sentence naming the queue", () => {
  const efd = Eventfd.create();
  const fd = efd.fd;
  efd.close();
  const n = makeNotifier(
    { kind: "eventfd", fd, what: "the kick eventfd of vhost-user:/a.sock" },
    "transmitq1",
  );
  assert.throws(() => n.notify(), (e: unknown) => {
    assert.ok(e instanceof DriverError);
    assert.equal(e.code, "TRANSPORT");
    assert.match(
      e.message,
      /^Notifying transmitq1 through the kick eventfd of vhost-user:\/a\.sock failed \(write: errno 9\)/,
    );
    return true;
  });
});

Deno.test("the main thread's vhost-user kick adds 1 per notification too", () => {
  const efd = Eventfd.create();
  try {
    const k = new EventfdKick(efd.fd, "transmitq1");
    k.notify();
    k.notify();
    assert.equal(efd.take(), 2);
  } finally {
    efd.close();
  }
});

Deno.test("vhost-user port names take ?mac= and ?queues=, joined by &", () => {
  assert.deepEqual(parsePortSpec("vhost-user:/run/a.sock"), {
    kind: "vhost-user",
    socketPath: "/run/a.sock",
    name: "vhost-user:/run/a.sock",
  });
  assert.deepEqual(parsePortSpec("vhost-user:/run/./a.sock?mac=02:00:00:00:00:0A&queues=4"), {
    kind: "vhost-user",
    socketPath: "/run/a.sock",
    name: "vhost-user:/run/a.sock",
    mac: "02:00:00:00:00:0a",
    queues: 4,
  });
});

Deno.test("a vhost-user port name with an unknown, repeated or impossible option is BAD_ADDRESS", () => {
  for (
    const [text, why] of [
      ["vhost-user:/a.sock?speed=10", /does not know \(speed=10\)/],
      ["vhost-user:/a.sock?queues=0", /does not know \(queues=0\)/],
      ["vhost-user:/a.sock?queues=129", /at most 128/],
      ["vhost-user:/a.sock?mac=02:00:00:00:01", /does not know/],
      ["vhost-user:/a.sock?queues=2&queues=4", /twice/],
      ["vhost-user:a.sock", /names no socket/],
    ] as const
  ) {
    assert.throws(() => parsePortSpec(text), (e: unknown) => {
      assert.ok(e instanceof DriverError, text);
      assert.equal(e.code, "BAD_ADDRESS", text);
      assert.match(e.message, why, text);
      return true;
    });
  }
});
