/**
 * The engine in a generating mode (txonly, flowgen) on two ports, run on the host by
 * tests/generator_vhost_user_test.ts with `--allow-ffi` only:
 *
 * `deno run --allow-ffi tests/bed/gen_run.ts CONFIG_JSON PORT_A PORT_B`
 *
 * CONFIG_JSON: `{ mode, frameSize, flows?, ratePps?, queues?, warmS, measureS }`. It opens
 * both ports (`queues` queue pairs each, default 1: one worker per pair) on one shared pool, writes "open" on stderr, waits for a line on stdin (the back-end
 * forwards by then), starts the engine, takes a snapshot after `warmS` and another
 * `measureS` later (each with the main thread's time in ms), stops the engine (its workers
 * drain: what is in flight comes back and is counted), closes the ports and writes one
 * JSON line `{ t1, t2, s1, s2, final }` on stdout. Exit 1 with the error on stderr.
 *
 * @module
 */

import { createSharedPool, ForwardingEngine, openPort } from "../../mod.ts";
import type { EngineOptions } from "../../mod.ts";

interface Config {
  mode: "txonly" | "flowgen";
  frameSize: number;
  flows?: number;
  ratePps?: number;
  queues?: number;
  warmS: number;
  measureS: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const [json, a, b] = Deno.args;
  const cfg = JSON.parse(json) as Config;
  const pool = createSharedPool(8192, 2048);
  const queuePairs = cfg.queues ?? 1;
  const ports = [a, b].map((name) => openPort(name, { pool, queuePairs, hashReport: false }));
  try {
    console.error("open");
    // One line on stdin: the back-end forwards now.
    const reader = Deno.stdin.readable.getReader();
    await reader.read();
    reader.releaseLock();
    const options: EngineOptions = {
      mode: cfg.mode,
      generator: { frameSize: cfg.frameSize, flows: cfg.flows, ratePps: cfg.ratePps },
    };
    const engine = await ForwardingEngine.start(ports, pool, options);
    await sleep(cfg.warmS * 1000);
    const t1 = performance.now(), s1 = engine.snapshot();
    await sleep(cfg.measureS * 1000);
    const t2 = performance.now(), s2 = engine.snapshot();
    const final = await engine.stop();
    if (final.unsafeToRelease) throw new Error("a worker did not stop");
    if (engine.error) throw engine.error;
    console.log(JSON.stringify({ t1, t2, s1, s2, final }));
  } finally {
    for (const p of ports) p.close();
    pool.region.free();
  }
}

main().catch((e) => {
  console.error(e?.message ?? String(e));
  Deno.exit(1);
});
