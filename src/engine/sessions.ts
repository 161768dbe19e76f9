/**
 * Counters across engine sessions. An application that stops its engine, resets and
 * reopens its ports, and starts another engine (l2fwd --reconnect after a device fault)
 * reports one set of counters: {@linkcode endSession} counts what the reset lost, and
 * {@linkcode addSessions} adds a live snapshot to what earlier sessions counted.
 *
 * @module
 */

import type { EngineSnapshot, PortStats, QueueCounters } from "./snapshot.ts";
import { addXstats } from "./xstats.ts";

type Counter = keyof QueueCounters;

/**
 * The snapshot of a session that ended in a reset, with each frame that was received and
 * neither sent nor dropped with a reason counted in `dropsReset` of the port it was to
 * leave by (per queue pair: worker k forwards pair k of both ports). Such frames were held
 * for a full ring or in flight to a device that was then reset.
 *
 * @example
 * ```ts ignore
 * const final = await engine.stop();
 * carried = addSessions(carried, endSession(final)); // then reset, reopen, start again
 * ```
 */
export function endSession(s: EngineSnapshot): EngineSnapshot {
  const ports = s.ports.map((p) => ({ ...p, queues: p.queues.map((q) => ({ ...q })) }));
  for (const [from, to] of [[0, 1], [1, 0]]) {
    const rx = ports[from], tx = ports[to];
    if (!rx || !tx) continue;
    for (const [k, out] of tx.queues.entries()) {
      const inn = rx.queues[k];
      const accounted = out.txPackets + out.dropsTxRingFull + out.dropsTooLong + out.dropsReset +
        inn.dropsScript + inn.dropsMode;
      out.dropsReset += Math.max(0, inn.rxPackets - accounted);
    }
  }
  for (const p of ports) p.dropsReset = p.queues.reduce((n, q) => n + q.dropsReset, 0);
  return { ...s, ports };
}

/**
 * `now` with the counters of `earlier` sessions added (port and queue counters, script
 * counters); workers are `now`'s. `earlier` null: `now` as it is.
 *
 * @example
 * ```ts ignore
 * report(addSessions(carried, engine.snapshot()));
 * ```
 */
export function addSessions(earlier: EngineSnapshot | null, now: EngineSnapshot): EngineSnapshot {
  if (!earlier) return now;
  const sum = <T extends QueueCounters>(a: T, b: T | undefined): T => {
    const r = { ...a };
    if (!b) return r;
    for (const key of Object.keys(b) as Counter[]) {
      if (typeof b[key] === "number" && key in r) (r[key] as number) += b[key];
    }
    return r;
  };
  const ports = now.ports.map((p, i): PortStats => {
    const e = earlier.ports[i];
    const total = sum(p, e);
    return {
      ...total,
      port: p.port,
      name: p.name,
      kicks: p.kicks + (e?.kicks ?? 0),
      queues: p.queues.map((q, k) => ({ ...sum(q, e?.queues[k]), queue: q.queue })),
      xstats: addXstats(p.xstats, e?.xstats),
    };
  });
  let scriptCounters = now.scriptCounters;
  if (scriptCounters && earlier.scriptCounters) {
    scriptCounters = { ...scriptCounters };
    for (const [k, v] of Object.entries(earlier.scriptCounters)) {
      scriptCounters[k] = (scriptCounters[k] ?? 0) + v;
    }
  }
  // The generator's figures are the live session's (its latency histogram does not add).
  return { ports, workers: now.workers, scriptCounters, generator: now.generator };
}

/**
 * `now` less what `base` had counted (port and queue counters, script counters): the
 * counts since `base` was taken, as testpmd's `clear port stats` gives them. `base` null:
 * `now` as it is.
 *
 * @example
 * ```ts ignore
 * const cleared = engine.snapshot(); // … later:
 * report(sinceSnapshot(engine.snapshot(), cleared));
 * ```
 */
export function sinceSnapshot(now: EngineSnapshot, base: EngineSnapshot | null): EngineSnapshot {
  if (!base) return now;
  const negate = <T extends object>(o: T): T => {
    const r = { ...o } as Record<string, unknown>;
    for (const [k, v] of Object.entries(r)) if (typeof v === "number") r[k] = -v;
    return r as T;
  };
  const scriptCounters = base.scriptCounters ? negate(base.scriptCounters) : null;
  const negative: EngineSnapshot = {
    ports: base.ports.map((p) => ({
      ...negate(p),
      xstats: negate(p.xstats),
      queues: p.queues.map((q) => negate(q)),
    })),
    workers: base.workers,
    scriptCounters,
  };
  return { ...addSessions(negative, now), generator: now.generator };
}
