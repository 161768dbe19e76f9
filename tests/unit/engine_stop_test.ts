/**
 * Stopping the engine releases memory only once every worker has provably stopped
 * touching it: each worker confirms through its presence word (src/engine/control.ts);
 * one that does not (stuck in a foreign call, which `Worker.terminate()` cannot interrupt)
 * makes `stop()` say so, and the ports and the pool keep their memory mapped. Real
 * forwarding workers against fake devices (fake_virtio_pci.ts, engine_fake_nic.ts).
 */

import assert from "node:assert/strict";
import { createSharedPool } from "../../src/dma/buffer_pool.ts";
import { ForwardingEngine } from "../../src/engine/engine.ts";
import { udpFrames } from "../bed/frames.ts";
import { deliverFrame } from "./engine_fake_nic.ts";
import {
  CTL_STOP,
  requestStop,
  sharedControl,
  STOP_DRAIN,
  STOP_NOW,
} from "../../src/engine/control.ts";
import { openFakePort, portDevice } from "./fake_virtio_pci.ts";

const STUCK = new URL("./engine_stuck_script.ts", import.meta.url).href;

/** Two fake ports on a shared pool, and the engine forwarding between them. */
async function engineOn(name: string, script?: string) {
  const pool = createSharedPool(1024, 2048, { hugePages: false });
  const devs = [0, 1].map((i) => portDevice(`vfio-user:/${name}${i}`));
  const ports = devs.map((d) => openFakePort(d, { pool }));
  const engine = await ForwardingEngine.start(ports, pool, {
    script: script ? { path: script } : undefined,
  });
  return { pool, devs, ports, engine };
}

Deno.test("a worker stuck in a foreign call: stop() reports it, and the ports and the pool keep their memory", async () => {
  const { pool, devs, ports, engine } = await engineOn("fake-stuck", STUCK);
  deliverFrame(ports[0], pool, udpFrames({ seed: 1, count: 1, flows: 1 })[0]);
  // The script counts the burst before it blocks: then the worker is inside poll(2).
  const until = performance.now() + 10_000;
  while (!engine.snapshot().scriptCounters?.entered && performance.now() < until) {
    await new Promise((r) => setTimeout(r, 1));
  }
  assert.equal(engine.snapshot().scriptCounters?.entered, 1, "the script was never called");
  const stopped = await engine.stop(300);
  assert.equal(stopped.unsafeToRelease, true, "unsafeToRelease");
  assert.deepEqual(stopped.stuckWorkers, [0]);
  assert.equal(engine.unsafeToRelease, true);
  for (const [i, port] of ports.entries()) {
    devs[i].events.length = 0;
    assert.throws(
      () => port.close(),
      /queue pair 0 did not confirm it stopped, so .* keeps its DMA memory and device open until the process exits/,
    );
    // Reset (the device stops its DMA), but no unmapping and no close.
    assert.deepEqual(devs[i].events, ["reset"], `${port.name}`);
  }
  assert.equal(pool.region.free(), false, "the shared pool stays mapped");
});

Deno.test("workers that stopped: stop() says the memory can go, and closing releases it", async () => {
  const { pool, devs, ports, engine } = await engineOn("fake-stop");
  const stopped = await engine.stop();
  assert.equal(stopped.unsafeToRelease, false, "unsafeToRelease");
  assert.deepEqual(stopped.stuckWorkers, []);
  for (const [i, port] of ports.entries()) {
    devs[i].events.length = 0;
    port.close();
    assert.deepEqual(devs[i].events.map((e) => e.split(" ")[0]), [
      "reset",
      "dmaUnmap",
      "dmaUnmap",
      "close",
    ]);
  }
  assert.equal(pool.region.free(), true);
});

Deno.test("the stop flag: STOP_NOW replaces STOP_DRAIN, and STOP_DRAIN never replaces STOP_NOW", () => {
  const ctl = sharedControl(1);
  requestStop(ctl);
  assert.equal(Atomics.load(ctl, CTL_STOP), STOP_DRAIN);
  requestStop(ctl, STOP_NOW); // a fault after a worker failed: send nothing more
  assert.equal(Atomics.load(ctl, CTL_STOP), STOP_NOW);
  requestStop(ctl); // what awaitWorkersLeft raises while it waits
  assert.equal(Atomics.load(ctl, CTL_STOP), STOP_NOW);
});
