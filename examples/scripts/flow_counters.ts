/**
 * l2fwd script: counts packets and bytes per IPv4 flow (addresses, protocol and, for TCP
 * and UDP, ports), forwards everything, and reports the flows in l2fwd's statistics.
 *
 *     deno run --allow-ffi --allow-read=examples/scripts/flow_counters.ts examples/l2fwd.ts \
 *       --script examples/scripts/flow_counters.ts [--script-arg top=5] PORT0 PORT1
 *
 * Each worker keeps its own table in shared memory (open addressing, 4,096 flows): no
 * locks, no allocation per packet. The main thread merges the tables for each report:
 * `{"flows":N,"packets":P,"top":[{"flow":"10.1.0.5:1029>10.2.0.5:50005/udp","packets",
 * "bytes"}]}` (the `top` busiest, default 5). Counters: "ipv4", "other" (not IPv4),
 * "tableFull" (packets of flows that found no free slot).
 *
 * @example
 * ```ts ignore
 * handleBurst(burst); // counts each frame's flow in burst.table
 * report({ counters, tables, args: {} }); // { flows: 1024, packets: …, top: […] }
 * ```
 *
 * @module
 */

import type { Burst, ScriptReportInput } from "../../mod.ts";

/**
 * The script's counters.
 *
 * @example
 * ```ts ignore
 * counters; // l2fwd prints "script":{"counters":{"ipv4":…,"other":…,"tableFull":…}}
 * ```
 */
export const counters = ["ipv4", "other", "tableFull"];

/** Flow slots per worker. */
const SLOTS = 4096;
/** Numbers per slot: source, destination, ports, protocol + 1 (0: free), packets, bytes. */
const WIDTH = 6;
/**
 * The table each worker gets (numbers).
 *
 * @example
 * ```ts ignore
 * tableSize; // 24576: 4,096 flows of 6 numbers
 * ```
 */
export const tableSize = SLOTS * WIDTH;

/**
 * Counts each IPv4 frame in its flow's slot (linear probing from the key's hash).
 *
 * @example
 * ```ts ignore
 * handleBurst(burst); // burst.table: the worker's flows with their packets and bytes
 * ```
 */
export function handleBurst(b: Burst): void {
  const d = b.data, t = b.table, c = b.counters;
  for (let i = 0; i < b.count; i++) {
    const o = b.offsets[i], len = b.lens[i];
    if (len < 34 || d[o + 12] !== 0x08 || d[o + 13] !== 0x00) {
      c[1]++;
      continue;
    }
    c[0]++;
    const ip = o + 14;
    const proto = d[ip + 9];
    const src = ((d[ip + 12] << 24) | (d[ip + 13] << 16) | (d[ip + 14] << 8) | d[ip + 15]) >>> 0;
    const dst = ((d[ip + 16] << 24) | (d[ip + 17] << 16) | (d[ip + 18] << 8) | d[ip + 19]) >>> 0;
    let ports = 0;
    const l4 = ip + (d[ip] & 0x0f) * 4;
    if ((proto === 6 || proto === 17) && l4 + 4 <= o + len) {
      ports = ((d[l4] << 24) | (d[l4 + 1] << 16) | (d[l4 + 2] << 8) | d[l4 + 3]) >>> 0;
    }
    let h = Math.imul(src ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(dst, 0xc2b2ae35) ^
      Math.imul(ports ^ proto, 0x27d4eb2f);
    h ^= h >>> 15;
    let slot = (h >>> 0) & (SLOTS - 1);
    let probes = 0;
    for (;;) {
      const at = slot * WIDTH;
      if (t[at + 3] === 0) {
        t[at] = src;
        t[at + 1] = dst;
        t[at + 2] = ports;
        t[at + 3] = proto + 1;
      } else if (
        t[at] !== src || t[at + 1] !== dst || t[at + 2] !== ports || t[at + 3] !== proto + 1
      ) {
        if (++probes === SLOTS) {
          c[2]++;
          break;
        }
        slot = (slot + 1) & (SLOTS - 1);
        continue;
      }
      t[at + 4]++;
      t[at + 5] += len;
      break;
    }
  }
}

function ipString(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/**
 * A flow's name: "src:port>dst:port/udp" (ports only for TCP and UDP).
 *
 * @example
 * ```ts
 * import { flowName } from "./flow_counters.ts";
 * flowName(0x0a010005, 0x0a020005, (1029 << 16) | 50005, 17); // "10.1.0.5:1029>10.2.0.5:50005/udp"
 * ```
 */
export function flowName(src: number, dst: number, ports: number, proto: number): string {
  const p = proto === 6 ? "tcp" : proto === 17 ? "udp" : `proto${proto}`;
  if (proto !== 6 && proto !== 17) return `${ipString(src)}>${ipString(dst)}/${p}`;
  return `${ipString(src)}:${ports >>> 16}>${ipString(dst)}:${ports & 0xffff}/${p}`;
}

/**
 * Merges the workers' tables: number of flows, packets, and the busiest `top` flows.
 *
 * @example
 * ```ts ignore
 * report({ counters: {}, tables, args: { top: "3" } }); // { flows, packets, top: [3 flows] }
 * ```
 */
export function report(input: ScriptReportInput): unknown {
  const flows = new Map<string, { packets: number; bytes: number }>();
  for (const t of input.tables) {
    for (let at = 0; at + WIDTH <= t.length; at += WIDTH) {
      if (t[at + 3] === 0) continue;
      const name = flowName(t[at], t[at + 1], t[at + 2], t[at + 3] - 1);
      const f = flows.get(name) ?? { packets: 0, bytes: 0 };
      f.packets += t[at + 4];
      f.bytes += t[at + 5];
      flows.set(name, f);
    }
  }
  let packets = 0;
  for (const f of flows.values()) packets += f.packets;
  const top = [...flows.entries()].sort((a, b) => b[1].packets - a[1].packets)
    .slice(0, Number(input.args.top ?? 5))
    .map(([flow, f]) => ({ flow, ...f }));
  return { flows: flows.size, packets, top };
}
