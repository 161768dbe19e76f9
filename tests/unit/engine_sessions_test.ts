/**
 * Counters across engine sessions (src/engine/sessions.ts): what a reset lost is counted on
 * the port the frames were to leave by, and later sessions add to earlier ones.
 */

import assert from "node:assert/strict";
import { addSessions, endSession, sinceSnapshot } from "../../src/engine/sessions.ts";
import type { EngineSnapshot, QueueCounters } from "../../src/engine/snapshot.ts";
import { counters } from "./queue_counters_fixture.ts";

/** Two ports of one queue pair each, with the given counters. */
function snapshot(a: Partial<QueueCounters>, b: Partial<QueueCounters>): EngineSnapshot {
  const port = (p: number, c: QueueCounters) => ({
    port: p,
    name: `p${p}`,
    ...c,
    kicks: c.rxKicks + c.txKicks,
    queues: [{ queue: 0, ...c }],
    xstats: { rx_q0_good_packets: c.rxPackets },
  });
  return {
    ports: [port(0, counters(a)), port(1, counters(b))],
    workers: [],
    scriptCounters: { seen: 1 },
  };
}

Deno.test("endSession() counts frames received and neither sent nor dropped as lost to the reset, on the port they were to leave by", () => {
  // Port 0 received 100: 90 went out of port 1, 4 were dropped for a full ring there and 1
  // by the script; 5 were held. Port 1 received 10, all sent out of port 0.
  const s = endSession(
    snapshot({ rxPackets: 100, dropsScript: 1, txPackets: 10 }, {
      rxPackets: 10,
      txPackets: 90,
      dropsTxRingFull: 4,
    }),
  );
  assert.equal(s.ports[1].dropsReset, 5);
  assert.equal(s.ports[1].queues[0].dropsReset, 5);
  assert.equal(s.ports[0].dropsReset, 0);
});

Deno.test("addSessions() adds every counter of the sessions before, and keeps the live session's workers", () => {
  const first = endSession(snapshot({ rxPackets: 7 }, { txPackets: 5 }));
  const now = snapshot({ rxPackets: 3, rxKicks: 2 }, { txPackets: 3 });
  const sum = addSessions(first, now);
  assert.equal(sum.ports[0].rxPackets, 10);
  assert.equal(sum.ports[1].txPackets, 8);
  assert.equal(sum.ports[1].dropsReset, 2);
  assert.equal(sum.ports[0].kicks, 2);
  assert.equal(sum.ports[0].queues[0].rxPackets, 10);
  assert.equal(sum.ports[0].xstats.rx_q0_good_packets, 10, "extended statistics add up too");
  assert.equal(sum.ports[0].port, 0);
  assert.equal(sum.ports[1].name, "p1");
  assert.deepEqual(sum.scriptCounters, { seen: 2 });
  assert.equal(sum.workers, now.workers);
  assert.equal(addSessions(null, now), now);
});

Deno.test("sinceSnapshot() gives the counts since the base, xstats and script counters included", () => {
  const base = snapshot({ rxPackets: 60, txPackets: 6, rxKicks: 2 }, { rxPackets: 5 });
  const now = snapshot({ rxPackets: 100, txPackets: 10, rxKicks: 3 }, { rxPackets: 5 });
  const s = sinceSnapshot(now, base);
  assert.equal(s.ports[0].rxPackets, 40);
  assert.equal(s.ports[0].queues[0].rxPackets, 40);
  assert.equal(s.ports[0].txPackets, 4);
  assert.equal(s.ports[0].kicks, 1);
  assert.equal(s.ports[0].xstats.rx_q0_good_packets, 40);
  assert.equal(s.ports[1].rxPackets, 0);
  assert.equal(s.ports[0].port, 0);
  assert.equal(s.ports[1].name, "p1");
  assert.equal(s.scriptCounters!.seen, 0);
  assert.equal(sinceSnapshot(now, null), now);
});

Deno.test("addSessions() and sinceSnapshot() keep the live session's generator figures", () => {
  const generator = { txFrames: 7 } as unknown as EngineSnapshot["generator"];
  const now = { ...snapshot({ rxPackets: 1 }, {}), generator };
  const earlier = snapshot({ rxPackets: 1 }, {});
  assert.equal(addSessions(earlier, now).generator, generator);
  assert.equal(sinceSnapshot(now, earlier).generator, generator);
});
