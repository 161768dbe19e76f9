import assert from "node:assert/strict";
import type { EngineOptions, EngineSnapshot } from "../../mod.ts";
import { testpmdConsole } from "../../examples/testpmd_console.ts";

/** A host whose counters are set by the test; records restarts. */
function host(options: EngineOptions) {
  let halted = true;
  let rx = 0;
  const restarts: EngineOptions[] = [];
  const calls: string[] = [];
  const snap = (): EngineSnapshot =>
    ({
      ports: [0, 1].map((port) => ({
        port,
        name: `p${port}`,
        rxPackets: rx,
        txPackets: rx,
        kicks: 0,
        queues: [],
        xstats: { rx_q0_good_packets: rx },
      })),
      workers: [],
      scriptCounters: null,
    }) as unknown as EngineSnapshot;
  const h = {
    ports: 2,
    options: () => options,
    snapshot: snap,
    report: (s: EngineSnapshot) => ({ event: "stats", elapsedS: 0, ports: s.ports, workers: [] }),
    formatTable: (r: { ports: { rxPackets: number }[] }) => `RX ${r.ports[0].rxPackets}`,
    formatXstats: (s: EngineSnapshot) => `x ${s.ports[0].xstats.rx_q0_good_packets}`,
    halt: (on: boolean) => (calls.push(on ? "halt" : "resume"), halted = on),
    txFirst: (bursts: number) => calls.push(`txFirst ${bursts}`),
    halted: () => halted,
    restart: (o: EngineOptions) => (restarts.push(o), Promise.resolve()),
  };
  // deno-lint-ignore no-explicit-any
  return { h: h as any, restarts, calls, setRx: (n: number) => rx = n };
}

Deno.test("testpmd console: start and stop halt and resume, set fwd only while stopped", async () => {
  const { h, restarts } = host({ mode: "io" });
  const t = testpmdConsole(h);
  assert.match(await t.stop(), /Packet forwarding not started/);
  assert.match(await t.start(0), /io packet forwarding started/);
  assert.match(await t.start(0), /already started/);
  await assert.rejects(() => t.setForwardMode("macswap"), /Please stop forwarding first/);
  assert.match(await t.stop(), /Accumulated forward statistics for all ports/);
  await assert.rejects(() => t.setForwardMode("nonsense"), /not a forwarding mode/);
  assert.match(await t.setForwardMode("macswap"), /Set macswap packet forwarding mode/);
  assert.equal(restarts[0].mode, "macswap");
  assert.equal(restarts[0].halted, true);
});

Deno.test("testpmd console: leaving mac mode drops its MAC rewrite", async () => {
  const { h, restarts } = host({ mode: "mac", macRewrite: true });
  const t = testpmdConsole(h);
  assert.match(await t.setForwardMode("macswap"), /Set macswap/);
  assert.equal(restarts[0].macRewrite, false);
});

Deno.test("testpmd console: clear port stats makes stats and xstats count from zero", () => {
  const { h, setRx } = host({ mode: "io" });
  const t = testpmdConsole(h);
  setRx(100);
  assert.equal(t.portStats("all"), "RX 100");
  assert.match(t.clearPortStats("all"), /cleared/);
  setRx(130);
  assert.equal(t.portStats("all"), "RX 30");
  assert.equal(t.portXstats("all"), "x 30");
});

Deno.test("testpmd console: start tx_first asks for the bursts before forwarding resumes; not in txonly", async () => {
  const { h, calls } = host({ mode: "io" });
  const t = testpmdConsole(h);
  assert.match(await t.start(8), /io packet forwarding started/);
  assert.deepEqual(calls, ["txFirst 8", "resume"]);
  assert.match(await t.start(1), /already started/);
  assert.deepEqual(calls, ["txFirst 8", "resume"], "nothing sent while forwarding");
  const gen = host({ mode: "txonly" });
  await assert.rejects(() => testpmdConsole(gen.h).start(1), /for forwarding modes: txonly sends/);
  assert.deepEqual(gen.calls, []);
});
