/**
 * l2fwd script: drops frames by EtherType or by UDP port, forwards the rest.
 *
 *     deno run --allow-ffi --allow-read=examples/scripts/drop_filter.ts examples/l2fwd.ts \
 *       --script examples/scripts/drop_filter.ts \
 *       --script-arg ethertype=0x86dd,0x88b5 --script-arg udp-port=53,50007 PORT0 PORT1
 *
 * Arguments: `ethertype=` a comma-separated list of EtherTypes (the frame's, after at most
 * one 802.1Q tag), `udp-port=` a list of UDP ports (source or destination of IPv4/UDP).
 * Counters: "droppedEthertype", "droppedUdpPort", "passed". Dropped frames also count as
 * "dropsScript" of the port they came in on.
 *
 * @example
 * ```ts ignore
 * init({ args: { "udp-port": "53" }, queue: 0, workers: 1, ports: 2, macs: [] });
 * handleBurst(burst); // DNS frames get verdict DROP
 * ```
 *
 * @module
 */

import type { Burst, ScriptInit } from "../../mod.ts";

/**
 * The script's counters.
 *
 * @example
 * ```ts ignore
 * counters; // l2fwd prints "script":{"counters":{"droppedEthertype":…,"droppedUdpPort":…,"passed":…}}
 * ```
 */
export const counters = ["droppedEthertype", "droppedUdpPort", "passed"];

const DROP = 1; // src/engine/script_api.ts
const dropType = new Uint8Array(65536);
const dropPort = new Uint8Array(65536);

function numbers(list: string | undefined, what: string): number[] {
  if (!list) return [];
  return list.split(",").map((s) => {
    const n = Number(s.trim());
    if (!(Number.isInteger(n) && n >= 0 && n <= 0xffff)) {
      throw new RangeError(`drop_filter: ${what} '${s}' is not a number from 0 to 65535`);
    }
    return n;
  });
}

/**
 * Reads `ethertype=` and `udp-port=`.
 *
 * @example
 * ```ts ignore
 * init({ queue: 0, workers: 1, ports: 2, macs: [], args: { ethertype: "0x86dd" } });
 * ```
 */
export function init(init: ScriptInit): void {
  for (const t of numbers(init.args.ethertype, "EtherType")) dropType[t] = 1;
  for (const p of numbers(init.args["udp-port"], "UDP port")) dropPort[p] = 1;
}

/**
 * Sets DROP on frames of a listed EtherType or UDP port.
 *
 * @example
 * ```ts ignore
 * handleBurst(burst); // burst.verdicts[i] === 1 for each frame to drop
 * ```
 */
export function handleBurst(b: Burst): void {
  const d = b.data, c = b.counters;
  for (let i = 0; i < b.count; i++) {
    const o = b.offsets[i], len = b.lens[i];
    let l3 = o + 14;
    let type = (d[o + 12] << 8) | d[o + 13];
    if (type === 0x8100 && len >= 18) {
      // IEEE 802.1Q: the real EtherType follows the 4-byte tag.
      type = (d[o + 16] << 8) | d[o + 17];
      l3 = o + 18;
    }
    if (dropType[type]) {
      b.verdicts[i] = DROP;
      c[0]++;
      continue;
    }
    // IPv4 (RFC 791) carrying UDP (protocol 17), not a later fragment.
    if (type === 0x0800 && l3 + 20 <= o + len && d[l3 + 9] === 17) {
      const ihl = (d[l3] & 0x0f) * 4;
      const fragOffset = ((d[l3 + 6] & 0x1f) << 8) | d[l3 + 7];
      const udp = l3 + ihl;
      if (fragOffset === 0 && udp + 8 <= o + len) {
        const src = (d[udp] << 8) | d[udp + 1], dst = (d[udp + 2] << 8) | d[udp + 3];
        if (dropPort[src] || dropPort[dst]) {
          b.verdicts[i] = DROP;
          c[1]++;
          continue;
        }
      }
    }
    c[2]++;
  }
}
