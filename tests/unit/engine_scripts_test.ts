/**
 * The example scripts (examples/scripts/) run by a real forwarding worker against two fake
 * devices (engine_fake_nic.ts): each changes forwarding as it says.
 */

import assert from "node:assert/strict";
import { counterLayout, P_DROP_SCRIPT, portBase } from "../../src/engine/counters.ts";
import { asForwardScript } from "../../src/engine/script_api.ts";
import { parseMac, testFrames, udpFlow, udpFrames } from "../bed/frames.ts";
import { FakeBed } from "./engine_fake_nic.ts";

const scriptUrl = (name: string) => new URL(`../../examples/scripts/${name}`, import.meta.url).href;

/** A bed running script `name`; returns it and a reader of the script's counters. */
async function bedWith(name: string, args: Record<string, string> = {}) {
  const url = scriptUrl(name);
  const mod = asForwardScript(await import(url), name);
  const names = mod.counters ?? [];
  const bed = await FakeBed.start({ script: { url, args } });
  const layout = counterLayout(2, names.length, mod.tableSize ?? 0);
  const counter = (n: string) => bed.counters[layout.scriptBase + names.indexOf(n)];
  const table = new Float64Array(bed.counters.buffer, 8 * layout.tableBase, layout.tableSize);
  return { bed, mod, counter, table };
}

Deno.test("mac_swap.ts swaps destination and source MAC and forwards", async () => {
  const { bed, counter } = await bedWith("mac_swap.ts");
  try {
    const frames = udpFrames({ seed: 5, count: 1000, flows: 10, dst: "02:00:00:00:00:aa" });
    const out = await bed.exchange(0, frames);
    assert.equal(out[1].length, 1000);
    assert.equal(out[0].length, 0);
    for (let i = 0; i < frames.length; i++) {
      const want = frames[i].slice();
      want.set(frames[i].subarray(6, 12), 0);
      want.set(frames[i].subarray(0, 6), 6);
      assert.deepEqual(out[1][i], want, `frame ${i}`);
    }
    assert.deepEqual(out[1][0].subarray(6, 12), parseMac("02:00:00:00:00:aa"));
    assert.equal(counter("swapped"), 1000);
  } finally {
    await bed.close();
  }
});

Deno.test("mac_swap.ts with bounce=1 sends every frame back out of the port it came in on", async () => {
  const { bed } = await bedWith("mac_swap.ts", { bounce: "1" });
  try {
    const frames = udpFrames({ seed: 6, count: 500, flows: 10 });
    const out = await bed.exchange(1, frames);
    assert.equal(out[1].length, 500);
    assert.equal(out[0].length, 0);
  } finally {
    await bed.close();
  }
});

Deno.test("drop_filter.ts drops the listed EtherType and UDP port, forwards the rest in order", async () => {
  const { bed, counter } = await bedWith("drop_filter.ts", {
    ethertype: "0x88b5",
    "udp-port": String(udpFlow(3).dstPort),
  });
  try {
    // Interleave UDP frames of 10 flows with raw frames of EtherType 0x88b5.
    const udp = udpFrames({ seed: 7, count: 1000, flows: 10 });
    const raw = testFrames({ seed: 8, count: 200 });
    const frames: Uint8Array[] = [];
    for (let i = 0; i < udp.length; i++) {
      frames.push(udp[i]);
      if (i % 5 === 0) frames.push(raw[i / 5]);
    }
    const out = await bed.exchange(0, frames);
    const kept = udp.filter((_, i) => i % 10 !== 3);
    assert.equal(out[1].length, kept.length);
    for (let i = 0; i < kept.length; i++) assert.deepEqual(out[1][i], kept[i], `frame ${i}`);
    assert.equal(counter("droppedEthertype"), 200);
    assert.equal(counter("droppedUdpPort"), 100);
    assert.equal(counter("passed"), 900);
    assert.equal(bed.counters[portBase(0) + P_DROP_SCRIPT], 300);
  } finally {
    await bed.close();
  }
});

Deno.test("flow_counters.ts counts packets and bytes per flow and reports them", async () => {
  const { bed, mod, counter, table } = await bedWith("flow_counters.ts", { top: "3" });
  try {
    const frames = udpFrames({ seed: 9, count: 6400, flows: 64 });
    // One flow gets 100 extra frames, so it tops the report.
    const extra = udpFrames({ seed: 10, count: 100, flows: 1 });
    const out = await bed.exchange(0, [...frames, ...extra]);
    assert.equal(out[1].length, 6500, "every frame is forwarded");
    assert.equal(counter("ipv4"), 6500);
    const r = mod.report!({ counters: {}, tables: [table], args: { top: "3" } }) as {
      flows: number;
      packets: number;
      top: { flow: string; packets: number; bytes: number }[];
    };
    assert.equal(r.flows, 64);
    assert.equal(r.packets, 6500);
    const f = udpFlow(0);
    assert.equal(r.top.length, 3);
    assert.equal(r.top[0].flow, `${f.srcIp}:${f.srcPort}>${f.dstIp}:${f.dstPort}/udp`);
    assert.equal(r.top[0].packets, 200);
    const bytes0 = [...frames.filter((_, i) => i % 64 === 0), ...extra]
      .reduce((n, x) => n + x.length, 0);
    assert.equal(r.top[0].bytes, bytes0);
  } finally {
    await bed.close();
  }
});
