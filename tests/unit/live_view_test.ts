import assert from "node:assert/strict";
import { LiveView, portDrops, sparkline } from "../../src/engine/live_view.ts";
import type { PortReport, StatsReport } from "../../src/engine/stats_report.ts";
import { counters } from "./queue_counters_fixture.ts";

function port(port: number, rxPps: number, drops = 0): PortReport {
  return {
    port,
    name: `port ${port}`,
    link: "up",
    rxPps,
    txPps: rxPps / 2,
    ...counters({ rxPackets: 1_234_567, dropsTxRingFull: drops, dropsNoBuffer: 1 }),
    kicks: 0,
    queues: [],
    xstats: {},
  };
}

function report(elapsedS: number, pps: number[]): StatsReport {
  return { event: "stats", elapsedS, ports: pps.map((x, i) => port(i, x, 2)), workers: [] };
}

Deno.test("sparkline scales each value to the largest, and all-zero stays low", () => {
  assert.equal(sparkline([0, 1, 2, 4]), "▁▃▅█");
  assert.equal(sparkline([7, 7]), "██");
  assert.equal(sparkline([0, 0, 0]), "▁▁▁");
  assert.equal(sparkline([]), "");
});

Deno.test("portDrops sums every drop reason", () => {
  assert.equal(portDrops(port(0, 0, 5)), 6);
});

Deno.test("the live view draws once, then moves back over its own lines and clears them", () => {
  const view = new LiveView("l2fwd", 3);
  const first = view.render(report(1, [14_520_000, 830_100]));
  assert.ok(!first.startsWith("\x1b["), "nothing to move over the first time");
  const lines = first.split("\n").filter((l) => l !== "");
  assert.equal(lines.length, 4);
  assert.match(lines[2], /^ {3}0 {2}up +14\.52 M +7\.26 M +1,234,567 +3 {2}█$/);
  assert.match(lines[3], /^ {3}1 {2}up +830\.1 k +415\.1 k/);
  const second = view.render(report(2, [0, 830_100]));
  assert.ok(second.startsWith("\x1b[4F\x1b[J"), JSON.stringify(second.slice(0, 10)));
  view.render(report(3, [7_000_000, 0]));
  const fourth = view.render(report(4, [14_000_000, 0]));
  // History of 3: 0, 7 M, 14 M for port 0.
  assert.match(fourth, /▁▅█\n/);
});

Deno.test("the live view cuts long lines to the terminal's width, so the redraw stays aligned", () => {
  const view = new LiveView("l2fwd", 60, 40);
  const r = report(1, [1]);
  r.faults = [{ atS: 0.5, reason: "x".repeat(300) }];
  const out = view.render(r);
  for (const l of out.split("\n")) assert.ok([...l].length <= 39, l);
  assert.ok(view.render(r).startsWith(`\x1b[${out.split("\n").length - 1}F`));
});
